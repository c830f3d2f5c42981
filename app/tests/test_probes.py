"""/healthz, /readyz and /metrics."""

import json
import re

import pytest
from django.db import connection

from scoreboard.games import hot

METRIC_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? \d+$')


@pytest.fixture
def database_unreachable():
    """Point the default connection at a port where nothing listens."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT="1")
    yield
    connection.close()
    connection.settings_dict.update(saved)


# No django_db mark: pytest-django fails any database access in this test.
@pytest.mark.usefixtures("broken_cache")
def test_healthz_touches_neither_database_nor_cache(client, settings, monkeypatch):
    settings.RELEASE = "r42"
    monkeypatch.setitem(connection.settings_dict, "HOST", "db.invalid")
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok r42"
    assert response["X-DB-Queries"] == "0"


@pytest.mark.django_db
def test_readyz_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "cache": "ok"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("database_unreachable")
def test_readyz_names_the_database_when_it_is_down(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["status"] == "fail"
    assert body["failed"] == ["database"]
    assert "OperationalError" in body["errors"]["database"]


@pytest.mark.django_db
@pytest.mark.usefixtures("broken_cache")
def test_readyz_names_the_cache_when_it_is_down(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["cache"]
    assert body["checks"] == {"database": "ok", "cache": "fail"}


def parse_metrics(text):
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ .+$", line), line
            continue
        assert METRIC_LINE.match(line), line
        name, value = line.rsplit(" ", 1)
        samples[name] = int(value)
    return samples


@pytest.mark.django_db
def test_metrics_counts_site_wide_in_prometheus_format(client, seed):
    seed(teams=3, players_per_team=2, scores=2)
    hot.leaderboard.delete()
    client.get("/leaderboard/")  # miss: recomputes
    client.get("/leaderboard/")  # hit
    client.get("/healthz")  # not counted: it must not touch the cache

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    assert "# TYPE leaderboard_recomputes_total counter" in text
    samples = parse_metrics(text)
    assert samples["leaderboard_recomputes_total"] == 1
    assert samples['cache_misses_total{entry="leaderboard"}'] == 1
    assert samples['cache_hits_total{entry="leaderboard"}'] == 1
    assert samples['http_requests_total{route="leaderboard"}'] == 2
    assert samples['http_requests_total{route="metrics"}'] == 0  # counted after rendering
    assert "healthz" not in text
    assert samples["scoreboard_metrics_store_up"] == 1


@pytest.mark.usefixtures("broken_cache")
def test_metrics_report_an_unreachable_store(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "scoreboard_metrics_store_up 0" in response.content.decode()
