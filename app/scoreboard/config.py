"""Typed access to settings from the environment and an optional file.

``Config.load()`` reads the demo's own ``SCOREBOARD_*`` names; ``Config.load(prefix="")`` reads any
name (the ``DJANGO_*``, ``DATABASE_URL`` and ``CACHE_URL`` the bundle gives every project).
Values come from two places, the environment winning over the file:

* the process environment;
* the file named by ``SCOREBOARD_SETTINGS_FILE`` (optional): either a JSON
  object (``*.json``) or ``KEY=VALUE`` lines in the format of a systemd
  ``EnvironmentFile`` (anything else). Keys are the same ``SCOREBOARD_*`` names.
"""

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

PREFIX = "SCOREBOARD_"
FILE_VARIABLE = PREFIX + "SETTINGS_FILE"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


def read_settings_file(path):
    """Return the mapping stored in ``path`` (JSON object or KEY=VALUE lines)."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ImproperlyConfigured(f"{path}: expected a JSON object")
        return data
    values = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ImproperlyConfigured(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def cache_locations(url):
    """The memcached servers of a CACHE_URL, ``pymemcache://host:port[,host:port...]``, as a list of
    "host:port" strings. Raises ImproperlyConfigured for another scheme or no server."""
    parts = urlsplit(url)
    servers = [server.strip() for server in parts.netloc.split(",") if server.strip()]
    if parts.scheme not in ("pymemcache", "memcache") or not servers:
        raise ImproperlyConfigured(f"CACHE_URL: expected pymemcache://HOST:PORT[,HOST:PORT...], got {url!r}")
    return servers


class Config:
    """Look up ``<PREFIX><NAME>`` values with type conversion and defaults (PREFIX: SCOREBOARD_)."""

    def __init__(self, values, prefix=PREFIX):
        self._values = values
        self._prefix = prefix

    @classmethod
    def load(cls, environ=None, prefix=PREFIX):
        environ = os.environ if environ is None else environ
        path = environ.get(FILE_VARIABLE)
        values = dict(read_settings_file(path)) if path else {}
        values.update(environ)
        return cls(values, prefix)

    def _raw(self, name, default):
        return self._values.get(self._prefix + name, default)

    def str(self, name, default=None):
        value = self._raw(name, default)
        return value if value is None else str(value)

    def required(self, name):
        value = self.str(name)
        if not value:
            raise ImproperlyConfigured(f"{self._prefix}{name} must be set")
        return value

    def bool(self, name, default=False):
        value = self._raw(name, default)
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ImproperlyConfigured(f"{self._prefix}{name}: not a boolean: {value!r}")

    def int(self, name, default):
        return self._number(int, name, default)

    def float(self, name, default):
        return self._number(float, name, default)

    def _number(self, kind, name, default):
        value = self._raw(name, default)
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ImproperlyConfigured(
                f"{self._prefix}{name}: not a {kind.__name__}: {value!r}"
            ) from None

    def list(self, name, default=()):
        """A list given as a JSON array or as a comma-separated string."""
        value = self._raw(name, None)
        if value is None:
            return list(default)
        items = value if isinstance(value, list) else str(value).split(",")
        return [str(item).strip() for item in items if str(item).strip()]
