"""The database unavailable (a restart, an outage): a stale page or a 503 with Retry-After, never a
500. The shared MariaDB keeps running: the outage is simulated in this process."""

import logging
from contextlib import contextmanager

import pytest
from django.core.cache import cache
from django.db import connection
from django.db.backends.mysql.base import Database, DatabaseWrapper
from django.db.utils import InterfaceError, OperationalError, ProgrammingError
from django.test import Client

from scoreboard import metrics
from scoreboard.games import hot

ENTRIES = {"/": hot.board, "/leaderboard/": hot.leaderboard}
CONNECT_REFUSED = (
    2003,
    "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)",
)


@pytest.fixture
def failing(monkeypatch):
    """``failing(entry, exc)``: every recomputation of ``entry`` raises ``exc``. Returns the list
    of attempts (one ``None`` each)."""

    def fail(entry, exc):
        attempts = []

        def compute():
            attempts.append(None)
            raise exc

        monkeypatch.setattr(entry, "compute", compute)
        return attempts

    return fail


@contextmanager
def refused_connections():
    """New database connections fail as with the server down (the driver's error, which Django
    translates); the open connection is closed first."""

    def refuse(self, conn_params):
        raise Database.OperationalError(*CONNECT_REFUSED)

    connection.close()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseWrapper, "get_new_connection", refuse)
        yield


def counters(name):
    return {
        status: metrics.value(f"cache_{status}_total", name)
        for status in ("hits", "misses", "stale")
    } | {"recomputes": metrics.value(f"{name}_recomputes_total")}


def assert_503(response, retry_after="5"):
    assert response.status_code == 503
    assert response["Retry-After"] == retry_after
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert b"database is unavailable" in response.content
    assert "no-store" in response["Cache-Control"]
    assert "X-Cache" not in response
    # The stats middleware still stamps it.
    assert response["X-Served-By"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ENTRIES)
@pytest.mark.parametrize("error", [OperationalError(*CONNECT_REFUSED), InterfaceError(0, "")])
def test_a_stale_page_is_served_when_the_recomputation_fails(
    client, seed, failing, caplog, path, error
):
    entry = ENTRIES[path]
    seed(teams=3, players_per_team=2, scores=1)
    page = client.get(path).content
    entry.mark_stale()
    attempts = failing(entry, error)

    with caplog.at_level(logging.WARNING, logger="scoreboard.softcache"):
        for _ in range(2):
            response = client.get(path)
            assert (response.status_code, response["X-Cache"]) == (200, "stale")
            assert response.content == page

    # Each request tried again (the lock is released), the entry is kept, still stale.
    assert len(attempts) == 2
    assert cache.get(entry.lock_key) is None
    assert cache.get(entry.key)[0] == 0.0
    assert counters(entry.name) == {"hits": 0, "misses": 1, "stale": 2, "recomputes": 1}
    assert f"database unavailable; serving {entry.name} stale" in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize("path", ENTRIES)
@pytest.mark.parametrize("error", [OperationalError(*CONNECT_REFUSED), InterfaceError(0, "")])
def test_without_a_page_the_answer_is_503_with_retry_after(client, failing, caplog, path, error):
    entry = ENTRIES[path]
    attempts = failing(entry, error)
    route = "board" if path == "/" else "leaderboard"

    with caplog.at_level(logging.ERROR, logger="scoreboard.middleware"):
        assert_503(client.get(path))

    assert len(attempts) == 1
    assert cache.get(entry.lock_key) is None
    assert cache.get(entry.key) is None
    assert counters(entry.name) == {"hits": 0, "misses": 0, "stale": 0, "recomputes": 0}
    assert metrics.value("http_requests_total", route) == 1
    assert f"database unavailable, 503 for {path}" in caplog.text


@pytest.mark.django_db
def test_retry_after_is_a_setting(client, failing, settings):
    settings.DB_RETRY_AFTER_SECONDS = 17
    failing(hot.leaderboard, OperationalError(*CONNECT_REFUSED))
    assert_503(client.get("/leaderboard/"), retry_after="17")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "error", [RuntimeError("bug"), ProgrammingError(1146, "Table doesn't exist")]
)
@pytest.mark.parametrize("stale", [False, True], ids=["no-page", "stale-page"])
def test_other_errors_are_still_500(client, seed, failing, error, stale):
    if stale:
        seed(teams=3, players_per_team=2, scores=1)
        client.get("/")
        hot.board.mark_stale()
    failing(hot.board, error)

    with pytest.raises(type(error)):
        client.get("/")
    response = Client(raise_request_exception=False).get("/")
    assert response.status_code == 500
    assert "Retry-After" not in response
    assert cache.get(hot.board.lock_key) is None


@pytest.mark.django_db(transaction=True)
def test_server_down_then_back(client, seed):
    """As while MariaDB restarts: the leaderboard (cached, now stale) is served, the board (not
    cached) is a 503; once the server is back the next request connects again and recomputes."""
    seed(teams=3, players_per_team=2, scores=1)
    page = client.get("/leaderboard/").content
    hot.leaderboard.mark_stale()
    hot.board.delete()

    with refused_connections():
        stale = client.get("/leaderboard/")
        assert (stale.status_code, stale["X-Cache"], stale.content) == (200, "stale", page)
        assert_503(client.get("/"))
        assert connection.connection is None

    fresh = client.get("/leaderboard/")
    assert (fresh.status_code, fresh["X-Cache"], fresh.content) == (200, "miss", page)
    board = client.get("/")
    assert (board.status_code, board["X-Cache"]) == (200, "miss")
