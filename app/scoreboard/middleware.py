"""Per-request statistics: query count, DB time, serving host and release; and a 503 instead of
a 500 while the database is unavailable.

Queries are counted with ``connection.execute_wrapper``, which (unlike
``connection.queries``) works with DEBUG off and costs next to nothing.
"""

import logging
import time
from contextlib import ExitStack

from django.conf import settings
from django.db import connections
from django.db.utils import InterfaceError, OperationalError
from django.http import HttpResponse
from django.utils.cache import add_never_cache_headers

from scoreboard import metrics

logger = logging.getLogger(__name__)

# What Django raises (translated from the driver's errors) when the database server is down,
# restarting or unreachable, or drops the connection: e.g. OperationalError(2003, "Can't connect
# to MySQL server ..."), OperationalError(2013, "Lost connection ..."), InterfaceError(0, "").
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)

# Probes that must not touch the cache: /healthz is answered without it.
UNCOUNTED_ROUTES = frozenset({"healthz"})


class QueryStats:
    """An execute wrapper that counts queries and adds up their duration."""

    def __init__(self):
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.count += 1
            self.seconds += time.perf_counter() - start


def route_of(request):
    match = request.resolver_match
    return match.url_name if match and match.url_name else "other"


class RequestStatsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        stats = QueryStats()
        start = time.perf_counter()
        with ExitStack() as stack:
            for connection in connections.all():
                stack.enter_context(connection.execute_wrapper(stats))
            response = self.get_response(request)
        total_ms = (time.perf_counter() - start) * 1000
        response["X-DB-Queries"] = str(stats.count)
        response["Server-Timing"] = f"db;dur={stats.seconds * 1000:.2f}, app;dur={total_ms:.2f}"
        response["X-Served-By"] = settings.SERVED_BY
        response["X-Release"] = settings.RELEASE
        route = route_of(request)
        if route not in UNCOUNTED_ROUTES:
            metrics.incr("http_requests_total", route)
        return response


class DatabaseUnavailableMiddleware:
    """A view failing with ``DATABASE_UNAVAILABLE`` gets ``503 Service Unavailable``, text/plain,
    with ``Retry-After: <DB_RETRY_AFTER_SECONDS>`` (seconds), instead of a 500. Other exceptions
    are left to Django.

    The broken connection is not reused: Django marks it (``errors_occurred``) and, at the end of
    the request and before the next one, closes it if it fails a ping (``close_old_connections``);
    with ``CONN_HEALTH_CHECKS`` a reused connection is also pinged before its first query.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DATABASE_UNAVAILABLE):
            return None
        logger.error("database unavailable, 503 for %s: %r", request.path, exception)
        response = HttpResponse(
            "503 Service Unavailable: the database is unavailable, retry shortly.\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = str(settings.DB_RETRY_AFTER_SECONDS)
        add_never_cache_headers(response)
        return response
