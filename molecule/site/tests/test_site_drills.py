"""Game-day drills against the whole-site scenario: scripts/drills.py (the harness `make drills` runs on
the lab), with this scenario's containers, each drill's target asserted (docs/operations.md).

Runs last (its file name sorts last): the drills restart services, stop a web host, and deploy and roll
back a release over HTTPS (deploy-rollback-tls runs the bundle's playbooks against this scenario's
inventory, with TLS turned on for the drill and off again). The slow
database holds its lock DRILLS_LOCK_SECONDS here (30 s, past MariaDB's max_statement_time of 10 s),
instead of the lab's 60 s, to keep the suite within its budget.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from helpers import BUNDLE, DB, DOMAIN, LB, SUFFIX, WEB, lab_image_only

pytestmark = lab_image_only

CACHE = f"site-cache{SUFFIX}"
APP_ROOT = "/srv/scoreboard"
DRILLS = ["apache-kill", "log-rotation", "healthz-failing", "web-host-stopped", "memcached-restart",
          "database-restart", "slow-database", "slow-uploads", "deploy-rollback-tls"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every drill, run once: {drill: its result object from results.json}."""
    address = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", LB],
        capture_output=True, text=True, check=True).stdout.strip()
    out = tmp_path_factory.mktemp("drills")
    releases_before = current_releases()
    proc = subprocess.run(
        [sys.executable, str(BUNDLE / "scripts" / "drills.py"), "--only", ",".join(DRILLS), "--out", str(out),
         "--lb", LB, "--url", f"http://{address}", "--host", DOMAIN, "--web", ",".join(WEB), "--db", DB,
         "--cache", CACHE, "--inventory", str(pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)],
        capture_output=True, text=True, timeout=2400, check=False,
        env={**os.environ, "DRILLS_LOCK_SECONDS": "30"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    found = json.loads((out / "latest" / "results.json").read_text())
    return {"releases_before": releases_before, **{r["drill"]: r for r in found}}


def current_releases():
    """{web container: the release its `current` link points to}."""
    return {web: subprocess.run(["docker", "exec", web, "readlink", "-f", f"{APP_ROOT}/current"],
                                capture_output=True, text=True, check=True).stdout.strip() for web in WEB}


@pytest.mark.parametrize("drill", DRILLS)
def test_each_drill_meets_its_target(results, drill):
    r = results[drill]
    figures = {k: r.get(k) for k in ("requests", "non2xx", "socket_errors", "timeouts", "error_seconds",
                                     "recovery_seconds")}
    assert r["met"], f"{drill}: {r.get('target')}: {r.get('why', '')} {figures} {r.get('details', '')}"


def test_mariadb_stopped_the_statements_that_waited_on_the_lock(results):
    """The slow-database drill's requests were ended by the app user's MAX_STATEMENT_TIME (10 s), not by a
    timeout further out: MariaDB counts each statement it stopped."""
    assert results["slow-database"]["met"]
    out = subprocess.run(["docker", "exec", DB, "mariadb", "-N", "-B", "-e",
                          "SHOW GLOBAL STATUS LIKE 'Max_statement_time_exceeded'"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert int(out[1]) > 0, out


def test_deploy_rollback_tls_leaves_the_site_as_it_found_it(results):
    """After deploy-rollback-tls: every web host back on the release it ran before the drill, and the
    balancer back to the inventory's plain HTTP (the drill's certificate and TLS bind gone)."""
    drill = results["deploy-rollback-tls"]
    assert drill["details"]["tls"].startswith("added by the drill"), drill["details"]
    assert current_releases() == results["releases_before"]
    config = subprocess.run(["docker", "exec", LB, "cat", "/etc/haproxy/haproxy.cfg"],
                            capture_output=True, text=True, check=True).stdout
    assert " ssl " not in config and "drill-tls.pem" not in config
    assert subprocess.run(["docker", "exec", LB, "test", "-e", "/etc/haproxy/drill-tls.pem"], check=False).returncode == 1
