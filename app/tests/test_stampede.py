"""Dog-pile protection on /leaderboard/ with 100 concurrent requests.

Real memcached (atomic add) and real MariaDB; each thread uses its own DB
connection, like processes on different hosts would.
"""

import pytest

from scoreboard import metrics
from scoreboard.games import hot

from .helpers import concurrent_gets

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("slow_leaderboard"),
]

REQUESTS = 100
RECOMPUTES = "leaderboard_recomputes_total"


@pytest.fixture(autouse=True)
def _data(seed):
    seed(teams=10, players_per_team=10, scores=5)


def assert_one_recompute(results, before):
    statuses = [status for status, _ in results]
    assert statuses == [200] * REQUESTS, results
    x_cache = [header for _, header in results]
    assert set(x_cache) <= {"hit", "miss", "stale"}, x_cache
    assert x_cache.count("miss") == 1, x_cache
    assert metrics.value(RECOMPUTES) == before + 1
    return x_cache


def test_cold_cache_100_concurrent_requests_recompute_once():
    hot.leaderboard.delete()
    before = metrics.value(RECOMPUTES)

    x_cache = assert_one_recompute(concurrent_gets("/leaderboard/", REQUESTS), before)

    # Nobody had a stale value: all the others waited for the fresh one.
    assert x_cache.count("hit") == REQUESTS - 1
    assert metrics.value("cache_misses_total", "leaderboard") == 1


def test_stale_value_is_served_while_one_request_recomputes():
    hot.leaderboard.refresh()
    hot.leaderboard.mark_stale()
    before = metrics.value(RECOMPUTES)

    x_cache = assert_one_recompute(concurrent_gets("/leaderboard/", REQUESTS), before)

    assert x_cache.count("stale") >= 1
    assert metrics.value("cache_stale_total", "leaderboard") == x_cache.count("stale")
