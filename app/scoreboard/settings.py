"""Settings for the scoreboard demo, read from the environment.

What differs between deployments comes under the names most Django projects read (the bundle's
table: docs/your-project.md): DJANGO_SECRET_KEY, DJANGO_DEBUG, DJANGO_ALLOWED_HOSTS,
DJANGO_CSRF_TRUSTED_ORIGINS, DATABASE_URL (through dj-database-url) with DJANGO_CONN_MAX_AGE,
CACHE_URL, DJANGO_STATIC_ROOT, DJANGO_LOG_LEVEL, DJANGO_RELEASE, DJANGO_SERVED_BY, and
DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE and DJANGO_FILE_UPLOAD_MAX_MEMORY_SIZE. The demo's
own tuning is read from SCOREBOARD_* variables (README.md, "Settings"); SCOREBOARD_SETTINGS_FILE
may name a JSON or KEY=VALUE file holding those.
"""

import socket
from pathlib import Path

import dj_database_url

from scoreboard.config import Config, cache_locations
from scoreboard.dbdriver import ensure_mysqldb

ensure_mysqldb()

BASE_DIR = Path(__file__).resolve().parent.parent
env = Config.load()
django_env = Config.load(prefix="")

DEBUG = django_env.bool("DJANGO_DEBUG", False)
# Required unless DEBUG is on; all hosts of a site must share it.
SECRET_KEY = django_env.str("DJANGO_SECRET_KEY") or (
    "insecure-dev-only-key" if DEBUG else django_env.required("DJANGO_SECRET_KEY")
)
ALLOWED_HOSTS = django_env.list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = django_env.list("DJANGO_CSRF_TRUSTED_ORIGINS")

RELEASE = django_env.str("DJANGO_RELEASE", "dev")
SERVED_BY = django_env.str("DJANGO_SERVED_BY") or socket.gethostname()

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "scoreboard.games",
]

MIDDLEWARE = [
    # First, so that it sees every query and stamps every response.
    "scoreboard.middleware.RequestStatsMiddleware",
    # Database unavailable: 503 with Retry-After instead of 500 (its process_exception sees the
    # exceptions of every view; the response still gets the stats headers).
    "scoreboard.middleware.DatabaseUnavailableMiddleware",
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

# DATABASE_URL: mysql://USER:PASSWORD@HOST:PORT/NAME?charset=utf8mb4 (dj-database-url's form).
_database = dj_database_url.parse(
    django_env.str("DATABASE_URL", "mysql://scoreboard@127.0.0.1:3306/scoreboard?charset=utf8mb4"),
    # Persistent connections: reuse one connection per worker for this many seconds (0 = close
    # after each request). The bundle passes the site plan's value, below MariaDB's wait_timeout.
    conn_max_age=django_env.int("DJANGO_CONN_MAX_AGE", 60),
    # Ping a reused connection before the first query of a request, so a connection killed by the
    # server (wait_timeout, restart) is replaced.
    conn_health_checks=True,
)
_database["OPTIONS"] = {
    "charset": "utf8mb4",
    **_database.get("OPTIONS", {}),
    "connect_timeout": env.int("DB_CONNECT_TIMEOUT", 5),
}
_database["TEST"] = {
    "NAME": env.str("TEST_DB_NAME", None),
    "CHARSET": "utf8mb4",
    "COLLATION": "utf8mb4_unicode_ci",
}
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

cache_socket_timeout = env.float("CACHE_SOCKET_TIMEOUT", 1.0)
CACHES = {
    "default": {
        "BACKEND": "scoreboard.cache.PersistentPyMemcacheCache",
        # CACHE_URL: pymemcache://HOST:PORT[,HOST:PORT...], every server of the cache tier.
        "LOCATION": cache_locations(django_env.str("CACHE_URL", "pymemcache://127.0.0.1:11211")),
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

# Retry-After (seconds) of the 503 answered while the database is unavailable.
DB_RETRY_AFTER_SECONDS = env.int("DB_RETRY_AFTER_SECONDS", 5)

# Request bodies: non-file data up to the site's cap (the balancer answers 413 above it), uploads
# above FILE_UPLOAD_MAX_MEMORY_SIZE streamed to a temporary file. Django's defaults without them.
DATA_UPLOAD_MAX_MEMORY_SIZE = django_env.int("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", 2621440)
FILE_UPLOAD_MAX_MEMORY_SIZE = django_env.int("DJANGO_FILE_UPLOAD_MAX_MEMORY_SIZE", 2621440)

STATIC_URL = env.str("STATIC_URL", "/static/")
STATIC_ROOT = django_env.str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles"))
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
    "root": {"handlers": ["stderr"], "level": django_env.str("DJANGO_LOG_LEVEL", "WARNING")},
}
