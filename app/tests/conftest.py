import copy
import io
import threading
import uuid

import pytest
from django.core.management import call_command
from django.test import override_settings

from scoreboard.games import hot


@pytest.fixture(scope="session", autouse=True)
def _collected_static(tmp_path_factory):
    """ManifestStaticFilesStorage needs collectstatic's manifest to render pages."""
    with override_settings(STATIC_ROOT=str(tmp_path_factory.mktemp("static"))):
        call_command("collectstatic", interactive=False, verbosity=0)
        yield


@pytest.fixture(autouse=True)
def _fresh_cache_namespace(settings):
    """Each test gets an empty, private namespace on the real memcached."""
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex[:12]}"
    settings.CACHES = caches


@pytest.fixture
def broken_cache(settings):
    """Point the cache at a port where nothing listens."""
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = ["127.0.0.1:1"]
    settings.CACHES = caches


@pytest.fixture
def seed():
    def seed(teams, players_per_team, scores, leagues=2):
        call_command(
            "seed_demo",
            leagues=leagues,
            teams=teams,
            players_per_team=players_per_team,
            scores=scores,
            no_refresh=True,
            stdout=io.StringIO(),
        )

    return seed


def _slow_down(monkeypatch, entry):
    """Make ``entry`` take long enough (0.3 s more) for all concurrent requests to pile up."""
    compute = entry.compute

    def slow():
        threading.Event().wait(0.3)
        return compute()

    monkeypatch.setattr(entry, "compute", slow)


@pytest.fixture
def slow_leaderboard(monkeypatch):
    _slow_down(monkeypatch, hot.leaderboard)


@pytest.fixture
def slow_board(monkeypatch):
    _slow_down(monkeypatch, hot.board)
