"""Runs of the real tier playbook against the converged scenario: bad input stops before any change,
and a live setting changes without a restart."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

testinfra_hosts = ["ansible://mysql-db"]

# The tier playbook itself: the scenario's fixtures are in place already.
PLAYBOOK = Path(__file__).resolve().parents[5] / "playbooks" / "dbservers.yml"


def run_playbook(request, extra_vars, check):
    cmd = [
        "ansible-playbook",
        "-i",
        request.config.option.ansible_inventory,
        str(PLAYBOOK),
        "-e",
        json.dumps(extra_vars),
    ]
    if check:
        cmd.append("--check")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)


def recap(output):
    """host -> (changed, failed) from the play recap."""
    return {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output, re.M)
    }


def server_state(host):
    return host.check_output(
        "mariadb -N -B -e 'SELECT @@max_connections, @@wait_timeout, @@innodb_buffer_pool_size' && "
        "md5sum /etc/mysql/mariadb.conf.d/*.cnf && cat /proc/sys/kernel/sem"
    )


BAD_INPUTS = {
    # Web processes that fit their own hosts (1 MiB each) but whose connections do not fit the database host.
    "too-much-concurrency": (
        {"apache_wsgi_processes": 5000, "apache_wsgi_process_memory_mb": 1, "apache_prefork_process_memory_mb": 1},
        [r"does not fit this database host", r"max_connections 15012", r"more than the host's \d+ MiB RAM"],
    ),
    "missing-password": ({"mysql_app_password": ""}, [r"mysql_app_password \(length 0\)"]),
    "non-numeric": ({"mysql_wait_timeout": "ten minutes"}, [r"mysql_wait_timeout", r"int"]),
    "wait-timeout-not-above-conn-max-age": (
        {"mysql_conn_max_age": 300},
        [r"mysql_wait_timeout 300 s must be .* above the\s+app's CONN_MAX_AGE", r"CONN_MAX_AGE is 300 s"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_stops_before_any_change(host, request, case):
    extra_vars, messages = BAD_INPUTS[case]
    before = server_state(host)
    result = run_playbook(request, extra_vars, check=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for message in messages:
        assert re.search(message, output), f"{message!r} not in:\n{output}"
    assert "mysql-db" in output
    changes = recap(result.stdout)
    assert changes["mysql-db"] == (0, 1), result.stdout
    assert all(changed == 0 for changed, _ in changes.values()), result.stdout
    # Nothing reached the server or the kernel.
    assert server_state(host) == before


def test_live_setting_changes_without_a_restart(host, request):
    wait = int(host.check_output("mariadb -N -B -e 'SELECT @@wait_timeout'"))
    started = host.check_output("systemctl show mariadb -p ExecMainStartTimestampMonotonic")
    try:
        result = run_playbook(request, {"mysql_wait_timeout": wait + 100}, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert (
            host.check_output("mariadb -N -B -e 'SELECT @@wait_timeout, @@interactive_timeout'").split()
            == [str(wait + 100)] * 2
        )
        assert host.check_output("systemctl show mariadb -p ExecMainStartTimestampMonotonic") == started
    finally:
        restored = run_playbook(request, {}, check=False)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert int(host.check_output("mariadb -N -B -e 'SELECT @@wait_timeout'")) == wait
