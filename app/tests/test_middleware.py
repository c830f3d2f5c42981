"""Headers every response carries."""

import re

import pytest


def test_stats_headers_on_a_response_without_queries(client, settings):
    settings.SERVED_BY = "web-7"
    settings.RELEASE = "2024.06.1"
    response = client.get("/healthz")
    assert response["X-DB-Queries"] == "0"
    assert re.fullmatch(r"db;dur=0\.00, app;dur=\d+\.\d\d", response["Server-Timing"])
    assert response["X-Served-By"] == "web-7"
    assert response["X-Release"] == "2024.06.1"


def test_stats_headers_on_a_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response["X-DB-Queries"] == "0"
    assert "X-Served-By" in response


@pytest.mark.django_db
def test_queries_and_their_time_are_counted(client):
    response = client.get("/readyz")
    assert int(response["X-DB-Queries"]) >= 1
    db_ms = float(re.match(r"db;dur=(\d+\.\d+)", response["Server-Timing"]).group(1))
    assert db_ms > 0
