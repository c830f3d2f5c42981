#!/usr/bin/env python3
"""Game-day drills: one real fault at a time on a running site, under a steady load, measured.

`make drills` runs this on the controller against the lab (`make lab`); a Molecule scenario (or any
caller) runs it against its own containers by naming them (options or DRILLS_* variables, below).

Each drill:

1. waits until the site is normal: every web server of the checked backend (`app`) UP in HAProxy
   and the page answering 200 through the balancer (at most 180 s, else the drill is reported as
   not run and missed);
2. clears HAProxy's max counters (`clear counters`: maxima only, the totals stay), starts polling
   HAProxy's `show stat` every 0.25 s (a python3 loop inside the balancer container, on the Runtime
   API socket) and starts wrk through the balancer: DRILLS_CONNECTIONS (32) connections, each pausing
   DRILLS_DELAY_MS (100 ms) between its requests (scripts/drills.lua, paced like the deploy tests'
   paced.lua), on DRILLS_PATH (`/leaderboard/`), or on DRILLS_DB_PATHS (`/` and `/leaderboard/`,
   the connections split between them, one wrk each) for the database drills;
3. lets it run DRILLS_BASELINE_SECONDS (5 s), injects the fault, holds it as the drill says, restores
   it, and keeps the load on until the site is back to normal and stays so for 3 s (and at least 10 s
   after the injection; at most 120 s after the restore), then stops wrk (SIGINT: its summary and the
   Lua script's figures).

The restore runs in a `finally` (SIGINT and SIGTERM are held back while it runs), so a drill always
removes its fault, also on Ctrl-C; a restore that fails stops the run (exit 3).

What is measured, per drill (results.json, one object per drill):

- requests, non2xx (responses neither 2xx nor 3xx: wrk's "Non-2xx or 3xx responses"),
  socket_errors (wrk's connect + read + write errors), timeouts (wrk's, after --timeout: 30 s,
  longer for slow-database): over the whole run of wrk, baseline included (`failures_before_fault`
  counts the failed responses that arrived before the injection). "Failed GETs" below is
  non2xx + socket_errors + timeouts.
- statuses: {status: count}; retry_after_503 (503s with a Retry-After header); stale (responses with
  `X-Cache: stale`); counted per wrk thread by the Lua script's response() and gathered in done().
- error_seconds (s): from the first to the last failed response (0 with none, or with one). Two
  sources: the Lua script stamps every failed response with the wall clock (clock_gettime through
  LuaJIT's FFI, microseconds), and the 0.25 s polls of `show stat` give the intervals in which the
  frontends' hrsp_4xx, hrsp_5xx or hrsp_other grew. The window is the span of wrk's stamps, widened
  by any HAProxy interval that lies more than one poll outside it (an error wrk saw as a broken
  connection rather than a response). Socket errors and timeouts carry no time in wrk's Lua API:
  they count, but only widen the window through HAProxy's counters. The drill that sends requests
  of its own through the balancer (slow-uploads) uses wrk's stamps only.
- recovery_seconds (s): from the injection until the site is back to normal: the earliest moment
  after which every later sample shows (a) every server of the checked backend with status `UP` in
  `show stat` (0.25 s polls) and (b) the drill's probe of the faulted service passing (a probe every
  0.25 s from the injection on, each a `docker exec`, about 0.1 s: see each drill). null when it
  never got there. recovery_after_restore_seconds counts from the restore instead, and
  fault_seconds is the injection-to-restore time (the hold; near 0 for one-shot faults).
- haproxy: the checked backend's wretr and wredis (retries, redispatches) and the fail-open
  backend's requests over the drill, its maxima (qmax, smax, qtime/rtime/ttime_max in ms), the
  requests each server took, and how long every server of the checked backend was DOWN.
- per drill, whatever its target needs (details).

The drills (CLI names; each class's docstring says exactly what it does and measures):
apache-kill, log-rotation, healthz-failing, web-host-stopped, memcached-restart, database-restart,
slow-database, slow-uploads, deploy-rollback-tls. They take 20-40 s each; slow-database holds its
lock DRILLS_LOCK_SECONDS (60 s) on top; deploy-rollback-tls runs three playbooks (about 2 minutes on
the lab). A drill may need a set-up before the load starts and a teardown after it stops (not
measured; the teardown always runs, also on Ctrl-C): deploy-rollback-tls turns TLS on for itself.

Usage:
  scripts/drills.py [--only a,b] [--list] [--out DIR] [--check] [options]

Where the site is (options, or the environment; the defaults are the lab's, read from
inventories/lab: containers lab-<host>, the Host header from site_domain):
  --lb / DRILLS_LB            the balancer's container (lab-lb)
  --url / DRILLS_URL          the balancer's URL as this machine reaches it (default: its published
                              port 80, e.g. http://127.0.0.1:8080, else http://<container address>:80)
  --host / DRILLS_HOST        the Host header (scoreboard.test)
  --web / DRILLS_WEB          the web containers, comma-separated (lab-web1,lab-web2); the first is
                              the one the single-host drills fault
  --db / DRILLS_DB            the database container (lab-db)
  --cache / DRILLS_CACHE      the memcached container (lab-cache)
  --socket / DRILLS_SOCKET    HAProxy's Runtime API socket in the balancer (/run/haproxy/admin.sock)
  --backend / DRILLS_BACKEND  the checked web backend (app); its fail-open twin is <backend>_failopen
  --inventory / DRILLS_INVENTORY  the site's Ansible inventory, for the drills that run the bundle's
                              playbooks (deploy-rollback-tls): inventories/lab
The load: --connections / DRILLS_CONNECTIONS (32), --delay-ms / DRILLS_DELAY_MS (100),
--path / DRILLS_PATH (/leaderboard/), --db-paths / DRILLS_DB_PATHS (/,/leaderboard/),
--baseline-seconds / DRILLS_BASELINE_SECONDS (5), --lock-seconds / DRILLS_LOCK_SECONDS (60).
Holds and thresholds (environment only):
  DRILLS_STOP_SECONDS (15)          web-host-stopped: how long the host stays stopped
  DRILLS_FAILOPEN_SECONDS (10)      healthz-failing: fail-open time after every server is DOWN
  DRILLS_UPLOAD_SECONDS (20)        slow-uploads: how long the slow clients keep coming
  DRILLS_SLOW_EXTRA (4)             slow-uploads: slow clients beyond the web tier's slots
  DRILLS_ANSWER_GAP_SECONDS (2)     slow-uploads: the longest stretch without an answer its target allows
  DRILLS_RESTART_GRACE_SECONDS (5)  apache-kill: time Apache gets to come back by itself
  DRILLS_MARK_STALE (1)             slow-database: 0 leaves the hot cache entries as they are
  DRILLS_HEALTHZ_CHECK_PORT         healthz-failing: the check port (default: each host's nginx port)

Results: DIR/<UTC time>/results.json (DIR: --out, default .cache/drills), rewritten after each drill,
wrk's output per drill beside it, and DIR/latest pointing at the run. One line per drill is printed
on stdout; progress goes to stderr.

Exit status: 0 (with --check: every drill met its target), 1 (--check and a drill missed its
target), 2 (bad usage), 3 (the drills could not run: a container missing, the site not answering,
a restore or teardown that failed, the site not back to normal at the end), 130 (interrupted; faults restored).
"""

import argparse
import contextlib
import csv
import io
import json
import os
import queue
import re
import select
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "inventories" / "lab"
LUA_SCRIPT = Path(__file__).resolve().with_name("drills.lua")
POLL_S = 0.25            # HAProxy polls and probes: one every POLL_S seconds
SETTLE_S = 3.0           # normal for this long before the load stops
MIN_OBSERVE_S = 10.0     # the load runs at least this long after the injection
RECOVERY_LIMIT_S = 120.0 # after the restore, give up waiting for normal after this long
READY_LIMIT_S = 180.0    # before a drill, wait this long for a normal site
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


class DrillError(Exception):
    """The drills cannot go on (a container missing, a command failing, a fault not restored)."""


# ---- pure functions: parsing and figures -----------------------------------------------------

def parse_duration_ms(text):
    """A wrk or HAProxy duration ("677.52us", "4.78ms", "1.20s", "2m", "60s", "500" = ms) in ms (float).

    Raises ValueError for text that is not a number with one of the units us, ms, s, m, h."""
    match = re.fullmatch(r"\s*([\d.]+)\s*(us|ms|s|m|h)?\s*", text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return float(match.group(1)) * UNITS_MS[match.group(2) or "ms"]


def parse_wrk_summary(output):
    """wrk's report and the Lua script's DRILLS line as numbers.

    output: wrk's standard output (str). Returns {"requests": int, "non2xx": int, "socket_errors": int
    (connect + read + write), "timeouts": int, "latency_max_ms": float or None, "lua": dict or None
    (the DRILLS line: statuses {str: int}, retry_after_503, stale, failures, failure_times [epoch s],
    failure_statuses [int], responses)}. Raises ValueError when the request count is missing (wrk
    did not get to its summary)."""
    requests = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    if requests is None:
        raise ValueError(f"wrk's output has no request count:\n{output[-2000:]}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    connect, read, write, timeouts = (int(x) for x in errors.groups()) if errors else (0, 0, 0, 0)
    latency = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", output, re.MULTILINE)
    latency_max = None
    if latency:
        try:
            latency_max = round(parse_duration_ms(latency.group(3)), 3)
        except ValueError:
            latency_max = None
    lua = None
    line = re.search(r"^DRILLS (\{.*\})\s*$", output, re.MULTILINE)
    if line:
        lua = json.loads(line.group(1))
        if not isinstance(lua.get("statuses"), dict):  # Lua prints an empty table as []
            lua["statuses"] = {}
        for key in ("failure_times", "failure_statuses"):
            if not isinstance(lua.get(key), list):
                lua[key] = []
    return {"requests": int(requests.group(1)), "non2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": connect + read + write, "timeouts": timeouts, "latency_max_ms": latency_max,
            "lua": lua}


def merge_loads(parts):
    """The figures of several wrk runs at once (one per page) as one.

    parts: [parse_wrk_summary() result, ...]. Returns the same shape: counts summed, latency_max_ms
    the largest, lua merged (statuses and counters summed, failures concatenated and sorted by time;
    None if any run printed no DRILLS line)."""
    total = {"requests": 0, "non2xx": 0, "socket_errors": 0, "timeouts": 0, "latency_max_ms": None}
    lua = {"statuses": {}, "retry_after_503": 0, "stale": 0, "failures": 0, "failure_times": [],
           "failure_statuses": [], "responses": 0}
    complete = True
    for part in parts:
        for key in ("requests", "non2xx", "socket_errors", "timeouts"):
            total[key] += part[key]
        if part["latency_max_ms"] is not None:
            total["latency_max_ms"] = max(total["latency_max_ms"] or 0.0, part["latency_max_ms"])
        if part.get("lua") is None:
            complete = False
            continue
        for code, n in part["lua"]["statuses"].items():
            lua["statuses"][str(code)] = lua["statuses"].get(str(code), 0) + n
        for key in ("retry_after_503", "stale", "failures", "responses"):
            lua[key] += part["lua"].get(key, 0)
        lua["failure_times"] += part["lua"]["failure_times"]
        lua["failure_statuses"] += part["lua"]["failure_statuses"]
    pairs = sorted(zip(lua["failure_times"], lua["failure_statuses"]))
    lua["failure_times"] = [t for t, _ in pairs]
    lua["failure_statuses"] = [s for _, s in pairs]
    total["lua"] = lua if complete and parts else None
    return total


def split_connections(connections, pages):
    """connections (int >= 1) over pages (int >= 1) wrk runs: [int, ...], each at least 1, summing to
    max(connections, pages). Raises ValueError for pages < 1."""
    if pages < 1:
        raise ValueError("no page to load")
    connections = max(connections, pages)
    return [connections // pages + (1 if i < connections % pages else 0) for i in range(pages)]


STAT_COLUMNS = ("status", "addr", "check_status", "check_code")
STAT_COUNTERS = ("qcur", "qmax", "scur", "smax", "slim", "stot", "req_tot", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx",
                 "hrsp_4xx", "hrsp_5xx", "hrsp_other", "wretr", "wredis", "econ", "eresp", "srv_abrt",
                 "cli_abrt", "qtime_max", "ctime_max", "rtime_max", "ttime_max", "chkfail", "chkdown")


def parse_show_stat(text):
    """HAProxy's `show stat` (CSV, first line "# pxname,svname,...") as {(pxname, svname): row}.

    row: {"status", "addr", "check_status", "check_code": str ("" when empty)} plus every counter of
    STAT_COUNTERS as int (0 when empty: e.g. slim without a maxconn). Raises ValueError when the text
    is not show stat's CSV."""
    text = text.strip()
    if not text.startswith("# pxname,svname"):
        raise ValueError(f"not HAProxy's show stat output: {text[:200]!r}")
    rows = {}
    for row in csv.DictReader(io.StringIO(text[2:])):
        if not row.get("pxname"):
            continue
        parsed = {name: (row.get(name) or "") for name in STAT_COLUMNS}
        for name in STAT_COUNTERS:
            value = row.get(name) or ""
            parsed[name] = int(value) if value.isdigit() else 0
        rows[(row["pxname"], row["svname"])] = parsed
    return rows


def backend_servers(rows, backend):
    """The servers of one backend in parse_show_stat()'s rows: {server name: row}, FRONTEND and
    BACKEND rows left out ({} when the backend does not exist)."""
    return {sv: row for (px, sv), row in rows.items() if px == backend and sv not in ("FRONTEND", "BACKEND")}


def all_up(rows, backend):
    """True when the backend has servers and every one's status is exactly "UP" (not "UP 1/3", "DOWN",
    "MAINT", "DRAIN", "NOLB"); False otherwise."""
    servers = backend_servers(rows, backend)
    return bool(servers) and all(row["status"] == "UP" for row in servers.values())


def frontend_failures(rows):
    """Responses the frontends answered with 4xx, 5xx or another non-HTTP class, summed over every
    FRONTEND row except the stats listener's (int)."""
    return sum(row["hrsp_4xx"] + row["hrsp_5xx"] + row["hrsp_other"]
               for (px, sv), row in rows.items() if sv == "FRONTEND" and px != "stats")


def failure_intervals(samples):
    """When the frontends' failure counters grew, from consecutive polls.

    samples: [{"t": epoch s, "rows": parse_show_stat() rows}, ...] in time order (samples with an
    "error" instead of rows are skipped). Returns [(t_before, t_after, n)]: n failures appeared
    between the poll at t_before and the one at t_after. A counter that went down (HAProxy
    restarted) starts again from the new value."""
    found, previous = [], None
    for sample in samples:
        if "rows" not in sample:
            continue
        value = frontend_failures(sample["rows"])
        if previous is not None and value > previous[1]:
            found.append((previous[0], sample["t"], value - previous[1]))
        previous = (sample["t"], value)
    return found


def frontend_answers(rows):
    """Responses the frontends answered with 2xx or 3xx, over every FRONTEND row but the stats
    listener's (int)."""
    return sum(row["hrsp_2xx"] + row["hrsp_3xx"] for (px, sv), row in rows.items() if sv == "FRONTEND" and px != "stats")


def longest_silence(samples, start, end):
    """The longest stretch (s) within [start, end] (epoch s) in which the frontends answered no 2xx/3xx.

    samples: [{"t", "rows"}] in time order (others skipped). A stretch runs from the last poll whose
    count grew (or `start`) to the next poll whose count grew (or the last poll before `end`), so
    its resolution is the polling interval. 0.0 with fewer than two polls in the range."""
    polls = [(s["t"], frontend_answers(s["rows"])) for s in samples if "rows" in s]
    inside = [(t, n) for t, n in polls if start <= t <= end]
    earlier = [(t, n) for t, n in polls if t < start]
    if earlier:
        inside.insert(0, (start, earlier[-1][1]))
    if len(inside) < 2:
        return 0.0
    longest, since, count = 0.0, inside[0][0], inside[0][1]
    for t, n in inside[1:]:
        if n > count:
            longest = max(longest, t - since)
            since, count = t, n
    return round(max(longest, inside[-1][0] - since), 3)


def error_window(wrk_times, haproxy_intervals, slack=POLL_S):
    """The span of the failures: (first, last) in epoch s, or None with no failure at all.

    wrk_times: [epoch s] of failed responses as wrk saw them (exact). haproxy_intervals:
    [(t_before, t_after, n)] from failure_intervals(). An interval counts only when it lies more
    than `slack` seconds (one poll) outside wrk's span (the same failures seen late by a poll must
    not widen it); then its t_before widens the start or its t_after the end."""
    first = min(wrk_times) if wrk_times else None
    last = max(wrk_times) if wrk_times else None
    for before, after, _ in haproxy_intervals:
        if first is None:
            first, last = before, after
            continue
        if after < first - slack:
            first = before
        if before > last + slack:
            last = after
    return None if first is None else (first, last)


def recovered_at(series_list, since):
    """The earliest time at and after which every series shows normal, or None.

    series_list: [[(t epoch s, ok bool or None), ...], ...], each in time order; None samples (unknown)
    are skipped. since: epoch s (the injection); earlier samples are ignored. For each series, the
    moment is its first sample after its last not-ok one (its first sample when none failed); the
    result is the latest of those. None when a series has no sample after `since` or ends not ok."""
    moment = since
    for series in series_list:
        after = [(t, ok) for t, ok in series if t >= since and ok is not None]
        if not after or not after[-1][1]:
            return None
        bad = [t for t, ok in after if not ok]
        first_good = next(t for t, ok in after if t > bad[-1]) if bad else after[0][0]
        moment = max(moment, first_good)
    return moment


def longest_run(series, value):
    """The longest stretch (s) a series of (t, v) samples held `value`, from the first sample with it to
    the first sample after it without it (or its last sample). 0.0 when it never did."""
    longest, start = 0.0, None
    for t, v in series:
        if v == value and start is None:
            start = t
        elif v != value and start is not None:
            longest, start = max(longest, t - start), None
    if start is not None and series:
        longest = max(longest, series[-1][0] - start)
    return longest


def counter_delta(first, last, backend, server, name):
    """A show stat counter's growth between two samples' rows (int; the last value alone if it went down)."""
    a = first.get((backend, server), {}).get(name, 0)
    b = last.get((backend, server), {}).get(name, 0)
    return b - a if b >= a else b


def parse_memcached_stats(text):
    """memcached's `stats` answer ("STAT name value" lines) as {name: str}."""
    return {parts[1]: parts[2] for parts in (line.split() for line in text.splitlines())
            if len(parts) == 3 and parts[0] == "STAT"}


def parse_metrics(text):
    """Prometheus text ("name{labels} value" lines) as {"name{labels}": float}; comments skipped, lines
    whose value is not a number too."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                values[key] = float(value)
            except ValueError:
                continue
    return values


def metrics_delta(before, after, prefixes=("cache_", "leaderboard_recomputes", "board_recomputes")):
    """The growth of the app's counters whose names start with one of prefixes: {"name{labels}": int}
    (keys of `after`; a counter that went down, memcached emptied, counts from 0). None when either
    reading is None."""
    if before is None or after is None:
        return None
    delta = {}
    for key, value in sorted(after.items()):
        if key.startswith(prefixes):
            old = before.get(key, 0.0)
            delta[key] = int(value - old if value >= old else value)
    return delta


def hits_back_at(samples, since, old_pid):
    """When a restarted memcached served its first hit: the first sample at or after `since` (epoch s)
    whose stats come from another process than old_pid (str) and count get_hits > 0; its "t" (epoch s),
    or None. samples: [{"t", "stats": {name: str}} or {"t", "error"}]."""
    for sample in samples:
        stats = sample.get("stats")
        if sample["t"] < since or not stats:
            continue
        if stats.get("pid") != old_pid and int(stats.get("get_hits", "0")) > 0:
            return sample["t"]
    return None


def wsgi_daemons(ps_output):
    """mod_wsgi's daemon processes in `ps -eo pid=,ppid=,user=,args=` output: {pid: (ppid, user)}.

    They are the processes whose argv[0] mod_wsgi set from display-name=%{GROUP} (roles/apache,
    site.conf.j2): "(wsgi:<group>)"; their comm stays apache2."""
    found = {}
    for line in ps_output.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[0].isdigit() and parts[3].startswith("(wsgi:"):
            found[int(parts[0])] = (int(parts[1]), parts[2])
    return found


def parse_inventory_groups(text):
    """An Ansible YAML inventory's groups: {group: [host, ...]} from `<group>: hosts: <host>:` nesting.

    A small reader for inventories laid out like inventories/lab/hosts.yml (block mappings, two-space
    or any consistent indentation, no flow style); comments and `---` are skipped."""
    groups, stack = {}, []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip() or line.strip() == "---" or not line.endswith(":"):
            continue
        indent = len(line) - len(line.lstrip())
        key = line.strip()[:-1]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        names = [name for _, name in stack]
        if len(names) >= 3 and names[-2] == "hosts":
            groups.setdefault(names[-3], []).append(key)
    return groups


def parse_only(text, known):
    """--only's value ("a,b") as [names] in the order given, duplicates dropped.

    known: the drill names. Raises ValueError naming the unknown ones (or an empty list)."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown drill(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if not names:
        raise ValueError(f"--only names no drill; choose from {', '.join(known)}")
    return names


def failed_gets(result):
    """non2xx + socket_errors + timeouts of a result (int)."""
    return result["non2xx"] + result["socket_errors"] + result["timeouts"]


def describe_failures(result):
    """"N failed GETs (non2xx a, socket errors b, timeouts c)" (str)."""
    return (f"{failed_gets(result)} failed GETs (non2xx {result['non2xx']}, socket errors "
            f"{result['socket_errors']}, timeouts {result['timeouts']})")


def format_line(result):
    """One line for a drill's result dict (the keys results.json holds), as printed on stdout."""
    def seconds(value):
        return "-" if value is None else f"{value:.2f} s"
    verdict = "met" if result["met"] else "MISSED"
    return (f"drills: {result['drill']:<18} requests {result['requests']:>6}  non2xx {result['non2xx']:>5}  "
            f"socket errors {result['socket_errors']:>4}  timeouts {result['timeouts']:>4}  "
            f"errors {seconds(result['error_seconds']):>8}  recovery {seconds(result['recovery_seconds']):>8}  "
            f"{verdict}: {result['why']}")


def tls_bind_port(config):
    """The port of the first `bind ... ssl crt ...` line in HAProxy's configuration text (int), or None
    when no frontend terminates TLS."""
    match = re.search(r"^[ \t]*bind[ \t]+\S*:(\d+)[ \t][^\n]*\bssl\b[^\n]*\bcrt\b", config, re.MULTILINE)
    return int(match.group(1)) if match else None


def playbook_recap(output):
    """The PLAY RECAP of ansible-playbook's text output: {host: {"changed": int, "failed": int,
    "unreachable": int}} ({} when the run ended before its recap)."""
    found = re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output,
                       re.MULTILINE)
    return {h: {"changed": int(c), "unreachable": int(u), "failed": int(f)} for h, c, u, f in found}


def self_signed_pem(domain, directory):
    """A self-signed certificate for `domain` and `*.direct.<domain>` (EC P-256, 2 days) with its key, as
    one PEM file in `directory` (HAProxy's `crt` format: certificate then key), made with openssl(1);
    returns its text. Raises DrillError when openssl is missing or fails."""
    if shutil.which("openssl") is None:
        raise DrillError("openssl is not installed on this machine (apt-get install openssl)")
    key, crt = Path(directory) / "drill.key", Path(directory) / "drill.crt"
    try:
        done = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", f"/CN={domain}", "-addext", f"subjectAltName=DNS:{domain},DNS:*.direct.{domain}",
             "-keyout", str(key), "-out", str(crt)], capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise DrillError("openssl did not make the drill's certificate within 60 s") from None
    if done.returncode != 0:
        raise DrillError(f"openssl could not make the drill's certificate: {done.stderr.strip()[-500:]}")
    return crt.read_text() + key.read_text()


# ---- the containers ------------------------------------------------------------------------

def docker(*args, stdin=None, timeout=120, check=True):
    """`docker <args>` as a CompletedProcess (text). Raises DrillError when it fails (check) or runs
    longer than timeout (s)."""
    try:
        done = subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise DrillError(f"docker {shlex.join(args)} did not end within {timeout} s") from None
    if check and done.returncode != 0:
        raise DrillError(f"docker {shlex.join(args)} failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[-500:]}")
    return done


def container_address(name):
    """The container's first IPv4 address on its networks (str), or None; raises DrillError when it does
    not exist."""
    out = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name).stdout.split()
    return out[0] if out else None


def container_running(name):
    """True when the container exists and runs."""
    done = docker("inspect", "-f", "{{.State.Running}}", name, check=False, timeout=30)
    return done.returncode == 0 and done.stdout.strip() == "true"


# A Runtime API command (stdin) on HAProxy's socket (argv[1]); its answer on stdout.
API_CODE = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode(errors="replace"))
"""

# Polls `show stat` every argv[2] s for at most argv[3] s: one JSON line each, {"t", "csv"} or
# {"t", "error"}; ends when its stdin closes (the harness ended or stopped it).
HAPROXY_SAMPLER = r"""
import json, os, select, socket, sys, time
path, interval, end = sys.argv[1], float(sys.argv[2]), time.time() + float(sys.argv[3])
while time.time() < end:
    t = time.time()
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(path)
        s.sendall(b"show stat\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        out = {"t": t, "csv": data.decode(errors="replace")}
    except Exception as error:
        out = {"t": t, "error": repr(error)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    ready, _, _ = select.select([0], [], [], max(0.0, interval - (time.time() - t)))
    if ready and not os.read(0, 4096):
        break
"""

# memcached's stats every argv[2] s for at most argv[3] s on port argv[1] of the address it listens on
# (read from /proc/net/tcp; 127.0.0.1 when it listens on all or on none): {"t", "stats"} or {"t", "error"}.
MEMCACHED_SAMPLER = r"""
import json, os, select, socket, sys, time
port, interval, end = int(sys.argv[1]), float(sys.argv[2]), time.time() + float(sys.argv[3])
KEEP = ("pid", "uptime", "get_hits", "get_misses", "curr_items", "curr_connections")
def address():
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        ip, p = fields[1].split(":")
        if int(p, 16) == port and fields[3] == "0A":
            found = socket.inet_ntoa(bytes.fromhex(ip)[::-1])
            return "127.0.0.1" if found == "0.0.0.0" else found
    return "127.0.0.1"
while time.time() < end:
    t = time.time()
    try:
        s = socket.create_connection((address(), port), timeout=1)
        s.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        stats = {}
        for line in data.decode().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "STAT" and parts[1] in KEEP:
                stats[parts[1]] = parts[2]
        out = {"t": t, "stats": stats} if stats else {"t": t, "error": "no stats"}
    except Exception as error:
        out = {"t": t, "error": repr(error)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    ready, _, _ = select.select([0], [], [], max(0.0, interval - (time.time() - t)))
    if ready and not os.read(0, 4096):
        break
"""

# GET argv[1] with Host argv[2] (2 s timeout); prints the status, or "error ...".
HTTP_PROBE = r"""
import sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Host": sys.argv[2]})
try:
    print(urllib.request.urlopen(request, timeout=2).status)
except urllib.error.HTTPError as error:
    print(error.code)
except Exception as error:
    print("error", repr(error))
"""


class Sampler:
    """A python3 loop inside a container (HAPROXY_SAMPLER, MEMCACHED_SAMPLER), read line by line.

    samples: [dict], each with "t" (epoch s; the container shares this machine's clock) and what
    `convert` made of the line. The loop ends when stop() closes its stdin, or after lifetime_s."""

    def __init__(self, container, code, args, convert=lambda obj: obj, lifetime_s=3600):
        self.samples = []
        self._lock = threading.Lock()
        self._convert = convert
        self.proc = subprocess.Popen(
            ["docker", "exec", "-i", container, "python3", "-u", "-c", code, *map(str, args), str(lifetime_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                sample = self._convert(json.loads(line))
            except (ValueError, KeyError) as error:
                sample = {"t": time.time(), "error": f"unreadable sample: {error}"}
            with self._lock:
                self.samples.append(sample)

    def snapshot(self):
        """A copy of the samples so far (list)."""
        with self._lock:
            return list(self.samples)

    def latest(self, with_key=None):
        """The last sample (holding with_key, when given), or None."""
        with self._lock:
            for sample in reversed(self.samples):
                if with_key is None or with_key in sample:
                    return sample
        return None

    def wait_first(self, with_key, timeout=15):
        """The first sample holding with_key; raises DrillError after timeout (s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sample = self.latest(with_key)
            if sample is not None:
                return sample
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        err = self.proc.stderr.read() if self.proc.poll() is not None else ""
        last = self.latest()
        raise DrillError(f"the sampler in the container gave no usable sample ({(last or {}).get('error', err)})")

    def stop(self):
        """End the loop (closes its stdin) and wait for it; kills docker exec after 5 s."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(timeout=5)


def _haproxy_sample(obj):
    if "csv" in obj:
        return {"t": obj["t"], "rows": parse_show_stat(obj["csv"])}
    return obj


class Load:
    """wrk through the balancer until stop(): `connections` paced connections split over `paths`
    (one wrk per path, scripts/drills.lua), each pausing delay_ms between its requests."""

    def __init__(self, url, host, paths, connections, delay_ms, timeout_s):
        self.paths = list(paths)
        self.procs = []
        env = {**os.environ, "DRILLS_DELAY_MS": str(delay_ms)}
        for path, conns in zip(self.paths, split_connections(connections, len(self.paths))):
            argv = ["wrk", f"-t{min(2, conns)}", f"-c{conns}", "-d3600s", "--timeout", f"{timeout_s}s",
                    "-s", str(LUA_SCRIPT), "-H", f"Host: {host}", url.rstrip("/") + path]
            self.procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                               env=env, start_new_session=True))
        self.started = time.time()

    def check_running(self):
        """Raises DrillError when a wrk already ended (a bad URL, wrk failing)."""
        for path, proc in zip(self.paths, self.procs):
            if proc.poll() is not None:
                out = proc.stdout.read()
                raise DrillError(f"wrk on {path} ended early ({proc.returncode}):\n{out[-1500:]}")

    def stop(self):
        """Stop every wrk (SIGINT: wrk prints its summary, the Lua script its DRILLS line).

        Returns (merged figures as merge_loads() gives them plus "per_path": {path: figures without
        the failure lists}, outputs {path: str}). Raises DrillError when a wrk printed no summary."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        parts, outputs, per_path = [], {}, {}
        for path, proc in zip(self.paths, self.procs):
            try:
                out, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            outputs[path] = out
            try:
                figures = parse_wrk_summary(out)
            except ValueError as error:
                raise DrillError(f"wrk on {path}: {error}") from None
            parts.append(figures)
            lua = figures["lua"] or {}
            per_path[path] = {**{k: v for k, v in figures.items() if k != "lua"},
                              "statuses": lua.get("statuses"), "retry_after_503": lua.get("retry_after_503"),
                              "stale": lua.get("stale")}
        merged = merge_loads(parts)
        merged["per_path"] = per_path
        return merged, outputs


class SlowUploads:
    """`clients` slow clients through the balancer until stop(): each sends a POST to `path` announcing
    a Content-Length of content_length bytes, then one byte every interval_s (4 bytes/s), and when
    its connection answers or closes, opens a new one. Figures: stats()."""

    def __init__(self, url, host, path, clients, interval_s=0.25, content_length=10_000_000):
        parsed = urllib.parse.urlsplit(url)
        self.address = (parsed.hostname, parsed.port or 80)
        self.head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: drills-slow-upload\r\n"
                     f"Content-Type: application/octet-stream\r\nContent-Length: {content_length}\r\n\r\n").encode()
        self.interval_s = interval_s
        self.clients = clients
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.connections = 0
        self.connect_errors = 0
        self.outcomes = {}
        self.bytes_sent = 0
        self.longest_s = 0.0
        self.first_answer_s = None
        self.started = time.time()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _record(self, outcome, held):
        with self._lock:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            self.longest_s = max(self.longest_s, held)
            if outcome != "open at the end" and self.first_answer_s is None:
                self.first_answer_s = time.time() - self.started

    def _client(self):
        while not self._stop.is_set():
            try:
                conn = socket.create_connection(self.address, timeout=5)
            except OSError:
                with self._lock:
                    self.connect_errors += 1
                self._stop.wait(0.5)
                continue
            with self._lock:
                self.connections += 1
            opened, outcome = time.time(), "open at the end"
            try:
                conn.sendall(self.head)
                while not self._stop.is_set():
                    ready, _, _ = select.select([conn], [], [], self.interval_s)
                    if ready:
                        data = conn.recv(4096)
                        match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
                        outcome = match.group(1).decode() if match else "closed without an answer"
                        break
                    conn.sendall(b"x")
                    with self._lock:
                        self.bytes_sent += 1
            except OSError as error:
                outcome = f"socket error ({type(error).__name__})"
            finally:
                conn.close()
                self._record(outcome, time.time() - opened)

    def stop(self):
        """Close every slow connection; returns {"clients", "connections", "connect_errors", "outcomes"
        {status or what happened: n}, "bytes_sent", "longest_connection_s", "first_answer_s"}."""
        self._stop.set()
        for thread in self.threads:
            thread.join(timeout=10)
        return {"clients": self.clients, "connections": self.connections, "connect_errors": self.connect_errors,
                "outcomes": dict(self.outcomes), "bytes_sent": self.bytes_sent,
                "longest_connection_s": round(self.longest_s, 2), "first_answer_s": (
                    round(self.first_answer_s, 2) if self.first_answer_s is not None else None)}


@contextlib.contextmanager
def deferred_interrupts():
    """Hold SIGINT and SIGTERM back while the block runs (a restore must not be cut half-way); raise
    KeyboardInterrupt after it when one arrived. Main thread only."""
    caught = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            raise KeyboardInterrupt


class Site:
    """The site under drill: its containers, the balancer's URL, HAProxy's servers.

    settings: the parsed options (argparse.Namespace). Raises DrillError when wrk or a container is
    missing, or when a web container is not a server of the checked backend."""

    def __init__(self, settings):
        self.s = settings
        if shutil.which("wrk") is None:
            raise DrillError("wrk is not installed: `make tools` (or apt-get install wrk)")
        for name in [settings.lb, *settings.web, settings.db, settings.cache]:
            if not container_running(name):
                raise DrillError(f"container {name} does not run: start the site first (make lab), or name "
                                 "the containers (--lb, --web, --db, --cache)")
        self.url = settings.url or self._default_url()
        # The drills read the site through the balancer as its clients do; over HTTPS (deploy-rollback-tls)
        # with whatever certificate the balancer has (a lab's is self-signed): not verified.
        self.tls_context = ssl.create_default_context()
        self.tls_context.check_hostname = False
        self.tls_context.verify_mode = ssl.CERT_NONE
        self.backend = settings.backend
        self.failopen = settings.backend + "_failopen"
        rows = self.show_stat()
        servers = backend_servers(rows, self.backend)
        if not servers:
            raise DrillError(f"HAProxy in {settings.lb} has no backend {self.backend!r} with servers")
        self.server_of, self.server_addr = {}, {}
        for web in settings.web:
            address = container_address(web)
            names = [sv for sv, row in servers.items() if row["addr"].rsplit(":", 1)[0] == address]
            if not names:
                known = ", ".join(f"{sv} {row['addr']}" for sv, row in servers.items())
                raise DrillError(f"web container {web} ({address}) is no server of backend {self.backend} ({known})")
            self.server_of[web] = names[0]
            self.server_addr[web] = servers[names[0]]["addr"]
        self.target = settings.web[0]

    def _default_url(self):
        published = docker("port", self.s.lb, "80/tcp", check=False).stdout.split()
        if published:
            host, port = published[0].rsplit(":", 1)
            host = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]") else host.strip("[]")
            return f"http://{host}:{port}"
        address = container_address(self.s.lb)
        if not address:
            raise DrillError(f"{self.s.lb} publishes no port 80 and has no address: pass --url")
        return f"http://{address}"

    def api(self, command):
        """A Runtime API command (several separated by ';') on the balancer; its answer (str)."""
        return docker("exec", "-i", self.s.lb, "python3", "-c", API_CODE, self.s.socket, stdin=command + "\n",
                      timeout=30).stdout

    def show_stat(self):
        """`show stat` now, parsed (parse_show_stat)."""
        return parse_show_stat(self.api("show stat"))

    def sampler(self):
        """A Sampler of `show stat` every POLL_S s: samples {"t", "rows"} or {"t", "error"}."""
        return Sampler(self.s.lb, HAPROXY_SAMPLER, [self.s.socket, POLL_S], convert=_haproxy_sample)

    def run(self, container, *argv, stdin=None, timeout=120, check=True):
        """`argv` in a container (docker exec); CompletedProcess. Raises DrillError on failure (check)."""
        return docker("exec", *(["-i"] if stdin is not None else []), container, *argv, stdin=stdin,
                      timeout=timeout, check=check)

    def get(self, path, timeout=10):
        """GET through the balancer from this machine; the status (int) or None when nothing answered."""
        request = urllib.request.Request(self.url.rstrip("/") + path, headers={"Host": self.s.host})
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.tls_context) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except (OSError, ValueError):
            return None

    def playbook(self, name, *args, timeout=1800):
        """ansible-playbook playbooks/<name> against the site's inventory (--inventory), from the bundle's
        folder (its ansible.cfg, unless ANSIBLE_CONFIG names another), without colours. Returns (return
        code, stdout + stderr); rc 124 and the output so far when it runs longer than timeout (s).

        It runs in a session of its own, so a Ctrl-C on the terminal does not reach it: a restore or
        teardown (under deferred_interrupts) runs to its end. A Ctrl-C or a timeout that interrupts
        this call sends SIGINT to its whole process group (Ansible's workers included) and waits for
        it to end, so no host is left half-way by a killed worker."""
        program = shutil.which("ansible-playbook") or str(Path(sys.executable).with_name("ansible-playbook"))
        argv = [program, "-i", self.s.inventory, str(ROOT / "playbooks" / name), *args]
        env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
        try:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True)
        except OSError as error:
            raise DrillError(f"ansible-playbook cannot run ({program}): {error}") from None
        try:
            out, _ = proc.communicate(timeout=timeout)
            return proc.returncode, out
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
            out, _ = proc.communicate()
            return 124, (out or "") + f"\n(interrupted after {timeout} s)"
        except BaseException:
            os.killpg(proc.pid, signal.SIGINT)
            proc.communicate()
            raise

    def redirect_of(self, url, timeout=10):
        """(status, Location) of a GET of url with the site's Host header, redirects not followed;
        (None, None) when nothing answered."""
        class _NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None
        opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=self.tls_context))
        try:
            with opener.open(urllib.request.Request(url, headers={"Host": self.s.host}), timeout=timeout) as response:
                return response.status, response.headers.get("Location")
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Location")
        except (OSError, ValueError):
            return None, None

    def apache_state(self, web):
        """(main PID str, answering bool) of the web container's Apache: answering when apache2 is active
        and GET /healthz on the host's own address (the server's addr in HAProxy) answers 200 within
        2 s. ("", False) when the container cannot be reached."""
        script = ('pid=$(systemctl show -p MainPID --value apache2); '
                  'systemctl is-active --quiet apache2 || { echo "$pid inactive"; exit 0; }; '
                  'echo "$pid $(python3 -c "$1" "$2" "$3")"')
        done = docker("exec", web, "sh", "-c", script, "sh", HTTP_PROBE, f"http://{self.server_addr[web]}/healthz",
                      self.s.host, check=False, timeout=15)
        parts = done.stdout.split()
        if done.returncode != 0 or len(parts) < 2:
            return "", False
        return parts[0], parts[1] == "200"

    def apache_answers(self, web):
        """True when the web container's Apache is answering (apache_state)."""
        return self.apache_state(web)[1]

    def app_metrics(self):
        """The app's site-wide counters (GET /metrics through the balancer) as {"name{labels}": float},
        or None when the page does not answer 200 (another app, memcached empty)."""
        request = urllib.request.Request(self.url.rstrip("/") + "/metrics", headers={"Host": self.s.host})
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.tls_context) as response:
                return parse_metrics(response.read().decode())
        except (OSError, ValueError):
            return None

    def normal(self):
        """(bool, why): every server of the checked backend UP and the page answering 200."""
        try:
            rows = self.show_stat()
        except (DrillError, ValueError) as error:
            return False, f"show stat failed: {error}"
        if not all_up(rows, self.backend):
            states = {sv: row["status"] for sv, row in backend_servers(rows, self.backend).items()}
            return False, f"servers of {self.backend}: {states}"
        status = self.get(self.s.path)
        return status == 200, f"GET {self.s.path} answered {status}"

    def wait_normal(self, timeout=READY_LIMIT_S):
        """Wait until normal() holds; returns (bool, why) of the last look."""
        deadline = time.monotonic() + timeout
        while True:
            ok, why = self.normal()
            if ok or time.monotonic() > deadline:
                return ok, why
            time.sleep(1)


# ---- the drills ------------------------------------------------------------------------------

class Context:
    """What one drill run shares between the runner and the drill: the site, the settings, the
    HAProxy sampler, the moments (epoch s) of the injection and of the restore, the probe's
    samples [(t, ok)] and the drill's details (dict, into results.json)."""

    def __init__(self, site, settings, haproxy):
        self.site, self.s, self.haproxy = site, settings, haproxy
        self.t_inject = None
        self.t_restore = None
        self.probes = []
        self.details = {}
        self.extra_samplers = []
        self.run_dir = None

    def wait(self, seconds):
        """Sleep `seconds` (s) in short steps (a KeyboardInterrupt lands quickly)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))


class Drill:
    """One drill: its fault, restore, probe and target. Subclasses override what differs.

    setup() and teardown(): before the load starts and after it stops, not measured (most drills need
    none); paths(): the pages wrk loads; wrk_timeout_s(): wrk's --timeout (s); prepare(): readings before the
    fault (load on); inject(): the fault; hold(): returns when the fault is to be removed; restore():
    removes it, idempotent, always called (also after a failure or Ctrl-C); probe(): the faulted
    service active/answering (bool, polled every POLL_S s from the injection on, in a thread);
    finish(): readings after the recovery (load still on); evaluate(result): [reasons missed]."""

    name = ""
    target = ""
    sends_own_traffic = False
    app_metrics = False

    def __init__(self):
        self.setup_details = {}

    def setup(self, site):
        """Before the load starts (not measured): puts the site in the state the drill needs; may point
        site.url elsewhere (run_drill puts it back). Raises DrillError when it cannot."""

    def teardown(self, site):
        """After the load stopped, always (also after a failure or Ctrl-C): undoes setup(); idempotent."""

    def paths(self, s):
        return [s.path]

    def wrk_timeout_s(self, s):
        return 30

    def prepare(self, ctx):
        pass

    def inject(self, ctx):
        raise NotImplementedError

    def hold(self, ctx):
        pass

    def restore(self, ctx):
        pass

    def probe(self, ctx):
        return True

    def finish(self, ctx):
        pass

    def evaluate(self, result):
        return [describe_failures(result)] if failed_gets(result) else []


class ApacheKill(Drill):
    """apache-kill: `systemctl kill --signal=KILL apache2` on the first web host (every process of the
    unit: Apache's parent, its prefork children, the mod_wsgi daemons), under load.

    Restore: none when systemd starts Apache again by itself (the unit's Restart=); if it is not
    active with a new main PID within DRILLS_RESTART_GRACE_SECONDS (5 s), `systemctl start apache2`
    (details: came_back_by_itself, back_after_s).
    Probe: apache2 active with another main PID than before the kill, and GET /healthz on the host's
    own address answering 200.
    Recovery: every server of the checked backend UP and the probe passing, from the kill on.
    Target: 0 failed GETs."""

    name = "apache-kill"
    target = "0 failed GETs"

    def prepare(self, ctx):
        ctx.details["host"] = ctx.site.target
        ctx.details["main_pid_before"] = self._main_pid(ctx)

    def _main_pid(self, ctx):
        done = ctx.site.run(ctx.site.target, "systemctl", "show", "apache2", "-p", "MainPID", "--value", check=False)
        return done.stdout.strip()

    def inject(self, ctx):
        ctx.site.run(ctx.site.target, "systemctl", "kill", "--signal=KILL", "apache2")

    def hold(self, ctx):
        deadline = ctx.t_inject + ctx.s.restart_grace
        while time.time() < deadline:
            active = ctx.site.run(ctx.site.target, "systemctl", "is-active", "apache2", check=False).stdout.strip()
            pid = self._main_pid(ctx)
            if active == "active" and pid not in ("", "0", ctx.details["main_pid_before"]):
                ctx.details["came_back_by_itself"] = True
                ctx.details["back_after_s"] = round(time.time() - ctx.t_inject, 2)
                return
            time.sleep(0.1)
        ctx.details["came_back_by_itself"] = False

    def restore(self, ctx):
        active = ctx.site.run(ctx.site.target, "systemctl", "is-active", "apache2", check=False).stdout.strip()
        if active != "active":
            ctx.site.run(ctx.site.target, "systemctl", "start", "apache2", timeout=120)
            ctx.details["started_by_harness"] = True
            ctx.details["back_after_s"] = round(time.time() - ctx.t_inject, 2)

    def probe(self, ctx):
        pid, answering = ctx.site.apache_state(ctx.site.target)
        return answering and pid not in ("", "0", ctx.details["main_pid_before"])

    def evaluate(self, result):
        missed = super().evaluate(result)
        if not result["details"].get("came_back_by_itself", True):
            missed.append("Apache did not come back by itself within the grace (the harness started it)")
        return missed


class LogRotation(Drill):
    """log-rotation: `logrotate -v -f /etc/logrotate.d/apache2` on the first web host, under load.

    Readings: the mod_wsgi daemon processes (argv[0] "(wsgi:<group>)", from display-name=%{GROUP} in
    roles/apache/templates/site.conf.j2; `ps` in the container) and Apache's main PID, before the
    rotation and after the recovery; logrotate's exit status and the logs it rotated.
    Restore: nothing to undo (the rotation is what is drilled). Probe: apache2 active and /healthz
    answering 200 on the host. Recovery: every server UP and the probe passing, from the rotation on.
    Target: 0 failed GETs and the same set of WSGI daemon PIDs after as before."""

    name = "log-rotation"
    target = "0 failed GETs and 0 changes of the WSGI daemon PIDs"

    def _daemons(self, ctx):
        out = ctx.site.run(ctx.site.target, "ps", "-eo", "pid=,ppid=,user=,args=").stdout
        return wsgi_daemons(out)

    def _main_pid(self, ctx):
        return ctx.site.run(ctx.site.target, "systemctl", "show", "apache2", "-p", "MainPID", "--value",
                            check=False).stdout.strip()

    def prepare(self, ctx):
        ctx.details["host"] = ctx.site.target
        ctx.details["wsgi_pids_before"] = sorted(self._daemons(ctx))
        ctx.details["apache_main_pid_before"] = self._main_pid(ctx)

    def inject(self, ctx):
        done = ctx.site.run(ctx.site.target, "logrotate", "-v", "-f", "/etc/logrotate.d/apache2", check=False)
        out = done.stdout + done.stderr
        ctx.details["logrotate_exit"] = done.returncode
        ctx.details["logs_rotated"] = out.count("log needs rotating")
        ctx.details["logrotate_actions"] = [line.strip() for line in out.splitlines()
                                            if re.match(r"\s*(copying|truncating|running|error)", line)][:40]

    def probe(self, ctx):
        return ctx.site.apache_answers(ctx.site.target)

    def finish(self, ctx):
        after = sorted(self._daemons(ctx))
        before = ctx.details["wsgi_pids_before"]
        ctx.details["wsgi_pids_after"] = after
        ctx.details["wsgi_pid_changes"] = len(set(before) ^ set(after))
        ctx.details["apache_main_pid_after"] = self._main_pid(ctx)

    def evaluate(self, result):
        missed = super().evaluate(result)
        d = result["details"]
        if d.get("logrotate_exit") != 0:
            missed.append(f"logrotate exited {d.get('logrotate_exit')}")
        if not d.get("wsgi_pids_before"):
            missed.append("no WSGI daemon process found before the rotation")
        elif d.get("wsgi_pid_changes"):
            missed.append(f"WSGI daemon PIDs changed: {d['wsgi_pids_before']} -> {d.get('wsgi_pids_after')}")
        return missed


class HealthzFailing(Drill):
    """healthz-failing: every web host's health check fails while the hosts still serve pages.

    Fault: through the Runtime API, `set server <backend>/<server> check-port <port>` for every server
    of the checked backend: the check (GET /healthz, Host: the site) goes to the host's nginx static
    port (the port of the `static` server with the same address; 404 for /healthz: a real layer-7
    failure, L7STS) or, on a host without one, to port 9 (refused: L4CON). It is what "the checks are
    wrong" looks like to HAProxy (roles/haproxy README, "No death spiral"), and it touches no host, no
    process and no file: the app itself offers no switch to fail /healthz alone, and Apache would
    need a graceful restart (which restarts the WSGI daemons) to change what /healthz answers.
    DRILLS_HEALTHZ_CHECK_PORT names another port.
    Hold: until every server is DOWN (at most 30 s), then DRILLS_FAILOPEN_SECONDS (10 s) of fail-open.
    Restore: each server's check port as `show servers state` had it before (0: the server's port).
    Probe: every check port back as before. Recovery: every server UP again and the probe passing,
    from the injection on (so it includes the hold).
    Target: 0 failed GETs (the fail-open backend takes the traffic), and every server seen DOWN."""

    name = "healthz-failing"
    target = "0 failed GETs while every health check fails (fail-open backend serves)"

    def _check_ports(self, ctx):
        out = ctx.site.api(f"show servers state {ctx.site.backend}")
        header, ports = None, {}
        for line in out.splitlines():
            if line.startswith("# be_id"):
                header = line[2:].split()
            elif header and line and line[0].isdigit():
                fields = dict(zip(header, line.split()))
                ports[fields["srv_name"]] = fields.get("srv_check_port", "0")
        return ports

    def prepare(self, ctx):
        ctx.details["check_ports_before"] = self._check_ports(ctx)
        rows = ctx.haproxy.latest("rows")["rows"]
        servers = backend_servers(rows, ctx.site.backend)
        forced = str(ctx.s.healthz_port) if ctx.s.healthz_port else None
        fault = {}
        for name, row in servers.items():
            address = row["addr"].rsplit(":", 1)[0]
            static = [r["addr"].rsplit(":", 1)[1] for (px, sv), r in rows.items()
                      if px == "static" and sv not in ("FRONTEND", "BACKEND") and r["addr"].rsplit(":", 1)[0] == address]
            fault[name] = forced or (static[0] if static else "9")
        ctx.details["check_ports_during"] = fault
        ctx.details["failopen_before"] = rows.get((ctx.site.failopen, "BACKEND"), {}).get("stot", 0)

    def inject(self, ctx):
        commands = [f"set server {ctx.site.backend}/{sv} check-port {port}"
                    for sv, port in ctx.details["check_ports_during"].items()]
        self.injected = True
        answer = ctx.site.api("; ".join(commands)).strip()
        if answer:
            raise DrillError(f"HAProxy refused the check ports: {answer}")

    def hold(self, ctx):
        deadline = time.time() + 30
        while time.time() < deadline:
            sample = ctx.haproxy.latest("rows")
            servers = backend_servers(sample["rows"], ctx.site.backend)
            if servers and all(row["status"].startswith("DOWN") for row in servers.values()):
                ctx.details["all_down_after_s"] = round(sample["t"] - ctx.t_inject, 2)
                ctx.details["check_status_seen"] = {sv: f"{row['check_status']} {row['check_code']}".strip()
                                                    for sv, row in servers.items()}
                ctx.wait(ctx.s.failopen_seconds)
                return
            time.sleep(POLL_S)
        ctx.details["all_down_after_s"] = None

    def restore(self, ctx):
        if not getattr(self, "injected", False):
            return
        commands = [f"set server {ctx.site.backend}/{sv} check-port {port}"
                    for sv, port in ctx.details["check_ports_before"].items()]
        answer = ctx.site.api("; ".join(commands)).strip()
        if answer:
            raise DrillError(f"HAProxy refused to restore the check ports: {answer}")
        self.injected = False

    def probe(self, ctx):
        try:
            return self._check_ports(ctx) == ctx.details["check_ports_before"]
        except DrillError:
            return False

    def finish(self, ctx):
        rows = ctx.haproxy.latest("rows")["rows"]
        ctx.details["failopen_requests"] = (rows.get((ctx.site.failopen, "BACKEND"), {}).get("stot", 0)
                                            - ctx.details["failopen_before"])

    def evaluate(self, result):
        missed = super().evaluate(result)
        if result["details"].get("all_down_after_s") is None:
            missed.append("the health checks never failed on every server (the fault did not take)")
        return missed


class WebHostStopped(Drill):
    """web-host-stopped: the first web host's container stopped (`docker stop`: systemd's halt signal,
    SIGRTMIN+3, then SIGKILL after 10 s; the services stop, the address goes away), as a machine
    that is shut down.

    Hold: DRILLS_STOP_SECONDS (15 s) from the stop. Restore: `docker stop` once more (returns at once
    when it is stopped; waits when an interrupted stop is still under way), `docker start`, then,
    `mount -o remount,rw /proc/sys` and `systemctl restart systemd-sysctl` (Docker mounts /proc/sys
    read-only on every start; the lab's prepare made it writable), then, should Docker have given it
    another address, `set server <backend>/<server> addr <new>` in every backend holding it (details:
    address_changed). Probe: the container runs, apache2 is active and
    /healthz answers 200 on its address. Recovery: the host's server UP again in the checked backend
    (every server UP) and the probe passing, from the stop on (so it includes the hold).
    Target: 0 failed GETs, and the host back on its address (a container that came back on another
    one leaves MariaDB's accounts naming the old address: the later drills would fail on it); details:
    the requests each server took (the other host carries the load)."""

    name = "web-host-stopped"
    target = "0 failed GETs while one web host is down (the other carries the load)"

    def prepare(self, ctx):
        ctx.details["host"] = ctx.site.target
        ctx.details["address_before"] = container_address(ctx.site.target)
        self.stopped = False

    def inject(self, ctx):
        self.stopped = True
        started = time.time()
        docker("stop", "-t", "10", ctx.site.target, timeout=60)
        ctx.details["docker_stop_s"] = round(time.time() - started, 2)

    def hold(self, ctx):
        ctx.wait(max(0.0, ctx.t_inject + ctx.s.stop_seconds - time.time()))

    def restore(self, ctx):
        if not getattr(self, "stopped", False):
            return
        # A stop cut short (Ctrl-C during `docker stop`) goes on in the engine: let it end, then start.
        docker("stop", "-t", "10", ctx.site.target, timeout=60, check=False)
        docker("start", ctx.site.target, timeout=120)
        self.stopped = False
        # Docker mounts /proc/sys read-only again on every start: make it writable as the lab's and the
        # scenarios' prepare (molecule/resources/prepare.yml) did, and apply the host's sysctl.d as a
        # booting machine does (the common role's kernel settings), or the next converge fails on it.
        ctx.site.run(ctx.site.target, "sh", "-c", "mount -o remount,rw /proc/sys && systemctl restart systemd-sysctl",
                     timeout=60, check=False)
        address = container_address(ctx.site.target)
        ctx.details["address_after"] = address
        if address and address != ctx.details["address_before"]:
            server = ctx.site.server_of[ctx.site.target]
            rows = ctx.site.show_stat()
            commands = [f"set server {px}/{sv} addr {address}" for (px, sv), row in rows.items()
                        if sv == server and row["addr"].rsplit(":", 1)[0] == ctx.details["address_before"]]
            ctx.site.api("; ".join(commands))
            ctx.site.server_addr[ctx.site.target] = f"{address}:{ctx.site.server_addr[ctx.site.target].rsplit(':', 1)[1]}"
            ctx.details["address_changed"] = True

    def probe(self, ctx):
        return container_running(ctx.site.target) and ctx.site.apache_answers(ctx.site.target)

    def evaluate(self, result):
        missed = super().evaluate(result)
        d = result["details"]
        if d.get("address_changed"):
            # A machine keeps its address across a restart; a container may not (another container took
            # it meanwhile). MariaDB's accounts name the old one: the drills after this one would fail.
            missed.append(f"the host came back with another address ({d.get('address_before')} -> "
                          f"{d.get('address_after')}): MariaDB's accounts and the site plan know the old one; give "
                          "the site's containers a network of their own, then converge the site")
        return missed


class MemcachedRestart(Drill):
    """memcached-restart: `systemctl restart memcached` on the cache host, under load (the cache is
    emptied: the pages are computed again, once each, then hit).

    Readings: memcached's `stats` every 0.25 s (a python3 loop in the cache container on the address
    memcached listens on: the containers have no nc): pid, uptime, get_hits, get_misses.
    hits_back_s: from the restart command until the first poll of the new process (another pid) with
    get_hits > 0. Restore: nothing (memcached runs again when the restart returns; if it is not active,
    `systemctl start memcached`). Probe: memcached active and the last poll (at most 1 s old) answered
    by another process than before the restart. Recovery: every server UP and the probe passing, from
    the restart on.
    Target: 0 failed GETs and hits back within 5 s."""

    name = "memcached-restart"
    target = "0 failed GETs, cache hits back within 5 s"
    HITS_BACK_S = 5.0

    def prepare(self, ctx):
        self.stats = Sampler(ctx.s.cache, MEMCACHED_SAMPLER, [11211, POLL_S])
        ctx.extra_samplers.append(self.stats)
        first = self.stats.wait_first("stats")
        ctx.details["pid_before"] = first["stats"].get("pid")

    def inject(self, ctx):
        started = time.time()
        ctx.site.run(ctx.s.cache, "systemctl", "restart", "memcached", timeout=120)
        ctx.details["restart_command_s"] = round(time.time() - started, 2)

    def restore(self, ctx):
        active = ctx.site.run(ctx.s.cache, "systemctl", "is-active", "memcached", check=False).stdout.strip()
        if active != "active":
            ctx.site.run(ctx.s.cache, "systemctl", "start", "memcached", timeout=120)
            ctx.details["started_by_harness"] = True

    def probe(self, ctx):
        started = time.time()
        active = ctx.site.run(ctx.s.cache, "systemctl", "is-active", "memcached", check=False).stdout.strip()
        latest = self.stats.latest()
        return (active == "active" and latest is not None and "stats" in latest and latest["t"] >= started - 1
                and latest["stats"].get("pid") != ctx.details["pid_before"])

    def finish(self, ctx):
        samples = self.stats.snapshot()
        back = hits_back_at(samples, ctx.t_inject, ctx.details["pid_before"])
        ctx.details["hits_back_s"] = round(back - ctx.t_inject, 2) if back else None
        last = next((s["stats"] for s in reversed(samples) if "stats" in s), {})
        ctx.details["pid_after"] = last.get("pid")
        ctx.details["stats_after"] = {k: last.get(k) for k in ("get_hits", "get_misses", "curr_items", "uptime")}
        ctx.details["stats_unanswered_s"] = round(longest_run(
            [(s["t"], "stats" in s) for s in samples if s["t"] >= ctx.t_inject], False), 2)

    def evaluate(self, result):
        missed = super().evaluate(result)
        back = result["details"].get("hits_back_s")
        if back is None:
            missed.append("no cache hit from a new memcached process seen")
        elif back > self.HITS_BACK_S:
            missed.append(f"hits back after {back} s (> {self.HITS_BACK_S:g} s)")
        return missed


def db_state(ctx):
    """(main PID str, answering bool) of MariaDB in the db container: answering when the unit is active
    and `SELECT 1` answers."""
    script = ("pid=$(systemctl show -p MainPID --value mariadb); systemctl is-active --quiet mariadb "
              "|| { echo \"$pid inactive\"; exit 0; }; echo \"$pid $(mariadb -N -B -e 'SELECT 1' 2>/dev/null)\"")
    done = ctx.site.run(ctx.s.db, "sh", "-c", script, check=False, timeout=15)
    parts = done.stdout.split()
    if done.returncode != 0 or len(parts) < 2:
        return "", False
    return parts[0], parts[1] == "1"


class DatabaseRestart(Drill):
    """database-restart: `systemctl restart mariadb` on the db host, under load on DRILLS_DB_PATHS (`/`, a
    cached page, and `/leaderboard/`).

    Restore: nothing (the restart returns when MariaDB runs again; if it is not active,
    `systemctl start mariadb`). Probe: mariadb active with another main PID than before and `SELECT 1`
    answering. Recovery: every server UP and the probe passing, from the restart on. Details:
    app_metrics, the app's site-wide cache counters over the drill (hits, misses, stale pages,
    recomputations: whether the pages needed the database while it was away).
    Target: errors last at most 5 s (error_seconds), and every failed response is a 503 with a
    Retry-After header (a 200 with X-Cache: stale is no failure; reported as stale): no 500, 502,
    504, other status, socket error or timeout."""

    name = "database-restart"
    target = "errors <= 5 s; failures only 503 + Retry-After (or stale 200s), never 500/502/504"
    ERROR_S = 5.0

    app_metrics = True

    def paths(self, s):
        return s.db_paths

    def prepare(self, ctx):
        ctx.details["main_pid_before"] = db_state(ctx)[0]

    def inject(self, ctx):
        started = time.time()
        ctx.site.run(ctx.s.db, "systemctl", "restart", "mariadb", timeout=180)
        ctx.details["restart_command_s"] = round(time.time() - started, 2)

    def restore(self, ctx):
        active = ctx.site.run(ctx.s.db, "systemctl", "is-active", "mariadb", check=False).stdout.strip()
        if active != "active":
            ctx.site.run(ctx.s.db, "systemctl", "start", "mariadb", timeout=180)
            ctx.details["started_by_harness"] = True

    def probe(self, ctx):
        pid, answering = db_state(ctx)
        return answering and pid not in ("", "0", ctx.details["main_pid_before"])

    def evaluate(self, result):
        missed = []
        statuses = result["statuses"] or {}
        other = result["non2xx"] - result["retry_after_503"]
        if result["error_seconds"] is not None and result["error_seconds"] > self.ERROR_S:
            missed.append(f"errors lasted {result['error_seconds']:.2f} s (> {self.ERROR_S:g} s)")
        if other > 0:
            bad = {k: v for k, v in statuses.items() if not k.startswith(("2", "3"))}
            missed.append(f"{other} failed responses other than 503 + Retry-After (statuses {bad})")
        if result["socket_errors"] or result["timeouts"]:
            missed.append(f"socket errors {result['socket_errors']}, timeouts {result['timeouts']}")
        return missed


# Django's shell on a web host, for slow-database: imports the app, prints "ready", waits for a line
# on stdin, then marks every hot cache entry stale (what saving a score does after its commit).
MARK_STALE_CODE = """
import sys
from scoreboard.softcache import REGISTRY
print("ready", flush=True)
sys.stdin.readline()
for entry in REGISTRY.values():
    entry.mark_stale()
print("marked", ",".join(sorted(REGISTRY)), flush=True)
"""


class SlowDatabase(Drill):
    """slow-database: the app's tables locked for writing (every `games_*` table of the app under app/:
    games_league, games_team, games_player, games_score), so every query on them waits: one mariadb
    client session in the db container runs `LOCK TABLES <each> WRITE`, then `SELECT SLEEP(...) AS
    drills_lock` (DRILLS_LOCK_SECONDS + 60 s: it ends by itself should the harness die). Load on
    DRILLS_DB_PATHS (`/` and `/leaderboard/`).

    The pages are cached: they only query once their entry is stale. So that the drill does not
    depend on where the entries' freshness stands, right after the lock is taken every hot entry is
    marked stale, as saving a score does after its commit (`mark_stale()` of each entry in
    scoreboard.softcache.REGISTRY, from Django's shell of the current release on the first web host,
    started before the injection; details: entries_marked_stale; DRILLS_MARK_STALE=0 leaves it out,
    and for an app without those entries it is skipped). One request per entry then recomputes and
    waits on the lock, holding a WSGI slot, while the others get the stale page; when the app's
    recompute lock (30 s) expires, the next request takes over and waits too.

    Injection: when the session is seen sleeping (it holds the locks). Hold: DRILLS_LOCK_SECONDS (60 s).
    Restore: `KILL` of that session (the locks go with it), then the client ends. Probe: no drills_lock
    session and `SELECT 1` answering. Recovery: every server UP and the probe passing, from the lock on.
    Readings: the checked backend's wretr and wredis over the drill, the longest response (wrk's max
    latency, and HAProxy's ttime_max of the backend after `clear counters`), HAProxy's `timeout
    server` (from haproxy.cfg), the 504s, wrk's timeouts (its --timeout is the lock plus 200 s, so a
    slow response is measured, not cut), app_metrics as in database-restart.
    Target: no GET replayed (wretr and wredis unchanged) and every request ends before `timeout
    server` (longest response below it, no 504, no wrk timeout)."""

    name = "slow-database"
    target = "no slow GET replayed (wretr, wredis unchanged); every request ends before timeout server"
    app_metrics = True
    session = None  # the lock session (Popen)
    marker = None   # Django's shell that marks the entries stale (Popen)

    def paths(self, s):
        return s.db_paths

    def wrk_timeout_s(self, s):
        return s.lock_seconds + 200

    def prepare(self, ctx):
        self.session = self.marker = None
        out = ctx.site.run(ctx.s.db, "mariadb", "-N", "-B", "-e",
                           "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
                           "WHERE TABLE_NAME LIKE 'games\\_%' ORDER BY 1, 2").stdout.split("\n")
        tables = [line.split("\t") for line in out if "\t" in line]
        schemas = sorted({schema for schema, _ in tables})
        if len(schemas) != 1:
            raise DrillError(f"expected the app's games_* tables in one database, found {tables or 'none'}")
        ctx.details["database"] = schemas[0]
        ctx.details["tables"] = [name for _, name in tables]
        grep = docker("exec", ctx.s.lb, "sh", "-c",
                      r"grep -hE '^\s*timeout\s+server\s' /etc/haproxy/haproxy.cfg | head -1", check=False)
        try:
            ctx.details["timeout_server_s"] = parse_duration_ms(grep.stdout.split()[2]) / 1000
        except (IndexError, ValueError):
            ctx.details["timeout_server_s"] = 60.0
            ctx.details["timeout_server_note"] = "not found in haproxy.cfg; the haproxy role's default (60 s) assumed"
        self.rows_before = ctx.haproxy.latest("rows")["rows"]
        ctx.details["entries_marked_stale"] = None
        if os.environ.get("DRILLS_MARK_STALE", "1") != "0":
            self._start_marker(ctx)

    def _start_marker(self, ctx):
        found = ctx.site.run(ctx.site.target, "sh", "-c", "ls -d /srv/*/current/bin/manage 2>/dev/null | head -1",
                             check=False).stdout.strip()
        if not found:
            ctx.details["mark_stale_note"] = "no /srv/*/current/bin/manage on the web host"
            return
        user = found.split("/")[2]
        self.marker = subprocess.Popen(
            ["docker", "exec", "-i", "-u", user, "-e", "PYTHONDONTWRITEBYTECODE=1", ctx.site.target, found, "shell",
             "-c", MARK_STALE_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)
        self.marker_lines = queue.Queue()
        threading.Thread(target=lambda out: [self.marker_lines.put(x.strip()) for x in out], args=(self.marker.stdout,),
                         daemon=True).start()
        line = self._read_line("ready", 60)  # the shell may print lines of its own first
        if line != "ready":
            ctx.details["mark_stale_note"] = f"Django's shell did not get ready: {line!r}"
            self._stop_marker()

    def _read_line(self, prefix, timeout):
        """The marker's first line starting with prefix, or the last line seen (None: none) after timeout s."""
        deadline, line = time.time() + timeout, None
        while time.time() < deadline:
            try:
                line = self.marker_lines.get(timeout=max(0.05, deadline - time.time()))
            except queue.Empty:
                break
            if line.startswith(prefix):
                return line
        return line

    def _stop_marker(self):
        if self.marker is not None:
            if self.marker.poll() is None:
                self.marker.kill()
            self.marker.wait()
            self.marker = None

    def _sessions(self, ctx):
        done = ctx.site.run(ctx.s.db, "mariadb", "-N", "-B", "-e",
                            "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%drills_lock%' "
                            "AND ID <> CONNECTION_ID()", check=False, timeout=15)
        return done.stdout.split() if done.returncode == 0 else None

    def inject(self, ctx):
        locks = ", ".join(f"`{t}` WRITE" for t in ctx.details["tables"])
        sql = f"LOCK TABLES {locks};\nSELECT SLEEP({ctx.s.lock_seconds + 60}) AS drills_lock;\nUNLOCK TABLES;\n"
        asked = time.time()
        self.session = subprocess.Popen(
            ["docker", "exec", "-i", ctx.s.db, "mariadb", "-N", "-B", ctx.details["database"]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.session.stdin.write(sql)
        self.session.stdin.close()
        deadline = time.time() + 30
        while not self._sessions(ctx):
            if self.session.poll() is not None:
                raise DrillError(f"the lock session ended at once: {self.session.stdout.read().strip()}")
            if time.time() > deadline:
                raise DrillError("the lock session did not get its locks within 30 s")
            time.sleep(0.1)
        ctx.t_inject = time.time()  # the locks are held from here
        ctx.details["lock_acquired_after_s"] = round(ctx.t_inject - asked, 2)
        if self.marker is not None:
            self.marker.stdin.write("go\n")
            self.marker.stdin.flush()
            line = self._read_line("marked", 30) or ""
            if line.startswith("marked"):
                ctx.details["entries_marked_stale"] = line.split()[1].split(",") if len(line.split()) > 1 else []
                ctx.details["marked_stale_after_s"] = round(time.time() - ctx.t_inject, 2)
            else:
                ctx.details["mark_stale_note"] = f"marking the entries stale failed: {line!r}"
            self._stop_marker()

    def hold(self, ctx):
        ctx.wait(max(0.0, ctx.t_inject + ctx.s.lock_seconds - time.time()))

    def restore(self, ctx):
        self._stop_marker()
        if self.session is None:
            return
        for _ in range(5):
            ids = self._sessions(ctx)
            if ids == []:
                break
            for session_id in ids or []:
                ctx.site.run(ctx.s.db, "mariadb", "-e", f"KILL {int(session_id)}", check=False)
            time.sleep(0.2)
        else:
            raise DrillError("the drills_lock session in the database could not be killed")
        try:
            self.session.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.session.kill()
            self.session.wait()
        self.session = None

    def probe(self, ctx):
        return self._sessions(ctx) == [] and db_state(ctx)[1]

    def finish(self, ctx):
        after = ctx.haproxy.latest("rows")["rows"]
        backend = ctx.site.backend
        ctx.details["wretr"] = counter_delta(self.rows_before, after, backend, "BACKEND", "wretr")
        ctx.details["wredis"] = counter_delta(self.rows_before, after, backend, "BACKEND", "wredis")
        row = after.get((backend, "BACKEND"), {})
        ctx.details["haproxy_ttime_max_ms"] = row.get("ttime_max")
        ctx.details["haproxy_rtime_max_ms"] = row.get("rtime_max")

    def evaluate(self, result):
        d = result["details"]
        missed = []
        if d.get("wretr") or d.get("wredis"):
            missed.append(f"GETs replayed: wretr +{d.get('wretr')}, wredis +{d.get('wredis')}")
        limit_ms = d.get("timeout_server_s", 60.0) * 1000
        longest = max(result.get("latency_max_ms") or 0, d.get("haproxy_ttime_max_ms") or 0)
        d["longest_response_ms"] = longest
        if longest >= limit_ms:
            missed.append(f"longest response {longest / 1000:.1f} s >= timeout server {limit_ms / 1000:g} s")
        n504 = (result["statuses"] or {}).get("504", 0)
        if n504:
            missed.append(f"{n504} responses 504")
        if result["timeouts"]:
            missed.append(f"{result['timeouts']} wrk timeouts")
        return missed


class SlowUploadsDrill(Drill):
    """slow-uploads: more slow clients than the web tier has slots, each POSTing a body announced as
    10 MB at 4 bytes/s through the balancer (to DRILLS_PATH), while wrk's GETs go on.

    Clients: the sum of the per-server maxconn (`slim` in show stat) of the checked backend's
    servers, plus DRILLS_SLOW_EXTRA (4); a client whose connection answers or closes opens another.
    Hold: DRILLS_UPLOAD_SECONDS (20 s). Restore: every slow connection closed. Probe: no slow client
    left. Recovery: every server UP and no slow client, from the first slow client on.
    Readings: the slow clients' outcomes (statuses, closes), the backend's queue and sessions maxima,
    the longest GET (wrk's max latency) and haproxy.longest_without_answers_s: the longest stretch,
    from the injection to the recovery, in which the frontend answered no 2xx/3xx at all (0.25 s
    polls). Failure times come from wrk alone (the slow clients' own answers also count in
    HAProxy's frontend).
    Target: the other clients keep getting answers: 0 failed GETs, no timeouts, and no stretch
    longer than DRILLS_ANSWER_GAP_SECONDS (2 s) without an answered GET (queued GETs that wait out
    the whole fault are starved, even if they end with a 200)."""

    name = "slow-uploads"
    target = "0 failed GETs, no timeouts, never 2 s without answers while slow uploads outnumber the slots"
    sends_own_traffic = True
    uploads = None  # SlowUploads while the fault lasts

    def prepare(self, ctx):
        rows = ctx.haproxy.latest("rows")["rows"]
        slots = sum(row["slim"] for row in backend_servers(rows, ctx.site.backend).values())
        ctx.details["slots"] = slots
        ctx.details["slow_clients"] = slots + ctx.s.slow_extra
        ctx.details["answer_gap_limit_s"] = ctx.s.answer_gap
        self.uploads = None

    def inject(self, ctx):
        self.uploads = SlowUploads(ctx.site.url, ctx.s.host, ctx.s.path, ctx.details["slow_clients"])

    def hold(self, ctx):
        ctx.wait(max(0.0, ctx.t_inject + ctx.s.upload_seconds - time.time()))

    def restore(self, ctx):
        if self.uploads is not None:
            ctx.details["uploads"] = self.uploads.stop()
            self.uploads = None

    def probe(self, ctx):
        return self.uploads is None

    def finish(self, ctx):
        row = ctx.haproxy.latest("rows")["rows"].get((ctx.site.backend, "BACKEND"), {})
        ctx.details["backend_qmax"] = row.get("qmax")
        ctx.details["backend_smax"] = row.get("smax")
        ctx.details["backend_qtime_max_ms"] = row.get("qtime_max")

    def evaluate(self, result):
        missed = super().evaluate(result)
        d = result["details"]
        if d.get("slow_clients", 0) <= d.get("slots", 0):
            missed.append("no more slow clients than slots (no per-server maxconn?)")
        gap = d.get("haproxy", {}).get("longest_without_answers_s", 0.0)
        limit = d.get("answer_gap_limit_s", 2.0)
        if gap > limit:
            missed.append(f"no GET answered for {gap:.1f} s (> {limit:g} s; longest GET "
                          f"{(result.get('latency_max_ms') or 0) / 1000:.1f} s)")
        return missed


class DeployRollbackTls(Drill):
    """deploy-rollback-tls: playbooks/deploy.yml then playbooks/rollback.yml, run from this machine
    against the site's inventory (--inventory), while wrk loads the site over HTTPS with the
    HTTP-to-HTTPS redirect on.

    Set-up (not measured): when the balancer's haproxy.cfg has no `bind ... ssl crt`, a self-signed
    certificate for the site's domain and its direct vhosts (openssl on this machine) is written to
    DRILL_CERTIFICATE on the balancer (mode 0600) and playbooks/loadbalancers.yml runs with
    haproxy_tls_certificate set to it and haproxy_tls_redirect true; a site that has TLS of its own
    keeps it. The load then goes to https://<balancer's address>:<its TLS port> (the certificate is
    not verified), and a plain-HTTP GET of the page must answer a redirect to https://
    (details.http_redirect). Teardown: loadbalancers.yml again without those variables (the
    balancer as the inventory has it) and the certificate removed; only when the set-up added them.
    The fault: deploy.yml of a new release (django_app_release=drill-tls-<UTC time>: the app's own
    source, under another release id), then, when it succeeded, rollback.yml back to the release
    the fleet ran before. Both drain each web host, switch it, check it through its direct vhost on
    the balancer (the check that a redirect placed before the direct-vhost rules sends to HTTPS) and
    put it back. Their output goes to ansible-deploy.txt and ansible-rollback.txt in the run's folder.
    Restore: when the deploy ran and no rollback succeeded, rollback.yml to the release each web host
    ran before the drill, named (read from each host's `current` link before the fault; a rollback
    without a target after a deploy that switched nothing would go one release further back); its
    output goes to ansible-rollback-restore.txt. Probe: none (recovery: every server UP, from the
    deploy's start on; so it includes both runs).
    Target: every playbook run succeeds (return code 0; a rollback that failed is a miss even when the
    restore's retry succeeded), the web hosts end on the releases they had, the redirect is on, 0
    failed GETs over HTTPS. One balancer: the certificate goes to --lb only."""

    name = "deploy-rollback-tls"
    target = "deploy.yml and rollback.yml succeed under HTTPS load with the redirect on, 0 failed GETs"
    DRILL_CERTIFICATE = "/etc/haproxy/drill-tls.pem"

    def __init__(self):
        super().__init__()
        self.tls_added = False
        self.deployed = False
        self.rolled_back = False
        self.releases_before = {}

    def setup(self, site):
        lb = site.s.lb
        config = site.run(lb, "cat", "/etc/haproxy/haproxy.cfg").stdout
        port = tls_bind_port(config)
        self.setup_details["tls"] = "the site's own"
        # A certificate of this drill's still bound (an earlier run that could not tear down): ours to undo.
        self.tls_added = self.DRILL_CERTIFICATE in config
        if port is None:
            with tempfile.TemporaryDirectory() as scratch:
                pem = self_signed_pem(site.s.host, scratch)
            self.tls_added = True
            site.run(lb, "sh", "-c", 'umask 077 && cat > "$1"', "sh", self.DRILL_CERTIFICATE, stdin=pem)
            progress(f"{self.name}: turning TLS and the redirect on (playbooks/loadbalancers.yml)")
            rc, out = site.playbook("loadbalancers.yml", "-e", json.dumps(
                {"haproxy_tls_certificate": self.DRILL_CERTIFICATE, "haproxy_tls_redirect": True}))
            if rc != 0:
                raise DrillError(f"loadbalancers.yml with TLS on failed ({rc}):\n{out[-3000:]}")
            port = tls_bind_port(site.run(lb, "cat", "/etc/haproxy/haproxy.cfg").stdout)
            if port is None:
                raise DrillError("loadbalancers.yml ran with haproxy_tls_certificate set, yet haproxy.cfg binds no TLS port")
        if self.tls_added:
            self.setup_details["tls"] = f"added by the drill: a self-signed certificate, {self.DRILL_CERTIFICATE}"
        address = container_address(lb)
        if not address:
            raise DrillError(f"container {lb} has no address on its network")
        plain = site.url
        site.url = f"https://{address}:{port}"
        status, location = site.redirect_of(plain.rstrip("/") + site.s.path)
        self.setup_details["http_redirect"] = {"status": status, "location": location}
        self.setup_details["https_url"] = site.url

    def teardown(self, site):
        if not self.tls_added:
            return
        try:
            config = site.run(site.s.lb, "cat", "/etc/haproxy/haproxy.cfg").stdout
            if self.DRILL_CERTIFICATE in config:
                progress(f"{self.name}: turning TLS off again (playbooks/loadbalancers.yml as the inventory has it)")
                rc, out = site.playbook("loadbalancers.yml")
                if rc != 0:
                    raise DrillError(f"loadbalancers.yml (TLS off again) failed ({rc}):\n{out[-3000:]}")
        finally:
            # The private key never stays behind, whatever the playbook did.
            site.run(site.s.lb, "rm", "-f", self.DRILL_CERTIFICATE, check=False)
        self.tls_added = False

    @staticmethod
    def releases(site):
        """{web container: the release id its app's `current` link points to} (the bundle's layout,
        /srv/<app>/current -> releases/<id>; "" when it cannot be read)."""
        found = {}
        for web in site.s.web:
            done = site.run(web, "sh", "-c", "readlink /srv/*/current", check=False)
            found[web] = done.stdout.strip().rsplit("/", 1)[-1] if done.returncode == 0 else ""
        return found

    def _run(self, ctx, label, name, *args):
        started = time.time()
        progress(f"{self.name}: {name} {' '.join(args)}")
        rc, out = ctx.site.playbook(name, *args)
        ctx.run_dir.joinpath(f"ansible-{label}.txt").write_text(out)
        recap = playbook_recap(out)
        ctx.details.setdefault("playbooks", []).append({
            "playbook": name, "step": label, "rc": rc, "seconds": round(time.time() - started, 1),
            "failed_hosts": sorted(h for h, r in recap.items() if r["failed"] or r["unreachable"]),
            **({"output_tail": out[-1500:]} if rc != 0 else {})})
        return rc

    def prepare(self, ctx):
        self.releases_before = self.releases(ctx.site)
        ctx.details["releases_before"] = self.releases_before

    def inject(self, ctx):
        release = "drill-tls-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        ctx.details["release"] = release
        self.deployed = True
        if self._run(ctx, "deploy", "deploy.yml", "-e", f"django_app_release={release}") == 0:
            # As an operator would: back to the release the fleet ran before, found by the playbook.
            self.rolled_back = self._run(ctx, "rollback", "rollback.yml") == 0

    def restore(self, ctx):
        if not self.deployed or self.rolled_back:
            return
        # Named explicitly: a deploy that switched no host leaves the fleet where it was, and a rollback
        # without a target would take it one release further back.
        before = set(self.releases_before.values())
        args = ["-e", f"django_app_release={before.pop()}"] if len(before) == 1 and "" not in before else []
        self.rolled_back = self._run(ctx, "rollback-restore", "rollback.yml", *args) == 0
        if not self.rolled_back:
            raise DrillError("rollback.yml failed: the web hosts may be on the drill's release "
                             f"{ctx.details.get('release')} (ansible-rollback-restore.txt)")

    def finish(self, ctx):
        ctx.details["releases_after"] = self.releases(ctx.site)

    def evaluate(self, result):
        missed = super().evaluate(result)
        d = result["details"]
        runs = d.get("playbooks", [])
        for step, name in (("deploy", "deploy.yml"), ("rollback", "rollback.yml")):
            if not any(r.get("step", step) == step and r["playbook"] == name for r in runs):
                missed.append(f"{name} did not run")
        for run in runs:
            if run["rc"] != 0:
                step = f" ({run['step']})" if run.get("step") else ""
                missed.append(f"{run['playbook']}{step} failed ({run['rc']}; hosts "
                              f"{', '.join(run['failed_hosts']) or 'none named'})")
        if d.get("releases_after") is not None and d.get("releases_after") != d.get("releases_before"):
            missed.append(f"the web hosts are not back on their releases: before {d.get('releases_before')}, "
                          f"after {d.get('releases_after')}")
        redirect = d.get("http_redirect") or {}
        if redirect.get("status") not in (301, 302, 307, 308) or not str(redirect.get("location")).startswith("https://"):
            missed.append(f"plain HTTP is not redirected to HTTPS (answered {redirect.get('status')}, "
                          f"Location {redirect.get('location')})")
        return missed


DRILLS = {d.name: d for d in (ApacheKill, LogRotation, HealthzFailing, WebHostStopped, MemcachedRestart,
                              DatabaseRestart, SlowDatabase, SlowUploadsDrill, DeployRollbackTls)}


# ---- running one drill -----------------------------------------------------------------------

def progress(message):
    """A progress line on stderr."""
    print(f"drills: {message}", file=sys.stderr, flush=True)


class ProbeLoop:
    """drill.probe(ctx) every POLL_S s in a thread until stop(); samples go to ctx.probes as (t, ok)."""

    def __init__(self, drill, ctx):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(drill, ctx), daemon=True)
        self._thread.start()

    def _loop(self, drill, ctx):
        while not self._stop.is_set():
            started = time.time()
            try:
                ok = bool(drill.probe(ctx))
            except Exception:  # noqa: BLE001 - a probe that cannot run is a failing probe
                ok = False
            ctx.probes.append((started, ok))
            self._stop.wait(max(0.0, POLL_S - (time.time() - started)))

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)


def wait_recovered(ctx):
    """Wait until the site is normal (recovered_at() over HAProxy's samples and the probe's) and has
    stayed so SETTLE_S s, at least MIN_OBSERVE_S s after the injection; at most RECOVERY_LIMIT_S s after
    the restore. Returns the moment (epoch s) or None."""
    deadline = ctx.t_restore + RECOVERY_LIMIT_S
    while True:
        now = time.time()
        moment = recovered_at(series_of(ctx), ctx.t_inject)
        if moment is not None and now - moment >= SETTLE_S and now - ctx.t_inject >= MIN_OBSERVE_S:
            return moment
        if now > deadline:
            return None
        time.sleep(POLL_S)


def series_of(ctx):
    """[HAProxy's every-server-UP series, the probe's series]: each [(t, ok)]."""
    haproxy = [(s["t"], all_up(s["rows"], ctx.site.backend)) for s in ctx.haproxy.snapshot() if "rows" in s]
    return [haproxy, list(ctx.probes)]


def offset(t, origin):
    """t - origin in s, rounded to ms; None when t is None."""
    return None if t is None else round(t - origin, 3)


def blank_result(drill):
    """A drill's result dict before it runs (results.json's shape): nothing measured, not met."""
    return {"drill": drill.name, "target": drill.target, "requests": 0, "non2xx": 0, "socket_errors": 0,
            "timeouts": 0, "error_seconds": None, "recovery_seconds": None, "met": False, "why": "",
            "statuses": {}, "retry_after_503": 0, "stale": 0, "details": {},
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def run_drill(site, drill_cls, settings, run_dir):
    """Run one drill: its set-up, the drill (run_measured), its teardown; its result dict (results.json's
    shape). A set-up that fails is reported in the result (not met). Raises DrillError when the fault or
    the set-up could not be undone (the run must stop) and KeyboardInterrupt after undoing them on Ctrl-C."""
    drill = drill_cls()
    url = site.url
    result = failure = None
    try:
        try:
            drill.setup(site)
        except DrillError as error:
            result = blank_result(drill)
            result["why"] = f"the drill failed: its set-up: {error}"
            result["details"] = dict(drill.setup_details)
        else:
            result = run_measured(site, drill, settings, run_dir)
    except BaseException as error:  # noqa: BLE001 - re-raised after the teardown
        failure = error
    with deferred_interrupts():
        try:
            drill.teardown(site)
        except Exception as error:  # noqa: BLE001 - reported, then the run stops
            before = f" (and before it: {failure})" if failure is not None else ""
            stop = DrillError(f"{drill.name}: its set-up could not be undone: {error}{before}")
            stop.result = result
            raise stop from failure
        finally:
            site.url = url
    if failure is not None:
        raise failure
    return result


def run_measured(site, drill, settings, run_dir):
    """The measured part of one drill (load, fault, restore, recovery); its result dict. Raises DrillError
    when the fault could not be restored and KeyboardInterrupt after restoring on Ctrl-C."""
    result = blank_result(drill)
    ok, why = site.wait_normal()
    if not ok:
        result["why"] = f"not run: the site is not normal before the drill ({why})"
        return result
    site.api("clear counters")
    haproxy = site.sampler()
    ctx = Context(site, settings, haproxy)
    ctx.run_dir = run_dir
    paths = drill.paths(settings)
    load = probes = None
    restored = False
    outputs = {}
    failure = None
    try:
        haproxy.wait_first("rows")
        load = Load(site.url, settings.host, paths, settings.connections, settings.delay_ms,
                    drill.wrk_timeout_s(settings))
        progress(f"{drill.name}: load on {', '.join(paths)} ({settings.connections} connections, "
                 f"{settings.delay_ms} ms apart), baseline {settings.baseline_seconds:g} s")
        ctx.wait(settings.baseline_seconds)
        load.check_running()
        before = haproxy.latest("rows")
        metrics_before = site.app_metrics() if drill.app_metrics else None
        drill.prepare(ctx)
        progress(f"{drill.name}: injecting the fault")
        ctx.t_inject = ctx.details["_asked"] = time.time()
        probes = ProbeLoop(drill, ctx)
        drill.inject(ctx)
        drill.hold(ctx)
        with deferred_interrupts():
            ctx.t_restore = time.time()
            drill.restore(ctx)
            restored = True
        progress(f"{drill.name}: restored after {ctx.t_restore - ctx.t_inject:.1f} s; waiting for normal")
        recovered = wait_recovered(ctx)
        drill.finish(ctx)
        if drill.app_metrics:
            ctx.details["app_metrics"] = metrics_delta(metrics_before, site.app_metrics())
    except DrillError as error:
        failure = error
        recovered = None
    finally:
        with deferred_interrupts():
            restore_error = None
            if not restored:
                if ctx.t_restore is None:
                    ctx.t_restore = time.time()
                try:
                    drill.restore(ctx)
                except Exception as error:  # noqa: BLE001 - reported, then the run stops
                    restore_error = error
            if probes is not None:
                probes.stop()
            figures = None
            if load is not None:
                try:
                    figures, outputs = load.stop()
                except DrillError as error:
                    failure = failure or error
            haproxy.stop()
            for sampler in ctx.extra_samplers:
                sampler.stop()
            for path, out in outputs.items():
                name = f"wrk-{drill.name}{path.replace('/', '_').rstrip('_') or '_root'}.txt"
                (run_dir / name).write_text(out)
            if restore_error is not None:
                raise DrillError(f"{drill.name}: the fault could not be restored: {restore_error}")
    ctx.details.pop("_asked", None)
    ctx.details.update(drill.setup_details)
    result["details"] = ctx.details
    if figures is not None:
        lua = figures["lua"] or {}
        result.update(requests=figures["requests"], non2xx=figures["non2xx"], socket_errors=figures["socket_errors"],
                      timeouts=figures["timeouts"], latency_max_ms=figures["latency_max_ms"],
                      statuses=lua.get("statuses", {}), retry_after_503=lua.get("retry_after_503", 0),
                      stale=lua.get("stale", 0), per_path=figures["per_path"])
        if figures["lua"] is None:
            ctx.details["note"] = "wrk printed no DRILLS line: statuses and failure times unknown"
    if failure is not None or ctx.t_inject is None:
        result["why"] = f"the drill failed: {failure}"
        return result
    samples = haproxy.snapshot()
    t0 = ctx.t_inject
    wrk_times = lua.get("failure_times", []) if figures else []
    in_drill = [t for t in wrk_times if t >= t0]
    intervals = [] if drill.sends_own_traffic else [i for i in failure_intervals(samples) if i[1] >= before["t"]]
    window = error_window(in_drill, intervals)
    result["error_seconds"] = round(window[1] - window[0], 3) if window else 0.0
    result["recovery_seconds"] = offset(recovered, t0)
    rows_before, rows_after = before["rows"], haproxy.latest("rows")["rows"]
    down_series = [(s["t"], all(r["status"].startswith("DOWN") for r in backend_servers(s["rows"], site.backend).values()))
                   for s in samples if "rows" in s and s["t"] >= t0]
    result["details"] = {
        **ctx.details,
        "fault_seconds": offset(ctx.t_restore, t0),
        "recovery_after_restore_seconds": max(0.0, offset(recovered, ctx.t_restore)) if recovered else None,
        "failures_before_fault": len([t for t in wrk_times if t < t0]),
        "error_window": {"wrk": [offset(min(in_drill), t0), offset(max(in_drill), t0)] if in_drill else None,
                         "haproxy": ([offset(intervals[0][0], t0), offset(intervals[-1][1], t0)]
                                     if intervals else None),
                         "failure_statuses": _count(s for t, s in zip(wrk_times, lua.get("failure_statuses", []))
                                                    if t >= t0) if figures else None},
        "haproxy": {
            "wretr": counter_delta(rows_before, rows_after, site.backend, "BACKEND", "wretr"),
            "wredis": counter_delta(rows_before, rows_after, site.backend, "BACKEND", "wredis"),
            "failopen_requests": counter_delta(rows_before, rows_after, site.failopen, "BACKEND", "stot"),
            "frontend_failures": frontend_failures(rows_after) - frontend_failures(rows_before),
            "requests_by_server": {f"{px}/{sv}": counter_delta(rows_before, rows_after, px, sv, "stot")
                                   for (px, sv) in rows_after if px in (site.backend, site.failopen)
                                   and sv not in ("FRONTEND", "BACKEND")},
            "every_server_down_s": round(longest_run(down_series, True), 2),
            "longest_without_answers_s": longest_silence(samples, t0, recovered or ctx.t_restore),
            "maxima": {k: rows_after.get((site.backend, "BACKEND"), {}).get(k)
                       for k in ("qmax", "smax", "qtime_max", "rtime_max", "ttime_max")},
        },
        "paths": paths,
        "url": site.url,
    }
    missed = drill.evaluate(result)
    if recovered is None:
        missed.append(f"not back to normal within {RECOVERY_LIMIT_S:g} s of the restore")
    result["met"] = not missed
    result["why"] = "; ".join(missed) if missed else _met_why(result)
    return result


def _count(values):
    counts = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


def _met_why(result):
    d = result["details"]
    extra = {"memcached-restart": f", hits back after {d.get('hits_back_s')} s",
             "slow-database": f", longest response {(d.get('longest_response_ms') or 0) / 1000:.1f} s, wretr/wredis +0",
             "log-rotation": ", WSGI daemon PIDs unchanged",
             "healthz-failing": f", fail-open served {d.get('failopen_requests')} requests",
             "database-restart": f", {result['retry_after_503']} 503 + Retry-After, {result['stale']} stale",
             "deploy-rollback-tls": ", " + ", ".join(f"{r['playbook']} {r['seconds']} s" for r in d.get("playbooks", []))
             + f", HTTP answered {(d.get('http_redirect') or {}).get('status')}"}
    return f"{describe_failures(result)}{extra.get(result['drill'], '')}"


# ---- the command line ------------------------------------------------------------------------

def lab_defaults():
    """The lab's names from inventories/lab: {"lb", "web", "db", "cache", "host"}; the fixed lab names
    (lab-lb, lab-web1, lab-web2, lab-db, lab-cache, scoreboard.test) for what cannot be read."""
    found = {"lb": "lab-lb", "web": ["lab-web1", "lab-web2"], "db": "lab-db", "cache": "lab-cache",
             "host": "scoreboard.test"}
    try:
        groups = parse_inventory_groups((LAB / "hosts.yml").read_text())
    except OSError:
        return found

    def container(host):
        try:
            text = (LAB / "host_vars" / f"{host}.yml").read_text()
        except OSError:
            return f"lab-{host}"
        match = re.search(r"^ansible_host:\s*['\"]?([\w.-]+)", text, re.MULTILINE)
        return match.group(1) if match else f"lab-{host}"

    for key, group in (("lb", "loadbalancers"), ("db", "dbservers"), ("cache", "cacheservers")):
        if groups.get(group):
            found[key] = container(groups[group][0])
    if groups.get("webservers"):
        found["web"] = [container(h) for h in groups["webservers"]]
    try:
        match = re.search(r"^site_domain:\s*['\"]?([\w.-]+)", (LAB / "group_vars/all/site.yml").read_text(), re.M)
        if match:
            found["host"] = match.group(1)
    except OSError:
        pass
    return found


def parse_args(argv):
    """The settings (argparse.Namespace) from argv and the DRILLS_* environment. Exits 2 with a message on
    bad usage (argparse's error)."""
    lab = lab_defaults()
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="drills.py", description="Game-day drills on a running site (see the module's docstring).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Drills: " + ", ".join(DRILLS) + ".\nExit: 0 ok, 1 --check and a target missed, 2 bad usage, "
               "3 could not run or restore, 130 interrupted.")
    parser.add_argument("--only", help="comma-separated drill names (default: all, in the order of --list)")
    parser.add_argument("--list", action="store_true", help="list the drills and exit")
    parser.add_argument("--out", default=env("DRILLS_OUT", str(ROOT / ".cache" / "drills")),
                        help="results root: DIR/<UTC time>/results.json and DIR/latest (.cache/drills)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a drill missed its target")
    parser.add_argument("--lb", default=env("DRILLS_LB", lab["lb"]), help="balancer container (%(default)s)")
    parser.add_argument("--url", default=env("DRILLS_URL"), help="balancer URL from here (default: published port 80)")
    parser.add_argument("--host", default=env("DRILLS_HOST", lab["host"]), help="Host header (%(default)s)")
    parser.add_argument("--web", default=env("DRILLS_WEB", ",".join(lab["web"])),
                        help="web containers, comma-separated (%(default)s)")
    parser.add_argument("--db", default=env("DRILLS_DB", lab["db"]), help="database container (%(default)s)")
    parser.add_argument("--cache", default=env("DRILLS_CACHE", lab["cache"]), help="memcached container (%(default)s)")
    parser.add_argument("--socket", default=env("DRILLS_SOCKET", "/run/haproxy/admin.sock"),
                        help="HAProxy Runtime API socket in the balancer (%(default)s)")
    parser.add_argument("--inventory", default=env("DRILLS_INVENTORY", str(LAB)),
                        help="the site's inventory, for the drills that run playbooks (%(default)s)")
    parser.add_argument("--backend", default=env("DRILLS_BACKEND", "app"), help="checked web backend (%(default)s)")
    parser.add_argument("--connections", default=env("DRILLS_CONNECTIONS", "32"), help="wrk connections (32)")
    parser.add_argument("--delay-ms", default=env("DRILLS_DELAY_MS", "100"), help="pause per connection, ms (100)")
    parser.add_argument("--path", default=env("DRILLS_PATH", "/leaderboard/"), help="page loaded (%(default)s)")
    parser.add_argument("--db-paths", default=env("DRILLS_DB_PATHS", "/,/leaderboard/"),
                        help="pages of the database drills, comma-separated (%(default)s)")
    parser.add_argument("--baseline-seconds", default=env("DRILLS_BASELINE_SECONDS", "5"), help="load before the fault (5)")
    parser.add_argument("--lock-seconds", default=env("DRILLS_LOCK_SECONDS", "60"), help="slow-database lock, s (60)")
    args = parser.parse_args(argv)

    def number(name, value, cast=int, minimum=1):
        try:
            result = cast(value)
        except (TypeError, ValueError):
            parser.error(f"{name} must be a number, got {value!r}")
        if result < minimum:
            parser.error(f"{name} must be at least {minimum}, got {value!r}")
        return result

    args.connections = number("--connections/DRILLS_CONNECTIONS", args.connections)
    args.delay_ms = number("--delay-ms/DRILLS_DELAY_MS", args.delay_ms, minimum=0)
    args.baseline_seconds = number("--baseline-seconds/DRILLS_BASELINE_SECONDS", args.baseline_seconds, float, 0)
    args.lock_seconds = number("--lock-seconds/DRILLS_LOCK_SECONDS", args.lock_seconds)
    args.stop_seconds = number("DRILLS_STOP_SECONDS", env("DRILLS_STOP_SECONDS", "15"), float, 1)
    args.failopen_seconds = number("DRILLS_FAILOPEN_SECONDS", env("DRILLS_FAILOPEN_SECONDS", "10"), float, 0)
    args.upload_seconds = number("DRILLS_UPLOAD_SECONDS", env("DRILLS_UPLOAD_SECONDS", "20"), float, 1)
    args.slow_extra = number("DRILLS_SLOW_EXTRA", env("DRILLS_SLOW_EXTRA", "4"))
    args.answer_gap = number("DRILLS_ANSWER_GAP_SECONDS", env("DRILLS_ANSWER_GAP_SECONDS", "2"), float, 0)
    args.restart_grace = number("DRILLS_RESTART_GRACE_SECONDS", env("DRILLS_RESTART_GRACE_SECONDS", "5"), float, 0)
    port = env("DRILLS_HEALTHZ_CHECK_PORT")
    args.healthz_port = number("DRILLS_HEALTHZ_CHECK_PORT", port) if port else None
    if args.healthz_port and args.healthz_port > 65535:
        parser.error(f"DRILLS_HEALTHZ_CHECK_PORT must be a TCP port, got {port!r}")
    args.web = [w.strip() for w in args.web.split(",") if w.strip()]
    args.db_paths = [p.strip() for p in args.db_paths.split(",") if p.strip()]
    if not args.web:
        parser.error("--web/DRILLS_WEB names no web container")
    for page in [args.path, *args.db_paths]:
        if not page.startswith("/"):
            parser.error(f"a page must start with '/': {page!r}")
    if not args.db_paths:
        parser.error("--db-paths/DRILLS_DB_PATHS names no page")
    if args.url and not re.match(r"^http://[^/]+", args.url):
        parser.error(f"--url/DRILLS_URL must be an http:// URL, got {args.url!r}")
    try:
        args.only = parse_only(args.only, list(DRILLS)) if args.only is not None else list(DRILLS)
    except ValueError as error:
        parser.error(str(error))
    return args


def write_results(run_dir, results):
    """results.json in run_dir: the list of result dicts so far."""
    (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def point_latest(out_root, run_dir):
    """out_root/latest -> run_dir (a relative symlink), replacing an older one."""
    latest = out_root / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(run_dir.name)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    if settings.list:
        for name, cls in DRILLS.items():
            print(f"{name:<18} {cls.target}")
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    site = Site(settings)
    out_root = Path(settings.out)
    run_dir = out_root / datetime.now(timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    run_dir.mkdir(parents=True, exist_ok=False)
    progress(f"site {site.url} (Host: {settings.host}), balancer {settings.lb}, web {', '.join(settings.web)} "
             f"(faulted: {site.target} = {site.server_of[site.target]}), db {settings.db}, cache {settings.cache}; "
             f"results in {run_dir}")
    results = []
    try:
        for name in settings.only:
            try:
                result = run_drill(site, DRILLS[name], settings, run_dir)
            except DrillError as error:
                # A teardown that failed after the drill ran: its figures still go into results.json.
                if getattr(error, "result", None) is not None:
                    results.append(error.result)
                    write_results(run_dir, results)
                raise
            results.append(result)
            write_results(run_dir, results)
            print(format_line(result), flush=True)
    finally:
        point_latest(out_root, run_dir)
        if results:
            progress(f"results: {run_dir / 'results.json'} (also {out_root / 'latest'})")
    ok, why = site.wait_normal(timeout=RECOVERY_LIMIT_S)
    if not ok:
        raise DrillError(f"the site is not back to normal after the drills: {why}")
    if len(results) > 1:
        print("drills: summary", flush=True)
        print("\n".join(format_line(r) for r in results), flush=True)
    missed = [r["drill"] for r in results if not r["met"]]
    if settings.check and missed:
        progress(f"missed targets: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DrillError as error:
        print(f"drills: {error}", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print("drills: interrupted (the fault in progress was restored)", file=sys.stderr)
        sys.exit(130)
