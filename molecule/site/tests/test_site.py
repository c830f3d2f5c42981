"""The whole site through its balancer, tested from the balancer host as a client would."""

import re
import time

import pytest
from helpers import (BACKENDS, DB, DOMAIN, LB, SOCKET, WEB, api, forget_facts, get, http_get, lab_image_only,
                     other_host, playbook, recap, server_limits, stat_rows)

testinfra_hosts = [LB]


def set_state(host, server, state):
    """Drain, put in maintenance or make ready a web host in every app backend, as deploys do."""
    for backend in BACKENDS:
        api(host, f"set server {backend}/{server} state {state}")


def test_home_page_answered_by_both_web_hosts_in_turn(host):
    seen = set()
    for _ in range(8):
        status, headers, body = get(host, "/")
        assert status == 200
        assert int(headers["x-db-queries"]) >= 0
        seen.add(headers["x-served-by"])
    assert seen == set(WEB)


def test_readyz_is_ready_through_the_balancer(host):
    status, _, body = get(host, "/readyz")
    assert status == 200, body


def test_leaderboard_is_cached(host):
    statuses = [get(host, "/leaderboard/")[1].get("x-cache") for _ in range(3)]
    assert set(statuses) <= {"hit", "miss", "stale"}
    assert statuses[-1] == "hit"


def test_static_file_served_by_nginx_with_cache_headers(host):
    _, _, page = get(host, "/")
    match = re.search(r'/static/[^"\']+\.[0-9a-f]{12}\.css', page)
    assert match, "the page links a hashed stylesheet"
    status, headers, body = get(host, match.group(0))
    assert status == 200
    assert "immutable" in headers["cache-control"]
    assert "max-age=31536000" in headers["cache-control"]
    # Python never saw it: the app stamps every response it makes.
    assert "x-db-queries" not in headers
    assert headers.get("server", "").startswith("nginx")


@pytest.mark.parametrize("web", WEB)
def test_direct_vhost_reaches_exactly_that_host(host, web):
    for _ in range(4):
        status, headers, _ = get(host, "/healthz", vhost=f"{web}.direct.{DOMAIN}")
        assert status == 200
        assert headers["x-served-by"] == web


def test_a_web_host_judges_the_client_its_balancer_names(host, request):
    """Apache enforces the admin networks again behind the balancer (roles/apache apache_admin_*): a
    request from the balancer whose X-Forwarded-For names a client outside them (what a balancer that
    let one through would send) gets 403 on the direct vhost and /readyz; the balancer's own request
    (no X-Forwarded-For: its checks) and one naming an admin client answer."""
    web = other_host(WEB[0], request.config.option.ansible_inventory)
    url = "http://" + web.check_output("hostname -I").split()[0]

    def status(path, vhost, client=None):
        extra = f"-H 'X-Forwarded-For: {client}'" if client else ""
        return http_get(host, path, vhost=vhost, url=url, extra=extra)[0]

    direct = f"{WEB[0]}.direct.{DOMAIN}"
    assert status("/healthz", direct, "203.0.113.9") == 403
    assert status("/readyz", DOMAIN, "203.0.113.9") == 403
    assert status("/", DOMAIN, "203.0.113.9") == 200
    assert status("/healthz", direct) == 200
    assert status("/readyz", DOMAIN, "127.0.0.1") == 200


def test_drained_host_gets_no_traffic_but_answers_directly(host):
    drained, other = WEB
    set_state(host, drained, "drain")
    try:
        assert {get(host, "/")[1]["x-served-by"] for _ in range(6)} == {other}
        status, headers, _ = get(host, "/", vhost=f"{drained}.direct.{DOMAIN}")
        assert (status, headers["x-served-by"]) == (200, drained)
    finally:
        set_state(host, drained, "ready")


def test_site_answers_when_every_health_check_fails(host):
    """No death spiral: with every server marked down by its checks, traffic still flows."""
    for web in WEB:
        api(host, f"disable health app/{web}")
        api(host, f"set server app/{web} health down")
    try:
        statuses = [get(host, "/healthz")[0] for _ in range(6)]
        assert statuses == [200] * 6
    finally:
        for web in WEB:
            api(host, f"enable health app/{web}")
        wait_for_full_weight(host)


def wait_for_full_weight(host, timeout=120):
    """Wait until every web host is UP at its full weight in the app backend (past slowstart, 30 s)."""
    # The configured weight: `show stat` on HAProxy 3.0 has it (iweight), not on 2.6; the configuration always.
    full = re.search(r"^\s*default-server .*\bslowstart \S+ weight (\d+)", host.file("/etc/haproxy/haproxy.cfg").content_string,
                     re.M).group(1)
    deadline, rows = time.time() + timeout, []
    while time.time() < deadline:
        rows = [r for r in stat_rows(host, SOCKET) if r["pxname"] == "app" and r["svname"] in WEB]
        if len(rows) == len(WEB) and all(r["status"] == "UP" and r["weight"] == r.get("iweight", full) for r in rows):
            return
        time.sleep(1)
    raise AssertionError(f"the web hosts are not all UP at full weight after {timeout} s: {rows}")


def test_haproxy_runs_one_thread_per_cpu_it_can_use(host):
    """nbthread comes from the site plan's CPUs for the balancer (cgroup quota included), and HAProxy's
    worker runs exactly that many threads, never more than the CPUs the host has."""
    config = host.file("/etc/haproxy/haproxy.cfg").content_string
    nbthread = int(re.search(r"^\s*nbthread (\d+)$", config, re.M).group(1))
    worker = host.check_output("pgrep -n -x haproxy")
    threads = int(re.search(r"^Threads:\s+(\d+)$", host.file(f"/proc/{worker}/status").content_string, re.M).group(1))
    assert threads == nbthread
    assert 1 <= nbthread <= int(host.check_output("nproc"))


def apache_connections(host):
    """{web host address: established TCP connections from this balancer to its port 80}, from /proc/net/tcp."""
    found = {}
    for line in host.file("/proc/net/tcp").content_string.splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        address, port = remote.split(":")
        if state == "01" and int(port, 16) == 80:
            ip = ".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
            found[ip] = found.get(ip, 0) + 1
    return found


def test_balancer_keeps_its_connections_to_apache_and_no_more_than_maxconn_idle(host):
    """Keep-alive to the web tier: after requests end, the balancer still holds connections to Apache
    (reused by later requests instead of a new one each), at most each server's maxconn (pool-max-conn),
    each of which the prefork sizing gives a process."""
    # In one burst on the balancer, then read at once: HAProxy closes idle server connections over
    # time (pool-purge-delay, 5 s by default), and requests made one by one through testinfra took long
    # enough under the suite's load that a web host's last idle connection was gone before the count.
    requests = 3 * len(WEB) * 4
    codes = host.check_output(f"for i in $(seq {requests}); do curl -s -m 30 -o /dev/null -w '%{{http_code}} ' "
                              f"-H 'Host: {DOMAIN}' http://127.0.0.1/healthz; done")
    assert codes.split() == ["200"] * requests
    held = apache_connections(host)
    config = host.file("/etc/haproxy/haproxy.cfg").content_string
    for web in WEB:
        address, maxconn, pool = re.search(
            rf"^\s*server {re.escape(web)} ([0-9.]+):80 maxconn (\d+) maxqueue \d+ pool-max-conn (\d+)$", config,
            re.M).groups()
        assert pool == maxconn == server_limits(host, web)["app"]
        assert 1 <= held.get(address, 0) <= int(maxconn), (web, held, maxconn)


def test_stats_refuse_anonymous_users(host):
    out = host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8404/")
    assert out == "401"


@lab_image_only
def test_each_tier_bounds_a_slow_request_inside_the_next(host):
    """The site plan's time budget, as each tier runs it: MariaDB stops the app user's statements after 10 s,
    the app's driver gives up after 15 s, mod_wsgi after 30 s, HAProxy after 60 s (docs/operations.md)."""
    db, web = other_host(DB), other_host(WEB[0])
    limits = db.check_output("mariadb -N -B -e \"SELECT DISTINCT User, max_statement_time FROM mysql.user "
                             "WHERE User LIKE 'site%'\"").splitlines()
    assert sorted(line.split("\t")[1] for line in limits) == ["0.000000", "10.000000"], limits
    environment = web.file("/srv/scoreboard/shared/environment").content_string
    assert re.search(r'^DATABASE_URL="mysql://[^"]*[?&]read_timeout=15&write_timeout=15"$', environment, re.M)
    assert re.search(r"^WSGIDaemonProcess .* request-timeout=30$", web.file(
        "/etc/apache2/sites-available/scoreboard.conf").content_string, re.M)
    assert re.search(r"^\s*timeout server 60s$", host.file("/etc/haproxy/haproxy.cfg").content_string, re.M)


@pytest.mark.parametrize("web", WEB)
def test_the_apps_database_connections_use_tls_checked_against_the_database_ca(web):
    """Every web host has the database host's CA; the app's connection (the running release's settings,
    through DATABASE_URL's ssl-ca) is encrypted; the app's accounts REQUIRE SSL."""
    db, h = other_host(DB), other_host(web)
    ca = db.file("/etc/mysql/tls/ca.pem").content_string
    assert h.file("/srv/scoreboard/shared/database-ca.pem").content_string == ca
    code = ("from django.db import connection as c; cur = c.cursor(); "
            "cur.execute(\"SHOW SESSION STATUS LIKE 'Ssl_version'\"); "
            "print(cur.fetchone()[1], c.settings_dict['OPTIONS'].get('ssl'))")
    out = h.check_output("runuser -u scoreboard -- scoreboard-manage shell -c %s", code).splitlines()[-1]
    assert re.fullmatch(r"TLSv1\.[23] \{'ca': '/srv/scoreboard/shared/database-ca\.pem'\}", out), out
    accounts = [line.split("\t") for line in db.check_output(
        "mariadb -N -B -e %s", "SELECT User, Host FROM mysql.user WHERE User LIKE 'site%'").splitlines()]
    assert accounts and all("REQUIRE SSL" in db.check_output("mariadb -N -B -e %s", f"SHOW CREATE USER '{u}'@'{h}'")
                            for u, h in accounts)


@pytest.mark.parametrize("tier", ["dbservers", "cacheservers", "webservers", "loadbalancers"])
def test_tier_playbook_alone_needs_no_fact_cache_and_changes_nothing(host, tier):
    """Each tier that sizes itself from another tier computes what it needs in its own run."""
    forget_facts()
    rc, out = playbook(f"{tier}.yml")
    assert rc == 0, out[-6000:]
    changed = {h: c for h, (c, _) in recap(out).items()}
    assert changed and set(changed.values()) == {0}, changed


@lab_image_only
def test_a_tier_playbook_stops_before_any_change_when_the_balancers_maxconn_would_drift(host):
    """webservers.yml with a new concurrency would leave HAProxy's per-server maxconn on the old one."""
    # The check reads servers at full weight only (one in slowstart may be a rollout's canary).
    wait_for_full_weight(host)
    running = int(server_limits(host, WEB[0])["app"])
    # Also when the run's --limit leaves the balancer out.
    for limit in ([], ["--limit", WEB[0]]):
        rc, out = playbook("webservers.yml", "-e", f"apache_wsgi_processes={running + 1}", *limit)
        assert rc != 0, out[-6000:]
        text = " ".join(out.split())
        assert "HAProxy runs per-server maxconn that differ from the site plan" in text, out[-6000:]
        assert f"on {LB}, app/{WEB[0]} runs {running}, the plan says {running + 1}" in text, out[-6000:]
        assert set(c for c, _ in recap(out).values()) == {0}, recap(out)
        assert int(server_limits(host, WEB[0])["app"]) == running


@lab_image_only
def test_a_tier_playbook_brings_max_connections_back_live_without_a_restart(host):
    """A MariaDB running below the plan's max_connections is set back live by any tier playbook."""
    db = other_host(DB)
    query = "mariadb -N -B -e 'SELECT @@GLOBAL.max_connections'"
    planned = db.check_output(query)
    pid = db.check_output("systemctl show -p MainPID --value mariadb")
    db.check_output("mariadb -e 'SET GLOBAL max_connections = 20'")
    # A run whose --limit leaves the database out cannot set it: it stops before any change.
    rc, out = playbook("webservers.yml", "--limit", WEB[0])
    assert rc != 0, out[-6000:]
    assert f"{DB} runs 20" in " ".join(out.split()), out[-6000:]
    assert set(c for c, _ in recap(out).values()) == {0}, recap(out)
    rc, out = playbook("cacheservers.yml")
    assert rc == 0, out[-6000:]
    assert db.check_output(query) == planned
    assert db.check_output("systemctl show -p MainPID --value mariadb") == pid

