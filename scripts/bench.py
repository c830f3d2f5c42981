#!/usr/bin/env python3
"""The site's benchmark: the tuned profile (the bundle) and the stock one, side by side on the lab.

`make bench` runs this on the controller, against a running lab (`make lab`). For each profile it
converges the lab (`playbooks/site.yml`; the stock profile adds the inventory overlay
`inventories/overlays/stock`), waits until the balancer has every web host back at full weight, then
loads each page through the balancer with wrk at each connection count, several times, and reads
around every run what the servers did: MariaDB's `Connections` counter, the Apache and WSGI
processes that appeared, the app's request counters (static requests that reached Python),
memcached's hits and misses, and the CPU each part used. It also measures each page's in-process
rate on one web host (Django's test client, no HTTP: the web tier's ceiling) and the leaderboard's
recomputations for 200 concurrent requests on a cold cache. The lab is left on the tuned profile.

Results go to .cache/bench/<UTC time>/ and .cache/bench/latest: results.json, results.md, plot.png.
How to read them: docs/performance.md, "The site under load".

Knobs (environment): BENCH_PROFILES ("stock tuned"), BENCH_CONNECTIONS ("16 64 256"),
BENCH_DURATION (s per run, 5), BENCH_REPEATS (runs per page and connection count, 3),
BENCH_PAGES ("/ /leaderboard/ /healthz static": "static" is a file the home page links to),
BENCH_CONVERGE (1; 0 measures the lab as it is, for one profile only), BENCH_URL
(http://127.0.0.1:8080), BENCH_OUT (.cache/bench).
"""

import base64
import csv
import io
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "inventories" / "lab"
PROFILES = {
    # name: the inventory sources of ansible-playbook, in order (later ones override earlier ones).
    "tuned": [LAB / "hosts.yml"],
    "stock": [LAB / "hosts.yml", ROOT / "inventories" / "overlays" / "stock"],
}
DYNAMIC_PAGES = ["/", "/leaderboard/", "/healthz"]
COLD_CACHE_REQUESTS = 200
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and what to do."""


# ---- wrk --------------------------------------------------------------------------------------

def parse_wrk(output):
    """wrk's report (`wrk --latency`) as numbers.

    output: wrk's standard output (str). Returns {"requests", "duration_s", "rps", "p50_ms", "p99_ms",
    "non2xx", "socket_errors" (connect + read + write), "timeouts"}; latencies in ms. wrk counts 3xx
    with 2xx: "non2xx" is its "Non-2xx or 3xx responses". Raises BenchError when a figure is missing.
    """
    def number(pattern, cast=float, default=None):
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            if default is not None:
                return default
            raise BenchError(f"wrk's output has no match for {pattern!r}:\n{output}")
        return cast(match.group(1))

    def latency(percent):
        match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
        if match is None:
            raise BenchError(f"wrk's output has no {percent}% latency (run it with --latency):\n{output}")
        return float(match.group(1)) * UNITS_MS[match.group(2)]

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    connect, read, write, timeouts = (int(x) for x in errors.groups()) if errors else (0, 0, 0, 0)
    return {
        "requests": number(r"^\s*(\d+) requests in", int),
        "duration_s": number(r"requests in ([\d.]+)s", float),
        "rps": number(r"^Requests/sec:\s+([\d.]+)"),
        "p50_ms": latency(50),
        "p99_ms": latency(99),
        "non2xx": number(r"Non-2xx or 3xx responses: (\d+)", int, default=0),
        "socket_errors": connect + read + write,
        "timeouts": timeouts,
    }


def run_wrk(url, host_header, connections, duration_s, threads=2):
    """One wrk run: parse_wrk's figures plus "loadgen_cpu_s", the CPU seconds wrk itself used."""
    argv = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration_s}s", "--timeout", "10s",
            "--latency", "-H", f"Host: {host_header}", url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise BenchError(f"{shlex.join(argv)} exited with {done.returncode}: {done.stderr.strip()}")
    figures = parse_wrk(done.stdout)
    figures["loadgen_cpu_s"] = round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 3)
    return figures


# ---- the lab's containers ---------------------------------------------------------------------

def docker(*args, check=True, stdin=None):
    """`docker <args>`; its standard output (str). Raises BenchError when it fails and check is set."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, input=stdin, check=False)
    if check and done.returncode != 0:
        raise BenchError(f"docker {shlex.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def lab_containers():
    """The running lab containers: {name: {"id", "pid", "address", "cpus", "memory_mib"}}.

    cpus and memory_mib are the container's limits (docker's NanoCpus and Memory; None: no limit).
    """
    names = docker("ps", "--filter", "label=site.lab=true", "--format", "{{.Names}}").split()
    if not names:
        raise BenchError("no lab container runs: run 'make lab' first")
    found = {}
    for entry in json.loads(docker("inspect", *names)):
        limits = entry["HostConfig"]
        networks = entry["NetworkSettings"]["Networks"].values()
        found[entry["Name"].lstrip("/")] = {
            "id": entry["Id"],
            "pid": entry["State"]["Pid"],
            "address": next((n["IPAddress"] for n in networks if n.get("IPAddress")), None),
            "cpus": (limits.get("NanoCpus") or 0) / 1e9 or None,
            "memory_mib": (limits.get("Memory") or 0) // 2**20 or None,
        }
    return found


def container_cpu_s(container_id):
    """CPU seconds the container's processes have used (its cgroup's counter, v1 or v2); None if unknown."""
    v1 = [Path(f"/sys/fs/cgroup/{c}/{parent}/cpuacct.usage") for c in ("cpuacct", "cpu,cpuacct")
          for parent in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope")]
    for path in v1:
        if path.exists():
            return int(path.read_text()) / 1e9
    for path in (Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat"),
                 Path(f"/sys/fs/cgroup/docker/{container_id}/cpu.stat")):
        if path.exists():
            usage = dict(line.split() for line in path.read_text().splitlines())
            return int(usage["usage_usec"]) / 1e6
    return None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def processes(container_ids):
    """The processes of the given containers, seen from this machine's /proc.

    container_ids: {container name: id}. Returns {pid: (container name, kind, cpu_s)} where kind is
    "wsgi" (mod_wsgi's daemon processes, argv[0] "(wsgi:<group>)"), "apache", "nginx" or "other", and
    cpu_s the process's own user + system time (s; not its reaped children's, whose whole lives would
    count in the run they end in).
    """
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cgroup = Path(entry.path, "cgroup").read_text()
            stat = Path(entry.path, "stat").read_text()
            argv0 = Path(entry.path, "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            continue
        owner = next((name for name, cid in container_ids.items() if cid in cgroup), None)
        if owner is None:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        # mod_wsgi's display-name sets the daemon processes' argv[0]; their comm stays "apache2".
        kind = ("wsgi" if argv0.startswith("(wsgi") else "apache" if comm.startswith("apache2")
                else "nginx" if comm.startswith("nginx") else "other")
        found[int(entry.name)] = (owner, kind, ticks / CLOCK_TICKS)
    return found


class ProcessWatch:
    """Samples the web hosts' Apache and WSGI processes every `interval` seconds while a run lasts.

    started() gives {"apache": n, "wsgi": n}: processes seen during the run that were not there when it
    began. A process that starts and ends between two samples is missed; the tuned profile starts
    none at all, which samples cannot miss.
    """

    def __init__(self, container_ids, interval=0.5):
        self.container_ids = container_ids
        self.interval = interval
        self.first = self._sample()
        self.seen = dict(self.first)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _sample(self):
        return {pid: kind for pid, (_, kind, _) in processes(self.container_ids).items() if kind in ("apache", "wsgi")}

    def _loop(self):
        while not self._stop.wait(self.interval):
            self.seen.update(self._sample())

    def started(self):
        """{"apache": n, "wsgi": n}, or None when no Apache process of the web hosts was ever seen (this
        machine's /proc does not show the lab's processes: Docker in a VM, a remote engine)."""
        self._stop.set()
        self._thread.join()
        self.seen.update(self._sample())
        if not self.seen:
            return None
        new = [kind for pid, kind in self.seen.items() if pid not in self.first]
        return {"apache": new.count("apache"), "wsgi": new.count("wsgi")}


# ---- what the servers report --------------------------------------------------------------------

def http_get(url, host_header=None, auth=None, timeout=10):
    """GET url; returns (status, headers, body bytes). Never raises on an HTTP error status."""
    request = urllib.request.Request(url)
    if host_header:
        request.add_header("Host", host_header)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def parse_metrics(text):
    """Prometheus text ("name{labels} value" lines) as {"name{labels}": float}; comments skipped."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


# Run inside the cache container: the host firewall admits memcached's port from the web hosts only,
# and a connection to the host's own address from inside it is loopback's.
_MEMCACHED_STATS = r"""
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as conn:
    conn.sendall(b"stats\r\n")
    data = b""
    while not data.endswith(b"END\r\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
sys.stdout.write(data.decode())
"""


def memcached_stats(container, address, port=11211):
    """memcached's `stats` as {name: str}, over its text protocol, read inside the cache `container`
    (memcached listens on `address`, the container's private address)."""
    out = docker("exec", "-i", container, "python3", "-", address, str(port), stdin=_MEMCACHED_STATS)
    return {parts[1]: parts[2] for parts in (line.split() for line in out.splitlines())
            if len(parts) == 3 and parts[0] == "STAT"}


def mariadb_status(container, name):
    """One global status counter of MariaDB (root over the socket inside the container), as int."""
    out = docker("exec", container, "mariadb", "-N", "-B", "-e", f"SHOW GLOBAL STATUS LIKE '{name}'").split()
    if len(out) != 2:
        raise BenchError(f"MariaDB in {container} has no status counter {name!r} (got {out})")
    return int(out[1])


class Site:
    """The lab's site as the benchmark sees it: the balancer's URL, the domain, the containers."""

    def __init__(self, url):
        self.url = url.rstrip("/")
        self.domain = re.search(r"^site_domain:\s*(\S+)", (LAB / "group_vars/all/site.yml").read_text(), re.M).group(1)
        try:
            answers = self.get("/healthz")[0] == 200
        except OSError:
            answers = False
        if not answers:
            raise BenchError(f"nothing answers on {self.url} for {self.domain}: run 'make lab' first")
        self.stats_auth = "admin:" + (LAB / ".secrets" / "haproxy_stats").read_text().strip()
        self.stats_url = "http://127.0.0.1:" + str(_published_port("lab-lb", 8404) or 8404) + "/;csv"
        self.containers = lab_containers()
        self.web = sorted(n for n in self.containers if n.startswith("lab-web"))
        self.db = "lab-db"
        self.cache = "lab-cache"
        self.lb = "lab-lb"
        self.app_root = docker("exec", self.web[0], "sh", "-c", "ls -d /srv/*/current/bin/manage").split()[0]
        self.app_root = self.app_root.rsplit("/current/", 1)[0]

    def get(self, path):
        return http_get(self.url + path, self.domain)

    def counters(self):
        status, _, body = self.get("/metrics")
        if status != 200:
            raise BenchError(f"/metrics answered {status}: the benchmark reads the app's counters there")
        return parse_metrics(body.decode())

    def haproxy_servers(self):
        """The balancer's servers: [{"backend", "server", "status", "weight", "uweight", "req_tot"}]."""
        status, _, body = http_get(self.stats_url, auth=self.stats_auth)
        if status != 200:
            raise BenchError(f"HAProxy's stats page answered {status} at {self.stats_url}")
        rows = csv.DictReader(io.StringIO(body.decode().lstrip("# ")))
        return [{"backend": r["pxname"], "server": r["svname"], "status": r["status"], "weight": r["weight"],
                 "uweight": r.get("uweight") or r["weight"], "req_tot": int(r.get("req_tot") or 0)}
                for r in rows if r["svname"] not in ("FRONTEND", "BACKEND")]

    def wait_ready(self, timeout=180):
        """Wait until every app and static server is UP at its full weight (slowstart over)."""
        deadline = time.monotonic() + timeout
        while True:
            servers = [s for s in self.haproxy_servers() if s["backend"] in ("app", "static")]
            ready = servers and all(s["status"] == "UP" and s["weight"] == s["uweight"] for s in servers)
            if ready and self.get("/healthz")[0] == 200:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"the balancer's servers are not all UP at full weight after {timeout} s: {servers}")
            time.sleep(2)

    def manage_shell(self, code, container=None):
        """Run Python `code` in Django's shell of the current release on a web host; its stdout."""
        container = container or self.web[0]
        user = os.path.basename(self.app_root)
        return docker("exec", "-u", user, "-e", "PYTHONDONTWRITEBYTECODE=1", container,
                      f"{self.app_root}/current/bin/manage", "shell", "-c", code)

    def snapshot(self):
        """The counters a run's figures are differences of."""
        ids = {name: self.containers[name]["id"] for name in self.containers}
        procs = processes({name: ids[name] for name in self.web})
        stats = memcached_stats(self.cache, self.containers[self.cache]["address"])
        return {
            "time": time.monotonic(),
            "db_connections": mariadb_status(self.db, "Connections"),
            "app_requests": sum(v for k, v in self.counters().items()
                                if k.startswith("http_requests_total") and 'route="metrics"' not in k),
            "memcached_get_hits": int(stats["get_hits"]),
            "memcached_get_misses": int(stats["get_misses"]),
            "container_cpu_s": {name: container_cpu_s(ids[name]) for name in ids},
            "process_cpu_s": procs,
        }


def _published_port(container, port):
    out = docker("port", container, f"{port}/tcp", check=False).split()
    return out[0].rsplit(":", 1)[1] if out else None


def differences(site, before, after, requests):
    """A run's per-run figures from two snapshots around it (see Site.snapshot).

    Returns {"db_new_connections", "db_new_connections_per_10k", "static_reached_python" (app requests
    counted by the app, /metrics excluded), "memcached_hit_ratio" (None: no gets), "cpu_s" {part: CPU s}}.
    CPU parts: haproxy, mariadb, memcached (their containers), apache, wsgi, nginx (processes of the web
    hosts present at both ends) and web_other (the rest of the web containers).
    """
    db_new = after["db_connections"] - before["db_connections"]
    hits = after["memcached_get_hits"] - before["memcached_get_hits"]
    misses = after["memcached_get_misses"] - before["memcached_get_misses"]
    cpu = {}

    def container(name):
        a, b = after["container_cpu_s"].get(name), before["container_cpu_s"].get(name)
        return None if a is None or b is None else a - b

    cpu["haproxy"] = container(site.lb)
    cpu["mariadb"] = container(site.db)
    cpu["memcached"] = container(site.cache)
    web_total = [container(name) for name in site.web]
    parts = {"apache": 0.0, "wsgi": 0.0, "nginx": 0.0}
    for pid, (_, kind, cpu_after) in after["process_cpu_s"].items():
        if kind in parts and pid in before["process_cpu_s"]:
            parts[kind] += cpu_after - before["process_cpu_s"][pid][2]
    cpu.update(parts)
    cpu["web_other"] = (None if None in web_total else max(sum(web_total) - sum(parts.values()), 0.0))
    return {
        "db_new_connections": db_new,
        "db_new_connections_per_10k": round(db_new * 10000 / requests, 1) if requests else None,
        "app_requests": after["app_requests"] - before["app_requests"],
        "memcached_hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
        "cpu_s": {k: (round(v, 2) if v is not None else None) for k, v in cpu.items()},
    }


# ---- the steps --------------------------------------------------------------------------------

def converge(profile, log_dir):
    """Converge the lab to a profile with playbooks/site.yml; the log goes to log_dir."""
    argv = ["ansible-playbook"]
    for source in PROFILES[profile]:
        argv += ["-i", str(source)]
    argv.append(str(ROOT / "playbooks" / "site.yml"))
    log = log_dir / f"converge-{profile}.log"
    print(f"bench: converging the lab to the {profile} profile ({log.relative_to(ROOT)})", flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
    if done.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise BenchError(f"converging to the {profile} profile failed (exit {done.returncode}); end of {log}:\n{tail}")
    return round(time.monotonic() - started, 1)


INPROCESS_CODE = """
import json, time
from django.test import Client
client = Client(HTTP_HOST={domain!r})
rates = {{}}
for page in {pages!r}:
    for _ in range(20):
        assert client.get(page).status_code == 200, page
    runs = []
    for _ in range({repeats}):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < {seconds}:
            client.get(page)
            count += 1
        runs.append(count / (time.perf_counter() - start))
    rates[page] = runs
print("BENCH " + json.dumps(rates))
"""


def inprocess_limits(site, seconds=3, repeats=3):
    """Each dynamic page's rate in one process on one web host (Django's test client, no HTTP).

    Returns {page: {"runs": [req/s], "median": req/s, "per_cpu": req/s}}: one process runs on one CPU,
    so its rate is the page's rate per CPU of the web tier.
    """
    code = INPROCESS_CODE.format(domain=site.domain, pages=DYNAMIC_PAGES, seconds=seconds, repeats=repeats)
    out = site.manage_shell(code)
    line = next((line for line in out.splitlines() if line.startswith("BENCH ")), None)
    if line is None:
        raise BenchError(f"the in-process measurement printed no result:\n{out}")
    rates = json.loads(line[len("BENCH "):])
    return {page: {"runs": [round(r, 1) for r in runs], "median": round(statistics.median(runs), 1)}
            for page, runs in rates.items()}


def cold_cache_burst(site, page="/leaderboard/", entry="leaderboard", requests=COLD_CACHE_REQUESTS):
    """Recomputations of a hot cache entry for `requests` concurrent requests on a cold cache.

    Stops the app's refresh timers meanwhile (an out-of-band refresh would count too), deletes the
    entry (SoftCache.delete), sends the requests at once (curl --parallel) and reads the app's
    `<entry>_recomputes_total` before and after. Returns {"requests", "recomputations", "statuses"}.
    """
    timers = {}
    for web in site.web:
        units = docker("exec", web, "systemctl", "list-units", "--type=timer", "--state=active", "--no-legend",
                       "--plain", "*-refresh.timer").split()
        timers[web] = [u for u in units if u.endswith(".timer")]
        if timers[web]:
            docker("exec", web, "systemctl", "stop", *timers[web])
    try:
        time.sleep(1)
        metric = f"{entry}_recomputes_total"
        before = site.counters().get(metric, 0)
        site.manage_shell(f"from scoreboard.games import hot; hot.{entry}.delete()")
        argv = ["curl", "-s", "--parallel", "--parallel-immediate", "--parallel-max", str(requests),
                "-H", f"Host: {site.domain}", "-w", "%{http_code}\\n"]
        for _ in range(requests):
            argv += ["-o", "/dev/null", site.url + page]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        statuses = {}
        for code in done.stdout.split():
            statuses[code] = statuses.get(code, 0) + 1
        after = site.counters().get(metric, 0)
    finally:
        for web, units in timers.items():
            if units:
                docker("exec", web, "systemctl", "start", *units)
    return {"page": page, "requests": requests, "recomputations": int(after - before), "statuses": statuses}


def static_path(site):
    """A static file the home page links to (the first stylesheet or script under /static/)."""
    status, _, body = site.get("/")
    match = re.search(rb'(?:href|src)="(/static/[^"]+\.(?:css|js))"', body)
    if status != 200 or match is None:
        raise BenchError(f"the home page (status {status}) links no static file to load")
    return match.group(1).decode()


def measure(site, profile, pages, connections, duration, repeats):
    """Every page x connection count, `repeats` times: one result object per wrk run."""
    runs = []
    ids = {name: site.containers[name]["id"] for name in site.web}
    for page in pages:
        # Warm: the caches filled, the connections and processes a steady load needs in place.
        run_wrk(site.url + page, site.domain, max(connections), 3)
        for conns in connections:
            for repeat in range(1, repeats + 1):
                time.sleep(1)
                before = site.snapshot()
                watch = ProcessWatch(ids)
                figures = run_wrk(site.url + page, site.domain, conns, duration)
                started = watch.started()
                after = site.snapshot()
                extra = differences(site, before, after, figures["requests"])
                extra["cpu_s"]["loadgen"] = figures.pop("loadgen_cpu_s")
                run = {"profile": profile, "page": page, "connections": conns, "repeat": repeat, **figures,
                       "processes_started": started, **extra}
                runs.append(run)
                print(f"bench: {profile:6} {page:28} c={conns:<4} #{repeat} {figures['rps']:9.1f} req/s "
                      f"p50 {figures['p50_ms']:8.2f} ms p99 {figures['p99_ms']:8.2f} ms non2xx {figures['non2xx']} "
                      f"sock {figures['socket_errors']} timeouts {figures['timeouts']}", flush=True)
    return runs


# ---- the report ---------------------------------------------------------------------------------

def summarize(runs):
    """Runs grouped by (profile, page, connections): {key: {"rps_median", "rps_min", "p50_ms", "p99_ms"
    (medians), "p99_max_ms", "non2xx", "socket_errors", "timeouts" (sums), "runs"}}."""
    groups = {}
    for run in runs:
        groups.setdefault((run["profile"], run["page"], run["connections"]), []).append(run)
    summary = {}
    for key, group in groups.items():
        summary[key] = {
            "runs": len(group),
            "rps_median": round(statistics.median(r["rps"] for r in group), 1),
            "rps_min": round(min(r["rps"] for r in group), 1),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in group), 2),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in group), 2),
            "p99_max_ms": round(max(r["p99_ms"] for r in group), 2),
            "non2xx": sum(r["non2xx"] for r in group),
            "socket_errors": sum(r["socket_errors"] for r in group),
            "timeouts": sum(r["timeouts"] for r in group),
        }
    return summary


def started(runs, kind):
    """Processes of `kind` started over `runs`, or "unknown" when a run could not see the processes."""
    runs = list(runs)
    if any(r["processes_started"] is None for r in runs):
        return "unknown"
    return sum(r["processes_started"][kind] for r in runs)


def per_10k(runs):
    """New MariaDB connections per 10,000 requests over `runs` together (their sums), 0 with no request."""
    runs = list(runs)
    requests = sum(r["requests"] for r in runs)
    return round(sum(r["db_new_connections"] for r in runs) * 10000 / requests, 1) if requests else 0


def _ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def targets(runs, limits, cold, web_cpus, web_concurrency=None):
    """The issue's targets, each with the measured figure and whether it was met: [(target, figure, met)].

    limits: {page: {"median": req/s per CPU}} (inprocess_limits); cold: {profile: cold_cache_burst()};
    web_cpus: the web tier's CPUs; web_concurrency: its WSGI processes x threads (None: that target
    is left out)."""
    summary = summarize(runs)
    checks = []
    tuned = [r for r in runs if r["profile"] == "tuned"]
    for page in DYNAMIC_PAGES:
        for conns in sorted({r["connections"] for r in runs}):
            t, s = summary.get(("tuned", page, conns)), summary.get(("stock", page, conns))
            if not (t and s):
                continue
            checks.append((f"{page} c={conns}: tuned req/s >= 1.2x stock", _ratio(t["rps_median"], s["rps_median"]),
                           t["rps_median"] >= 1.2 * s["rps_median"]))
            checks.append((f"{page} c={conns}: tuned p99 <= 0.5x stock", _ratio(t["p99_ms"], s["p99_ms"]),
                           t["p99_ms"] <= 0.5 * s["p99_ms"]))
    top = max((r["connections"] for r in tuned), default=None)
    if top is not None:
        bad = sum(r["non2xx"] + r["socket_errors"] + r["timeouts"] for r in tuned if r["connections"] == top)
        checks.append((f"tuned at c={top}: 0 non-2xx, socket errors, timeouts", str(bad), bad == 0))
    home = [summary[k]["rps_median"] for k in summary if k[0] == "tuned" and k[1] == "/"]
    if home and limits.get("/") and limits["/"]["median"] > 0:
        limit = limits["/"]["median"] * web_cpus
        checks.append(("/ at least 60% of its in-process limit", f"{max(home) / limit:.0%}", max(home) >= 0.6 * limit))
    if any(r["processes_started"] is None for r in tuned):
        checks.append(("tuned: 0 processes started during runs", "unknown (no web process seen)", False))
    else:
        started = sum(r["processes_started"]["apache"] + r["processes_started"]["wsgi"] for r in tuned)
        checks.append(("tuned: 0 processes started during runs", str(started), started == 0))
    # Over all runs of a page: MariaDB's counter also counts the app's refresh timer (a new process, so a
    # new connection, every django_app_refresh_interval), which a single short run would magnify.
    per10k = max((per_10k(r for r in tuned if r["page"] == page) for page in DYNAMIC_PAGES), default=0)
    if web_concurrency:
        checks.append((f"tuned: new MariaDB connections per 10,000 requests <= {web_concurrency}", str(per10k),
                       per10k <= web_concurrency))
    static = sum(r["app_requests"] for r in tuned if r["page"].startswith("/static/"))
    checks.append(("tuned: 0 static requests reaching Python", str(static), static == 0))
    if cold.get("tuned"):
        n = cold["tuned"]["recomputations"]
        checks.append((f"tuned: 1 recomputation for {cold['tuned']['requests']} cold requests", str(n), n == 1))
    return checks


def render_markdown(result):
    """results.md: the lab, the limits, one table a page, the per-run figures and the targets."""
    runs, limits, lab = result["runs"], result["limits"], result["lab"]
    summary = summarize(runs)
    profiles = result["profiles"]
    out = [f"# Benchmark {result['started']}", "",
           f"{result['settings']['repeats']} runs of {result['settings']['duration_s']} s per page and connection "
           f"count, wrk through the balancer ({result['settings']['url']}); medians, min of req/s.", "",
           "## The lab", "", "| container | CPUs | memory (MiB) |", "|---|---|---|"]
    for name, c in sorted(lab["containers"].items()):
        out.append(f"| {name} | {c['cpus'] or 'no limit'} | {c['memory_mib'] or 'no limit'} |")
    out += ["", f"The machine: {lab['machine_cpus']} CPUs; the web tier: {lab['web_cpus']} CPUs.", "",
            "## The limit: each page in one process (Django's test client on one web host, no HTTP)", "",
            "| page | req/s per CPU (median of runs) | x web tier CPUs | " + " | ".join(
                f"{p} best / limit" for p in profiles) + " |",
            "|---|---|---|" + "---|" * len(profiles)]
    for page in DYNAMIC_PAGES:
        if page not in limits:
            continue
        limit = limits[page]["median"] * lab["web_cpus"]
        if limit <= 0:
            continue
        fractions = []
        for p in profiles:
            best = max((v["rps_median"] for k, v in summary.items() if k[0] == p and k[1] == page), default=None)
            fractions.append(f"{best / limit:.0%}" if best else "-")
        out.append(f"| `{page}` | {limits[page]['median']} | {limit:.0f} | " + " | ".join(fractions) + " |")
    pages = list(dict.fromkeys(r["page"] for r in runs))
    both = profiles if len(profiles) == 2 and set(profiles) == {"tuned", "stock"} else None
    for page in pages:
        header = (["connections"] + [f"{p} req/s (min)" for p in profiles] + (["tuned / stock"] if both else [])
                  + [f"{p} p50 / p99 ms" for p in profiles] + [f"{p} non-2xx / sock / timeouts" for p in profiles])
        out += ["", f"## `{page}`", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for conns in sorted({r["connections"] for r in runs if r["page"] == page}):
            row = {p: summary.get((p, page, conns)) for p in profiles}
            cells = [f"{s['rps_median']} ({s['rps_min']})" if s else "-" for s in row.values()]
            if both:
                cells.append(_ratio(*((row[p] or {}).get("rps_median") for p in ("tuned", "stock"))))
            cells += [f"{s['p50_ms']} / {s['p99_ms']}" if s else "-" for s in row.values()]
            cells += [f"{s['non2xx']} / {s['socket_errors']} / {s['timeouts']}" if s else "-" for s in row.values()]
            out.append(f"| {conns} | " + " | ".join(cells) + " |")
    out += ["", "## Per run (medians of the runs)", "",
            "| profile | page | conns | new DB conns / 10k req (all runs) | Apache / WSGI processes started | "
            "app requests | memcached hit ratio | requests per WSGI CPU s | "
            "CPU s: haproxy, apache, wsgi, nginx, mariadb, memcached, wrk |",
            "|---|---|---|---|---|---|---|---|---|"]
    groups = {}
    for run in runs:
        groups.setdefault((run["profile"], run["page"], run["connections"]), []).append(run)
    for (profile, page, conns), group in groups.items():
        def med(values):
            values = [v for v in values if v is not None]
            return round(statistics.median(values), 2) if values else "-"
        cpu = ", ".join(str(med(r["cpu_s"].get(k) for r in group))
                        for k in ("haproxy", "apache", "wsgi", "nginx", "mariadb", "memcached", "loadgen"))
        out.append(f"| {profile} | `{page}` | {conns} | {per_10k(group)} | "
                   f"{started(group, 'apache')} / {started(group, 'wsgi')} | "
                   f"{sum(r['app_requests'] for r in group)} | {med(r['memcached_hit_ratio'] for r in group)} | "
                   f"{med(r['requests'] / r['cpu_s']['wsgi'] if r['cpu_s'].get('wsgi') else None for r in group)} | {cpu} |")
    out += ["", "## Cold cache", ""]
    for profile, cold in result["cold_cache"].items():
        out.append(f"- {profile}: {cold['requests']} concurrent requests to `{cold['page']}` on a cold cache: "
                   f"{cold['recomputations']} recomputation(s); statuses {cold['statuses']}")
    out += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for target, figure, met in result["targets"]:
        out.append(f"| {target} | {figure} | {'yes' if met else '**no**'} |")
    return "\n".join(out) + "\n"


def plot(result, path):
    """plot.png: req/s and p99 against connections, one column a page, a line a profile (min-max bars)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    pages = list(dict.fromkeys(r["page"] for r in runs))
    fig, axes = plt.subplots(2, len(pages), figsize=(4.2 * len(pages), 7), squeeze=False)
    for column, page in enumerate(pages):
        for profile in result["profiles"]:
            mine = [r for r in runs if r["page"] == page and r["profile"] == profile]
            conns = sorted({r["connections"] for r in mine})
            for row, key in enumerate(("rps", "p99_ms")):
                values = [[r[key] for r in mine if r["connections"] == c] for c in conns]
                medians = [statistics.median(v) for v in values]
                low = [m - min(v) for m, v in zip(medians, values)]
                high = [max(v) - m for m, v in zip(medians, values)]
                axes[row][column].errorbar(conns, medians, yerr=[low, high], marker="o", capsize=3, label=profile)
        for row, label in enumerate(("requests/s", "p99 (ms)")):
            ax = axes[row][column]
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted({r["connections"] for r in runs}))
            ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.set_xlabel("connections")
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(page if len(page) < 30 else page[:27] + "...")
        axes[0][column].legend()
    fig.suptitle(f"tuned vs stock, {result['started']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- main -------------------------------------------------------------------------------------

def main():
    settings = {
        "profiles": os.environ.get("BENCH_PROFILES", "stock tuned").split(),
        "connections": [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "16 64 256").split()],
        "duration_s": int(os.environ.get("BENCH_DURATION", "5")),
        "repeats": int(os.environ.get("BENCH_REPEATS", "3")),
        "converge": os.environ.get("BENCH_CONVERGE", "1") != "0",
        "url": os.environ.get("BENCH_URL", "http://127.0.0.1:8080"),
        "pages": os.environ.get("BENCH_PAGES", " ".join(DYNAMIC_PAGES) + " static").split(),
    }
    unknown = [p for p in settings["profiles"] if p not in PROFILES]
    if unknown or not settings["profiles"]:
        raise BenchError(f"BENCH_PROFILES names unknown profiles {unknown}: choose from {sorted(PROFILES)}")
    if not settings["converge"] and len(settings["profiles"]) > 1:
        raise BenchError("BENCH_CONVERGE=0 measures the lab as it is: name one profile in BENCH_PROFILES")
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    out_root = Path(os.environ.get("BENCH_OUT", ROOT / ".cache" / "bench"))
    out = out_root / started
    site = Site(settings["url"])
    out.mkdir(parents=True)
    lab = {"containers": {n: {k: c[k] for k in ("cpus", "memory_mib")} for n, c in site.containers.items()},
           "machine_cpus": os.cpu_count(),
           "web_cpus": sum(site.containers[n]["cpus"] or os.cpu_count() for n in site.web)}
    result = {"started": started, "settings": settings, "profiles": settings["profiles"], "lab": lab, "runs": [],
              "limits": {}, "cold_cache": {}, "converge_s": {}}
    current, concurrency = "tuned", None
    try:
        for profile in settings["profiles"]:
            if settings["converge"]:
                current = profile  # a converge that fails half-way leaves the lab between profiles
                result["converge_s"][profile] = converge(profile, out)
            site.wait_ready()
            if not result["limits"]:
                print("bench: in-process rates on one web host", flush=True)
                result["limits"] = inprocess_limits(site)
            pages = [static_path(site) if page == "static" else page for page in settings["pages"]]
            result["runs"] += measure(site, profile, pages, settings["connections"], settings["duration_s"],
                                      settings["repeats"])
            result["cold_cache"][profile] = cold_cache_burst(site)
            print(f"bench: {profile} cold cache: {result['cold_cache'][profile]}", flush=True)
            if profile == "tuned":
                concurrency = web_concurrency(site)
    except BaseException:
        (out / "results-partial.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"bench: stopped; what was measured is in {out}/results-partial.json", file=sys.stderr)
        raise
    finally:
        if settings["converge"] and current != "tuned":
            try:
                converge("tuned", out)
            except BenchError as error:  # never hide why the run stopped
                print(f"bench: the lab could not be put back on the tuned profile: {error}", file=sys.stderr)
    result["targets"] = targets(result["runs"], result["limits"], result["cold_cache"], lab["web_cpus"], concurrency)
    result["limits"] = {**result["limits"], "web_cpus": lab["web_cpus"], "web_concurrency": concurrency}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "results.md").write_text(render_markdown(result))
    plot(result, out / "plot.png")
    latest = out_root / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(out.name)
    print((out / "results.md").read_text())
    print(f"bench: results in {out}/ (also {latest}/)")


def web_concurrency(site):
    """The web tier's WSGI concurrency (processes x threads, summed over the web hosts), read from each
    host's WSGIDaemonProcess line (HAProxy's maxconn would not do: the stock profile sets none); None
    when no host has one."""
    total = 0
    for web in site.web:
        conf = docker("exec", web, "sh", "-c", "cat /etc/apache2/sites-enabled/*.conf")
        match = re.search(r"WSGIDaemonProcess \S+ processes=(\d+) threads=(\d+)", conf)
        if match:
            total += int(match.group(1)) * int(match.group(2))
    return total or None


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        sys.exit(1)
