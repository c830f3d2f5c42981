"""Helpers the whole-site scenario's test files share: the scenario's names, HTTP through the
balancer (as a client) or to one web host (its direct vhost), HAProxy's Runtime API, and running the
bundle's playbooks against the scenario's hosts from this machine, as an operator would."""

import os
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

BUNDLE = pathlib.Path(__file__).resolve().parents[3]
SCENARIO = yaml.safe_load((pathlib.Path(__file__).resolve().parents[1] / "molecule.yml").read_text())
DOMAIN = SCENARIO["provisioner"]["inventory"]["group_vars"]["all"]["site_domain"]
# The hosts' names end in the distribution (molecule.yml: SCENARIO_SUFFIX, set by scripts/run-scenario).
SUFFIX = os.environ.get("SCENARIO_SUFFIX", "")
LB = f"site-lb{SUFFIX}"
WEB = [f"site-web1{SUFFIX}", f"site-web2{SUFFIX}"]
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
    arguments as is."""
    out = host.check_output(f"curl -s -m 30 -D - -H 'Host: {vhost}' {extra} 'http://127.0.0.1{path}'")
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def api(host, command):
    """The Runtime API's answer to one command, on the balancer host."""
    return host.check_output(f"echo '{command}' | socat stdio {SOCKET}")


def stat_rows(host):
    """`show stat` as a list of {column: value}, one per proxy or server."""
    lines = api(host, "show stat").lstrip("# ").splitlines()
    names = lines[0].split(",")
    return [dict(zip(names, ln.split(","))) for ln in lines[1:] if ln]


def server_limits(host, web):
    """{backend: live per-server maxconn (column slim) as text} of a web host in each app backend."""
    return {r["pxname"]: r["slim"] for r in stat_rows(host) if r.get("svname") == web and r.get("pxname") in BACKENDS}


def playbook(name, *extra):
    """Run playbooks/<name> against this scenario's hosts: (return code, stdout + stderr)."""
    inventory = pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(BUNDLE / "playbooks" / name), *extra],
        capture_output=True, text=True, timeout=1800, check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def forget_facts():
    """Remove the scenario's fact cache (molecule.yml: fact_caching_connection), as on a controller
    that never ran site.yml: a playbook must not need it."""
    shutil.rmtree(pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "facts", ignore_errors=True)


def recap(output):
    """{host: (changed, failed)} from the play recap."""
    found = re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output, re.M)
    return {h: (int(c), int(f)) for h, c, f in found}
