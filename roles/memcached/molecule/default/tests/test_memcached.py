"""memcached on a converged cache host: the running server's settings follow the host and the web tier.

Expected numbers are computed here from the hosts' facts and the scenario's inventory, never read
back from the rendered configuration.
"""

import math
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[5] / "molecule" / "resources" / "tests"))
from scenario import (  # noqa: E402
    container_limits, expect_stop_before_change, hostvars, lost_handler_is_made_up, other_host)

testinfra_hosts = ["memcached-cache"]

WEB_HOSTS = ["memcached-web1", "memcached-web2"]
PORT = 11211
# memcached's own default -c, the floor of the computed value.
CONNECTIONS_FLOOR = 1024
THREADS_MAX = 64
# The cache host's container limits (molecule.yml): the host is sized as the small machine they make.
CPUS, MEMORY_MB = container_limits("memcached-cache", Path(__file__).parents[1])

STATS_CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(sys.argv[3].encode() + b"\r\n")
buf = b""
while not buf.endswith(b"END\r\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
s.close()
sys.stdout.write(buf.decode())
"""


@pytest.fixture(scope="module")
def hvars(host):
    return hostvars(host)


@pytest.fixture(scope="module")
def facts(host):
    return host.ansible("setup", "gather_subset=hardware,network")["ansible_facts"]


@pytest.fixture(scope="module")
def private_ip(facts):
    return facts["ansible_default_ipv4"]["address"]


@pytest.fixture(scope="module")
def web1(request):
    return other_host("memcached-web1", request.config.option.ansible_inventory)


def ask(client, address, command):
    """Send one memcached command from `client` over TCP; return the STAT lines as a dict."""
    out = client.check_output("python3 -c %s %s %s %s", STATS_CLIENT, address, str(PORT), command)
    stats = {}
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if parts[0] == "STAT" and len(parts) == 3:
            stats[parts[1]] = parts[2].strip()
    assert out.rstrip().endswith("END"), out
    return stats


@pytest.fixture(scope="module")
def settings(web1, private_ip):
    return ask(web1, private_ip, "stats settings")


@pytest.fixture(scope="module")
def web_concurrency(request):
    total = 0
    for name in WEB_HOSTS:
        v = hostvars(other_host(name, request.config.option.ansible_inventory))
        total += int(v["apache_wsgi_processes"]) * int(v.get("apache_wsgi_threads", 1))
    return total


def test_service_running_and_enabled(host):
    svc = host.service("memcached")
    assert svc.is_running
    assert svc.is_enabled


def test_no_start_ever_failed(host):
    """The package starts memcached as it installs; Debian 13's stock configuration (127.0.0.1 and ::1)
    fails there without IPv6. The role's configuration is in place first, so no start of this boot failed."""
    log = host.check_output("journalctl -b -u memcached -o cat --no-pager")
    assert "Started memcached" in log
    assert "Failed with result" not in log, log
    assert "Cannot assign requested address" not in log, log


def test_stats_answer_over_tcp_from_a_web_host(web1, private_ip):
    stats = ask(web1, private_ip, "stats")
    assert int(stats["pid"]) > 0
    assert int(stats["uptime"]) >= 0


def test_listens_on_the_private_address(settings, private_ip):
    assert settings["inter"] == private_ip
    assert int(settings["tcpport"]) == PORT


# ss cannot name the owning process here (the container's root lacks CAP_SYS_PTRACE over the memcache
# user's sockets), so sockets are matched by memcached's port; nothing else on the host uses it.
def test_udp_is_off(host, settings):
    assert int(settings["udpport"]) == 0
    assert host.check_output("ss -ulnH 'sport = :%s'", str(PORT)).strip() == ""


def test_nothing_listens_on_a_wildcard_or_loopback(host, private_ip):
    lines = host.check_output("ss -tlnH 'sport = :%s'", str(PORT)).splitlines()
    local = {line.split()[3] for line in lines}
    assert local == {f"{private_ip}:{PORT}"}
    # And the loopback address does not answer (nothing but the private address is bound).
    assert host.run("python3 -c %s 127.0.0.1 %s stats", STATS_CLIENT, str(PORT)).rc != 0


def test_max_connections_follow_the_web_tier(settings, hvars, web_concurrency):
    needed = web_concurrency * int(hvars["memcached_client_pool_size"])
    expected = math.ceil(needed * float(hvars["memcached_connections_headroom_factor"]))
    expected += int(hvars["memcached_connections_admin_headroom"])
    expected = max(expected, CONNECTIONS_FLOOR)
    # The scenario's web hosts are sized so the inventory, not the floor, sets the number.
    assert expected > CONNECTIONS_FLOOR
    assert int(settings["maxconns"]) == expected


def test_threads_follow_the_cpus_the_host_can_use(settings, hvars, facts):
    # processor_vcpus shows the whole machine inside the container; the CPU quota decides.
    vcpus = min(int(facts["ansible_processor_vcpus"]), CPUS)
    expected = min(max(vcpus * int(hvars["memcached_threads_per_cpu"]), 1), THREADS_MAX)
    assert int(settings["num_threads"]) == expected


def test_item_memory_is_the_share_of_the_memory_limit_not_the_machine(settings, hvars, facts):
    if int(facts["ansible_memtotal_mb"]) <= MEMORY_MB:
        pytest.skip(f"this machine has no more than the container's {MEMORY_MB} MiB")
    expected_mb = MEMORY_MB * int(hvars["memcached_memory_percent"]) // 100
    assert int(settings["maxbytes"]) == expected_mb * 1024 * 1024


def test_largest_item(settings, hvars):
    assert int(settings["item_size_max"]) == int(hvars["memcached_item_size_max_kb"]) * 1024


def test_process_may_open_a_file_per_connection(host, settings):
    pid = host.check_output("systemctl show -p MainPID --value memcached").strip()
    limits = host.file(f"/proc/{pid}/limits").content_string
    line = next(ln for ln in limits.splitlines() if ln.startswith("Max open files"))
    soft, hard = (int(v) for v in line.split()[3:5])
    assert soft >= int(settings["maxconns"])
    assert hard >= int(settings["maxconns"])


def test_runs_as_the_memcache_user(host):
    pid = host.check_output("systemctl show -p MainPID --value memcached").strip()
    assert host.check_output(f"ps -o user= -p {pid}").strip() == "memcache"


def test_every_template_starts_with_ansible_managed():
    templates = sorted((Path(__file__).resolve().parents[3] / "templates").glob("*.j2"))
    assert templates
    for t in templates:
        assert t.read_text().startswith("{{ ansible_managed | comment }}"), t.name


@pytest.mark.parametrize(
    "extra,expected",
    [
        ({"memcached_memory_mb": 100000000}, ["memcached_memory_mb", "memcached-cache", "100000000"]),
        ({"memcached_max_connections": 100}, ["memcached_max_connections", "memcached-cache", "100", "1000"]),
        ({"memcached_listen_address": "0.0.0.0"}, ["memcached_listen_address", "memcached-cache", "0.0.0.0"]),
    ],
    ids=["memory", "connections", "wildcard"],
)
def test_bad_input_stops_the_play_before_any_change(extra, expected):
    """Run the tier playbook again in check mode with one bad override: it must stop with a message."""
    converge = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml"
    out = " ".join(expect_stop_before_change(converge, "--check", extra_vars=extra).split())
    assert "memcached-cache : ok=" in out and "changed=0" in out.split("memcached-cache : ok=")[1][:40]
    for word in expected:
        assert word in out, f"{word!r} missing from the failure: {out[-2000:]}"


def test_a_run_stopped_before_its_restart_is_made_up_by_the_next(host):
    """The configuration and the open-file limit written by a run killed before its handler: the next
    run restarts memcached (the host tells, not a notification), the run after changes nothing."""
    converge = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml"
    lost_handler_is_made_up(host, "memcached-cache", "memcached.service",
                            ["/etc/memcached.conf", "/etc/systemd/system/memcached.service.d/50-site-limits.conf"],
                            converge, timeout=600)
