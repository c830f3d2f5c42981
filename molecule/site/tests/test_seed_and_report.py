"""The site as `make lab` leaves it: demo data seeded once, and a tuning report whose numbers are the
ones the services run with. Runs before test_site.py and the rolling deploys (file order)."""

import re

from helpers import BACKENDS, LB, WEB, api, get, playbook, recap, server_limits

testinfra_hosts = [LB]


def maxconn(host, web):
    """The live per-server limit (show stat, column slim) of a web host in backend app."""
    return int(server_limits(host, web)["app"])


def test_pages_show_the_demo_data(host):
    status, _, body = get(host, "/")
    assert status == 200
    assert "League 01" in body and "Player 0001-01" in body
    status, _, body = get(host, "/leaderboard/")
    assert status == 200
    assert "Team 0" in body


def data(host, path):
    """A page without its footer, which names the release and the web host that served it."""
    status, _, body = get(host, path)
    return status, re.sub(r"<footer>.*?</footer>", "", body, flags=re.S)


def test_seeding_again_changes_nothing(host):
    web = host.get_host(f"docker://{WEB[0]}")
    before = data(host, "/")
    out = web.check_output("scoreboard-manage seed_demo --if-empty")
    assert out.startswith("nothing to do"), out
    assert data(host, "/") == before


def test_tuning_report_matches_the_live_services(host):
    rc, out = playbook("tuning-report.yml", "-e", "tuning_report_fail_on_drift=true")
    assert rc == 0, out[-6000:]
    assert "All live values match the computed ones." in out
    assert all(changed == 0 and failed == 0 for changed, failed in recap(out).values()), recap(out)
    for web in WEB:
        # The concurrency the report prints is the one Apache runs and HAProxy limits the host to.
        processes, threads, concurrency = map(int, re.search(
            rf"^\s*{web}\s+WSGI processes x threads\s+(\d+) x (\d+) = (\d+)", out, re.M).groups())
        site = host.get_host(f"docker://{web}").check_output("cat /etc/apache2/sites-available/*.conf")
        assert re.search(rf"WSGIDaemonProcess \S+ processes={processes} threads={threads} ", site)
        assert concurrency == processes * threads == maxconn(host, web)
    # None of the scenario's secrets reaches the report's output.
    for secret in ("molecule-app-password", "molecule-migrate-password", "molecule-stats-password"):
        assert secret not in out


def test_tuning_report_flags_a_limit_changed_by_hand(host):
    web = WEB[0]
    configured = maxconn(host, web)
    for backend in BACKENDS:
        api(host, f"set maxconn server {backend}/{web} {configured + 1}")
    try:
        rc, out = playbook("tuning-report.yml", "-e", "tuning_report_fail_on_drift=true")
        assert rc != 0
        assert re.search(rf"^\s*{web}\s+HAProxy maxconn on {LB}\s+{configured}\s+{configured + 1}\s+DRIFT", out, re.M), out
    finally:
        for backend in BACKENDS:
            api(host, f"set maxconn server {backend}/{web} {configured}")
    assert maxconn(host, web) == configured
