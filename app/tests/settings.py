"""Test settings: the real settings (real MariaDB, real memcached) plus a key.

Connection settings come from the same SCOREBOARD_* variables as in
production; see tests/README.md.
"""

import os

os.environ.setdefault("SCOREBOARD_SECRET_KEY", "test-only-not-secret")

from scoreboard.settings import *  # noqa: F403
