"""Rate of GET / on a warm cache, in process through Django's test client (not part of the suite).

Run it on its own, from app/, against the same servers as the tests:

    python -m pytest tests/bench_board.py -q -s -p no:cacheprovider

Data: the demo's default seed (3 leagues, 30 teams, 300 players, 3,000 scores). It prints, for
each of RUNS runs of REQUESTS hits, the rate in requests/s and the process CPU time per request in
ms, then the minimum and the median of the rates and the median CPU time.
"""

import statistics
import time

import pytest
from django.test import Client

RUNS = 7
REQUESTS = 1000

pytestmark = pytest.mark.django_db


def test_board_warm_cache_rate(seed, settings):
    settings.HOT_CACHE_FRESH_SECONDS = 3600  # every timed request is a hit
    seed(leagues=3, teams=30, players_per_team=10, scores=10)
    client = Client()
    first = client.get("/")
    assert first["X-Cache"] == "miss"
    print(f"\npage: {len(first.content)} bytes")
    rates, cpu_ms = [], []
    for run in range(1, RUNS + 1):
        statuses = set()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(REQUESTS):
            statuses.add(client.get("/")["X-Cache"])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert statuses == {"hit"}
        rates.append(REQUESTS / wall)
        cpu_ms.append(cpu / REQUESTS * 1000)
        print(f"run {run}: {rates[-1]:.0f} req/s, {cpu_ms[-1]:.3f} ms CPU per request")
    print(
        f"min {min(rates):.0f} req/s, median {statistics.median(rates):.0f} req/s, "
        f"median {statistics.median(cpu_ms):.3f} ms CPU per request"
    )
