"""Settings for the scoreboard demo, all read from SCOREBOARD_* variables.

See README.md ("Settings") for the full list. ``SCOREBOARD_SETTINGS_FILE`` may
name a JSON or KEY=VALUE file holding the same variables; the environment wins.
"""

import socket
from pathlib import Path

from scoreboard.config import Config
from scoreboard.dbdriver import ensure_mysqldb

ensure_mysqldb()

BASE_DIR = Path(__file__).resolve().parent.parent
env = Config.load()

DEBUG = env.bool("DEBUG", False)
# Required unless DEBUG is on; all hosts of a site must share it.
SECRET_KEY = env.str("SECRET_KEY") or (
    "insecure-dev-only-key" if DEBUG else env.required("SECRET_KEY")
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

RELEASE = env.str("RELEASE", "dev")
SERVED_BY = env.str("SERVED_BY") or socket.gethostname()

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "scoreboard.games",
]

MIDDLEWARE = [
    # First, so that it sees every query and stamps every response.
    "scoreboard.middleware.RequestStatsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "scoreboard.urls"
WSGI_APPLICATION = "scoreboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": False,
        "OPTIONS": {
            # Parse each template once per process, also when DEBUG is on.
            "loaders": [
                (
                    "django.template.loaders.cached.Loader",
                    [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                    ],
                )
            ],
            "context_processors": ["scoreboard.games.context_processors.site"],
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.mysql",
        "HOST": env.str("DB_HOST", "127.0.0.1"),
        "PORT": env.str("DB_PORT", "3306"),
        "NAME": env.str("DB_NAME", "scoreboard"),
        "USER": env.str("DB_USER", "scoreboard"),
        "PASSWORD": env.str("DB_PASSWORD", ""),
        # Persistent connections: reuse one connection per worker for this many
        # seconds (0 = close after each request, None = unlimited).
        "CONN_MAX_AGE": env.int("CONN_MAX_AGE", 60),
        # Ping a reused connection before the first query of a request, so a
        # connection killed by the server (wait_timeout, restart) is replaced.
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "charset": "utf8mb4",
            "connect_timeout": env.int("DB_CONNECT_TIMEOUT", 5),
        },
        "TEST": {
            "NAME": env.str("TEST_DB_NAME", None),
            "CHARSET": "utf8mb4",
            "COLLATION": "utf8mb4_unicode_ci",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

cache_socket_timeout = env.float("CACHE_SOCKET_TIMEOUT", 1.0)
CACHES = {
    "default": {
        "BACKEND": "scoreboard.cache.PersistentPyMemcacheCache",
        "LOCATION": env.list("CACHE_SERVERS", ["127.0.0.1:11211"]),
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", "scoreboard"),
        "TIMEOUT": 300,
        "OPTIONS": {
            "connect_timeout": cache_socket_timeout,
            "timeout": cache_socket_timeout,
            "no_delay": True,
        },
    }
}

# Hot entries (board, leaderboard): served fresh for FRESH seconds, then served
# stale for up to STALE more seconds while one process recomputes them.
HOT_CACHE_FRESH_SECONDS = env.int("HOT_CACHE_FRESH_SECONDS", 30)
HOT_CACHE_STALE_SECONDS = env.int("HOT_CACHE_STALE_SECONDS", 600)
HOT_CACHE_LOCK_SECONDS = env.int("HOT_CACHE_LOCK_SECONDS", 30)
HOT_CACHE_WAIT_SECONDS = env.float("HOT_CACHE_WAIT_SECONDS", 5.0)

STATIC_URL = env.str("STATIC_URL", "/static/")
STATIC_ROOT = env.str("STATIC_ROOT", str(BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed file names (site.3f2a1c.css): cacheable forever by nginx/browsers.
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "plain",
        }
    },
    "root": {"handlers": ["stderr"], "level": env.str("LOG_LEVEL", "WARNING")},
}
