"""Test settings: the real settings (real MariaDB, real memcached) plus a key.

Connection settings come from the same variables as in production (DATABASE_URL,
CACHE_URL); see tests/README.md.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-not-secret")

from scoreboard.settings import *  # noqa: F403
