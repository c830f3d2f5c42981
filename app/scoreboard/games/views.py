"""The two hot pages, served through the hot cache (X-Cache: hit|miss|stale)."""

from django.shortcuts import render

from scoreboard.games.models import Team


def _render_cached(request, template, result):
    response = render(request, template, {"data": result.value})
    response["X-Cache"] = result.status
    return response


def board(request):
    return _render_cached(request, "games/board.html", Team.objects.cached_board())


def leaderboard(request):
    return _render_cached(request, "games/leaderboard.html", Team.objects.cached_leaderboard())
