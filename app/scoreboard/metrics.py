"""Site-wide counters kept in memcached, rendered in Prometheus text format.

Many processes on many hosts serve the site, so per-process counters would
each tell a fraction of the story. Each counter is one memcached key bumped
with the atomic ``incr``; it is created with ``add`` (atomic, never
overwrites) the first time. A memcached restart resets them, which
Prometheus' ``rate()`` handles like any counter reset.

Counting must never break a request: cache errors are logged and ignored.
"""

import logging

from django.conf import settings
from django.core.cache import cache

from scoreboard.cache import CACHE_ERRORS

logger = logging.getLogger(__name__)

KEY_PREFIX = "metrics:"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def label(name, value):
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{name}="{escaped}"'


def counter_key(name, label_value=None):
    suffix = "" if label_value is None else f":{label_value}"
    return f"{KEY_PREFIX}{name}{suffix}"


def incr(name, label_value=None):
    key = counter_key(name, label_value)
    try:
        try:
            cache.incr(key)
        except ValueError:  # no such key yet
            cache.add(key, 0, timeout=None)
            cache.incr(key)
    except (ValueError, *CACHE_ERRORS) as exc:  # metrics are best effort
        logger.warning("counter %s not incremented: %r", key, exc)


def value(name, label_value=None):
    """The current value of one counter (0 if it does not exist yet)."""
    return int(cache.get(counter_key(name, label_value)) or 0)


class Family:
    """One counter family: a name, a help text and optionally one label."""

    def __init__(self, name, help_text, label=None, label_values=()):
        self.name = name
        self.help_text = help_text
        self.label = label
        self.label_values = tuple(label_values) if label else (None,)

    def cache_keys(self):
        return [counter_key(self.name, value) for value in self.label_values]

    def render(self, values):
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} counter"]
        for value in self.label_values:
            labels = "" if value is None else "{" + label(self.label, value) + "}"
            count = int(values.get(counter_key(self.name, value), 0))
            lines.append(f"{self.name}{labels} {count}")
        return lines


def render(families):
    """The Prometheus exposition text for ``families`` plus two gauges."""
    keys = [key for family in families for key in family.cache_keys()]
    try:
        values = cache.get_many(keys)
        store_up = 1
    except CACHE_ERRORS as exc:  # report the failure as a gauge
        logger.warning("metrics store unreachable: %r", exc)
        values, store_up = {}, 0
    lines = [
        "# HELP scoreboard_info Release and host serving this scrape.",
        "# TYPE scoreboard_info gauge",
        "scoreboard_info{"
        f"{label('release', settings.RELEASE)},{label('served_by', settings.SERVED_BY)}"
        "} 1",
        "# HELP scoreboard_metrics_store_up Whether the counters could be read.",
        "# TYPE scoreboard_metrics_store_up gauge",
        f"scoreboard_metrics_store_up {store_up}",
    ]
    if store_up:
        for family in families:
            lines.extend(family.render(values))
    return "\n".join(lines) + "\n"
