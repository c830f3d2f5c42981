"""roles/firewall/filter_plugins/firewall_rules.py: the firewall role's input checks (the SSH
session Ansible uses must stay admitted) and the rule set it renders."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "roles" / "firewall" / "filter_plugins"))
import firewall_rules as fw  # noqa: E402

ANYWHERE = ["0.0.0.0/0", "::/0"]


def errors(rules=(), extra=(), ssh_networks=ANYWHERE, ssh_port=22, session=None):
    return fw.firewall_input_errors(list(rules), list(extra), ssh_networks, ssh_port, session)


def test_good_rules_pass():
    assert errors([{"port": 80, "sources": None, "service": "site"},
                   {"port": 11211, "proto": "tcp", "sources": ["10.0.0.5", "10.0.1.0/24"], "service": "cache"},
                   {"port": 514, "proto": "udp", "sources": [], "service": "nobody"}]) == []


@pytest.mark.parametrize("rule, words", [
    ({"port": 0}, ["firewall_rules[0]", "port", "0"]),
    ({"port": "80"}, ["firewall_rules[0]", "port", "'80'"]),
    ({"port": True}, ["port"]),
    ({"port": 80, "proto": "icmp"}, ["proto", "icmp"]),
    ({"port": 80, "sources": "10.0.0.0/8"}, ["sources must be a list"]),
    ({"port": 80, "sources": ["10.0.0.0/33", "db.example"]}, ["10.0.0.0/33", "db.example"]),
    ({"port": 80, "from": ["10.0.0.0/8"]}, ["unknown keys", "from"]),
    ("80", ["must be a mapping"]),
])
def test_bad_rules_are_named(rule, words):
    found = " ".join(errors([rule]))
    for word in words:
        assert word in found, found
    assert "firewall_extra_rules[0]" in " ".join(errors(extra=[rule]))


def test_ssh_must_keep_admitting_the_session_ansible_uses():
    """The next connection after an apply must open again: Ansible's client address (SSH_CONNECTION's
    first field) inside firewall_ssh_networks, its server port (the fourth) firewall_ssh_port."""
    session = "10.20.0.7 50122 10.30.0.5 22"
    assert errors(ssh_networks=["10.20.0.0/24"], session=session) == []
    locked = " ".join(errors(ssh_networks=["10.99.0.0/16"], session=session))
    assert "10.20.0.7" in locked and "firewall_ssh_networks" in locked and "10.99.0.0/16" in locked
    other_port = " ".join(errors(session="10.20.0.7 50122 10.30.0.5 2222"))
    assert "2222" in other_port and "firewall_ssh_port" in other_port
    # IPv6 sessions against IPv4-only networks are refused too; no session (docker, local): no check.
    assert errors(ssh_networks=["10.0.0.0/8"], session="2001:db8::7 50122 2001:db8::5 22")
    assert errors(ssh_networks=["10.0.0.0/8"], session="") == []
    assert "firewall_ssh_networks" in " ".join(errors(ssh_networks=[]))
    assert "firewall_ssh_networks" in " ".join(errors(ssh_networks=["anywhere"]))
    assert "firewall_ssh_port" in " ".join(errors(ssh_port=0))


def test_the_ruleset_collapses_each_family_and_keeps_who_may():
    rendered = fw.firewall_ruleset([
        {"port": 3306, "sources": ["10.0.0.4", "10.0.0.5/32", "10.0.0.0/30", "2001:db8::1", "10.0.0.4/31"],
         "service": "MariaDB"},
        {"port": 80, "sources": None, "service": "site"},
        {"port": 11211, "sources": [], "service": "nobody"}])
    assert rendered == [
        {"port": 3306, "proto": "tcp", "service": "MariaDB", "anyone": False, "ip": ["10.0.0.0/30", "10.0.0.4/31"],
         "ip6": ["2001:db8::1/128"]},
        {"port": 80, "proto": "tcp", "service": "site", "anyone": True, "ip": [], "ip6": []},
        {"port": 11211, "proto": "tcp", "service": "nobody", "anyone": False, "ip": [], "ip6": []}]
