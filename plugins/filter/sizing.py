"""The bundle's sizing formulas, in one place: Jinja filters the roles call, plain functions the tests
call (tests/test_sizing.py). Each takes plain numbers and returns a plain dict; none reads a host.

Filters:
  wsgi_sizing(resources, knobs) -> the web host's WSGI processes x threads and Apache prefork processes
  database_sizing(resources, web_concurrency, knobs) -> MariaDB's connections, memory and kernel.sem floor
  cache_sizing(resources, client_concurrency, knobs) -> memcached's item memory, threads and connections
"""

from __future__ import annotations

import math

from ansible.errors import AnsibleFilterError

WSGI_MODES = ("daemon", "embedded")

_WSGI_KNOBS = {
    # knob: (type, minimum); None as a value means "compute it"
    "mode": (str, None),
    "threads": (int, 1),
    "processes": (int, 1),
    "processes_per_cpu": (int, 1),
    "processes_min": (int, 1),
    "process_memory_mb": (int, 1),
    "prefork_process_memory_mb": (int, 1),
    "prefork_workers": (int, 1),
    "prefork_extra_workers": (int, 0),
    "os_reserved_memory_mb": (int, 0),
    "colocated_memory_mb": (int, 0),
}
_OPTIONAL = ("processes", "prefork_workers")


def _knobs(knobs, spec, optional):
    """knobs with every value converted to its type; AnsibleFilterError naming a missing, malformed
    or too small one."""
    found = {}
    for name, (kind, minimum) in spec.items():
        value = knobs.get(name)
        if value is None:
            if name in optional:
                found[name] = None
                continue
            raise AnsibleFilterError(f"sizing: '{name}' is missing")
        try:
            value = kind(value)
        except (TypeError, ValueError) as err:
            what = {int: "a whole number", float: "a number"}.get(kind, "text")
            raise AnsibleFilterError(f"sizing: '{name}' must be {what}, got {value!r}") from err
        if minimum is not None and value < minimum:
            raise AnsibleFilterError(f"sizing: '{name}' must be at least {minimum}, got {value}")
        found[name] = value
    return found


def _host(resources):
    """(vcpus, memtotal_mb, cpu_source, memory_source) from host_resources' answer; the sources say
    "<n> CPUs given" / "<n> MiB given" when the answer has none. AnsibleFilterError when the numbers
    are missing or malformed."""
    try:
        vcpus, memtotal_mb = int(resources["vcpus"]), int(resources["memtotal_mb"])
    except (KeyError, TypeError, ValueError) as err:
        raise AnsibleFilterError(f"sizing: resources need vcpus and memtotal_mb as numbers, got {resources!r}") from err
    return (vcpus, memtotal_mb, resources.get("cpu_source", f"{vcpus} CPUs given"),
            resources.get("memory_source", f"{memtotal_mb} MiB given"))


def _per_host(name, values):
    """{host: whole number} from a {host: concurrency} map; AnsibleFilterError naming the map."""
    try:
        return {str(host): int(value) for host, value in dict(values).items()}
    except (TypeError, ValueError) as err:
        raise AnsibleFilterError(f"sizing: {name} whole numbers per host are needed, got {values!r}") from err


def wsgi_sizing(resources, knobs):
    """A web host's WSGI processes x threads and Apache prefork processes, from what the host can use.

    resources: {"vcpus": CPUs, "memtotal_mb": MiB} the host can use (the host_resources module's
    answer; its cpu_source and memory_source, what decided the two, are passed through).
    knobs: the apache role's variables without their prefix: mode ("daemon" or "embedded"), threads,
    processes (None: computed), processes_per_cpu, processes_min, process_memory_mb (MiB per WSGI
    process), prefork_process_memory_mb (MiB per prefork process that only proxies), prefork_workers
    (None: computed), prefork_extra_workers, os_reserved_memory_mb, colocated_memory_mb.

    Returns {"mode", "processes", "threads", "concurrency" (processes x threads), "cpu_limit",
    "memory_limit" (the processes that fit in memory), "prefork_workers", "memory_mb" (what they all
    take), "available_memory_mb", "vcpus", "memtotal_mb", "cpu_source", "memory_source", "overridden",
    "prefork_overridden"}. It does not check that the result fits: the role's asserts do, with
    messages that show the numbers. Raises AnsibleFilterError on a missing or malformed input.

    The formula (roles/apache/README.md, "Sizing"): with daemon mode's proxies, each WSGI process costs
    its own memory plus one prefork proxy per thread, and the extra prefork processes come first:
        available    = memtotal_mb - os_reserved - colocated
        cpu_limit    = vcpus x processes_per_cpu
        memory_limit = (available - extra x proxy_mb) // (process_memory_mb + threads x proxy_mb)
        processes    = processes, or max(min(cpu_limit, memory_limit), processes_min)
        prefork      = prefork_workers, or processes x threads + extra   (embedded mode: processes)
        memory_mb    = processes x process_memory_mb + prefork x proxy_mb
    In embedded mode prefork runs one request per process: threads = 1, proxy_mb = extra = 0.
    """
    k = _knobs(knobs, _WSGI_KNOBS, _OPTIONAL)
    if k["mode"] not in WSGI_MODES:
        raise AnsibleFilterError(f"sizing: 'mode' must be one of {', '.join(WSGI_MODES)}, got {k['mode']!r}")
    vcpus, memtotal_mb, cpu_source, memory_source = _host(resources)
    daemon = k["mode"] == "daemon"
    threads = k["threads"] if daemon else 1
    proxy_mb = k["prefork_process_memory_mb"] if daemon else 0
    extra = k["prefork_extra_workers"] if daemon else 0
    available = memtotal_mb - k["os_reserved_memory_mb"] - k["colocated_memory_mb"]
    cpu_limit = vcpus * k["processes_per_cpu"]
    memory_limit = max((available - extra * proxy_mb) // (k["process_memory_mb"] + threads * proxy_mb), 0)
    processes = k["processes"] if k["processes"] is not None else max(min(cpu_limit, memory_limit), k["processes_min"])
    if not daemon:
        prefork = processes
    elif k["prefork_workers"] is not None:
        prefork = k["prefork_workers"]
    else:
        prefork = processes * threads + extra
    return {
        "mode": k["mode"],
        "processes": processes,
        "threads": threads,
        "concurrency": processes * threads,
        "cpu_limit": cpu_limit,
        "memory_limit": memory_limit,
        "prefork_workers": prefork,
        "memory_mb": processes * k["process_memory_mb"] + (prefork * proxy_mb if daemon else 0),
        "available_memory_mb": available,
        "vcpus": vcpus,
        "memtotal_mb": memtotal_mb,
        "cpu_source": cpu_source,
        "memory_source": memory_source,
        "overridden": k["processes"] is not None,
        "prefork_overridden": daemon and k["prefork_workers"] is not None,
    }


_DATABASE_KNOBS = {
    "max_connections": (int, 1),
    "admin_connections": (int, 0),
    "max_connections_min": (int, 1),
    "thread_cache_size": (int, 0),
    "wait_timeout": (int, 1),
    "conn_max_age": (int, 0),
    "conn_max_age_margin": (int, 0),
    "innodb_buffer_pool_size_mb": (int, 1),
    "innodb_buffer_pool_ratio": (float, None),
    "os_reserved_memory_mb": (int, 0),
    "sort_buffer_size_kb": (int, 0),
    "join_buffer_size_kb": (int, 0),
    "read_buffer_size_kb": (int, 0),
    "read_rnd_buffer_size_kb": (int, 0),
    "connection_overhead_kb": (int, 0),
    "sem_floor": (str, None),
    # The role's constants (roles/mysql/vars/main.yml).
    "buffer_pool_step_mb": (int, 1),
    "thread_cache_max": (int, 0),
    "sem_semmsl_min": (int, 1),
    "sem_semmsl_max": (int, 1),
    "sem_headroom": (int, 0),
    "sem_semopm": (int, 1),
    "sem_semmni": (int, 1),
}
_DATABASE_OPTIONAL = ("max_connections", "thread_cache_size", "conn_max_age", "innodb_buffer_pool_size_mb", "sem_floor")


def database_sizing(resources, web_concurrency, knobs):
    """MariaDB's connections, memory, timeouts and kernel.sem floor, from the web tier and the host.

    resources: {"vcpus": CPUs, "memtotal_mb": MiB} the database host can use (host_resources; its
    cpu_source and memory_source are passed through). web_concurrency: {web host: WSGI concurrency},
    every process x thread of which may hold one connection (CONN_MAX_AGE keeps them open).
    knobs: the mysql role's variables without their prefix (mysql_max_connections -> max_connections;
    None: computed) and the role's constants (buffer_pool_step_mb, thread_cache_max, sem_*).

    Returns {"web_concurrency", "web_concurrency_total", "max_connections", "max_connections_source",
    "thread_cache_size", "buffer_pool_mb", "per_connection_kb", "connections_mb", "needed_mb" (pool +
    connections + reserved, MiB), "conn_max_age" (s), "sem_floor" ("SEMMSL SEMMNS SEMOPM SEMMNI"),
    "vcpus", "memtotal_mb", "cpu_source", "memory_source"}. It does not check that the result fits:
    the role's asserts do. Raises AnsibleFilterError on a missing or malformed input.

    The formula (roles/mysql/README.md):
        max_connections = override, or max(sum(web_concurrency) + admin_connections, max_connections_min)
        thread_cache    = override, or min(max_connections, thread_cache_max)
        buffer_pool_mb  = override, or max(floor((memtotal_mb - os_reserved) x ratio / step) x step, step)
        per_connection  = sort + join + read + read_rnd buffers + connection overhead (KiB)
        connections_mb  = ceil(max_connections x per_connection / 1024)
        conn_max_age    = override, or wait_timeout - conn_max_age_margin
        SEMMSL          = min(max(max_connections + headroom, semmsl_min), semmsl_max); SEMMNS = SEMMSL x SEMMNI
    """
    k = _knobs(knobs, _DATABASE_KNOBS, _DATABASE_OPTIONAL)
    vcpus, memtotal_mb, cpu_source, memory_source = _host(resources)
    concurrency = _per_host("web_concurrency", web_concurrency)
    total = sum(concurrency.values())
    if k["max_connections"] is not None:
        max_connections, source = k["max_connections"], "mysql_max_connections"
    else:
        max_connections = max(total + k["admin_connections"], k["max_connections_min"])
        source = (f"web tier {total} + mysql_admin_connections {k['admin_connections']}, "
                  f"at least mysql_max_connections_min {k['max_connections_min']}")
    step = k["buffer_pool_step_mb"]
    if k["innodb_buffer_pool_size_mb"] is not None:
        pool = k["innodb_buffer_pool_size_mb"]
    else:
        pool = max(int((memtotal_mb - k["os_reserved_memory_mb"]) * k["innodb_buffer_pool_ratio"] / step) * step, step)
    per_connection = sum(k[name] for name in ("sort_buffer_size_kb", "join_buffer_size_kb", "read_buffer_size_kb",
                                              "read_rnd_buffer_size_kb", "connection_overhead_kb"))
    connections_mb = math.ceil(max_connections * per_connection / 1024)
    semmsl = min(max(max_connections + k["sem_headroom"], k["sem_semmsl_min"]), k["sem_semmsl_max"])
    return {
        "web_concurrency": concurrency,
        "web_concurrency_total": total,
        "max_connections": max_connections,
        "max_connections_source": source,
        "thread_cache_size": (k["thread_cache_size"] if k["thread_cache_size"] is not None
                              else min(max_connections, k["thread_cache_max"])),
        "buffer_pool_mb": pool,
        "per_connection_kb": per_connection,
        "connections_mb": connections_mb,
        "needed_mb": pool + connections_mb + k["os_reserved_memory_mb"],
        "conn_max_age": (k["conn_max_age"] if k["conn_max_age"] is not None
                         else k["wait_timeout"] - k["conn_max_age_margin"]),
        "sem_floor": (k["sem_floor"] if k["sem_floor"] is not None
                      else f"{semmsl} {semmsl * k['sem_semmni']} {k['sem_semopm']} {k['sem_semmni']}"),
        "vcpus": vcpus,
        "memtotal_mb": memtotal_mb,
        "cpu_source": cpu_source,
        "memory_source": memory_source,
    }


_CACHE_KNOBS = {
    "memory_mb": (int, 1),
    "memory_percent": (int, 1),
    "os_reserved_memory_mb": (int, 0),
    "threads": (int, 1),
    "threads_per_cpu": (int, 1),
    "client_pool_size": (int, 1),
    "connections_headroom_factor": (float, None),
    "connections_admin_headroom": (int, 0),
    "max_connections": (int, 1),
    "nofile_limit": (int, 1),
    # The role's constants (roles/memcached/vars/main.yml).
    "threads_max": (int, 1),
    "connections_floor": (int, 1),
    "nofile_headroom": (int, 0),
}
_CACHE_OPTIONAL = ("memory_mb", "threads", "max_connections", "nofile_limit")


def cache_sizing(resources, client_concurrency, knobs):
    """memcached's item memory, threads and connections, from the web tier and the host.

    resources: {"vcpus": CPUs, "memtotal_mb": MiB} the cache host can use (host_resources; its
    cpu_source and memory_source are passed through, the latter as host_memory_source).
    client_concurrency: {web host: WSGI concurrency}; every worker holds client_pool_size connections.
    knobs: the memcached role's variables without their prefix (None: computed) and the role's
    constants (threads_max, connections_floor, nofile_headroom).

    Returns {"memory_mb", "memory_limit_mb" (memtotal_mb - os_reserved), "memory_source" (in words),
    "threads", "client_concurrency", "client_connections", "max_connections", "nofile_limit", "vcpus",
    "memtotal_mb", "cpu_source", "host_memory_source"}. It does not check that the result fits: the
    role's asserts do. Raises AnsibleFilterError on a missing or malformed input.

    The formula (roles/memcached/README.md):
        memory_mb          = override, or memtotal_mb x memory_percent // 100
        threads            = override, or min(max(vcpus x threads_per_cpu, 1), threads_max)
        client_connections = sum(client_concurrency) x client_pool_size
        max_connections    = override, or max(ceil(client_connections x headroom_factor) + admin_headroom, floor)
        nofile_limit       = override, or max_connections + nofile_headroom
    """
    k = _knobs(knobs, _CACHE_KNOBS, _CACHE_OPTIONAL)
    vcpus, memtotal_mb, cpu_source, memory_source = _host(resources)
    concurrency = sum(_per_host("client_concurrency", client_concurrency).values())
    connections = concurrency * k["client_pool_size"]
    if k["max_connections"] is not None:
        max_connections = k["max_connections"]
    else:
        max_connections = max(math.ceil(connections * k["connections_headroom_factor"]) + k["connections_admin_headroom"],
                              k["connections_floor"])
    return {
        "memory_mb": k["memory_mb"] if k["memory_mb"] is not None else memtotal_mb * k["memory_percent"] // 100,
        "memory_limit_mb": memtotal_mb - k["os_reserved_memory_mb"],
        "memory_source": ("memcached_memory_mb" if k["memory_mb"] is not None
                          else f"memcached_memory_percent ({k['memory_percent']}% of {memtotal_mb} MiB)"),
        "threads": (k["threads"] if k["threads"] is not None
                    else min(max(vcpus * k["threads_per_cpu"], 1), k["threads_max"])),
        "client_concurrency": concurrency,
        "client_connections": connections,
        "max_connections": max_connections,
        "nofile_limit": k["nofile_limit"] if k["nofile_limit"] is not None else max_connections + k["nofile_headroom"],
        "vcpus": vcpus,
        "memtotal_mb": memtotal_mb,
        "cpu_source": cpu_source,
        "host_memory_source": memory_source,
    }


class FilterModule:
    """Ansible's entry point for the filters above."""

    def filters(self):
        return {"wsgi_sizing": wsgi_sizing, "database_sizing": database_sizing, "cache_sizing": cache_sizing}
