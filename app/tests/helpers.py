"""Helpers shared by the tests."""

import threading

from django.db import connection
from django.test import Client


def concurrent_gets(path, count, with_body=False):
    """GET ``path`` from ``count`` threads at once; each has its own DB connection.

    Returns one ``(status, X-Cache)`` per request, ``(status, X-Cache, body)`` ``with_body``.
    """
    barrier = threading.Barrier(count)
    results = [None] * count

    def worker(index):
        try:
            barrier.wait()
            response = Client().get(path)
            results[index] = (response.status_code, response.headers.get("X-Cache"))
            if with_body:
                results[index] += (response.content,)
        except Exception as exc:  # noqa: BLE001 - reported by the test assertions
            results[index] = (None, repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results
