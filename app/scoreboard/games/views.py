"""The two hot pages, served as rendered through the hot cache (X-Cache: hit|miss|stale)."""

from django.http import HttpResponse

from scoreboard.games.models import Team
from scoreboard.games.pages import fill


def _serve(request, result):
    response = HttpResponse(fill(result.value, request))
    response["X-Cache"] = result.status
    return response


def board(request):
    return _serve(request, Team.objects.cached_board())


def leaderboard(request):
    return _serve(request, Team.objects.cached_leaderboard())
