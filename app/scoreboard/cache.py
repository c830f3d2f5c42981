"""Cache backend: Django's PyMemcacheCache keeping its sockets between requests.

Django closes every cache at the end of each request (``request_finished`` ->
``close_caches``) and ``PyMemcacheCache.close()`` disconnects from all servers,
so each request pays a new TCP handshake per memcached server and loses the
client's failover state. pymemcache reconnects by itself after socket errors,
so keeping the connection open is safe (Django does the same for pylibmc).
"""

from django.core.cache.backends.memcached import PyMemcacheCache
from pymemcache.exceptions import MemcacheError

# What a cache call may raise when memcached is down or misbehaving.
CACHE_ERRORS = (OSError, MemcacheError)


class PersistentPyMemcacheCache(PyMemcacheCache):
    def close(self, **kwargs):
        pass
