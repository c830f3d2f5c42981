"""Runs of the real tier playbook against the converged scenario: bad input stops before any change,
a live setting changes without a restart, a certificate is renewed live, a run stopped before its
handler is made up for, and TLS is turned on without refusing the running app."""

import re
import ssl
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "molecule" / "resources" / "tests"))
from scenario import expect_stop_before_change, lost_handler_is_made_up, recap, run_playbook  # noqa: E402
from conftest import login  # noqa: E402

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
    # TLS files come all three from the vault, or none (the role makes them): one alone is a mistake.
    "tls-certificate-alone": (
        {"mysql_tls_certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"},
        [words("mysql-db: mysql_tls_ca_certificate, mysql_tls_certificate and mysql_tls_private_key must be all"
               " three PEM texts"), words("got 1 set")],
    ),
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


def started_at(host):
    return host.check_output("systemctl show mariadb -p ExecMainStartTimestampMonotonic")


def served_until(host):
    """When the certificate the server presents ends, epoch seconds (MariaDB's Ssl_server_not_after)."""
    end = host.check_output("mariadb -N -B -e \"SHOW GLOBAL STATUS LIKE 'Ssl_server_not_after'\"").split("\t")[1]
    return ssl.cert_time_to_seconds(end)


def sign_server_certificate(host, address, days):
    """Sign a new server certificate for address with the scenario's CA, valid `days`, and load it."""
    host.check_output(
        "bash -c %s",
        f"cd /etc/mysql/tls && openssl req -new -key server.key -subj /CN={address} 2>/dev/null | openssl x509 -req "
        f"-CA ca.pem -CAkey ca.key -days {days} -extfile <(printf 'subjectAltName=IP:{address}') -out server.pem "
        "2>/dev/null && mariadb -e 'FLUSH SSL'")


def test_a_certificate_near_its_end_is_renewed_without_a_restart(host, request, db_facts):
    """A server certificate with two days left is made again by the next run and loaded live (FLUSH SSL):
    the server presents the new one, and MariaDB was not restarted."""
    address = db_facts["ansible_default_ipv4"]["address"]
    sign_server_certificate(host, address, 2)
    year = 365 * 86400

    def served_for():
        return served_until(host) - time.time()

    assert served_for() < 3 * 86400, "the short certificate is not in use"
    before = started_at(host)
    rc, output = run_playbook(PLAYBOOK, **options(request))
    assert rc == 0, output
    assert host.run("openssl x509 -in /etc/mysql/tls/server.pem -noout -checkend %s", str(year)).rc == 0
    assert served_for() > year, "the server still presents the old certificate"
    assert started_at(host) == before


def test_a_run_stopped_before_its_restart_is_made_up_by_the_next(host, request):
    """90-site.cnf written by a run killed before its restart: the next run restarts MariaDB (the host
    tells, not a notification), the run after changes nothing."""
    lost_handler_is_made_up(host, "mysql-db", "mariadb.service", ["/etc/mysql/mariadb.conf.d/90-site.cnf"], PLAYBOOK,
                            **options(request))


def test_a_certificate_a_stopped_run_left_unloaded_is_loaded_by_the_next(host, request, db_facts):
    """A renewed certificate on disk that the server never loaded (its FLUSH SSL lost with the run):
    the next run loads it, without a restart; the run after changes nothing."""
    # The server on another certificate, the file back as the role made it: what the stopped run left.
    host.check_output("cp -p /etc/mysql/tls/server.pem /root/server.pem.keep")
    sign_server_certificate(host, db_facts["ansible_default_ipv4"]["address"], 800)
    host.check_output("mv /root/server.pem.keep /etc/mysql/tls/server.pem")
    on_disk = ssl.cert_time_to_seconds(host.check_output(
        "openssl x509 -in /etc/mysql/tls/server.pem -noout -enddate").split("=", 1)[1])
    assert abs(served_until(host) - on_disk) > 86400
    before = started_at(host)
    rc, output = run_playbook(PLAYBOOK, **options(request))
    assert rc == 0, output
    assert served_until(host) == on_disk
    assert started_at(host) == before
    rc, output = run_playbook(PLAYBOOK, **options(request))
    assert rc == 0 and recap(output)["mysql-db"][0] == 0, output


def test_turning_tls_on_never_refuses_the_running_app(host, get_host, request, db_facts, db_vars):
    """On a server that ran without TLS, the run that turns it on gives the server its certificate but
    still takes the clear-text connections of web hosts not yet converged; the next run requires TLS."""
    address = db_facts["ansible_default_ipv4"]["address"]
    web1 = get_host("mysql-web1")
    user, password = db_vars["mysql_app_user"], db_vars["mysql_app_password"]

    def state():
        return host.check_output("mariadb -N -B -e 'SELECT @@require_secure_transport'"), \
            host.check_output("mariadb -N -B -e %s", f"SHOW CREATE USER '{user}'@'{web1_address}'")

    web1_facts = web1.ansible("setup", "gather_subset=!all,network")["ansible_facts"]
    web1_address = web1_facts["ansible_default_ipv4"]["address"]
    try:
        rc, output = run_playbook(PLAYBOOK, extra_vars={"mysql_tls_enabled": False}, **options(request))
        assert rc == 0, output
        secure, account = state()
        assert secure == "0" and "REQUIRE SSL" not in account
        assert login(web1, address, user, password, tls="off").rc == 0

        rc, output = run_playbook(PLAYBOOK, **options(request))
        assert rc == 0, output
        secure, account = state()
        assert secure == "0" and "REQUIRE SSL" not in account, "required in the run that turned TLS on"
        # The playbooks that do not converge the database (webservers.yml, deploy.yml) bring its live
        # settings to the plan before the web hosts get the CA: they never start requiring TLS.
        rc, output = run_playbook(ROOT / "playbooks" / "plan.yml", **options(request))
        assert rc == 0, output
        assert state()[0] == "0", "the live settings started requiring TLS"
        assert login(web1, address, user, password, tls="off").rc == 0
        verified = login(web1, address, user, password, "SHOW SESSION STATUS LIKE 'Ssl_version'")
        assert verified.rc == 0 and "TLS" in verified.stdout, verified.stderr
    finally:
        rc, output = run_playbook(PLAYBOOK, **options(request))
    assert rc == 0, output
    secure, account = state()
    assert secure == "1" and "REQUIRE SSL" in account
    assert login(web1, address, user, password, tls="off").rc != 0
