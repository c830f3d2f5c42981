"""The firewall on converged hosts: each port opens to the hosts that use it and to no other (a
connection from a host that is not allowed does not open: the packet is dropped, and the connect
times out), other tables survive every apply, a lost apply is taken up, bad rules stop the play.

Who may open what comes from the site plan (plugins/filter/sizing.py, _firewall) for this
scenario's inventory (molecule.yml): the admin network (192.0.2.0/24) holds no host of the scenario
and not this machine.
"""

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[5] / "molecule" / "resources" / "tests"))
from scenario import expect_stop_before_change, other_host, recap, run_playbook, tcp_connect  # noqa: E402

testinfra_hosts = ["firewall-web"]

HOSTS = ("firewall-lb", "firewall-web", "firewall-cache")
# Each host's ports: the roles' defaults as the plan reads them, plus one that no rule opens (8000)
# and the cache host's extra rule (9100).
LISTEN = {"firewall-lb": (80, 8404, 8000), "firewall-web": (80, 8000), "firewall-cache": (11211, 9100, 8000)}
# Seconds a dropped SYN is given before the connection counts as not opened.
CONNECT_TIMEOUT = 2

@pytest.fixture(scope="module")
def hosts(request):
    inventory = request.config.option.ansible_inventory
    return {name: other_host(name, inventory) for name in HOSTS}


@pytest.fixture(scope="module")
def addresses(hosts):
    return {name: h.check_output("hostname -I").split()[0] for name, h in hosts.items()}


@pytest.fixture(scope="module", autouse=True)
def listeners(hosts):
    """A TCP listener on every port of LISTEN, on every address of its host (python3's http.server)."""
    for name, ports in LISTEN.items():
        for port in ports:
            hosts[name].run(f"systemd-run --unit=fw-listen-{port} --collect "
                            f"python3 -m http.server --bind 0.0.0.0 {port}")
    yield
    for name, ports in LISTEN.items():
        for port in ports:
            hosts[name].run(f"systemctl stop fw-listen-{port}")


def wait_listening(host, address, port):
    """The listener answers on the host's own address (loopback is always admitted)."""
    for _ in range(50):
        if tcp_connect(host, address, port, timeout=1) == "open":
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {address}:{port}")


# (target, port, who may open it, who may not); None is this machine.
PATHS = [
    ("firewall-cache", 11211, ["firewall-web"], ["firewall-lb", None]),
    ("firewall-cache", 9100, ["firewall-lb", None], []),
    ("firewall-cache", 8000, [], ["firewall-web", None]),
    ("firewall-web", 80, ["firewall-lb"], ["firewall-cache", None]),
    ("firewall-web", 8000, [], ["firewall-lb"]),
    ("firewall-lb", 80, ["firewall-cache", "firewall-web", None], []),
    ("firewall-lb", 8404, [], ["firewall-web", None]),
]


@pytest.mark.parametrize("target, port, allowed, refused", PATHS,
                         ids=[f"{t}:{p}" for t, p, _, _ in PATHS])
def test_each_port_opens_to_who_uses_it_only(hosts, addresses, target, port, allowed, refused):
    wait_listening(hosts[target], addresses[target], port)
    for source in allowed:
        assert tcp_connect(hosts.get(source), addresses[target], port, CONNECT_TIMEOUT) == "open", f"{source} -> {target}:{port}"
    for source in refused:
        # Dropped, not refused: a listener runs, so only the firewall keeps the connection from opening.
        assert tcp_connect(hosts.get(source), addresses[target], port, CONNECT_TIMEOUT) == "timeout", f"{source} -> {target}:{port}"


def test_nftables_loads_the_rules_at_boot(host):
    assert host.service("nftables").is_enabled
    assert host.run("nft -c -f /etc/nftables.conf").rc == 0
    rules = [line.strip() for line in host.file("/etc/nftables.conf").content_string.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert "flush ruleset" not in rules


def test_other_tables_survive_a_reload_and_a_stop(host):
    """Debian's stock file flushes the whole rule set (Docker's, fail2ban's tables too): the role's
    replaces its own table only, and stopping nftables removes only that."""
    host.check_output("nft add table inet keepme")
    try:
        host.check_output("systemctl reload nftables")
        assert {"keepme", "site_firewall"} <= set(host.check_output("nft list tables").split())
        host.check_output("systemctl stop nftables")
        tables = host.check_output("nft list tables").split()
        assert "keepme" in tables and "site_firewall" not in tables
        host.check_output("systemctl start nftables")
        assert {"keepme", "site_firewall"} <= set(host.check_output("nft list tables").split())
    finally:
        host.run("nft delete table inet keepme")
        host.run("systemctl start nftables")


def test_a_run_takes_up_an_apply_an_earlier_run_lost(host):
    """The kernel without the site's table while the file is in place (a run that wrote it and stopped
    before its handler): the next run finds it by the table's stamp and applies it; nothing else changes."""
    host.check_output("nft delete table inet site_firewall")
    rc, output = run_playbook(Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml")
    assert rc == 0, output[-4000:]
    changes = recap(output)
    assert changes["firewall-web"][0] >= 1 and changes["firewall-lb"][0] == 0 and changes["firewall-cache"][0] == 0
    assert "site_firewall" in host.check_output("nft list tables")


def test_check_mode_on_a_converged_host_changes_nothing():
    rc, output = run_playbook(Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml", "--check")
    assert rc == 0, output[-4000:]
    assert all(changed == 0 for changed, _ in recap(output).values()), recap(output)


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({"firewall_extra_rules": [{"port": 70000, "service": "typo"}]},
         ["firewall-web", "firewall_extra_rules[0]", "70000"]),
        ({"firewall_extra_rules": [{"port": 9000, "sources": ["10.0.0.300/32"]}]},
         ["firewall-web", "firewall_extra_rules[0]", "10.0.0.300/32"]),
        ({"firewall_ssh_networks": []}, ["firewall-web", "firewall_ssh_networks"]),
    ],
    ids=["port", "source", "ssh-networks"],
)
def test_bad_input_stops_the_play_before_any_change(extra, expected):
    converge = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml"
    out = " ".join(expect_stop_before_change(converge, extra_vars=extra, unchanged=HOSTS).split())
    for word in expected:
        assert word in out, f"{word!r} missing from the failure: {out[-2000:]}"
