"""Runs of the real tier playbook against the converged scenario: bad input stops before any change,
and a live setting changes without a restart."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "molecule" / "resources" / "tests"))
from scenario import expect_stop_before_change, recap, run_playbook  # noqa: E402

testinfra_hosts = ["ansible://mysql-db"]

# The tier playbook itself: the scenario's fixtures are in place already.
PLAYBOOK = ROOT / "playbooks" / "dbservers.yml"


def options(request):
    """How these tests run the tier playbook: against the inventory testinfra was given, without
    colours, ten minutes at most."""
    return {
        "inventory": request.config.option.ansible_inventory,
        "env_extra": {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
        "timeout": 600,
    }


def server_state(host):
    return host.check_output(
        "mariadb -N -B -e 'SELECT @@max_connections, @@wait_timeout, @@innodb_buffer_pool_size' && "
        "md5sum /etc/mysql/mariadb.conf.d/*.cnf && cat /proc/sys/kernel/sem"
    )


def words(text):
    """A regex matching text with any whitespace (Ansible wraps long messages) between its words."""
    return r"\s+".join(re.escape(word) for word in text.split())


BAD_INPUTS = {
    # The data tier never listens everywhere or on the Internet, and no account admits a network.
    "bind-address-wildcard": ({"mysql_bind_address": "0.0.0.0"},
                              [words("never a wildcard, loopback or a public address (got"), r"0\.0\.0\.0"]),
    "client-address-wildcard": ({"mysql_client_addresses": ["10.0.0.%"]},
                                [words("with no % or _ (MariaDB"), r"10\.0\.0\.%"]),
    "public-address": ({"site_private_address": "8.8.4.4"},
                       [words("mysql-db: MariaDB would listen on 8.8.4.4 (site_private_address), a public address")]),
    # Web processes that fit their own hosts (1 MiB each) but whose connections do not fit the database
    # host: the site plan (playbooks/plan.yml) stops the first play.
    "too-much-concurrency": (
        {"apache_wsgi_processes": 5000, "apache_wsgi_process_memory_mb": 1, "apache_prefork_process_memory_mb": 1},
        [r"mysql-db: MariaDB cannot take the web tier's concurrency on this host's memory", r"max_connections 15012",
         r"above its \d+ MiB"],
    ),
    "missing-password": ({"mysql_app_password": ""}, [r"mysql_app_password \(length 0\)"]),
    "non-numeric": ({"mysql_wait_timeout": "ten minutes"}, [r"mysql_wait_timeout", r"int"]),
    "wait-timeout-not-above-conn-max-age": (
        {"mysql_conn_max_age": 300},
        # The site plan stops the first play, for a web-only run too.
        [r"\s+".join(r"mysql-db: the app's CONN_MAX_AGE 300 s \(mysql_conn_max_age\) must be 0 \(a connection per "
                     r"request\) or more and below mysql_wait_timeout 300 s".split())],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_stops_before_any_change(host, request, case):
    extra_vars, messages = BAD_INPUTS[case]
    # Nothing reaches the server or the kernel (watch).
    output = expect_stop_before_change(
        PLAYBOOK, "--check", extra_vars=extra_vars, watch=lambda: server_state(host), **options(request)
    )
    for message in messages:
        assert re.search(message, output), f"{message!r} not in:\n{output}"
    assert "mysql-db" in output
    changes = recap(output)
    # The site plan's checks fail on the host that computes it (run once), the role's on mysql-db.
    assert sum(failed for _, failed in changes.values()) >= 1, output
    assert all(changed == 0 for changed, _ in changes.values()), output


def test_live_setting_changes_without_a_restart(host, request):
    wait = int(host.check_output("mariadb -N -B -e 'SELECT @@wait_timeout'"))
    started = host.check_output("systemctl show mariadb -p ExecMainStartTimestampMonotonic")
    try:
        rc, output = run_playbook(PLAYBOOK, extra_vars={"mysql_wait_timeout": wait + 100}, **options(request))
        assert rc == 0, output
        assert (
            host.check_output("mariadb -N -B -e 'SELECT @@wait_timeout, @@interactive_timeout'").split()
            == [str(wait + 100)] * 2
        )
        assert host.check_output("systemctl show mariadb -p ExecMainStartTimestampMonotonic") == started
    finally:
        restored_rc, restored_output = run_playbook(PLAYBOOK, extra_vars={}, **options(request))
    assert restored_rc == 0, restored_output
    assert int(host.check_output("mariadb -N -B -e 'SELECT @@wait_timeout'")) == wait
