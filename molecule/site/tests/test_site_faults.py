"""Faults of an ordinary week, under a steady load through the balancer: the site answers every GET.

One web host's Apache killed (`kill -9` of every process of the unit): it refuses connections at once,
so with leastconn it always has the fewest, and HAProxy's retries went back to it until 3 checks
failed. Two failed connections now mark it down (haproxy_app_error_limit), the retries go to the other
host, and its checks bring it back once systemd has restarted Apache."""

import time

import pytest
from helpers import DOMAIN, LB, WEB, PacedLoad, lab_image_only, stat_rows

testinfra_hosts = [LB]

CONNECTIONS = 32
DELAY_MS = 200


@pytest.fixture(scope="module")
def webs(host):
    return {w: host.get_host(f"docker://{w}") for w in WEB}


def app_status(host, web):
    """The web host's status in the balancer's checked app backend (UP, DOWN, ...)."""
    return next(r["status"] for r in stat_rows(host) if r.get("pxname") == "app" and r.get("svname") == web)


def wait_up(host, web, timeout=90):
    deadline = time.monotonic() + timeout
    while app_status(host, web) != "UP":
        assert time.monotonic() < deadline, f"{web} is not UP in the balancer after {timeout} s"
        time.sleep(1)


@lab_image_only
def test_a_killed_apache_costs_no_failed_get(host, webs):
    web = WEB[0]
    for w in WEB:
        wait_up(host, w)
    load = PacedLoad(LB, DOMAIN, "/", CONNECTIONS, DELAY_MS)
    try:
        time.sleep(3)
        webs[web].check_output("systemctl kill --signal=KILL apache2")
        # Down at once, not after 3 failed checks (2 s + 2 x 1 s at the earliest).
        deadline = time.monotonic() + 1.5
        while app_status(host, web) == "UP" and time.monotonic() < deadline:
            time.sleep(0.2)
        marked = app_status(host, web)
        time.sleep(3)
        result = load.stop()
    finally:
        load.kill()
        webs[web].run("systemctl start apache2")
    wait_up(host, web)
    assert marked.startswith("DOWN"), f"{web} was {marked} in the balancer 1.5 s after Apache died"
    assert result["requests"] > 200, result["output"]
    assert result["non_2xx"] == 0, f"{result['non_2xx']} non-2xx responses while Apache died:\n{result['output']}"
    assert result["socket_errors"] == 0, result["output"]
