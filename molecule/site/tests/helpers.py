"""Helpers the whole-site scenario's test files share: the scenario's names, HTTP through the
balancer (as a client) or to one web host (its direct vhost), HAProxy's Runtime API, and running the
bundle's playbooks against the scenario's hosts from this machine, as an operator would.

The generic pieces come from molecule/resources/tests/scenario.py, shared with the roles' scenarios;
what is here gives them this scenario's names and defaults."""

import os
import pathlib
import shutil
import sys

import pytest
import yaml

BUNDLE = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(BUNDLE / "molecule" / "resources" / "tests"))
# other_host and recap are used as they are by the test files (imported from here).
from scenario import PacedLoad, http_get, other_host, recap, run_playbook, runtime_api, stat_rows, tcp_connect  # noqa: E402,F401

SCENARIO = yaml.safe_load((pathlib.Path(__file__).resolve().parents[1] / "molecule.yml").read_text())
DOMAIN = SCENARIO["provisioner"]["inventory"]["group_vars"]["all"]["site_domain"]
# The hosts' names end in the distribution (molecule.yml: SCENARIO_SUFFIX, set by scripts/run-scenario).
SUFFIX = os.environ.get("SCENARIO_SUFFIX", "")
LB = f"site-lb{SUFFIX}"
WEB = [f"site-web1{SUFFIX}", f"site-web2{SUFFIX}"]
DB = f"site-db{SUFFIX}"
BACKENDS = ("app", "app_failopen")
SOCKET = "/run/haproxy/admin.sock"

# Tests of the bundle's own logic rather than of a distribution (rolling deploys, playbooks run with
# no fact cache) run on one image only: ROLLOUT_TEST_IMAGE, the lab's (set by the Makefile). The
# scenario's other distributions run the rest.
lab_image_only = pytest.mark.skipif(
    os.environ.get("ROLLOUT_TEST_IMAGE", os.environ.get("LAB_IMAGE")) != os.environ.get("LAB_IMAGE"),
    reason="runs on ROLLOUT_TEST_IMAGE (the lab's image) only",
)


def get(host, path="/", vhost=DOMAIN, extra=""):
    """One request from host to the balancer on 127.0.0.1: (status, {lower-case header: value}, body).

    vhost picks the site (DOMAIN) or one web host (f"{web}.direct.{DOMAIN}"); extra is added to curl's
    arguments as is. curl gives up after 30 s."""
    return http_get(host, path, vhost=vhost, extra=extra, timeout=30)


def api(host, command):
    """The Runtime API's answer to one command, on the balancer host."""
    return runtime_api(host, command, SOCKET)


def server_limits(host, web):
    """{backend: live per-server maxconn (column slim) as text} of a web host in each app backend."""
    rows = stat_rows(host, SOCKET)
    return {r["pxname"]: r["slim"] for r in rows if r.get("svname") == web and r.get("pxname") in BACKENDS}


def playbook(name, *extra):
    """Run playbooks/<name> against this scenario's hosts (its inventory folder), 30 minutes at most:
    (return code, stdout + stderr)."""
    inventory = pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    return run_playbook(BUNDLE / "playbooks" / name, *extra, inventory=inventory, timeout=1800)


def forget_facts():
    """Remove the scenario's fact cache (molecule.yml: fact_caching_connection), as on a controller
    that never ran site.yml: a playbook must not need it."""
    shutil.rmtree(pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "facts", ignore_errors=True)
