"""Saving a Score makes the hot entries stale; the next reader recomputes."""

import pytest
from django.core.cache import cache

from scoreboard.games import hot
from scoreboard.games.models import Player, Score, Team

pytestmark = pytest.mark.django_db


def test_saving_a_score_refreshes_the_leaderboard(client, seed, django_capture_on_commit_callbacks):
    seed(teams=4, players_per_team=2, scores=2)
    assert client.get("/leaderboard/")["X-Cache"] == "miss"
    assert client.get("/leaderboard/")["X-Cache"] == "hit"
    last = Team.objects.leaderboard()[-1]["name"]
    first_row = f'<tr><td class="num">1</td><td>{last}</td>'
    assert first_row not in client.get("/leaderboard/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        Score.objects.create(player=Player.objects.filter(team__name=last).first(), points=10**6)

    response = client.get("/leaderboard/")
    assert response["X-Cache"] == "miss"
    assert first_row in response.content.decode()
    assert client.get("/leaderboard/")["X-Cache"] == "hit"


def test_saving_a_score_marks_every_hot_entry_stale(seed, django_capture_on_commit_callbacks):
    seed(teams=2, players_per_team=1, scores=1)
    hot.board.refresh()
    hot.leaderboard.refresh()

    with django_capture_on_commit_callbacks(execute=True):
        Score.objects.create(player=Player.objects.first(), points=1)

    for entry in (hot.board, hot.leaderboard):
        fresh_until, value = cache.get(entry.key)
        assert fresh_until == 0  # stale, but the old value is kept for readers
        assert value


def test_nothing_happens_before_commit(seed, django_capture_on_commit_callbacks):
    seed(teams=1, players_per_team=1, scores=1)
    hot.board.refresh()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        Score.objects.create(player=Player.objects.first(), points=1)
    assert len(callbacks) == 1
    assert cache.get(hot.board.key)[0] > 0
