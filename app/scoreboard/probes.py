"""Health, readiness and metrics endpoints."""

import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.urls import get_resolver
from django.views.decorators.cache import never_cache

from scoreboard import metrics
from scoreboard.middleware import UNCOUNTED_ROUTES
from scoreboard.softcache import REGISTRY, STATUS_METRICS


@never_cache
def healthz(request):
    """Shallow: the process is up and serving. Touches neither DB nor cache."""
    return HttpResponse(f"ok {settings.RELEASE}", content_type="text/plain")


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):
            raise RuntimeError("SELECT 1 returned something else")


def check_cache():
    key, token = f"readyz:{settings.SERVED_BY}", uuid.uuid4().hex
    cache.set(key, token, timeout=30)
    if cache.get(key) != token:
        raise RuntimeError("value written was not read back")


CHECKS = {"database": check_database, "cache": check_cache}


@never_cache
def readyz(request):
    """Deep: the database and the cache answer. 503 names what failed."""
    errors = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            errors[name] = f"{type(exc).__name__}: {exc}"[:300]
    body = {
        "status": "fail" if errors else "ok",
        "checks": {name: "fail" if name in errors else "ok" for name in CHECKS},
        "release": settings.RELEASE,
        "served_by": settings.SERVED_BY,
    }
    if errors:
        body.update(failed=list(errors), errors=errors)
    return JsonResponse(body, status=503 if errors else 200)


def families():
    routes = [
        pattern.name
        for pattern in get_resolver().url_patterns
        if pattern.name and pattern.name not in UNCOUNTED_ROUTES
    ]
    entries = sorted(REGISTRY)
    return [
        metrics.Family(
            "http_requests_total",
            "Requests served, site-wide, by route.",
            "route",
            [*routes, "other"],
        ),
        *(
            metrics.Family(
                name,
                f"Hot cache reads answered with {status}, site-wide.",
                "entry",
                entries,
            )
            for status, name in STATUS_METRICS.items()
        ),
        *(
            metrics.Family(
                REGISTRY[entry].recomputes_metric,
                f"Recomputations of the {entry} hot entry, site-wide.",
            )
            for entry in entries
        ),
    ]


@never_cache
def metrics_view(request):
    """Prometheus text format. Counters are site-wide (kept in memcached)."""
    return HttpResponse(metrics.render(families()), content_type=metrics.CONTENT_TYPE)
