"""Team queries for the two hot pages, and cached access to them.

Both queries are built so that their query count is constant, whatever the
number of leagues, teams, players and scores: joins (``select_related``), one
extra query per relation (``prefetch_related``) and aggregation in the
database instead of per-row queries from the template (the N+1 problem).
They return plain lists of dicts, independent of model instances; the hot
cache stores the pages rendered from them (scoreboard.games.hot).
"""

from itertools import groupby

from django.apps import apps
from django.db import models
from django.db.models import Count, F, Prefetch, Sum, Value
from django.db.models.functions import Coalesce, Rank


def _points(path):
    return Coalesce(Sum(path), Value(0))


class TeamQuerySet(models.QuerySet):
    def board(self):
        """Leagues -> teams -> players with their points: 2 queries."""
        player_model = apps.get_model("games", "Player")
        players = player_model.objects.annotate(
            points=_points("scores__points"), score_count=Count("scores")
        ).order_by("-points", "name")
        teams = (
            self.select_related("league")
            .prefetch_related(Prefetch("players", queryset=players))
            .order_by("league__name", "name")
        )
        rows = [
            {
                "league": team.league.name,
                "name": team.name,
                "points": sum(player.points for player in team.players.all()),
                "players": [
                    {"name": p.name, "points": p.points, "scores": p.score_count}
                    for p in team.players.all()
                ],
            }
            for team in teams
        ]
        return [
            {"name": league, "teams": list(league_teams)}
            for league, league_teams in groupby(rows, key=lambda row: row["league"])
        ]

    def leaderboard(self):
        """Every team ranked by its points over all scores: 1 query."""
        return list(
            self.annotate(
                points=_points("players__scores__points"),
                scores=Count("players__scores"),
            )
            .annotate(rank=models.Window(Rank(), order_by=F("points").desc()))
            .order_by("rank", "name")
            .values("rank", "name", "league__name", "points", "scores")
        )


class TeamManager(models.Manager.from_queryset(TeamQuerySet)):
    def cached_board(self):
        """The board page, rendered, through the hot cache: ``CacheResult(page, status)``.

        ``page``: UTF-8 byte strings and slots for host values (scoreboard.games.pages.fill).
        """
        from scoreboard.games import hot

        return hot.board.get()

    def cached_leaderboard(self):
        """The leaderboard page, rendered, through the hot cache: ``CacheResult(page, status)``.

        ``page``: UTF-8 byte strings and slots for host values (scoreboard.games.pages.fill).
        """
        from scoreboard.games import hot

        return hot.leaderboard.get()
