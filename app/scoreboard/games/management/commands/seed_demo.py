"""Fill the database with deterministic demo data, fast (bulk inserts)."""

import random
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from scoreboard.games.models import League, Player, Score, Team
from scoreboard.softcache import REGISTRY

BATCH_SIZE = 2000
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def positive(value):
    number = int(value)
    if number < 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Replace all leagues, teams, players and scores with generated demo data. "
        "The same arguments always give the same data. With --if-empty, only a database "
        "without leagues is seeded; one that holds data is left as it is."
    )

    def add_arguments(self, parser):
        parser.add_argument("--leagues", type=positive, default=3)
        parser.add_argument("--teams", type=positive, default=30, help="teams in all")
        parser.add_argument("--players-per-team", type=positive, default=10)
        parser.add_argument("--scores", type=positive, default=10, help="scores per player")
        parser.add_argument("--seed", type=int, default=42, help="random seed")
        parser.add_argument(
            "--no-refresh", action="store_true", help="do not refresh the hot cache"
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help=(
                "seed only when the database holds no league yet; otherwise change nothing "
                "(prints 'seeded ...' only when it seeded, so a deploy tool can tell)"
            ),
        )

    def handle(self, *args, leagues, teams, players_per_team, scores, seed, **options):
        if teams and not leagues:
            raise CommandError("teams need at least one league")
        rng = random.Random(seed)
        with transaction.atomic():
            if options["if_empty"]:
                existing = League.objects.count()
                if existing:
                    self.stdout.write(
                        f"nothing to do: the database already holds {existing} leagues "
                        "(--if-empty seeds an empty database only)"
                    )
                    return
            for model in (Score, Player, Team, League):
                model.objects.all().delete()
            league_ids = self._create_leagues(leagues)
            team_ids = self._create_teams(teams, league_ids)
            player_ids = self._create_players(team_ids, players_per_team)
            self._create_scores(player_ids, scores, rng)
        if not options["no_refresh"]:
            for entry in REGISTRY.values():
                entry.refresh()
        self.stdout.write(
            f"seeded {leagues} leagues, {teams} teams, {len(player_ids)} players, "
            f"{len(player_ids) * scores} scores"
        )

    def _create_leagues(self, count):
        League.objects.bulk_create([League(name=f"League {n:02d}") for n in range(1, count + 1)])
        return list(League.objects.order_by("name").values_list("id", flat=True))

    def _create_teams(self, count, league_ids):
        Team.objects.bulk_create(
            [
                Team(name=f"Team {n:04d}", league_id=league_ids[n % len(league_ids)])
                for n in range(1, count + 1)
            ],
            batch_size=BATCH_SIZE,
        )
        return list(Team.objects.order_by("name").values_list("id", flat=True))

    def _create_players(self, team_ids, per_team):
        Player.objects.bulk_create(
            [
                Player(team_id=team_id, name=f"Player {t:04d}-{n:02d}")
                for t, team_id in enumerate(team_ids, start=1)
                for n in range(1, per_team + 1)
            ],
            batch_size=BATCH_SIZE,
        )
        return list(Player.objects.order_by("team__name", "name").values_list("id", flat=True))

    def _create_scores(self, player_ids, per_player, rng):
        batch = []
        for player_id in player_ids:
            for _ in range(per_player):
                created = EPOCH + timedelta(seconds=rng.randrange(365 * 24 * 3600))
                batch.append(Score(player_id=player_id, points=rng.randint(0, 50), created=created))
                if len(batch) >= BATCH_SIZE:
                    Score.objects.bulk_create(batch)
                    batch = []
        Score.objects.bulk_create(batch)
