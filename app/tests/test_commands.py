"""seed_demo and refresh_hot_cache."""

import io
import re

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from scoreboard.games import hot
from scoreboard.games.models import League, Player, Score, Team

pytestmark = pytest.mark.django_db

# How the Ansible role django_app tells a seed that wrote data (django_app_seed_changed_regex).
SEEDED = re.compile(r"^seeded\b", re.MULTILINE)


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


def test_seed_demo_if_empty_seeds_only_an_empty_database():
    args = ("seed_demo", "--teams", "4", "--players-per-team", "2", "--scores", "3", "--no-refresh")
    assert not League.objects.exists()
    output = run(*args, "--if-empty")
    assert output.startswith("seeded 3 leagues, 4 teams, 8 players, 24 scores")
    assert SEEDED.search(output)
    first = snapshot()

    # Data exists: nothing is deleted or added, whatever the arguments, and the output says so.
    output = run(*args[:2], "9", "--seed", "7", "--if-empty")
    assert output.startswith("nothing to do: the database already holds 3 leagues")
    assert not SEEDED.search(output)
    assert snapshot() == first
    assert [m.objects.count() for m in (League, Team, Player, Score)] == [3, 4, 8, 24]

    # Without --if-empty the data is still replaced.
    assert run(*args[:2], "9", "--if-empty").startswith("nothing to do")
    assert run(*args[:2], "9", "--no-refresh").startswith("seeded 3 leagues, 9 teams")
    assert Team.objects.count() == 9


def test_seed_demo_if_empty_seeds_after_the_data_is_gone():
    args = ("seed_demo", "--teams", "2", "--players-per-team", "1", "--scores", "1")
    run(*args, "--no-refresh")
    for model in (Score, Player, Team, League):
        model.objects.all().delete()
    output = run(*args, "--if-empty")
    assert output.startswith("seeded 3 leagues, 2 teams, 2 players, 2 scores")
    assert hot.board.get().status == "hit"


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
