"""The game-day drills' arithmetic (scripts/drills.py): wrk's report and the Lua script's line read
right, HAProxy's stats parsed, error windows and recovery moments computed right, the targets judged
on the figures, the command line refused when wrong. The drills themselves run on the lab
(`make drills`); the one test that runs wrk and scripts/drills.lua does it against a local HTTP
server (skipped without wrk)."""

import http.server
import importlib.util
import pathlib
import shutil
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("drills", ROOT / "scripts" / "drills.py")
drills = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(drills)

# wrk 4.1's report after SIGINT, with the Lua script's line.
REPORT = """Running 60m test @ http://127.0.0.1:8080/leaderboard/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.93ms   21.94ms 622.99ms   97.03%
    Req/Sec   148.92     21.59   161.00     89.07%
  4510 requests in 15.25s, 20.22MB read
  Socket errors: connect 0, read 1, write 2, timeout 3
  Non-2xx or 3xx responses: 18
Requests/sec:    295.76
Transfer/sec:      1.33MB
DRILLS {"responses":4510,"latency_max_us":622994,"statuses":{"200":4492,"503":18},"retry_after_503":4,\
"stale":7,"failures":18,"failure_times":[100.5,100.25],"failure_statuses":[503,503]}
"""

CLEAN = """Running 60m test @ http://127.0.0.1:8080/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20s   21.94ms    1.00m   97.03%
    Req/Sec   148.92     21.59   161.00     89.07%
  100 requests in 15.25s, 20.22MB read
Requests/sec:    295.76
Transfer/sec:      1.33MB
DRILLS {"responses":0,"latency_max_us":0,"statuses":[],"retry_after_503":0,"stale":0,"failures":0,\
"failure_times":[],"failure_statuses":[]}
"""

STAT_HEADER = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,wretr,wredis,status,addr,check_status,check_code,"
               "hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,req_tot,ttime_max")


def stat(*rows):
    return "\n".join([STAT_HEADER, *rows]) + "\n\n"


SHOW_STAT = stat(
    "www,FRONTEND,,,3,10,9488,100,,,OPEN,,,,90,0,1,4,0,95,",
    "app,web1,0,5,1,2,2,50,1,2,UP,172.18.0.3:80,L7OK,200,50,0,0,0,0,,120",
    "app,web2,0,5,1,2,2,45,0,0,DOWN 1/2,172.18.0.4:80,L7STS,404,40,0,0,4,0,,130",
    "app,BACKEND,0,9,2,4,,95,1,2,UP,,,,90,0,0,4,0,95,130",
    "stats,FRONTEND,,,0,1,,7,,,OPEN,,,,7,0,3,0,0,7,",
)


# ---- wrk and the Lua script's line --------------------------------------------------------------

@pytest.mark.parametrize("text,ms", [("677.52us", 0.67752), ("4.78ms", 4.78), ("1.20s", 1200.0), ("2m", 120000.0),
                                     ("60s", 60000.0), ("500", 500.0)])
def test_parse_duration_ms(text, ms):
    assert drills.parse_duration_ms(text) == pytest.approx(ms)


def test_parse_duration_refuses_garbage():
    with pytest.raises(ValueError):
        drills.parse_duration_ms("fast")


def test_parse_wrk_summary_reads_counts_latency_and_the_lua_line():
    figures = drills.parse_wrk_summary(REPORT)
    assert (figures["requests"], figures["non2xx"], figures["socket_errors"], figures["timeouts"]) == (4510, 18, 3, 3)
    assert figures["latency_max_ms"] == pytest.approx(622.99)
    assert figures["lua"]["statuses"] == {"200": 4492, "503": 18}
    assert (figures["lua"]["retry_after_503"], figures["lua"]["stale"]) == (4, 7)


def test_parse_wrk_summary_clean_run_and_empty_lua_tables():
    figures = drills.parse_wrk_summary(CLEAN)
    assert (figures["non2xx"], figures["socket_errors"], figures["timeouts"]) == (0, 0, 0)
    assert figures["latency_max_ms"] == pytest.approx(60000.0)
    assert figures["lua"]["statuses"] == {}  # Lua's empty table prints as []


def test_parse_wrk_summary_without_summary_raises():
    with pytest.raises(ValueError, match="no request count"):
        drills.parse_wrk_summary("unable to connect to 127.0.0.1:8080 Connection refused\n")


def test_parse_wrk_summary_without_lua_line():
    assert drills.parse_wrk_summary(REPORT.rsplit("DRILLS", 1)[0])["lua"] is None


def test_merge_loads_sums_and_sorts_failures():
    merged = drills.merge_loads([drills.parse_wrk_summary(REPORT), drills.parse_wrk_summary(CLEAN)])
    assert merged["requests"] == 4610 and merged["non2xx"] == 18 and merged["timeouts"] == 3
    assert merged["latency_max_ms"] == pytest.approx(60000.0)
    assert merged["lua"]["failure_times"] == [100.25, 100.5]
    assert merged["lua"]["statuses"] == {"200": 4492, "503": 18}


def test_merge_loads_without_a_lua_line_has_no_lua():
    merged = drills.merge_loads([drills.parse_wrk_summary(REPORT), drills.parse_wrk_summary(REPORT.split("DRILLS")[0])])
    assert merged["lua"] is None and merged["requests"] == 9020


@pytest.mark.parametrize("connections,pages,expected", [(32, 1, [32]), (32, 2, [16, 16]), (33, 2, [17, 16]),
                                                        (1, 2, [1, 1])])
def test_split_connections(connections, pages, expected):
    assert drills.split_connections(connections, pages) == expected


# ---- HAProxy's stats --------------------------------------------------------------------------

def test_parse_show_stat_and_helpers():
    rows = drills.parse_show_stat(SHOW_STAT)
    assert rows[("app", "web2")]["status"] == "DOWN 1/2"
    assert rows[("app", "web1")]["slim"] == 2 and rows[("app", "BACKEND")]["slim"] == 0
    assert set(drills.backend_servers(rows, "app")) == {"web1", "web2"}
    assert drills.all_up(rows, "app") is False
    assert drills.all_up(rows, "nothing") is False
    assert drills.frontend_failures(rows) == 5  # www only: stats' 4xx left out
    assert drills.frontend_answers(rows) == 90


def test_parse_show_stat_refuses_other_text():
    with pytest.raises(ValueError):
        drills.parse_show_stat("Unknown command\n")


def sample(t, failures=0, answers=0, web2="UP"):
    return {"t": t, "rows": drills.parse_show_stat(stat(
        f"www,FRONTEND,,,,,,,,,OPEN,,,,{answers},0,0,{failures},0,,",
        "app,web1,,,,,2,,,,UP,1.2.3.4:80,,,,,,,,,",
        f"app,web2,,,,,2,,,,{web2},1.2.3.5:80,,,,,,,,,"))}


def test_failure_intervals_and_a_counter_reset():
    samples = [sample(0.0, 0), sample(0.25, 0), {"t": 0.4, "error": "x"}, sample(0.5, 3), sample(0.75, 3),
               sample(1.0, 1), sample(1.25, 2)]
    assert drills.failure_intervals(samples) == [(0.25, 0.5, 3), (1.0, 1.25, 1)]


def test_error_window():
    assert drills.error_window([], []) is None
    assert drills.error_window([10.0], []) == (10.0, 10.0)
    # A poll that saw the same failures late does not widen wrk's window...
    assert drills.error_window([10.0, 10.5], [(10.4, 10.65, 2)]) == (10.0, 10.5)
    # ... one well outside does.
    assert drills.error_window([10.0, 10.5], [(12.0, 12.25, 1)]) == (10.0, 12.25)
    assert drills.error_window([10.0, 10.5], [(8.0, 8.25, 1)]) == (8.0, 10.5)
    assert drills.error_window([], [(5.0, 5.25, 1), (6.0, 6.25, 1)]) == (5.0, 6.25)


def test_recovered_at():
    assert drills.recovered_at([[(1, True), (2, True)]], 0) == 1
    assert drills.recovered_at([[(1, True), (2, False), (3, True), (4, True)], [(1.5, False), (2.5, True)]], 0) == 3
    assert drills.recovered_at([[(1, True), (2, False)]], 0) is None
    assert drills.recovered_at([[(1, True)], []], 0) is None
    # Samples before the injection and unknown ones do not count.
    assert drills.recovered_at([[(0.5, False), (1, None), (2, True)]], 1) == 2


def test_longest_run_and_silence():
    assert drills.longest_run([(0, False), (1, True), (2, True), (3, False), (4, True)], True) == 2
    assert drills.longest_run([(0, True), (5, True)], True) == 5
    assert drills.longest_run([], True) == 0.0
    samples = [sample(0.0, answers=10), sample(1.0, answers=20), sample(2.0, answers=20), sample(3.0, answers=20),
               sample(4.0, answers=30), sample(5.0, answers=40)]
    assert drills.longest_silence(samples, 0.5, 5.0) == 3.0
    assert drills.longest_silence(samples, 4.5, 5.0) == 0.5
    assert drills.longest_silence(samples, 9.0, 10.0) == 0.0


def test_counter_delta():
    before = {("app", "BACKEND"): {"wretr": 3}}
    assert drills.counter_delta(before, {("app", "BACKEND"): {"wretr": 5}}, "app", "BACKEND", "wretr") == 2
    assert drills.counter_delta(before, {("app", "BACKEND"): {"wretr": 1}}, "app", "BACKEND", "wretr") == 1
    assert drills.counter_delta({}, {}, "app", "web1", "stot") == 0


# ---- the services' readings -------------------------------------------------------------------

def test_memcached_stats_and_hits_back():
    assert drills.parse_memcached_stats("STAT pid 12\r\nSTAT get_hits 3\r\nEND\r\n") == {"pid": "12", "get_hits": "3"}
    samples = [{"t": 9.0, "stats": {"pid": "1", "get_hits": "50"}},
               {"t": 10.1, "stats": {"pid": "1", "get_hits": "55"}},     # the old process, before it stopped
               {"t": 10.3, "error": "ConnectionRefusedError"},
               {"t": 10.6, "stats": {"pid": "2", "get_hits": "0"}},
               {"t": 10.9, "stats": {"pid": "2", "get_hits": "4"}}]
    assert drills.hits_back_at(samples, 10.0, "1") == 10.9
    assert drills.hits_back_at(samples[:4], 10.0, "1") is None


def test_wsgi_daemons():
    ps = """    1     0 root     /usr/lib/systemd/systemd --system
 1670     1 root     /usr/sbin/apache2 -k start
 1711  1670 scorebo+ (wsgi:scoreboard) -k start
 1712  1670 scorebo+ (wsgi:scoreboard) -k start
 1713  1670 www-data /usr/sbin/apache2 -k start
"""
    assert drills.wsgi_daemons(ps) == {1711: (1670, "scorebo+"), 1712: (1670, "scorebo+")}


def test_metrics_and_their_growth():
    text = ('# HELP x\ncache_stale_total{entry="board"} 4\nleaderboard_recomputes_total 2\n'
            'scoreboard_info{release="a"} 1\nbroken nan-ish\n')
    before = drills.parse_metrics(text)
    assert before['cache_stale_total{entry="board"}'] == 4.0 and "broken" not in before
    after = {**before, 'cache_stale_total{entry="board"}': 10.0, "leaderboard_recomputes_total": 1.0}
    assert drills.metrics_delta(before, after) == {'cache_stale_total{entry="board"}': 6,
                                                  "leaderboard_recomputes_total": 1}
    assert drills.metrics_delta(None, after) is None


# ---- names and the command line ---------------------------------------------------------------

def test_parse_inventory_groups_reads_the_lab():
    groups = drills.parse_inventory_groups((ROOT / "inventories" / "lab" / "hosts.yml").read_text())
    assert groups["webservers"] == ["web1", "web2"]
    assert groups["loadbalancers"] == ["lb"] and groups["dbservers"] == ["db"] and groups["cacheservers"] == ["cache"]


def test_lab_defaults_match_the_lab():
    assert drills.lab_defaults() == {"lb": "lab-lb", "web": ["lab-web1", "lab-web2"], "db": "lab-db",
                                     "cache": "lab-cache", "host": "scoreboard.test"}


def test_parse_only():
    known = list(drills.DRILLS)
    assert drills.parse_only("slow-uploads, apache-kill,slow-uploads", known) == ["slow-uploads", "apache-kill"]
    with pytest.raises(ValueError, match="unknown drill"):
        drills.parse_only("apache-kill,nope", known)
    with pytest.raises(ValueError, match="names no drill"):
        drills.parse_only(" , ", known)


@pytest.mark.parametrize("argv,message", [
    (["--only", "nope"], "unknown drill(s) nope"),
    (["--connections", "many"], "must be a number"),
    (["--connections", "0"], "must be at least 1"),
    (["--path", "leaderboard/"], "must start with '/'"),
    (["--url", "127.0.0.1:8080"], "must be an http:// URL"),
    (["--web", ","], "names no web container"),
])
def test_bad_usage_exits_2(argv, message, capsys, monkeypatch):
    for name in ("DRILLS_URL", "DRILLS_WEB", "DRILLS_PATH", "DRILLS_CONNECTIONS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_:
        drills.parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_settings_from_the_environment_and_options(monkeypatch):
    monkeypatch.setenv("DRILLS_WEB", "site-web1,site-web2")
    monkeypatch.setenv("DRILLS_LB", "site-lb")
    monkeypatch.setenv("DRILLS_LOCK_SECONDS", "20")
    args = drills.parse_args(["--url", "http://172.20.0.2", "--db", "site-db", "--only", "slow-database"])
    assert (args.lb, args.web, args.db, args.url) == ("site-lb", ["site-web1", "site-web2"], "site-db", "http://172.20.0.2")
    assert (args.lock_seconds, args.only, args.connections, args.delay_ms) == (20, ["slow-database"], 32, 100)
    assert args.db_paths == ["/", "/leaderboard/"] and args.path == "/leaderboard/"


# ---- targets ----------------------------------------------------------------------------------

def result(**overrides):
    base = {"drill": "x", "requests": 1000, "non2xx": 0, "socket_errors": 0, "timeouts": 0, "error_seconds": 0.0,
            "recovery_seconds": 1.5, "statuses": {"200": 1000}, "retry_after_503": 0, "stale": 0,
            "latency_max_ms": 20.0, "details": {}, "met": True, "why": "ok"}
    return {**base, **overrides}


def test_zero_failed_gets_target():
    assert drills.ApacheKill().evaluate(result()) == []
    missed = drills.ApacheKill().evaluate(result(non2xx=3, socket_errors=1, details={"came_back_by_itself": False}))
    assert missed[0] == "4 failed GETs (non2xx 3, socket errors 1, timeouts 0)"
    assert "did not come back by itself" in missed[1]


def test_web_host_stopped_target_refuses_a_host_back_on_another_address():
    drill = drills.WebHostStopped()
    assert drill.evaluate(result(details={"address_before": "172.20.0.3", "address_after": "172.20.0.3"})) == []
    moved = {"address_before": "172.20.0.3", "address_after": "172.20.0.9", "address_changed": True}
    assert "came back with another address (172.20.0.3 -> 172.20.0.9)" in drill.evaluate(result(details=moved))[0]


def test_log_rotation_target_counts_pid_changes():
    good = {"logrotate_exit": 0, "wsgi_pids_before": [1, 2], "wsgi_pids_after": [1, 2], "wsgi_pid_changes": 0}
    assert drills.LogRotation().evaluate(result(details=good)) == []
    bad = {**good, "wsgi_pids_after": [3, 4], "wsgi_pid_changes": 4}
    assert "WSGI daemon PIDs changed" in drills.LogRotation().evaluate(result(details=bad))[0]


def test_database_restart_target():
    drill = drills.DatabaseRestart()
    fine = result(non2xx=7, retry_after_503=7, error_seconds=3.2, statuses={"200": 993, "503": 7}, stale=40)
    assert drill.evaluate(fine) == []
    missed = drill.evaluate(result(non2xx=9, retry_after_503=7, error_seconds=6.0,
                                   statuses={"200": 991, "503": 7, "502": 2}))
    assert missed[0] == "errors lasted 6.00 s (> 5 s)"
    assert "2 failed responses other than 503 + Retry-After" in missed[1] and "'502': 2" in missed[1]


def test_slow_database_target():
    drill = drills.SlowDatabase()
    details = {"wretr": 0, "wredis": 0, "timeout_server_s": 60.0, "haproxy_ttime_max_ms": 30500}
    assert drill.evaluate(result(details=dict(details), latency_max_ms=30400.0)) == []
    missed = drill.evaluate(result(details={**details, "wretr": 2, "haproxy_ttime_max_ms": 61000},
                                   statuses={"200": 10, "504": 1}))
    assert missed == ["GETs replayed: wretr +2, wredis +0", "longest response 61.0 s >= timeout server 60 s",
                      "1 responses 504"]


def test_slow_uploads_target_counts_starvation():
    drill = drills.SlowUploadsDrill()
    details = {"slots": 4, "slow_clients": 8, "answer_gap_limit_s": 2.0, "haproxy": {"longest_without_answers_s": 0.5}}
    assert drill.evaluate(result(details=details)) == []
    starved = {**details, "haproxy": {"longest_without_answers_s": 18.8}}
    assert drill.evaluate(result(details=starved, latency_max_ms=10200.0)) == [
        "no GET answered for 18.8 s (> 2 s; longest GET 10.2 s)"]


def test_format_line():
    line = drills.format_line(result(drill="apache-kill", non2xx=18, error_seconds=0.177, recovery_seconds=None,
                                     met=False, why="18 failed GETs"))
    assert line.startswith("drills: apache-kill ")
    assert "non2xx    18" in line and "errors   0.18 s" in line and "recovery        -" in line
    assert line.endswith("MISSED: 18 failed GETs")


# ---- deploy-rollback-tls ----------------------------------------------------------------------

HAPROXY_TLS = """frontend site
    bind 0.0.0.0:80
    bind 0.0.0.0:443 ssl crt /etc/haproxy/site.pem alpn h2,http/1.1
    http-request redirect scheme https code 301 unless { ssl_fc } || direct_vhost
"""


def test_tls_bind_port():
    assert drills.tls_bind_port(HAPROXY_TLS) == 443
    assert drills.tls_bind_port("frontend site\n    bind 0.0.0.0:80\n    # bind :443 ssl crt x\n") is None
    assert drills.tls_bind_port("    bind :8443 ssl crt /etc/haproxy/x.pem\n") == 8443


def test_playbook_recap():
    out = """PLAY RECAP *********************************************************************
lb                         : ok=12   changed=0    unreachable=0    failed=0    skipped=3    rescued=0    ignored=0
web1                       : ok=40   changed=5    unreachable=0    failed=1    skipped=9    rescued=0    ignored=0
web2                       : ok=2    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0
"""
    assert drills.playbook_recap(out) == {
        "lb": {"changed": 0, "unreachable": 0, "failed": 0},
        "web1": {"changed": 5, "unreachable": 0, "failed": 1},
        "web2": {"changed": 0, "unreachable": 1, "failed": 0}}
    assert drills.playbook_recap("ERROR! the playbook could not be found") == {}


def test_deploy_rollback_tls_target():
    drill = drills.DeployRollbackTls()
    good = {"http_redirect": {"status": 301, "location": "https://scoreboard.test/leaderboard/"},
            "playbooks": [{"playbook": "deploy.yml", "rc": 0, "failed_hosts": []},
                          {"playbook": "rollback.yml", "rc": 0, "failed_hosts": []}]}
    assert drill.evaluate(result(details=good)) == []
    bad = {"http_redirect": {"status": 200, "location": None},
           "playbooks": [{"playbook": "deploy.yml", "rc": 2, "failed_hosts": ["web2"]}]}
    missed = drill.evaluate(result(details=bad, non2xx=1))
    assert missed[0].startswith("1 failed GETs")
    assert "deploy.yml failed (2; hosts web2)" in missed
    assert "rollback.yml did not run" in missed
    # A failed rollback is a miss even when the restore's second try succeeded.
    retried = {**good, "playbooks": [
        {"playbook": "deploy.yml", "step": "deploy", "rc": 0, "failed_hosts": []},
        {"playbook": "rollback.yml", "step": "rollback", "rc": 2, "failed_hosts": ["web1"]},
        {"playbook": "rollback.yml", "step": "rollback-restore", "rc": 0, "failed_hosts": []}]}
    assert drill.evaluate(result(details=retried)) == ["rollback.yml (rollback) failed (2; hosts web1)"]
    # The fleet must end on the releases it had.
    moved = {**good, "releases_before": {"web1": "a", "web2": "a"}, "releases_after": {"web1": "a", "web2": "z"}}
    assert "not back on their releases" in drill.evaluate(result(details=moved))[0]
    assert "plain HTTP is not redirected to HTTPS (answered 200, Location None)" in missed
    http_location = {**good, "http_redirect": {"status": 302, "location": "http://scoreboard.test/"}}
    assert len(drill.evaluate(result(details=http_location))) == 1


class _SetupFails(drills.Drill):
    name = "setup-fails"
    target = "none"

    def __init__(self):
        super().__init__()
        self.torn_down = 0

    def setup(self, site):
        site.url = "https://10.0.0.1:443"
        self.setup_details["tls"] = "half done"
        raise drills.DrillError("the balancer said no")

    def teardown(self, site):
        _SetupFails.last = self
        self.torn_down += 1


class _TeardownFails(_SetupFails):
    name = "teardown-fails"

    def setup(self, site):
        pass

    def teardown(self, site):
        raise drills.DrillError("loadbalancers.yml failed")


def test_a_failed_teardown_keeps_the_result_and_the_earlier_error(monkeypatch):
    class _Site:
        url = "http://127.0.0.1:8080"
    measured = {"drill": "teardown-fails", "met": True}

    def run_measured(*args):
        raise drills.DrillError("rollback.yml failed")
    monkeypatch.setattr(drills, "run_measured", run_measured)
    with pytest.raises(drills.DrillError) as error:
        drills.run_drill(_Site(), _TeardownFails, settings=None, run_dir=None)
    assert "its set-up could not be undone: loadbalancers.yml failed (and before it: rollback.yml failed)" in str(error.value)
    monkeypatch.setattr(drills, "run_measured", lambda *args: measured)
    with pytest.raises(drills.DrillError) as error:
        drills.run_drill(_Site(), _TeardownFails, settings=None, run_dir=None)
    assert error.value.result is measured


def test_run_drill_reports_a_failed_setup_and_still_tears_down():
    class _Site:
        url = "http://127.0.0.1:8080"
    site = _Site()
    outcome = drills.run_drill(site, _SetupFails, settings=None, run_dir=None)
    assert outcome["met"] is False and outcome["requests"] == 0
    assert outcome["why"] == "the drill failed: its set-up: the balancer said no"
    assert outcome["details"] == {"tls": "half done"}
    assert _SetupFails.last.torn_down == 1 and site.url == "http://127.0.0.1:8080"


def test_inventory_option(monkeypatch):
    monkeypatch.delenv("DRILLS_INVENTORY", raising=False)
    assert drills.parse_args([]).inventory == str(ROOT / "inventories" / "lab")
    monkeypatch.setenv("DRILLS_INVENTORY", "/srv/site/inventory")
    assert drills.parse_args([]).inventory == "/srv/site/inventory"


# ---- wrk with scripts/drills.lua, against a local server ---------------------------------------

class _Cycling(http.server.BaseHTTPRequestHandler):
    """Answers in turn: 200, 200 with X-Cache: stale, 503 with Retry-After, 500."""

    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()

    def do_GET(self):
        with self.lock:
            turn = _Cycling.count % 4
            _Cycling.count += 1
        status, headers = [(200, {}), (200, {"X-Cache": "stale"}), (503, {"Retry-After": "5"}), (500, {})][turn]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_the_lua_script_counts_statuses_headers_and_failure_times():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Cycling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.time()
        load = drills.Load(f"http://127.0.0.1:{server.server_address[1]}", "drills.test", ["/"], 2, 20, 5)
        time.sleep(1.5)
        load.check_running()
        figures, outputs = load.stop()
        ended = time.time()
    finally:
        server.shutdown()
    lua = figures["lua"]
    assert lua is not None, outputs
    statuses = lua["statuses"]
    assert set(statuses) == {"200", "503", "500"}, statuses
    assert lua["retry_after_503"] == statuses["503"]
    assert 0 < lua["stale"] <= statuses["200"]
    assert figures["non2xx"] == statuses["503"] + statuses["500"] == lua["failures"] == len(lua["failure_times"])
    assert set(lua["failure_statuses"]) == {500, 503}
    assert all(started <= t <= ended for t in lua["failure_times"])
    assert figures["per_path"]["/"]["requests"] == figures["requests"]
