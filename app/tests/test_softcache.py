"""SoftCache behaviour against the real memcached."""

import pytest
from django.core.cache import cache

from scoreboard import metrics
from scoreboard.softcache import HIT, MISS, STALE, SoftCache


@pytest.fixture
def entry():
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    soft = SoftCache("test_entry", compute)
    soft.calls = calls
    return soft


def test_miss_then_hit(entry):
    assert entry.get() == (1, MISS)
    assert entry.get() == (1, HIT)
    assert metrics.value("test_entry_recomputes_total") == 1


def test_expired_freshness_serves_stale_while_locked(entry, settings):
    settings.HOT_CACHE_FRESH_SECONDS = 0
    assert entry.get() == (1, MISS)
    cache.add(entry.lock_key, "someone else", 30)
    assert entry.get() == (1, STALE)
    cache.delete(entry.lock_key)
    assert entry.get() == (2, MISS)


def test_waits_for_the_lock_holder_then_computes_itself(entry, settings):
    settings.HOT_CACHE_WAIT_SECONDS = 0.2
    cache.add(entry.lock_key, "a crashed process", 30)
    assert entry.get() == (1, MISS)


def test_refresh_skips_while_another_process_recomputes(entry):
    cache.add(entry.lock_key, "someone else", 30)
    assert entry.refresh() is False
    cache.delete(entry.lock_key)
    assert entry.refresh() is True
    assert entry.get() == (1, HIT)


@pytest.mark.usefixtures("broken_cache")
def test_cache_down_computes_from_source(entry):
    assert entry.get() == (1, MISS)
    assert entry.get() == (2, MISS)
