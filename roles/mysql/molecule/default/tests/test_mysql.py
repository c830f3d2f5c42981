"""The mysql role on a converged database host, seen from the host itself and from the web tier."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[5] / "molecule" / "resources" / "tests"))
from scenario import container_limits  # noqa: E402
from conftest import TLS, login  # noqa: E402

testinfra_hosts = ["ansible://mysql-db"]

# The database host's container memory limit (molecule.yml), in MiB.
_, MEMORY_MB = container_limits("mysql-db", pathlib.Path(__file__).parents[1])


def sql(host, query, *args):
    """Run a query as root over the unix socket; tab-separated rows."""
    return host.check_output("mariadb -N -B -e %s", query % args if args else query)


@pytest.fixture(scope="module")
def address(db_facts):
    return db_facts["ansible_default_ipv4"]["address"]


def concurrency(apache):
    """processes x threads of one web host (embedded mode runs one thread per process)."""
    threads = int(apache["apache_wsgi_threads"]) if apache["apache_wsgi_mode"] == "daemon" else 1
    return int(apache["apache_wsgi_processes"]) * threads


@pytest.fixture(scope="module")
def expected_max_connections(db_vars, web_vars):
    total = sum(concurrency(v) for v in web_vars.values())
    return max(total + int(db_vars["mysql_admin_connections"]), int(db_vars["mysql_max_connections_min"]))


def test_the_inventory_decides_max_connections(db_vars, web_vars, expected_max_connections):
    # The scenario's web hosts have known process and thread counts; the floor is below their sum.
    assert {n: concurrency(v) for n, v in web_vars.items()} == {"mysql-web1": 6, "mysql-web2": 20}
    assert expected_max_connections > int(db_vars["mysql_max_connections_min"])


def test_running_server_has_the_computed_settings(host, db_vars, db_facts, expected_max_connections):
    row = sql(
        host,
        "SELECT @@skip_name_resolve, @@max_connections, @@wait_timeout, @@interactive_timeout, "
        "@@innodb_buffer_pool_size, @@thread_cache_size",
    ).split()
    step = 128
    usable = min(db_facts["ansible_memtotal_mb"], MEMORY_MB) - int(db_vars["mysql_os_reserved_memory_mb"])
    pool_mb = max(int(usable * float(db_vars["mysql_innodb_buffer_pool_ratio"]) / step) * step, step)
    wait = int(db_vars["mysql_wait_timeout"])
    assert [int(v) for v in row] == [
        1,
        expected_max_connections,
        wait,
        wait,
        pool_mb * 1024 * 1024,
        expected_max_connections,
    ]


def test_buffer_pool_follows_the_memory_limit_not_the_machine(host, db_facts):
    """memtotal_mb shows the whole machine inside the container; the config file says what the
    buffer pool was computed from: the cgroup's memory limit."""
    if db_facts["ansible_memtotal_mb"] <= MEMORY_MB:
        pytest.skip(f"this machine has no more than the container's {MEMORY_MB} MiB")
    config = host.file("/etc/mysql/mariadb.conf.d/90-site.cnf").content_string
    assert f"RAM {MEMORY_MB} MiB" in config, config
    assert f"RAM is what the host can use: a memory limit of {MEMORY_MB} MiB." in config, config


def test_app_reuse_time_is_below_the_server_timeout(db_vars):
    conn_max_age = int(db_vars["mysql_wait_timeout"]) - int(db_vars["mysql_conn_max_age_margin"])
    assert 0 < conn_max_age < int(db_vars["mysql_wait_timeout"])


def test_slow_query_log_is_on(host, db_vars):
    on, threshold, path = sql(host, "SELECT @@slow_query_log, @@long_query_time, @@slow_query_log_file").split()
    assert int(on) == 1
    assert float(threshold) == float(db_vars["mysql_long_query_time"])
    sql(host, "SELECT SLEEP(%s)", float(db_vars["mysql_long_query_time"]) + 0.2)
    assert "SLEEP(" in host.file(path).content_string


def test_listens_only_on_the_private_address(host, address):
    listeners = host.check_output("ss -Hltn 'sport = :3306'").splitlines()
    local = sorted(line.split()[3] for line in listeners)
    assert local == [f"{address}:3306"]


def test_no_anonymous_users_and_no_test_database(host):
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE User = ''") == "0"
    assert sql(host, "SHOW DATABASES LIKE 'test%'") == ""
    assert sql(host, "SELECT COUNT(*) FROM mysql.db WHERE Db LIKE 'test%'") == "0"


def test_root_works_over_the_socket_only(host, address):
    assert sql(host, "SELECT CURRENT_USER()") == "root@localhost"
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE User = 'root' AND Host <> 'localhost'") == "0"
    # Over TCP root is refused, with or without a password.
    assert host.run("mariadb --protocol=TCP -h %s -u root -N -e 'SELECT 1'", address).rc != 0
    assert host.run("MYSQL_PWD=invalid mariadb --protocol=TCP -h %s -u root -N -e 'SELECT 1'", address).rc != 0


def test_app_user_from_a_web_host_sees_only_the_app_database(get_host, address, db_vars):
    web1 = get_host("mysql-web1")
    out = login(web1, address, db_vars["mysql_app_user"], db_vars["mysql_app_password"], "SHOW DATABASES")
    assert out.rc == 0, out.stderr
    assert set(out.stdout.split()) == {"information_schema", db_vars["mysql_database"]}


def test_app_user_cannot_change_the_schema_but_the_migration_user_can(get_host, address, db_vars):
    web2 = get_host("mysql-web2")
    database = db_vars["mysql_database"]
    ddl = f"CREATE TABLE {database}.test_ddl (id INT PRIMARY KEY); DROP TABLE {database}.test_ddl"
    denied = login(web2, address, db_vars["mysql_app_user"], db_vars["mysql_app_password"], ddl)
    assert denied.rc != 0 and "denied" in denied.stderr
    allowed = login(web2, address, db_vars["mysql_migrate_user"], db_vars["mysql_migrate_password"], ddl)
    assert allowed.rc == 0, allowed.stderr


def test_load_data_local_infile_is_refused(host, get_host, address, db_vars):
    """local_infile is off: not even the migration user can load a file of the client host."""
    assert sql(host, "SELECT @@GLOBAL.local_infile") == "0"
    database = db_vars["mysql_database"]
    load = (f"CREATE TABLE {database}.test_infile (line TEXT); "
            f"LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE {database}.test_infile")
    web1 = get_host("mysql-web1")
    try:
        out = web1.run(f"MYSQL_PWD=%s mariadb {TLS['verify']} --local-infile=1 -h %s -u %s -N -B -e %s",
                       db_vars["mysql_migrate_password"], address, db_vars["mysql_migrate_user"], load)
        assert out.rc != 0 and "not allowed" in out.stderr, out.stderr
    finally:
        login(web1, address, db_vars["mysql_migrate_user"], db_vars["mysql_migrate_password"],
              f"DROP TABLE IF EXISTS {database}.test_infile")


def test_app_user_from_a_host_outside_the_web_tier_fails(get_host, address, db_vars):
    outsider = get_host("mysql-outsider")
    assert outsider.run("command -v mariadb").rc == 0, "the fixture installs the client"
    out = login(outsider, address, db_vars["mysql_app_user"], db_vars["mysql_app_password"])
    assert out.rc != 0
    assert "not allowed to connect" in out.stderr or "Access denied" in out.stderr


def test_grants_are_by_address_only(host, get_host, db_vars):
    users = (db_vars["mysql_app_user"], db_vars["mysql_migrate_user"])
    hosts = set(sql(host, "SELECT DISTINCT Host FROM mysql.user WHERE User IN ('%s', '%s')", *users).split())
    web = {
        get_host(n).ansible("setup", "gather_subset=!all,network")["ansible_facts"]["ansible_default_ipv4"]["address"]
        for n in ("mysql-web1", "mysql-web2")
    }
    assert hosts == web


def test_kernel_sem_floor_raises_fields_and_never_lowers(host, expected_max_connections):
    before = [int(v) for v in host.file("/var/tmp/kernel.sem.before").content_string.split()]
    now = [int(v) for v in host.file("/proc/sys/kernel/sem").content_string.split()]
    semmsl = min(max(expected_max_connections + 10, 250), 32000)
    floor = [semmsl, semmsl * 128, 100, 128]
    assert now == [max(b, f) for b, f in zip(before, floor)]
    assert all(n >= f for n, f in zip(now, floor))
    assert all(n >= b for n, b in zip(now, before))
    # The fixture put two fields below the floor and two above: both cases are exercised.
    assert any(b < f for b, f in zip(before, floor)) and any(b > f for b, f in zip(before, floor))


def test_config_files_start_with_the_managed_header(host, db_vars):
    for path in (db_vars["mysql_config_file"], db_vars["mysql_dynamic_config_file"]):
        assert "Ansible managed" in host.file(path).content_string.splitlines()[1]


# ---- TLS for the app's connections (mysql_tls_*) ------------------------------------------------------

def test_the_app_users_connect_over_tls_checking_the_server(get_host, address, db_vars):
    """Both accounts connect with the CA and the server's name checked, and the session is encrypted."""
    web1 = get_host("mysql-web1")
    for user, password in ((db_vars["mysql_app_user"], db_vars["mysql_app_password"]),
                           (db_vars["mysql_migrate_user"], db_vars["mysql_migrate_password"])):
        out = login(web1, address, user, password, "SHOW SESSION STATUS LIKE 'Ssl_version'")
        assert out.rc == 0, out.stderr
        assert out.stdout.split()[1] in ("TLSv1.2", "TLSv1.3"), out.stdout


def test_a_connection_in_clear_text_is_refused(host, get_host, address, db_vars):
    """REQUIRE SSL on each app account, and require_secure_transport for every TCP connection."""
    assert sql(host, "SELECT @@require_secure_transport, @@have_ssl") == "1\tYES"
    for user in (db_vars["mysql_app_user"], db_vars["mysql_migrate_user"]):
        for account in sql(host, "SELECT Host FROM mysql.user WHERE User = '%s'", user).split():
            assert "REQUIRE SSL" in sql(host, "SHOW CREATE USER '%s'@'%s'", user, account)
    out = login(get_host("mysql-web2"), address, db_vars["mysql_app_user"], db_vars["mysql_app_password"],
                tls="off")
    assert out.rc != 0
    assert "insecure transport" in out.stderr or "Access denied" in out.stderr, out.stderr


def test_a_server_the_ca_did_not_sign_is_refused(host, get_host, address, db_vars):
    """The client checks the server: against another CA (a stranger's server, as the client sees it)
    the connection fails before any password is sent."""
    web1 = get_host("mysql-web1")
    other = host.check_output(
        "d=$(mktemp -d) && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=other-ca -keyout $d/k -out $d/c 2>/dev/null && cat $d/c && rm -r $d")
    web1.check_output("printf '%%s\\n' %s > /var/tmp/test-other-ca.pem", other)
    out = login(web1, address, db_vars["mysql_app_user"], db_vars["mysql_app_password"],
                tls="--ssl --ssl-ca=/var/tmp/test-other-ca.pem --ssl-verify-server-cert")
    assert out.rc != 0
    assert "certificate" in out.stderr.lower() or "SSL" in out.stderr, out.stderr


def test_the_server_certificate_names_the_bind_address(host, address):
    """The name the web hosts connect to (the private address) is in the certificate, so a client that
    checks the name (libmariadb 3.4 does by default) accepts it; its key is not readable by others."""
    names = host.check_output("openssl x509 -in /etc/mysql/tls/server.pem -noout -ext subjectAltName")
    assert f"IP Address:{address}" in names
    issued = host.run("openssl verify -CAfile /etc/mysql/tls/ca.pem /etc/mysql/tls/server.pem")
    assert issued.rc == 0, issued.stdout + issued.stderr
    for path, mode, group in (("/etc/mysql/tls/server.key", 0o640, "mysql"), ("/etc/mysql/tls/ca.key", 0o600, "root")):
        key = host.file(path)
        assert (key.user, key.group, key.mode) == ("root", group, mode), path
