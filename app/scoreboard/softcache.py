"""Hot cache entries with soft expiry and dog-pile (stampede) protection.

Each entry is stored as ``(fresh_until, value)`` under one key whose memcached
TTL (the hard expiry) is longer than its freshness:

* fresh        -> served as is                              (``hit``)
* stale        -> one process takes the lock and recomputes (``miss``);
                  all others serve the stale value meanwhile (``stale``)
* absent       -> one process takes the lock and recomputes (``miss``);
                  the others poll the cache until the value appears (``hit``)

The lock is a second key taken with memcached's atomic ``add`` (it only
succeeds if the key does not exist), with a TTL so a crashed holder cannot
keep it forever. Whoever gets the lock checks the value again before computing,
so a lock released just before is not followed by a second computation.

If memcached is unreachable the value is computed from the database and not
cached (graceful degradation: slower, but up). If the database is unreachable
(``DATABASE_UNAVAILABLE``) while a stale value exists, the stale value is served
(``stale``) and kept; the next reader past the freshness tries again. Without a
value the error propagates (the middleware answers 503).
"""

import logging
import time
import uuid
from typing import Any, NamedTuple

from django.conf import settings
from django.core.cache import cache

from scoreboard import metrics
from scoreboard.cache import CACHE_ERRORS
from scoreboard.middleware import DATABASE_UNAVAILABLE

logger = logging.getLogger(__name__)

HIT, MISS, STALE = "hit", "miss", "stale"
STATUS_METRICS = {
    HIT: "cache_hits_total",
    MISS: "cache_misses_total",
    STALE: "cache_stale_total",
}
POLL_SECONDS = 0.05
REGISTRY = {}


class CacheResult(NamedTuple):
    value: Any
    status: str  # HIT, MISS or STALE


class SoftCache:
    """A named, lazily computed value shared by all processes through memcached."""

    def __init__(self, name, compute, version=None):
        """``compute()`` returns the value (anything picklable); ``name`` names the entry and its
        metrics. ``version`` is part of the key: change it when the shape of the value changes, so
        that releases sharing memcached during a rolling deploy never read each other's values.
        """
        self.name = name
        self.compute = compute
        self.key = f"hot:{name}" if version is None else f"hot:{name}:{version}"
        self.lock_key = f"{self.key}:lock"
        self.recomputes_metric = f"{name}_recomputes_total"
        REGISTRY[name] = self

    # -- reading -----------------------------------------------------------

    def get(self):
        try:
            result = self._get()
        except CACHE_ERRORS as exc:
            logger.warning("cache unavailable for %s: %r", self.name, exc)
            result = CacheResult(self._compute(), MISS)
        metrics.incr(STATUS_METRICS[result.status], self.name)
        return result

    def _get(self):
        deadline = time.monotonic() + settings.HOT_CACHE_WAIT_SECONDS
        while True:
            entry = cache.get(self.key)
            if entry is not None and _is_fresh(entry):
                return CacheResult(entry[1], HIT)
            token = self._acquire()
            if token:
                return self._recompute_holding(token, entry)
            if entry is not None:
                return CacheResult(entry[1], STALE)
            if time.monotonic() >= deadline:
                logger.warning("gave up waiting for %s; computing it", self.name)
                return CacheResult(self._compute(), MISS)
            time.sleep(POLL_SECONDS)

    def _recompute_holding(self, token, seen):
        """Recompute under the lock ``token``. ``seen``: the ``(fresh_until, value)`` entry read
        before taking the lock, or None; served (``stale``) if the database is unavailable and
        the entry has gone meanwhile."""
        try:
            entry = cache.get(self.key)  # refreshed while we took the lock?
            if entry is not None and _is_fresh(entry):
                return CacheResult(entry[1], HIT)
            stale = entry if entry is not None else seen
            try:
                value = self._compute()
            except DATABASE_UNAVAILABLE as exc:
                if stale is None:
                    raise
                logger.warning("database unavailable; serving %s stale: %r", self.name, exc)
                return CacheResult(stale[1], STALE)
            return CacheResult(self._store(value), MISS)
        finally:
            self._release(token)

    # -- writing -----------------------------------------------------------

    def refresh(self):
        """Recompute now (out of band). Returns False if another process holds the lock."""
        token = self._acquire()
        if not token:
            return False
        try:
            self._store(self._compute())
        finally:
            self._release(token)
        return True

    def mark_stale(self):
        """Keep the value but make the next reader recompute it."""
        entry = cache.get(self.key)
        if entry is not None:
            cache.set(self.key, (0.0, entry[1]), settings.HOT_CACHE_STALE_SECONDS)

    def delete(self):
        cache.delete_many([self.key, self.lock_key])

    # -- internals ---------------------------------------------------------

    def _compute(self):
        """The value from ``compute()``; counted as a recomputation only if it succeeds."""
        value = self.compute()
        metrics.incr(self.recomputes_metric)
        return value

    def _store(self, value):
        fresh = settings.HOT_CACHE_FRESH_SECONDS
        hard = fresh + settings.HOT_CACHE_STALE_SECONDS
        cache.set(self.key, (time.time() + fresh, value), hard)
        return value

    def _acquire(self):
        token = uuid.uuid4().hex
        if cache.add(self.lock_key, token, settings.HOT_CACHE_LOCK_SECONDS):
            return token
        return None

    def _release(self, token):
        # Only drop our own lock: it may have expired and been taken by another.
        if cache.get(self.lock_key) == token:
            cache.delete(self.lock_key)


def _is_fresh(entry):
    return entry[0] > time.time()
