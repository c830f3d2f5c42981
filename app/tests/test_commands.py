"""seed_demo and refresh_hot_cache."""

import io

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from scoreboard.games import hot
from scoreboard.games.models import League, Player, Score, Team

pytestmark = pytest.mark.django_db


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def snapshot():
    return list(Score.objects.order_by("id").values_list("player__name", "points", "created"))


def test_seed_demo_is_deterministic_and_replaces_data():
    args = (
        "seed_demo",
        "--leagues",
        "3",
        "--teams",
        "7",
        "--players-per-team",
        "4",
        "--scores",
        "5",
        "--no-refresh",
    )
    assert "seeded 3 leagues, 7 teams, 28 players, 140 scores" in run(*args)
    first = snapshot()
    run(*args)
    assert snapshot() == first
    counts = [m.objects.count() for m in (League, Team, Player, Score)]
    assert counts == [3, 7, 28, 140]
    run(*args[:-1], "--seed", "7")
    assert snapshot() != first


def test_seed_demo_refreshes_the_hot_cache():
    run("seed_demo", "--teams", "3", "--players-per-team", "2", "--scores", "1")
    assert hot.board.get().status == "hit"
    assert hot.leaderboard.get().status == "hit"


def test_refresh_hot_cache():
    run("seed_demo", "--teams", "2", "--players-per-team", "1", "--scores", "1", "--no-refresh")
    output = run("refresh_hot_cache")
    assert "refreshed board" in output
    assert "refreshed leaderboard" in output
    assert cache.get(hot.board.key) is not None

    cache.add(hot.leaderboard.lock_key, "a request", 30)
    assert "skipped leaderboard" in run("refresh_hot_cache", "leaderboard")
    with pytest.raises(CommandError, match="unknown entries: nope"):
        run("refresh_hot_cache", "nope")
