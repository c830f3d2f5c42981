"""Per-request statistics: query count, DB time, serving host and release.

Queries are counted with ``connection.execute_wrapper``, which (unlike
``connection.queries``) works with DEBUG off and costs next to nothing.
"""

import time
from contextlib import ExitStack

from django.conf import settings
from django.db import connections

from scoreboard import metrics

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
