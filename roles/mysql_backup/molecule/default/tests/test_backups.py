"""The mysql_backup role on a converged database host: the binary log, the first backup and its
checks, the schedule, the metrics, and restores run through playbooks/restore.yml as an operator
would: to a point in time after the data directory is lost, to a named backup, and refused while a
client is connected."""

import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "molecule" / "resources" / "tests"))
from scenario import expect_stop_before_change, hostvars, other_host, recap, run_playbook  # noqa: E402

testinfra_hosts = ["ansible://backup-db"]

RESTORE = ROOT / "playbooks" / "restore.yml"
DBSERVERS = ROOT / "playbooks" / "dbservers.yml"
BACKUP = "/usr/local/sbin/site-mysql-backup"
TABLE = "site.backup_probe"


def options(request, **more):
    return {"inventory": request.config.option.ansible_inventory,
            "env_extra": {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}, "timeout": 900, **more}


def sql(host, query):
    return host.check_output("mariadb -N -B -e %s", query)


def backups(host):
    return json.loads(host.check_output(f"{BACKUP} list"))


def rows(host):
    return [int(v) for v in sql(host, f"SELECT id FROM {TABLE} ORDER BY id").split()]


def insert(host, *ids):
    sql(host, f"INSERT INTO {TABLE} (id) VALUES " + ", ".join(f"({i})" for i in ids))


def restore(request, **extra):
    rc, output = run_playbook(RESTORE, extra_vars=extra, **options(request))
    assert rc == 0, output[-5000:]
    return output


@pytest.fixture(scope="module")
def web(request):
    return other_host("backup-web", request.config.option.ansible_inventory)


def test_the_binary_log_is_on_outside_the_data_directory(host):
    on, fmt, basename, expire, sync = sql(
        host, "SELECT @@log_bin, @@binlog_format, @@log_bin_basename, @@binlog_expire_logs_seconds, @@sync_binlog",
    ).split()
    assert (on, fmt, basename, sync) == ("1", "ROW", "/var/log/mysql/mariadb-bin", "1")
    # The scenario keeps them 60 h (molecule.yml), live.
    assert int(expire) == 60 * 3600
    assert host.file("/var/log/mysql/mariadb-bin.index").exists


def test_the_first_run_took_a_good_backup(host):
    found = backups(host)
    assert len(found) >= 1
    first = found[0]
    assert first["verified"] is True
    # The checked copy started and held the app's database.
    assert "site" in first["checked"]["databases"]
    assert first["binlog"]["file"].startswith("mariadb-bin.")
    latest = host.file("/var/backups/mariadb/latest")
    assert latest.is_symlink and latest.linked_to.endswith(found[-1]["name"])
    # Its checksums hold; root's, readable by the backup group only (the backup hosts' read-only account).
    assert host.run("cd /var/backups/mariadb/latest/ && sha256sum --quiet --strict -c SHA256SUMS").rc == 0
    directory = host.file(f"/var/backups/mariadb/{first['name']}")
    assert (directory.user, directory.group, directory.mode) == ("root", "mysql-backup", 0o750)
    assert host.file(f"/var/backups/mariadb/{first['name']}/backup.json").mode == 0o640
    assert host.check_output("id -gn mysql-backup-reader") == "mysql-backup"


def test_the_backups_follow_the_plans_schedule(host):
    timer = host.check_output("systemctl show site-mysql-backup.timer -p TimersCalendar -p ActiveState")
    # Every 4 h from 01:30 (molecule.yml): the plan's OnCalendar.
    assert "OnCalendar=*-*-* 01/4:30:00" in timer and "ActiveState=active" in timer
    assert host.service("site-mysql-backup-check.timer").is_enabled


def test_the_metrics_say_how_old_the_newest_backup_is(host):
    out = host.run(f"{BACKUP} check")
    assert out.rc == 0, out.stderr
    metrics = dict(line.split() for line in host.file("/var/lib/prometheus/node-exporter/site_mysql_backup.prom")
                   .content_string.splitlines() if not line.startswith("#"))
    assert metrics["site_mysql_backup_stale"] == "0"
    assert 0 <= int(metrics["site_mysql_backup_age_seconds"]) < 3600
    # The alert window is the interval + 2 h.
    assert int(metrics["site_mysql_backup_window_seconds"]) == 6 * 3600


def test_a_stale_backup_raises_the_alert(host):
    """With a window shorter than the newest backup's age, the check fails, warns and runs the hook."""
    stale = ("import json; c = json.load(open('/etc/site-mysql-backup.json')); c['alert_age_hours'] = 0; "
             "c['alert_hook'] = 'touch /run/backup-alert'; json.dump(c, open('/run/stale.json', 'w'))")
    out = host.run(f"python3 -c %s && rm -f /run/backup-alert && sleep 1 && {BACKUP} --config /run/stale.json check",
                   stale)
    assert out.rc == 1, out.stdout + out.stderr
    assert "old, window" in out.stderr, out.stderr
    assert host.file("/run/backup-alert").exists


def test_a_lost_data_directory_comes_back_to_a_point_in_time(host, request, web):
    """Rows 1-3, a backup, rows 4-5, the point in time, rows 6-7; MariaDB killed and its data directory
    removed; the restore to the point in time brings back exactly rows 1-5, and the app's user reads them
    from the web host."""
    sql(host, f"DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (id INT PRIMARY KEY) ENGINE=InnoDB")
    insert(host, 1, 2, 3)
    before = {b["name"] for b in backups(host)}
    out = host.run(f"{BACKUP} run --reason test")
    assert out.rc == 0, out.stderr
    taken = json.loads(out.stdout)
    assert taken["name"] not in before and taken["verified"] is True
    insert(host, 4)
    sql(host, "FLUSH BINARY LOGS")  # the replay crosses a log file
    insert(host, 5)
    time.sleep(1.5)
    point = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    time.sleep(1.5)
    insert(host, 6, 7)
    assert rows(host) == [1, 2, 3, 4, 5, 6, 7]
    host.run_expect([0], "systemctl kill -s KILL mariadb && sleep 1 && rm -rf /var/lib/mysql")

    output = restore(request, restore_to=point)
    assert rows(host) == [1, 2, 3, 4, 5]
    assert f"Restored {taken['name']}" in output and "Binary log replay stopped at" in output
    # MariaDB serves the site again: the app's user reads the rows from the web host.
    hv = hostvars(host, "backup-db")
    address = host.ansible("setup", "gather_subset=!all,network")["ansible_facts"]["ansible_default_ipv4"]["address"]
    read = web.run(f"MYSQL_PWD=%s mariadb {app_tls(host, web)} -h %s -u site -N -B -e %s", hv["mysql_app_password"],
                   address, f"SELECT COUNT(*) FROM {TABLE}")
    assert read.rc == 0 and read.stdout.strip() == "5", read.stderr
    # A new backup was taken after the restore: the new timeline has a base of its own.
    assert backups(host)[-1]["reason"] == "after restore"


def app_tls(db, web):
    """mariadb's options for the app's account (REQUIRE SSL): TLS, checked against the database's CA,
    which this puts on the web host as the web tier's playbooks do."""
    ca = db.file("/etc/mysql/tls/ca.pem").content_string.strip()
    web.check_output("printf '%%s\\n' %s > /var/tmp/test-mariadb-ca.pem", ca)
    return "--ssl --ssl-ca=/var/tmp/test-mariadb-ca.pem --ssl-verify-server-cert"


def test_a_named_backup_restores_as_it_was(host, request):
    named = [b for b in backups(host) if b["reason"] == "test"][-1]
    insert(host, 8)
    restore(request, restore_backup=named["name"], restore_while_live=True)
    assert rows(host) == [1, 2, 3]


def test_a_restore_is_refused_while_a_client_is_connected(host, request, web):
    hv = hostvars(host, "backup-db")
    address = host.ansible("setup", "gather_subset=!all,network")["ansible_facts"]["ansible_default_ipv4"]["address"]
    web.run(f"(MYSQL_PWD=%s mariadb {app_tls(host, web)} -h %s -u site -e 'SELECT SLEEP(60)' >/dev/null 2>&1 &)",
            hv["mysql_app_password"], address)
    try:
        for _ in range(20):
            if sql(host, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'site'") != "0":
                break
            time.sleep(0.5)
        before = rows(host)
        output = expect_stop_before_change(RESTORE, **options(request))
        assert "the site is live" in output and "site@" in output, output[-3000:]
        assert rows(host) == before
    finally:
        sql(host, "SELECT CONCAT('KILL ', ID) FROM information_schema.PROCESSLIST WHERE USER = 'site'")
        for kill in sql(host, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'site'").split():
            host.run("mariadb -e 'KILL %s'", kill)


@pytest.mark.parametrize(("extra", "message"), [
    ({"restore_to": "yesterday"}, "restore_to backup, end, 'YYYY-MM-DD HH:MM:SS' or a binary log position FILE:POS "
                                  "(got 'yesterday')"),
    ({"restore_backup": "20200101T000000Z", "restore_while_live": True}, "no good backup named 20200101T000000Z"),
])
def test_a_bad_restore_changes_nothing(host, request, extra, message):
    before = rows(host)
    output = expect_stop_before_change(RESTORE, extra_vars=extra, **options(request))
    assert message in " ".join(output.split()), output[-3000:]
    assert rows(host) == before


def test_a_disk_too_small_for_a_backup_stops_the_run_before_any_change(host, request):
    """A reserve larger than the disk: the tier playbook stops before MariaDB changes, with the numbers."""
    output = expect_stop_before_change(DBSERVERS, "-e", "mysql_backup_reserve_mb=100000000", unchanged=["backup-db"],
                                       **options(request))
    assert "not enough free space for a backup in /var/backups/mariadb" in " ".join(output.split()), output[-3000:]


def test_a_second_run_changes_nothing(request):
    rc, output = run_playbook(DBSERVERS, **options(request))
    assert rc == 0, output[-4000:]
    assert recap(output)["backup-db"][0] == 0, output[-4000:]


def test_before_a_migration_the_position_is_recorded_and_restorable(host, request):
    """deploy.yml's protect: with a fresh backup, only the binary log position; the restore to that
    position brings back exactly what was there (a half-applied migration after it is gone)."""
    out = host.run(f"{BACKUP} protect --max-age-hours 6")
    assert out.rc == 0, out.stderr
    point = json.loads(out.stdout)
    assert point["kind"] == "position"
    insert(host, 100)
    position = f"{point['position']['file']}:{point['position']['position']}"
    # What a failed migration leaves: a table created, rows changed.
    sql(host, "CREATE TABLE site.half_migrated (id INT); UPDATE site.backup_probe SET id = id + 1000")
    # The nightly backup runs before anyone notices: the restore to the position must not start from it.
    host.run_expect([0], f"{BACKUP} run --reason nightly")
    restore(request, restore_to=position, restore_while_live=True)
    assert rows(host) == [1, 2, 3]
    assert sql(host, "SHOW TABLES FROM site LIKE 'half_migrated'") == ""
    # Without a fresh backup, protect takes one.
    out = host.run(f"{BACKUP} protect --max-age-hours 0")
    assert out.rc == 0 and json.loads(out.stdout)["kind"] == "backup", out.stderr
