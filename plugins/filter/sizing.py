"""The bundle's sizing formulas, in one place: Jinja filters the roles call, plain functions the tests
call (tests/test_sizing.py). Each takes plain numbers and returns a plain dict; none reads a host.

Filters:
  wsgi_sizing(resources, knobs) -> the web host's WSGI processes x threads and Apache prefork processes
  database_sizing(resources, web_concurrency, knobs) -> MariaDB's connections, memory and kernel.sem floor
  cache_sizing(resources, client_concurrency, knobs) -> memcached's item memory, threads and connections
  site_plan(hostvars, groups, defaults, peak_concurrency) -> every number and name that crosses a tier,
    from the three above, checked across hosts (playbooks/plan.yml computes it once per run)
"""

from __future__ import annotations

import importlib.util
import ipaddress
import math
import re
from pathlib import Path

import yaml

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
    "proxy_connections_per_thread": (int, 1),
}
_OPTIONAL = ("processes", "prefork_workers", "proxy_connections_per_thread")


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
    (None: computed), prefork_extra_workers, os_reserved_memory_mb, colocated_memory_mb, and
    proxy_connections_per_thread (None: 1): the balancers' connections a prefork proxy is kept for per
    WSGI thread. With keep-alive between the balancers and Apache, each balancer holds up to its
    per-server maxconn connections in use and as many idle (HAProxy's pool-max-conn), and an idle
    kept-alive connection pins a prefork process: the site plan passes 2 x balancers then.

    Returns {"mode", "processes", "threads", "concurrency" (processes x threads), "cpu_limit",
    "memory_limit" (the processes that fit in memory), "prefork_workers", "memory_mb" (what they all
    take), "available_memory_mb", "vcpus", "memtotal_mb", "cpu_source", "memory_source", "overridden",
    "prefork_overridden", "proxy_connections_per_thread"}. It does not check that the result fits: the
    role's asserts do, with messages that show the numbers. Raises AnsibleFilterError on a missing or malformed input.

    The formula (roles/apache/README.md, "Sizing"): with daemon mode's proxies, each WSGI process costs
    its own memory plus `per_thread` prefork proxies per thread (per_thread = proxy_connections_per_thread),
    and the extra prefork processes come first:
        available    = memtotal_mb - os_reserved - colocated
        cpu_limit    = vcpus x processes_per_cpu
        memory_limit = (available - extra x proxy_mb) // (process_memory_mb + threads x per_thread x proxy_mb)
        processes    = processes, or max(min(cpu_limit, memory_limit), processes_min)
        prefork      = prefork_workers, or processes x threads x per_thread + extra   (embedded: processes)
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
    per_thread = k["proxy_connections_per_thread"] or 1
    available = memtotal_mb - k["os_reserved_memory_mb"] - k["colocated_memory_mb"]
    cpu_limit = vcpus * k["processes_per_cpu"]
    memory_limit = max((available - extra * proxy_mb) // (k["process_memory_mb"] + threads * per_thread * proxy_mb), 0)
    processes = k["processes"] if k["processes"] is not None else max(min(cpu_limit, memory_limit), k["processes_min"])
    if not daemon:
        prefork = processes
    elif k["prefork_workers"] is not None:
        prefork = k["prefork_workers"]
    else:
        prefork = processes * threads * per_thread + extra
    return {
        "mode": k["mode"],
        "processes": processes,
        "threads": threads,
        "concurrency": processes * threads,
        "cpu_limit": cpu_limit,
        "memory_limit": memory_limit,
        "prefork_workers": prefork,
        "proxy_connections_per_thread": per_thread,
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


# ---- the site plan ------------------------------------------------------------------------------
# Which role variables each tier's formula reads (the role's prefix + the knob's name), and the role
# constants it reads from the role's vars/main.yml (never set in an inventory).
_WEB_KNOB_NAMES = {k: f"apache_{k}" if k.startswith(("prefork_", "os_", "colocated_")) else f"apache_wsgi_{k}"
                   for k in _WSGI_KNOBS if k != "proxy_connections_per_thread"}
_DATABASE_CONSTANTS = ("buffer_pool_step_mb", "thread_cache_max", "sem_semmsl_min", "sem_semmsl_max", "sem_headroom",
                       "sem_semopm", "sem_semmni")
_DATABASE_KNOB_NAMES = tuple(k for k in _DATABASE_KNOBS if k not in _DATABASE_CONSTANTS)
_CACHE_CONSTANTS = ("threads_max", "connections_floor", "nofile_headroom")
_CACHE_KNOB_NAMES = tuple(k for k in _CACHE_KNOBS if k not in _CACHE_CONSTANTS)
PLAN_GROUPS = ("loadbalancers", "webservers", "staticservers", "dbservers", "cacheservers", "backupservers")
PLAN_ROLES = ("apache", "mysql", "mysql_backup", "memcached", "haproxy", "nginx_static")
ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"


def _haproxy_checks(roles_dir=ROLES_DIR):
    """The haproxy role's own input checks (roles/haproxy/filter_plugins/haproxy_net.py): one source for
    the role's validation and the plan's."""
    spec = importlib.util.spec_from_file_location("haproxy_net", Path(roles_dir) / "haproxy" / "filter_plugins" /
                                                  "haproxy_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_HAPROXY = _haproxy_checks()


def role_defaults(roles_dir=ROLES_DIR):
    """{role: {variable: value}} for PLAN_ROLES: each role's defaults/main.yml merged with its
    vars/main.yml (constants), read as plain YAML (templates stay text). OSError or yaml.YAMLError
    when a file cannot be read."""
    found = {}
    for role in PLAN_ROLES:
        merged = {}
        for part in ("defaults", "vars"):
            path = Path(roles_dir) / role / part / "main.yml"
            if path.exists():
                merged.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        found[role] = merged
    return found


class _Plan:
    """Reads one host's variables: the inventory's (and -e) first, then the role's defaults file."""

    def __init__(self, hostvars, groups, defaults):
        self.hostvars = hostvars
        self.groups = {g: list(groups.get(g) or []) for g in PLAN_GROUPS}
        self.defaults = defaults
        self.errors = []

    def var(self, host, role, name):
        """The value of the role variable `name` on `host` (a role constant when `name` starts __)."""
        hv = self.hostvars[host]
        if not name.startswith("__") and name in hv:
            return hv[name]
        role_defaults = self.defaults.get(role) or {}
        if name not in role_defaults:
            raise AnsibleFilterError(f"site_plan: {host}: {name} is neither set nor a default of role {role}")
        value = role_defaults[name]
        if isinstance(value, str) and "{{" in value:
            raise AnsibleFilterError(f"site_plan: {host}: {name} is a template in role {role}'s defaults; "
                                     "the plan reads plain values only: set it in the inventory")
        return value

    def knobs(self, host, role, names, spec, constants=()):
        """{knob: value} for the formula; names: knob names (the variable is <role>_<knob>) or a
        {knob: variable} map; spec: the formula's {knob: (type, minimum)}, so that a value of the
        wrong type is named by its variable and host; constants: knobs read from the role's
        __<role>_<knob> constants."""
        variables = names if isinstance(names, dict) else {name: f"{role}_{name}" for name in names}
        found = {name: self.var(host, role, variable) for name, variable in variables.items()}
        for name, variable in variables.items():
            kind, value = spec[name][0], found[name]
            if value is None or kind is str:
                continue
            try:
                kind(value)
            except (TypeError, ValueError) as err:
                what = "a whole number (int)" if kind is int else "a number (float)"
                raise AnsibleFilterError(f"site_plan: {host}: {variable} must be {what}, got {value!r}") from err
        found.update({name: self.var(host, role, f"__{role}_{name}") for name in constants})
        return found

    def resources(self, host):
        found = self.hostvars[host].get("site_host_resources")
        if not found:
            raise AnsibleFilterError(f"site_plan: {host} has no site_host_resources (the host_resources module's "
                                     "answer): playbooks/plan.yml reads it before it plans")
        return found

    def address(self, host):
        """(address, source): site_private_address when the inventory sets it, else the default IPv4
        address from the host's facts. The one rule for a host's private address."""
        hv = self.hostvars[host]
        if "site_private_address" in hv and hv["site_private_address"]:
            value, source = str(hv["site_private_address"]), "site_private_address"
        else:
            facts = hv.get("ansible_facts") or {}
            value, source = str((facts.get("default_ipv4") or {}).get("address") or ""), "default IPv4 address (facts)"
        try:
            ipaddress.ip_address(value)
        except ValueError:
            self.errors.append(f"{host}: no usable private address (got '{value}' from {source}); set "
                               "site_private_address on the host to its private IP address")
        return value, source


_HAPROXY_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


def haproxy_seconds(value):
    """An HAProxy time ("60s", "1m", "500ms", "30000": milliseconds without a unit, as HAProxy reads it)
    in seconds (a float). Source: HAProxy's configuration manual, section 2.5 "Time format".
    Raises ValueError when the text is not a time."""
    text = str(value).strip().lower()
    match = re.fullmatch(r"(\d+)(us|ms|s|m|h|d)?", text)
    if not match:
        raise ValueError(f"{value!r} is not an HAProxy time (a number with us, ms, s, m, h or d)")
    return int(match.group(1)) * _HAPROXY_TIME_UNITS[match.group(2) or "ms"]


def _time_budget(plan, web, primary):
    """The time a request may take, tier by tier, each bound below the one in front of it:
    MariaDB's max_statement_time for the app user < the database driver's read timeout < each web host's
    WSGI request-timeout < each balancer's timeout server. A slow database then ends a request with an
    error page (503, Retry-After) before mod_wsgi restarts a process, and mod_wsgi before HAProxy gives up.

    Returns {server_timeout_s: {balancer: s}, request_timeout_s: {web host: s, the longest one request
    may run: request-timeout x threads, 0 in embedded mode}, read_timeout_s, max_statement_time_s}
    (seconds; 0 = that bound is off); appends to plan.errors every bound that is not
    below the next, naming the variables, hosts and seconds."""
    server = {}
    for lb in plan.groups["loadbalancers"]:
        value = plan.var(lb, "haproxy", "haproxy_timeout_server")
        try:
            server[lb] = haproxy_seconds(value)
        except ValueError as err:
            plan.errors.append(f"{lb}: haproxy_timeout_server: {err}")
    request = {}
    for host, w in web.items():
        value = plan.var(host, "apache", "apache_wsgi_request_timeout")
        if not str(value).isdigit():
            plan.errors.append(f"{host}: apache_wsgi_request_timeout must be a whole number of seconds, got {value!r}")
        # Embedded mode has no daemon process to restart: no such bound. mod_wsgi compares the average
        # time of a daemon process's threads with request-timeout, so one request alone among idle
        # threads may run threads x request-timeout (mod_wsgi's WSGIDaemonProcess, request-timeout).
        request[host] = int(value) * w["threads"] if str(value).isdigit() and w["mode"] == "daemon" else 0
    read = statement = 0
    if primary is not None:
        found = {}
        for name in ("mysql_app_read_timeout", "mysql_app_max_statement_time"):
            value = plan.var(primary, "mysql", name)
            found[name] = int(value) if str(value).isdigit() else 0
            if not str(value).isdigit():
                plan.errors.append(f"{primary}: {name} must be a whole number of seconds (0: none), got {value!r}")
        read, statement = found["mysql_app_read_timeout"], found["mysql_app_max_statement_time"]
        if statement and read and not statement < read:
            plan.errors.append(f"{primary}: mysql_app_max_statement_time {statement} s must be below mysql_app_read_timeout "
                               f"{read} s, so MariaDB ends a slow query with an error before the driver drops the connection")
    inner = ("mysql_app_read_timeout", read) if read else ("mysql_app_max_statement_time", statement)
    for host, seconds in request.items():
        threads = web[host]["threads"]
        setting = (f"apache_wsgi_request_timeout {seconds // threads} s" if threads == 1 else
                   f"apache_wsgi_request_timeout {seconds // threads} s x {threads} WSGI threads = {seconds} s")
        if seconds and inner[1] and not inner[1] < seconds // threads:
            plan.errors.append(f"{host}: apache_wsgi_request_timeout {seconds // threads} s must be above {inner[0]} "
                               f"{inner[1]} s ({primary}), so a slow query ends with an error page before mod_wsgi "
                               "restarts the process")
        for lb, limit in server.items():
            bound, name = (seconds, setting) if seconds else (inner[1], f"{inner[0]} {inner[1]} s")
            if bound and not bound < limit:
                plan.errors.append(f"{host}: {name} must be below haproxy_timeout_server {limit:g} s ({lb}), so "
                                   "the web tier ends a slow request before the balancer gives up on it")
    return {"server_timeout_s": server, "request_timeout_s": request, "read_timeout_s": read,
            "max_statement_time_s": statement}


def _truthy(value):
    """An inventory's boolean: a bool, or a string such as 'true', 'yes', 'on', '1' (False otherwise)."""
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "yes", "on", "1")


def listen_address_problem(address, allow_public=False):
    """Why a service of the data tier must not listen on `address` (str), or None when it may: a
    wildcard (0.0.0.0, ::) opens it on every interface and loopback closes it to the web hosts; a
    globally routable address (Python's ipaddress `is_global`: not in the IANA special-purpose
    registries, so not RFC 1918, ULA, shared or link-local space) puts memcached, which stores pickles
    the web hosts load, or MariaDB on the Internet, unless allow_public (site_allow_public_address: a
    firewall guards it). An address that does not parse is left to the address rule (None)."""
    try:
        parsed = ipaddress.ip_address(str(address))
    except ValueError:
        return None
    if parsed.version == 6 and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    if parsed.is_unspecified:
        return "a wildcard: every interface, every network"
    if parsed.is_loopback:
        return "loopback, which the web hosts cannot reach"
    if parsed.is_global and not allow_public:
        return ("a public address: anyone who can route to it could reach the service; set site_private_address to "
                "the host's private address, or site_allow_public_address: true on the host when a firewall "
                "admits only the site's hosts")
    return None


def _port(plan, host, role, name):
    value = plan.var(host, role, name)
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 1 <= port <= 65535:
        plan.errors.append(f"{host}: {name} must be a port (1-65535), got {value!r}")
    return port


def _sources(addresses):
    """Addresses and networks (str) as the smallest list of CIDR networks (str), IPv4 first: what an
    nftables set takes (nft refuses overlapping intervals). Entries that do not parse are left out
    (the address and network rules have named them)."""
    networks = []
    for value in addresses:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            continue
    return [str(n) for version in (4, 6)
            for n in ipaddress.collapse_addresses(n for n in networks if n.version == version)]


def _admin(plan, g):
    """The admin networks and paths the whole site enforces: (networks, paths). networks: the union of
    the balancers' haproxy_admin_networks (the haproxy role's default without a balancer), as the
    smallest list of CIDR networks (str); paths: the first balancer's haproxy_admin_paths (the role's
    default without one). The balancers enforce them, and again the web hosts' Apache (apache_admin_*)
    and firewall (the app's ports)."""
    networks = []
    for lb in g["loadbalancers"] or [None]:
        found = (plan.var(lb, "haproxy", "haproxy_admin_networks") if lb else
                 (plan.defaults.get("haproxy") or {}).get("haproxy_admin_networks"))
        networks.extend(found or [])
    first = (g["loadbalancers"] or [None])[0]
    paths = (plan.var(first, "haproxy", "haproxy_admin_paths") if first else
             (plan.defaults.get("haproxy") or {}).get("haproxy_admin_paths"))
    return _sources(networks), [str(p) for p in paths or []]


def _firewall(plan, hosts, g, backups=None):
    """Each host's firewall rules: {host: [{port, proto, service, sources}]}, sources a list of CIDR
    networks (str; [] admits nobody) or None for anyone. The ports are the plan's (hosts[h]["ports"]):
      apache_listen_port, nginx_static_port: the balancers' addresses and the admin networks (the
        union of the balancers' haproxy_admin_networks, the haproxy role's default without a balancer);
      mysql_port: the web hosts (and the database hosts, for replicas and backups);
      memcached_port: the web hosts;
      the database hosts' SSH port (mysql_backup_copy_ssh_port): the backup hosts, when backups are on;
      haproxy_http_port, haproxy_https_port: anyone; haproxy_stats_port: the admin networks.
    A host in several groups gets each of its ports once. SSH and the operator's own rules are the
    role's (firewall_ssh_networks, firewall_extra_rules)."""
    balancers = [hosts[h]["address"] for h in g["loadbalancers"]]
    admin = _admin(plan, g)[0]
    web = [hosts[h]["address"] for h in g["webservers"]]
    who = {"apache_listen_port": ("Apache: the balancers and the admin networks", _sources(balancers + admin)),
           "nginx_static_port": ("nginx (static files): the balancers and the admin networks",
                                 _sources(balancers + admin)),
           "mysql_port": ("MariaDB: the web hosts and the database hosts",
                          _sources(web + [hosts[h]["address"] for h in g["dbservers"]])),
           "memcached_port": ("memcached: the web hosts", _sources(web)),
           "haproxy_http_port": ("HAProxy, the site: anyone", None),
           "haproxy_https_port": ("HAProxy, the site over TLS: anyone", None),
           "haproxy_stats_port": ("HAProxy's stats page: the admin networks", _sources(admin))}
    rules = {host: [{"port": port, "proto": "tcp", "service": who[name][0], "sources": who[name][1]}
                    for name, port in h["ports"].items() if name in who]
             for host, h in hosts.items()}
    # The backup hosts pull copies over SSH from each database host (a read-only rrsync account).
    stores = _sources([hosts[h]["address"] for h in g["backupservers"]])
    for host, b in (backups or {}).items():
        if b["enabled"] and stores:
            rules[host].append({"port": b["copies"]["ssh_port"], "proto": "tcp", "sources": stores,
                                "service": "SSH for the backup hosts' copies (read-only rsync)"})
    return rules


def _backups(plan, g, hosts=None):
    """Each database host's backup schedule and retention (role mysql_backup), checked against each
    other and against the binary log's retention (role mysql): {host: {enabled, dir, interval_hours,
    on_calendar (systemd's OnCalendar=), retention_days, keep_min, keep_max, alert_age_hours,
    binlog: {enabled, basename, retention_hours}, window_hours, copies: {hosts (the backupservers
    group, which pull copies), ssh_port (the database host's sshd), reader (the read-only account)}}},
    hours and days as numbers.
    window_hours: how far back the binary logs must reach (the oldest kept backup's age at most,
    retention + interval); restorable_hours: how far back a point in time is sure to restore
    (retention - interval). Appends to plan.errors, naming the host, the variables and the hours:
    an interval that does not divide a day, a retention shorter than the interval, binary logs that
    do not reach back to the oldest kept backup, keep counts out of order or a keep_max below the backups the retention holds, an alert age
    below the interval, a start time that is not HH:MM."""
    found = {}
    for host in g["dbservers"]:
        def var(name, role="mysql_backup", host=host):
            return plan.var(host, role, name)
        try:
            interval = int(var("mysql_backup_interval_hours"))
            retention_days = float(var("mysql_backup_retention_days"))
            keep_min, keep_max = int(var("mysql_backup_keep_min")), int(var("mysql_backup_keep_max"))
            binlog_hours = int(var("mysql_binlog_retention_hours", "mysql"))
            alert = var("mysql_backup_alert_age_hours")
            alert = interval + 2 if alert is None else float(alert)
        except (TypeError, ValueError) as err:
            plan.errors.append(f"{host}: the backup settings must be numbers: {err}")
            continue
        enabled = _truthy(var("mysql_backup_enabled"))
        binlog = {"enabled": _truthy(var("mysql_binlog_enabled", "mysql")),
                  "basename": var("mysql_binlog_basename", "mysql"), "retention_hours": binlog_hours}
        start = str(var("mysql_backup_start_time"))
        window = retention_days * 24 + interval
        if enabled:
            if interval not in plan.var(host, "mysql_backup", "__mysql_backup_intervals"):
                plan.errors.append(f"{host}: mysql_backup_interval_hours {interval} must divide a day into whole "
                                   "backups: 1, 2, 3, 4, 6, 8, 12 or 24")
            if retention_days * 24 < interval:
                plan.errors.append(f"{host}: mysql_backup_retention_days {retention_days:g} ({retention_days * 24:g} h) "
                                   f"is shorter than the backup interval mysql_backup_interval_hours {interval} h: a "
                                   "backup would be pruned before the next one exists")
            if binlog["enabled"] and binlog_hours < window:
                plan.errors.append(f"{host}: mysql_binlog_retention_hours {binlog_hours} h does not reach back to the "
                                   f"oldest kept backup (mysql_backup_retention_days {retention_days:g} d + "
                                   f"mysql_backup_interval_hours {interval} h = {window:g} h): raise it to {window:g} or "
                                   "more, or a point in time inside the retention cannot be restored")
            if not 1 <= keep_min <= keep_max:
                plan.errors.append(f"{host}: mysql_backup_keep_min {keep_min} must be at least 1 and at most "
                                   f"mysql_backup_keep_max {keep_max}")
            # The retention holds retention / interval scheduled backups, + 1 for the one about to be pruned;
            # deploy.yml's backups count too, so keep_max must leave room above that.
            scheduled = math.ceil(retention_days * 24 / interval) + 1 if interval > 0 else 0
            if keep_max < scheduled:
                plan.errors.append(f"{host}: mysql_backup_keep_max {keep_max} would prune backups the retention keeps: "
                                   f"{retention_days:g} d every {interval} h is {scheduled} backups; raise it to "
                                   f"{scheduled} or more (deploys add theirs)")
            if alert < interval:
                plan.errors.append(f"{host}: mysql_backup_alert_age_hours {alert:g} is below the backup interval "
                                   f"mysql_backup_interval_hours {interval} h: every backup would raise the alert")
            if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", start):
                plan.errors.append(f"{host}: mysql_backup_start_time must be HH:MM (got {start!r})")
        hour, minute = (start.split(":") + ["0"])[:2] if ":" in start else ("0", "0")
        first = int(hour) % interval if hour.isdigit() and interval > 0 else 0
        copies = {"hosts": list(g["backupservers"]), "ssh_port": int(var("mysql_backup_copy_ssh_port")),
                  "reader": var("__mysql_backup_reader")}
        found[host] = {"enabled": enabled, "dir": var("mysql_backup_dir"), "interval_hours": interval, "copies": copies,
                       # How far back a point in time is sure to restore: just after a prune, the oldest
                       # backup kept can be one interval younger than the retention.
                       "restorable_hours": max(retention_days * 24 - interval, 0),
                       "on_calendar": (f"*-*-* {first:02d}:{minute}:00" if interval >= 24 else
                                       f"*-*-* {first:02d}/{interval}:{minute}:00"),
                       "retention_days": retention_days, "keep_min": keep_min, "keep_max": keep_max,
                       "alert_age_hours": alert, "binlog": binlog, "window_hours": window}
    return found


def site_plan(hostvars, groups, defaults=None, peak_concurrency=None):
    """Every number and name that crosses a tier, computed once from the inventory and fresh facts.

    hostvars: {host: its variables} (Ansible's hostvars): inventory variables, -e, ansible_facts
    (default_ipv4 for the address) and site_host_resources (the host_resources module's answer:
    vcpus, memtotal_mb the host can use, and what decided them).
    groups: {group: [host, ...]}; the plan reads loadbalancers, webservers, staticservers, dbservers
    and cacheservers.
    defaults: {role: {variable: value}} for the variables the inventory leaves unset (apache, mysql,
    memcached, haproxy, nginx_static); None: role_defaults(), the bundle's own roles' files.
    peak_concurrency: requests in flight at the site's peak (site_peak_concurrency), or None.

    Returns a dict (docs/design.md, "The site plan", has the table):
      hosts:           {host: {groups, address, address_source, vcpus, memtotal_mb, cpu_source,
                        memory_source, ports: {variable: port}, memory_mb: {role: MiB}, reserved_mb,
                        memory_total_mb (MiB)}}
      addresses:       {host: private address}
      web:             {host: wsgi_sizing(...) + address, port, maxconn}
      web_concurrency: {host: processes x threads}
      web_total:       {hosts, concurrency, largest_host, concurrency_n_minus_1, peak_concurrency,
                        holds_peak, holds_peak_n_minus_1 (None without a peak)}
      database:        {host, address, port, socket, database, app_user, migrate_user, max_connections,
                        tls: {enabled, ca_file (the CA certificate's path on the database host)},
                        wait_timeout (s), conn_max_age (s), sem_floor, client_addresses,
                        sizing: {host: database_sizing(...) + address, port}}, or None
      cache:           {servers: ["address:port"], sizing: {host: cache_sizing(...) + address, port}}
      static:          {port, root, health_path, servers: {host: address}}, or None
      balancer:        {hosts, http_port, stats_port, runtime_api_socket, app_port, app_check_path, app_server_weight,
                        backends: {app, app_failopen, static, static_failopen},
                        app_servers: {host: {address, maxconn}}}
      floors:          {kernel_sem, nofile: {host: limit}}
      time_budget:     _time_budget(...): {server_timeout_s: {balancer: s}, request_timeout_s: {web host: s},
                        read_timeout_s, max_statement_time_s}; database also carries read_timeout and
                        max_statement_time (s)
      firewall:        _firewall(...): {host: [{port, proto, service, sources: [CIDR] or None (anyone)}]}
      backups:         _backups(...): {db host: {enabled, dir, interval_hours, on_calendar, retention_days, keep_min,
                        keep_max, alert_age_hours, binlog: {enabled, basename, retention_hours}, window_hours,
                        copies: {hosts, ssh_port, reader}}}
      backup_copies:   {backup host: [{source (db host), address, ssh_port, reader, remote_dir, alert_age_hours,
                        retention_days}]}

    A tier whose group is empty has None (database, static) or no hosts, as a tier playbook's own
    scenario may have (a web tier of none counts 0; the playbooks that need a tier check it is there).

    Raises AnsibleFilterError listing every problem at once, each with the host and the numbers:
    a host without a usable address, the same address under two inventory names, a port used twice
    on one host, web hosts on different Apache or nginx ports, a WSGI
    sizing that does not fit its host, database connections and buffer pool above the database
    host's memory, max_connections below the web tier's concurrency, memcached's memory above its
    host's, roles on one host that together exceed its memory, and a time bound not below the
    one in front of it (_time_budget).
    The formulas are wsgi_sizing, database_sizing and cache_sizing above; docs/design.md has the table.
    """
    plan = _Plan(hostvars, groups, role_defaults() if defaults is None else defaults)
    g = plan.groups
    site_hosts = list(dict.fromkeys(h for name in PLAN_GROUPS for h in g[name]))

    hosts = {}
    for host in site_hosts:
        address, source = plan.address(host)
        res = plan.resources(host)
        vcpus, memtotal_mb, cpu_source, memory_source = _host(res)
        hosts[host] = {"groups": [name for name in PLAN_GROUPS if host in g[name]], "address": address,
                       "address_source": source, "vcpus": vcpus, "memtotal_mb": memtotal_mb,
                       "cpu_source": cpu_source, "memory_source": memory_source, "ports": {}, "memory_mb": {},
                       "reserved_mb": 0}

    # The one address rule gives every host one address; two names with one address are one machine
    # listed twice, and every tier would count it twice.
    by_address = {}
    for host, h in hosts.items():
        by_address.setdefault(h["address"], []).append(host)
    for address, names in by_address.items():
        if address and len(names) > 1:
            plan.errors.append(f"address {address} is the address of {len(names)} inventory hosts ({', '.join(names)}); "
                               "list each machine once, in every group it serves")

    # MariaDB and memcached listen on the plan's address (db_tier.yml, cacheservers.yml): never a
    # wildcard or loopback, and a public one only when the host says a firewall guards it.
    for name, service in (("dbservers", "MariaDB"), ("cacheservers", "memcached")):
        for host in g[name]:
            problem = listen_address_problem(hosts[host]["address"],
                                              _truthy(plan.hostvars[host].get("site_allow_public_address", False)))
            if problem:
                plan.errors.append(f"{host}: {service} would listen on {hosts[host]['address']} "
                                   f"({hosts[host]['address_source']}), {problem}")

    # ---- the web tier
    web = {}
    for host in g["webservers"]:
        knobs = plan.knobs(host, "apache", _WEB_KNOB_NAMES, _WSGI_KNOBS)
        # Keep-alive from the balancers: each may hold its maxconn in use and as many idle, per thread.
        keepalive = (_truthy(plan.var(host, "apache", "apache_keepalive"))
                     and (knobs["mode"] == "daemon" or plan.var(host, "apache", "apache_mpm") != "prefork"))
        knobs["proxy_connections_per_thread"] = 2 * max(len(g["loadbalancers"]), 1) if keepalive else 1
        wsgi = wsgi_sizing(plan.resources(host), knobs)
        if not 1 <= wsgi["processes"] <= wsgi["memory_limit"]:
            plan.errors.append(
                f"{host}: {wsgi['processes']} WSGI processes ({'apache_wsgi_processes' if wsgi['overridden'] else 'computed'}) "
                f"do not fit its memory: {wsgi['available_memory_mb']} MiB available ({wsgi['memtotal_mb']} MiB, "
                f"{wsgi['memory_source']}) hold {wsgi['memory_limit']} at most")
        connections = wsgi["concurrency"] * (wsgi["proxy_connections_per_thread"] if wsgi["mode"] == "daemon" else 1)
        if wsgi["prefork_workers"] < connections or wsgi["memory_mb"] > wsgi["available_memory_mb"]:
            plan.errors.append(
                f"{host}: {wsgi['prefork_workers']} prefork processes must be at least the WSGI concurrency "
                f"{wsgi['concurrency']} x {connections // wsgi['concurrency']} balancer connections kept per thread "
                f"(keep-alive) = {connections} and, with the WSGI processes, take {wsgi['memory_mb']} MiB at most "
                f"{wsgi['available_memory_mb']} MiB")
        port = _port(plan, host, "apache", "apache_listen_port")
        hosts[host]["ports"]["apache_listen_port"] = port
        hosts[host]["memory_mb"]["apache"] = wsgi["memory_mb"]
        hosts[host]["reserved_mb"] = max(hosts[host]["reserved_mb"],
                                         int(plan.var(host, "apache", "apache_os_reserved_memory_mb")))
        web[host] = {**wsgi, "address": hosts[host]["address"], "port": port}
    concurrency = {host: w["concurrency"] for host, w in web.items()}

    # ---- the balancer's view of the web tier: per-server maxconn is each host's concurrency
    # Every balancer sends the same: one override and one weight for all, or the plan cannot say which.
    balancer_host = g["loadbalancers"][0] if g["loadbalancers"] else None
    server_settings = {}
    for lb in g["loadbalancers"]:
        for name, default in (("haproxy_app_server_maxconn", None), ("haproxy_app_server_weight", 100),
                              ("haproxy_max_request_body_mb", None)):
            value = plan.var(lb, "haproxy", name)
            try:
                value = int(value) if value is not None else default
            except (TypeError, ValueError):
                plan.errors.append(f"{lb}: {name} must be a whole number, got {value!r}")
                value = default
            server_settings.setdefault(name, {})[lb] = value
    for lb in g["loadbalancers"]:
        settings = {name: plan.var(lb, "haproxy", name)
                    for name in (*_HAPROXY.TIME_VARIABLES, "haproxy_admin_networks", "haproxy_static_paths",
                                 "haproxy_admin_paths", "haproxy_internal_response_headers")}
        plan.errors.extend(f"{lb}: {message}" for message in _HAPROXY.haproxy_input_errors(settings))
    for name, values in server_settings.items():
        if len(set(values.values())) > 1:
            plan.errors.append(f"the balancers set different {name} ({', '.join(f'{lb}: {v}' for lb, v in values.items())}); "
                               "set it once for the loadbalancers group")
    maxconn_override = server_settings.get("haproxy_app_server_maxconn", {}).get(balancer_host)
    # The largest request body: the balancer refuses above it, Apache (webservers.yml) caps at it too.
    body_mb = server_settings.get("haproxy_max_request_body_mb", {}).get(balancer_host)
    if body_mb is None:
        body_mb = int((plan.defaults.get("haproxy") or {}).get("haproxy_max_request_body_mb") or 0)
    if not 0 <= body_mb <= 953:
        plan.errors.append(f"{balancer_host}: haproxy_max_request_body_mb must be 0 (no cap) to 953 MiB (HAProxy compares "
                           f"a Content-Length as a 32-bit integer), got {body_mb}")
    for host, w in web.items():
        # Kept-alive connections pin prefork processes, which are sized for maxconn = concurrency.
        pinned = w["mode"] == "daemon" and w["proxy_connections_per_thread"] > 1
        if (pinned and plan.var(host, "apache", "apache_mpm") == "prefork" and maxconn_override is not None
                and not 0 < maxconn_override <= w["concurrency"]):
            plan.errors.append(
                f"{host}: haproxy_app_server_maxconn {maxconn_override} "
                f"({'unlimited' if maxconn_override == 0 else 'per server'}) "
                f"is above its WSGI concurrency {w['concurrency']}, and with keep-alive each connection a balancer keeps "
                f"pins one of its {w['prefork_workers']} prefork processes, sized for the concurrency; leave "
                "haproxy_app_server_maxconn unset (each host's concurrency), or set apache_keepalive: false")
    for host, w in web.items():
        w["maxconn"] = maxconn_override if maxconn_override is not None else w["concurrency"]
    total = sum(concurrency.values())
    largest = max(concurrency, key=concurrency.get) if concurrency else None
    n_minus_1 = total - concurrency[largest] if concurrency else 0
    try:
        peak = int(peak_concurrency) if peak_concurrency not in (None, "") else None
    except (TypeError, ValueError):
        peak = None
        plan.errors.append(f"site_peak_concurrency must be a whole number of requests, got {peak_concurrency!r}")
    web_total = {"hosts": len(web), "concurrency": total, "largest_host": largest, "concurrency_n_minus_1": n_minus_1,
                 "peak_concurrency": peak, "holds_peak": None if peak is None else total >= peak,
                 "holds_peak_n_minus_1": None if peak is None else n_minus_1 >= peak}

    # ---- the database tier: every WSGI thread may hold one connection
    db_sizing = {}
    for host in g["dbservers"]:
        d = database_sizing(plan.resources(host), concurrency,
                            plan.knobs(host, "mysql", _DATABASE_KNOB_NAMES, _DATABASE_KNOBS, _DATABASE_CONSTANTS))
        if d["max_connections"] < total:
            plan.errors.append(f"{host}: max_connections {d['max_connections']} ({d['max_connections_source']}) is "
                               f"below the web tier's concurrency {total} ({concurrency})")
        if d["needed_mb"] > d["memtotal_mb"]:
            plan.errors.append(
                f"{host}: MariaDB cannot take the web tier's concurrency on this host's memory: max_connections "
                f"{d['max_connections']} x {d['per_connection_kb']} KiB = {d['connections_mb']} MiB + buffer pool "
                f"{d['buffer_pool_mb']} MiB + reserved {d['needed_mb'] - d['connections_mb'] - d['buffer_pool_mb']} MiB "
                f"= {d['needed_mb']} MiB, above its {d['memtotal_mb']} MiB ({d['memory_source']})")
        wait_timeout = int(plan.var(host, "mysql", "mysql_wait_timeout"))
        if not 0 <= d["conn_max_age"] < wait_timeout:
            source = ("mysql_conn_max_age" if plan.var(host, "mysql", "mysql_conn_max_age") is not None else
                      f"mysql_wait_timeout - mysql_conn_max_age_margin {plan.var(host, 'mysql', 'mysql_conn_max_age_margin')}")
            plan.errors.append(f"{host}: the app's CONN_MAX_AGE {d['conn_max_age']} s ({source}) must be 0 (a connection "
                               f"per request) or more and below mysql_wait_timeout {wait_timeout} s, or MariaDB closes "
                               "connections the app still reuses; raise mysql_wait_timeout or lower the margin or the override")
        d["port"] = _port(plan, host, "mysql", "mysql_port")
        d["address"] = hosts[host]["address"]
        hosts[host]["ports"]["mysql_port"] = d["port"]
        hosts[host]["memory_mb"]["mysql"] = d["buffer_pool_mb"] + d["connections_mb"]
        hosts[host]["reserved_mb"] = max(hosts[host]["reserved_mb"], int(plan.var(host, "mysql", "mysql_os_reserved_memory_mb")))
        db_sizing[host] = d
    primary = g["dbservers"][0] if g["dbservers"] else None
    database = None if primary is None else {
                "host": primary, "address": hosts[primary]["address"], "port": db_sizing[primary]["port"],
                "max_connections": db_sizing[primary]["max_connections"],
                "wait_timeout": int(plan.var(primary, "mysql", "mysql_wait_timeout")),
                "conn_max_age": db_sizing[primary]["conn_max_age"], "sem_floor": db_sizing[primary]["sem_floor"],
                "database": plan.var(primary, "mysql", "mysql_database"),
                "app_user": plan.var(primary, "mysql", "mysql_app_user"),
                "migrate_user": plan.var(primary, "mysql", "mysql_migrate_user"),
                "socket": plan.var(primary, "mysql", "__mysql_socket"),
                # The app's connections over TLS: the web hosts copy the CA's certificate from this
                # file on the database host (playbooks/tasks/check-web-tier-plan.yml).
                "tls": {"enabled": _truthy(plan.var(primary, "mysql", "mysql_tls_enabled")),
                        "ca_file": plan.var(primary, "mysql", "__mysql_tls_ca_file")},
                "client_addresses": [web[h]["address"] for h in g["webservers"]], "sizing": db_sizing}

    time_budget = _time_budget(plan, web, primary)
    if database is not None:
        database.update({"read_timeout": time_budget["read_timeout_s"],
                         "max_statement_time": time_budget["max_statement_time_s"]})

    # ---- the cache tier: every WSGI worker holds client_pool_size connections to every server
    cache_sizing_by_host = {}
    for host in g["cacheservers"]:
        c = cache_sizing(plan.resources(host), concurrency,
                         plan.knobs(host, "memcached", _CACHE_KNOB_NAMES, _CACHE_KNOBS, _CACHE_CONSTANTS))
        if not 1 <= c["memory_mb"] <= c["memory_limit_mb"]:
            plan.errors.append(f"{host}: memcached's {c['memory_mb']} MiB ({c['memory_source']}) do not fit: "
                               f"{c['memory_limit_mb']} MiB at most ({c['memtotal_mb']} MiB, {c['host_memory_source']})")
        if c["max_connections"] < c["client_connections"]:
            source = "memcached_max_connections" if plan.var(host, "memcached", "memcached_max_connections") is not None \
                else "computed"
            plan.errors.append(f"{host}: memcached's max connections {c['max_connections']} ({source}) are below the "
                               f"{c['client_connections']} the web tier opens ({c['client_concurrency']} WSGI workers "
                               "x memcached_client_pool_size)")
        c["port"] = _port(plan, host, "memcached", "memcached_port")
        c["address"] = hosts[host]["address"]
        hosts[host]["ports"]["memcached_port"] = c["port"]
        hosts[host]["memory_mb"]["memcached"] = c["memory_mb"]
        hosts[host]["reserved_mb"] = max(hosts[host]["reserved_mb"],
                                         int(plan.var(host, "memcached", "memcached_os_reserved_memory_mb")))
        cache_sizing_by_host[host] = c
    cache = {"servers": [f"{c['address']}:{c['port']}" for c in cache_sizing_by_host.values()],
             "sizing": cache_sizing_by_host}

    # ---- the static tier
    static_ports = {}
    for host in g["staticservers"]:
        static_ports[host] = _port(plan, host, "nginx_static", "nginx_static_port")
        hosts[host]["ports"]["nginx_static_port"] = static_ports[host]
    first_static = g["staticservers"][0] if g["staticservers"] else None
    static = None if first_static is None else {
        "port": static_ports[first_static], "root": plan.var(first_static, "nginx_static", "nginx_static_root"),
        "health_path": plan.var(first_static, "nginx_static", "nginx_static_health_path"),
        "servers": {h: hosts[h]["address"] for h in g["staticservers"]}}
    app_ports = {w["port"] for w in web.values()}
    for what, ports, name in (("web", app_ports, "apache_listen_port"), ("static", set(static_ports.values()),
                                                                         "nginx_static_port")):
        if len(ports) > 1:
            plan.errors.append(f"the {what} hosts listen on different ports ({name}: "
                               f"{', '.join(str(p) for p in sorted(ports))}); the balancer sends one port to all")

    # ---- the balancer
    balancer = {"hosts": list(g["loadbalancers"]), "app_port": min(app_ports, default=None), "app_check_path": None,
                "app_server_weight": server_settings.get("haproxy_app_server_weight", {}).get(balancer_host, 100),
                "max_request_body_mb": body_mb,
                "admin_networks": _admin(plan, g)[0], "admin_paths": _admin(plan, g)[1],
                "http_port": None, "stats_port": None, "runtime_api_socket": None,
                "backends": {"app": "app", "app_failopen": "app_failopen", "static": "static",
                             "static_failopen": "static_failopen"},
                "app_servers": {h: {"address": w["address"], "maxconn": w["maxconn"]} for h, w in web.items()}}
    for host in g["loadbalancers"]:
        ports = hosts[host]["ports"]
        ports["haproxy_http_port"] = _port(plan, host, "haproxy", "haproxy_http_port")
        if plan.var(host, "haproxy", "haproxy_stats_enabled"):
            ports["haproxy_stats_port"] = _port(plan, host, "haproxy", "haproxy_stats_port")
        if plan.var(host, "haproxy", "haproxy_tls_certificate"):
            ports["haproxy_https_port"] = _port(plan, host, "haproxy", "haproxy_https_port")
    if balancer_host:
        balancer.update({
            "app_check_path": plan.var(balancer_host, "haproxy", "haproxy_app_check_path"),
            "http_port": hosts[balancer_host]["ports"]["haproxy_http_port"],
            "stats_port": hosts[balancer_host]["ports"].get("haproxy_stats_port"),
            "runtime_api_socket": plan.var(balancer_host, "haproxy", "haproxy_runtime_socket"),
            "backends": {name: plan.var(balancer_host, "haproxy", f"__haproxy_{name}_backend")
                         for name in ("app", "app_failopen", "static", "static_failopen")}})

    # ---- backups of each database host (role mysql_backup), and the hosts that pull copies (role backup_server)
    backups = _backups(plan, g)
    backup_copies = {store: [{"source": db, "address": hosts[db]["address"], "ssh_port": b["copies"]["ssh_port"],
                              "reader": b["copies"]["reader"], "remote_dir": b["dir"],
                              "alert_age_hours": b["alert_age_hours"], "retention_days": b["retention_days"]}
                             for db, b in backups.items() if b["enabled"]]
                     for store in g["backupservers"]}

    # ---- the firewall: who may open each port of each host (role firewall, playbooks/firewall.yml)
    firewall = _firewall(plan, hosts, g, backups)

    # ---- each host: its ports once, its roles within its memory
    for host, h in hosts.items():
        seen = {}
        for name, port in h["ports"].items():
            seen.setdefault(port, []).append(name)
        for port, names in seen.items():
            if len(names) > 1:
                plan.errors.append(f"{host}: port {port} is used twice ({', '.join(names)})")
        h["memory_total_mb"] = sum(h["memory_mb"].values()) + h["reserved_mb"]
        if len(h["memory_mb"]) > 1 and h["memory_total_mb"] > h["memtotal_mb"]:
            parts = " + ".join(f"{role} {mb} MiB" for role, mb in h["memory_mb"].items())
            plan.errors.append(f"{host}: its roles together take {parts} + {h['reserved_mb']} MiB reserved = "
                               f"{h['memory_total_mb']} MiB, above its {h['memtotal_mb']} MiB ({h['memory_source']})")

    if plan.errors:
        raise AnsibleFilterError("site_plan: the plan cannot hold:\n- " + "\n- ".join(plan.errors))
    return {"hosts": hosts, "addresses": {host: h["address"] for host, h in hosts.items()}, "web": web,
            "web_concurrency": concurrency, "web_total": web_total,
            "database": database, "cache": cache,
            "static": static, "balancer": balancer, "time_budget": time_budget, "firewall": firewall, "backups": backups,
            "backup_copies": backup_copies,
            "floors": {"kernel_sem": database["sem_floor"] if database else None,
                       "nofile": {h: c["nofile_limit"] for h, c in cache_sizing_by_host.items()}}}


class FilterModule:
    """Ansible's entry point for the filters above."""

    def filters(self):
        return {"wsgi_sizing": wsgi_sizing, "database_sizing": database_sizing, "cache_sizing": cache_sizing,
                "site_plan": site_plan, "listen_address_problem": listen_address_problem}
