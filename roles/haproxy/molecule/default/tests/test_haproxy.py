"""The balancer in front of two stand-in backends, tested from the balancer like a client would."""

import pathlib
import re
import sys
import time

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "molecule" / "resources" / "tests"))
from scenario import (  # noqa: E402
    expect_stop_before_change, http_get, lost_handler_is_made_up, other_host, run_playbook, runtime_api, stat_rows)

testinfra_hosts = ["haproxy-lb"]

DEFAULTS = yaml.safe_load((pathlib.Path(__file__).parents[3] / "defaults" / "main.yml").read_text())
SCENARIO = yaml.safe_load((pathlib.Path(__file__).parents[1] / "molecule.yml").read_text())
INVENTORY = SCENARIO["provisioner"]["inventory"]
LB_VARS = {**DEFAULTS, **INVENTORY["host_vars"]["haproxy-lb"]}
DOMAIN = INVENTORY["group_vars"]["all"]["site_domain"]
WEB = ["haproxy-web1", "haproxy-web2"]
SOCKET = LB_VARS["haproxy_runtime_socket"]
URL = f"http://127.0.0.1:{LB_VARS['haproxy_http_port']}"
HEALTHZ_FAIL = "/var/tmp/healthz-fail"


def concurrency(name):
    web = {**INVENTORY["group_vars"]["webservers"], **INVENTORY["host_vars"][name]}
    return web["apache_wsgi_processes"] * web["apache_wsgi_threads"]


def get(host, path="/", vhost=None, url=URL, extra=""):
    """Status, headers (lower-case names) and body of one request (curl gives up after 20 s)."""
    return http_get(host, path, vhost=vhost, url=url, extra=extra, timeout=20)


def served_by(host, n, path="/", vhost=None):
    return [get(host, path, vhost)[1].get("x-served-by") for _ in range(n)]


def api(host, command):
    return runtime_api(host, command, SOCKET)


def stat(host):
    """`show stat` rows keyed by (backend, server)."""
    return {(r["pxname"], r["svname"]): r for r in stat_rows(host, SOCKET)}


def backends_of(host, server):
    return sorted(px for (px, sv) in stat(host) if sv == server)


def set_state(host, server, state):
    """What community.general.haproxy does without `backend`: every backend that holds the server."""
    for backend in backends_of(host, server):
        api(host, f"set server {backend}/{server} state {state}")


def wait_until(predicate, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout}s waiting until {what}")


def app_status(host, server, backend="app"):
    return stat(host)[(backend, server)]["status"]


@pytest.fixture
def restore(host):
    """Put every server back in service and every /healthz back to 200 after the test."""
    yield
    for name in WEB:
        other_host(name).run(f"rm -f {HEALTHZ_FAIL}")
        set_state(host, name, "ready")
    for name in WEB:
        wait_until(lambda n=name: app_status(host, n).startswith("UP"), f"app/{name} is UP again")
        wait_until(lambda n=name: app_status(host, n, "static").startswith("UP"), f"static/{name} is UP again")


def test_site_answers_from_both_web_hosts_in_turn(host):
    seen = served_by(host, 8)
    assert set(seen) == set(WEB), seen
    assert all(seen.count(name) >= 2 for name in WEB), seen


@pytest.mark.parametrize("path,body", [("/static/x.css", "/* static from "), ("/media/x.txt", "media from ")])
def test_static_paths_go_to_the_static_tier(host, path, body):
    status, headers, text = get(host, path)
    assert status == 200
    # Only the static port serves these files; the app port would answer "app on <host>".
    assert text.startswith(body)
    assert headers["x-served-by"] in WEB


@pytest.mark.parametrize("name", WEB)
def test_direct_vhost_reaches_exactly_that_host(host, name):
    assert set(served_by(host, 4, vhost=f"{name}.direct.{DOMAIN}")) == {name}
    # The port a client used does not matter (e.g. the lab's published port).
    assert get(host, vhost=f"{name.upper()}.direct.{DOMAIN}:8080")[1]["x-served-by"] == name


def test_unknown_direct_vhost_is_not_balanced(host):
    assert get(host, vhost=f"nosuchhost.direct.{DOMAIN}")[0] == 404


def test_per_server_maxconn_is_the_web_hosts_concurrency(host):
    rows = stat(host)
    for name in WEB:
        for backend in ("app", "app_failopen"):
            assert int(rows[(backend, name)]["slim"]) == concurrency(name), (backend, name)


def test_overload_waits_in_the_queue_not_in_the_servers(host):
    """More slow requests than all servers' maxconn together: the excess queues in HAProxy, none fails."""
    total = sum(concurrency(n) for n in WEB) * 2
    out = host.check_output(
        f"seq {total} | xargs -P {total} -I{{}} curl -s -o /dev/null -m 60 -w '%{{http_code}}\\n' {URL}/slow"
    )
    codes = out.split()
    assert codes == ["200"] * total, codes
    rows = stat(host)
    assert int(rows[("app", "BACKEND")]["qmax"]) > 0, "requests above maxconn should have waited in the queue"
    for name in WEB:
        assert int(rows[("app", name)]["smax"]) <= concurrency(name)
        # Web hosts of different sizes: no queue of their own (maxqueue), the backend's holds the rest.
        assert rows[("app", name)]["qlimit"] in ("", "0")


# The scenario's balancer has a certificate: the stats page is served over TLS (self-signed: -k).
STATS_SCHEME = "https" if LB_VARS.get("haproxy_tls_certificate") else "http"


def test_stats_need_credentials_over_tls(host):
    port = LB_VARS["haproxy_stats_port"]
    code = "curl -s -k -o /dev/null -w '%{http_code}' "
    stats = f"{STATS_SCHEME}://127.0.0.1:{port}/"
    assert host.check_output(code + stats) == "401"
    assert host.check_output(code + f"-u admin:wrong-password {stats}") == "401"
    user, password = LB_VARS["haproxy_stats_user"], LB_VARS["haproxy_stats_password"]
    assert host.check_output(code + f"-u '{user}:{password}' {stats}") == "200"
    # The credentials are never taken over plain HTTP.
    if STATS_SCHEME == "https":
        assert host.run(code + f"-u '{user}:{password}' http://127.0.0.1:{port}/").stdout != "200"


def test_hsts_on_https_responses_only(host):
    _, headers, _ = get(host, url=f"https://127.0.0.1:{LB_VARS['haproxy_https_port']}", extra="-k")
    assert headers["strict-transport-security"] == "max-age=31536000"
    _, headers, _ = get(host)
    assert "strict-transport-security" not in headers


def test_a_certificate_others_can_read_is_refused(host):
    """The PEM holds the private key: a mode that lets another user read it stops the run before any change."""
    pem = LB_VARS["haproxy_tls_certificate"]
    host.check_output(f"chmod 0644 {pem}")
    try:
        rc, out = run_playbook(ROOT / "playbooks" / "loadbalancers.yml", "--check",
                               env_extra={"ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_FACT_CACHING": "memory"},
                               timeout=600)
        flat = " ".join(out.split())
        assert rc != 0 and "haproxy_tls_certificate" in flat and "mode 0644" in flat and "chmod 0600" in flat, flat[-3000:]
    finally:
        host.check_output(f"chmod 0600 {pem}")


def test_config_is_private_to_root_and_haproxy(host):
    cfg = host.file("/etc/haproxy/haproxy.cfg")
    assert (cfg.user, cfg.group, cfg.mode) == ("root", "haproxy", 0o640)


def test_direct_vhost_and_stats_refused_outside_admin_networks(host):
    """A backend container stands for the public: it is not in haproxy_admin_networks."""
    lb_address = host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"]["address"]
    outsider = other_host("haproxy-web1")
    code = "curl -s -o /dev/null -w '%{http_code}' "
    assert outsider.check_output(code + f"http://{lb_address}/") == "200"
    assert outsider.check_output(code + f"-H 'Host: haproxy-web1.direct.{DOMAIN}' http://{lb_address}/") == "403"
    user, password = LB_VARS["haproxy_stats_user"], LB_VARS["haproxy_stats_password"]
    stats = f"{STATS_SCHEME}://{lb_address}:{LB_VARS['haproxy_stats_port']}/"
    assert outsider.check_output(code + f"-k -u '{user}:{password}' {stats}") == "403"


def test_outsiders_get_no_admin_page_no_internal_header_and_cannot_forge_their_address(host):
    """From outside the admin networks: /readyz and /metrics refused, X-Served-By removed, and the
    X-Forwarded-For the app receives is the outsider's address alone, whatever the client sent."""
    facts = "gather_subset=network"
    lb_address = host.ansible("setup", facts)["ansible_facts"]["ansible_default_ipv4"]["address"]
    outsider = other_host("haproxy-web1")
    outsider_address = outsider.ansible("setup", facts)["ansible_facts"]["ansible_default_ipv4"]["address"]
    code = "curl -s -o /dev/null -w '%{http_code}' "
    # Also the forms Apache resolves to the same view: encoded, doubled slashes, dot segments.
    for path in ("/readyz", "/metrics", "/%6detrics", "//readyz", "/x/../readyz", "/metrics/"):
        assert outsider.check_output(code + f"--path-as-is http://{lb_address}{path}") == "403", path
    head = outsider.check_output(f"curl -s -D - -o /dev/null http://{lb_address}/").lower()
    assert head.startswith("http/1.1 200") and "x-served-by" not in head, head
    forged = outsider.check_output(f"curl -s -H 'X-Forwarded-For: 203.0.113.9' -H 'Forwarded: for=203.0.113.9' "
                                   f"http://{lb_address}/echo-forwarded-for")
    assert forged.strip() == outsider_address
    # The admin networks (here loopback) still see which host answered.
    status, headers, _ = get(host)
    assert status == 200 and headers["x-served-by"] in WEB


def test_a_body_above_the_cap_is_refused_before_any_server(host):
    """haproxy_max_request_body_mb: a larger Content-Length gets 413 from the balancer, no server sees it."""
    cap = int(LB_VARS["haproxy_max_request_body_mb"]) * 1048576
    code = "curl -s -o /dev/null -w '%{http_code}' --data-binary @/tmp/body " + URL + "/"
    sessions = int(stat(host)[("app", "BACKEND")]["stot"])
    try:
        host.check_output(f"head -c {cap + 1} /dev/zero > /tmp/body")
        assert host.check_output(code) == "413"
        assert int(stat(host)[("app", "BACKEND")]["stot"]) == sessions
        host.check_output("head -c 1000 /dev/zero > /tmp/body")
        assert host.check_output(code) == "200"
    finally:
        host.run("rm -f /tmp/body")


def test_tls_termination(host):
    status, headers, _ = get(host, url=f"https://127.0.0.1:{LB_VARS['haproxy_https_port']}", extra="-k")
    assert status == 200
    assert headers["x-served-by"] in WEB


@pytest.fixture
def tls_redirect(host):
    """The balancer converged with haproxy_tls_redirect on; converged back as the scenario has it after."""
    def converge(redirect):
        rc, out = run_playbook(ROOT / "playbooks" / "loadbalancers.yml", extra_vars={"haproxy_tls_redirect": redirect},
                               env_extra={"ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_FACT_CACHING": "memory"},
                               timeout=600)
        assert rc == 0, out[-3000:]
    converge(True)
    yield
    converge(False)


def test_tls_redirect_spares_the_direct_vhosts(host, tls_redirect):
    """Plain HTTP is redirected to HTTPS, but a deploy's direct check over plain HTTP still reaches its host."""
    status, headers, _ = get(host)
    assert status == 301 and headers["location"].startswith("https://"), (status, headers)
    for name in WEB:
        assert set(served_by(host, 2, vhost=f"{name}.direct.{DOMAIN}")) == {name}
    status, headers, _ = get(host, url=f"https://127.0.0.1:{LB_VARS['haproxy_https_port']}", extra="-k")
    assert status == 200 and headers["x-served-by"] in WEB


def test_request_logs_reach_the_journal_with_timers_and_server(host):
    marker = f"/log-marker-{int(time.time())}"
    get(host, marker)

    def logged():
        out = host.run(f"journalctl -q --since -2min -t haproxy -o cat | grep -F '{marker}'").stdout
        # frontend, backend/server, timers TR/Tw/Tc/Tr/Ta, status
        return re.search(r"www app/haproxy-web\d \d+/\d+/\d+/\d+/\d+ 200 ", out)

    wait_until(logged, "the request is in the journal", timeout=15)


def test_runtime_api_is_admin_level_for_root_and_haproxy_only(host):
    sock = host.file(SOCKET)
    assert sock.is_socket
    assert (sock.user, sock.group, sock.mode) == ("root", "haproxy", 0o660)
    assert "Version:" in api(host, "show info")
    assert host.run(f"echo 'show info' | runuser -u nobody -- socat stdio {SOCKET}").rc != 0


def test_drained_host_gets_no_balanced_traffic_but_answers_directly(host, restore):
    api(host, "set server app/haproxy-web1 state drain")
    wait_until(lambda: app_status(host, "haproxy-web1").startswith("DRAIN"), "app/haproxy-web1 is draining")
    assert set(served_by(host, 6)) == {"haproxy-web2"}
    assert set(served_by(host, 3, vhost=f"haproxy-web1.direct.{DOMAIN}")) == {"haproxy-web1"}


def test_host_in_maintenance_answers_directly(host, restore):
    set_state(host, "haproxy-web2", "maint")
    wait_until(lambda: app_status(host, "haproxy-web2").startswith("MAINT"), "app/haproxy-web2 is in maintenance")
    assert set(served_by(host, 6)) == {"haproxy-web1"}
    assert set(served_by(host, 3, vhost=f"haproxy-web2.direct.{DOMAIN}")) == {"haproxy-web2"}


@pytest.fixture
def dead_web1(host):
    """haproxy-web1's server stops answering while HAProxy still believes it up (its checks paused)."""
    web1 = other_host("haproxy-web1")
    api(host, "disable health app/haproxy-web1")
    web1.check_output("systemctl stop nginx")
    yield
    web1.check_output("systemctl start nginx")
    api(host, "enable health app/haproxy-web1")
    wait_until(lambda: app_status(host, "haproxy-web1").startswith("UP"), "app/haproxy-web1 is UP again")


def test_a_dead_server_costs_no_failed_request(host, dead_web1):
    """Connections refused by a server HAProxy still sends to are retried on the other one."""
    assert set(served_by(host, 8)) == {"haproxy-web2"}
    code = "curl -s -o /dev/null -w '%{http_code}' "
    # A failed connection means the request never left: any method is retried.
    assert [host.check_output(code + f"-X POST -d x=1 {URL}/") for _ in range(4)] == ["200"] * 4
    # Counted as redispatches: option redispatch sends each retry to another server.
    row = stat(host)[("app", "haproxy-web1")]
    assert int(row["wretr"]) + int(row["wredis"]) > 0


def test_slow_uploads_hold_no_server_slot(host):
    """More clients sending a body at 20 bytes/s than the web tier has slots: the others still get answers.

    HAProxy waits for each body (option http-buffer-request) within timeout http-request, then answers 408;
    no upload ever reached a server."""
    uploaders = sum(concurrency(n) for n in WEB) + 4
    script = f"""
    head -c 4096 /dev/zero > /tmp/upload
    seq {uploaders} | xargs -P {uploaders} -I{{}} curl -s -o /dev/null -m 60 --limit-rate 20 \\
      -X POST --data-binary @/tmp/upload -w '%{{http_code}}\\n' {URL}/ > /tmp/uploads &
    sleep 2
    for i in $(seq 10); do curl -s -o /dev/null -m 5 -w '%{{http_code}}\\n' {URL}/; done
    wait
    """
    before = {n: int(stat(host)[("app", n)]["stot"]) for n in WEB}
    codes = host.check_output(f"bash -c \"$(cat <<'EOF'\n{script}\nEOF\n)\"").split()
    assert codes == ["200"] * 10, codes
    # HAProxy answered 408 (or closed on curl while it was still sending: 000); no upload was answered 2xx.
    uploads = host.file("/tmp/uploads").content_string.split()
    assert len(uploads) == uploaders and not [c for c in uploads if c.startswith("2")], uploads
    # The servers saw the 10 GETs only.
    assert sum(int(stat(host)[("app", n)]["stot"]) - before[n] for n in WEB) == 10


def test_drain_survives_a_reload(host, restore):
    api(host, "set server app/haproxy-web1 state drain")
    host.check_output("systemctl reload haproxy")
    time.sleep(2)
    assert app_status(host, "haproxy-web1").startswith("DRAIN")
    assert set(served_by(host, 4)) == {"haproxy-web2"}


def test_reload_under_load_drops_nothing(host):
    """Requests in a loop and slow requests in flight while HAProxy reloads three times."""
    script = f"""
    set -u
    rm -f /tmp/reload-loop /tmp/reload-slow
    (for i in $(seq 1 300); do curl -s -o /dev/null -m 20 -w '%{{http_code}}\\n' {URL}/; done > /tmp/reload-loop) &
    loop=$!
    (seq 6 | xargs -P 6 -I{{}} curl -s -m 30 -o /dev/null -w '%{{http_code}} %{{size_download}}\\n' {URL}/slow \
      > /tmp/reload-slow) &
    slow=$!
    sleep 1
    for r in 1 2 3; do systemctl reload haproxy; sleep 1; done
    wait $loop $slow
    """
    host.check_output(f"bash -c \"$(cat <<'EOF'\n{script}\nEOF\n)\"")
    codes = host.file("/tmp/reload-loop").content_string.split()
    assert len(codes) == 300
    assert set(codes) == {"200"}, {c: codes.count(c) for c in set(codes)}
    slow = host.file("/tmp/reload-slow").content_string.split("\n")
    assert sorted(filter(None, slow)) == ["200 12288"] * 6


def test_fail_open_when_every_healthz_fails_but_maintenance_stays_out(host, restore):
    # An operator takes haproxy-web2 out, as a deploy does (every backend that holds it).
    set_state(host, "haproxy-web2", "maint")
    for name in WEB:
        other_host(name).check_output(f"touch {HEALTHZ_FAIL}")
    wait_until(lambda: app_status(host, "haproxy-web1").startswith("DOWN"), "app/haproxy-web1 fails its check")
    wait_until(lambda: app_status(host, "haproxy-web1", "static").startswith("DOWN"), "static/haproxy-web1 is down")
    # No server passes its check, yet the site answers: from the host that is not in maintenance.
    assert set(served_by(host, 6)) == {"haproxy-web1"}
    status, headers, body = get(host, "/static/x.css")
    assert (status, headers["x-served-by"]) == (200, "haproxy-web1")
    # Both stay reachable directly, down or in maintenance.
    for name in WEB:
        assert set(served_by(host, 2, vhost=f"{name}.direct.{DOMAIN}")) == {name}


@pytest.mark.parametrize(
    "extra_vars,message",
    [
        # An inventory without web hosts: the playbook passes an empty groups['webservers'].
        ({"haproxy_app_servers": []}, "haproxy_app_servers (0 hosts; the playbook passes groups['webservers'])"),
        ({"haproxy_admin_networks": ["127.0.0.0/8", "10.1.2.3"]}, "these are not: ['10.1.2.3']"),
        # Every host's private address is broken: the site plan names each host, with the variable.
        ({"site_private_address": "not-an-address"},
         "haproxy-web1: no usable private address (got 'not-an-address' from site_private_address)"),
        # A retry that replays a slow GET on every web host in turn.
        ({"haproxy_retry_on": "conn-failure response-timeout"}, "has ['response-timeout'], which replay a request"),
        # HAProxy reads a bare number as milliseconds: 60 meant as a minute would cut every request at 60 ms.
        ({"haproxy_timeout_server": 60}, "haproxy_timeout_server is 60 without a unit, which HAProxy reads as 60 ms"),
        ({"haproxy_admin_networks": ["0.0.0.0/0"]}, "haproxy_admin_networks has ['0.0.0.0/0'], every address"),
        ({"haproxy_static_paths": ["/"]}, "haproxy_static_paths has '/', which sends every request"),
        # A short stats password is refused, and the message says so without printing it.
        ({"haproxy_stats_password": "pass123"}, "(at least 8 characters;"),
    ],
    ids=["no-web-hosts", "admin-network-not-cidr", "web-host-without-address", "retry-replays-slow-requests",
         "time-without-unit", "admin-network-everyone", "static-path-root", "stats-password-short"],
)
def test_bad_input_stops_before_any_change(host, extra_vars, message):
    failures = expect_stop_before_change(
        ROOT / "playbooks" / "loadbalancers.yml",
        extra_vars=extra_vars,
        env_extra={"ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_FACT_CACHING": "memory"},
        json_output=True,
        timeout=600,
        unchanged=["haproxy-lb"],
        watch=lambda: host.file("/etc/haproxy/haproxy.cfg").md5sum,
    )
    assert any(message in f for f in failures), failures
    assert not any("pass123" in f for f in failures), failures


@pytest.mark.parametrize("reload", [True, False], ids=["configuration-reload", "limit-restart"])
def test_a_run_stopped_before_its_handler_is_made_up_by_the_next(host, reload):
    """The configuration (a reload) or the open-file limit (a restart) written by a run killed before
    its handler: the next run applies it (the host tells, not a notification), the run after changes
    nothing."""
    path = "/etc/haproxy/haproxy.cfg" if reload else "/etc/systemd/system/haproxy.service.d/50-site-limits.conf"
    lost_handler_is_made_up(host, "haproxy-lb", "haproxy.service", [path], ROOT / "playbooks" / "loadbalancers.yml",
                            reload=reload,
                            env_extra={"ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_FACT_CACHING": "memory"},
                            timeout=600)
