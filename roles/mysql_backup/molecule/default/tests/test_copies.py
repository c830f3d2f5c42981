"""Copies off the database host (role backup_server): the backup host pulls every backup and the
binary logs over SSH as a read-only account of the database host's, checks them, and holds no
database credential."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "molecule" / "resources" / "tests"))
from scenario import hostvars, other_host  # noqa: E402

testinfra_hosts = ["ansible://backup-store"]

COPIES = "/srv/backups/mariadb/backup-db"
PULL = "systemctl start site-backup-pull.service"
SSH = ("ssh -i /var/lib/site-backups/.ssh/id_ed25519 -o BatchMode=yes -o IdentitiesOnly=yes "
       "-o UserKnownHostsFile=/var/lib/site-backups/.ssh/known_hosts")


@pytest.fixture(scope="module")
def db(request):
    return other_host("backup-db", request.config.option.ansible_inventory)


@pytest.fixture(scope="module")
def db_address(db):
    return db.ansible("setup", "gather_subset=!all,network")["ansible_facts"]["ansible_default_ipv4"]["address"]


def db_backups(db):
    return json.loads(db.check_output("/usr/local/sbin/site-mysql-backup list"))


def metrics(host):
    text = host.file("/var/lib/prometheus/node-exporter/site_backup_copies.prom").content_string
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))


def test_every_backup_of_the_database_host_is_copied_and_checked(host, db):
    host.run_expect([0], PULL)
    for backup in db_backups(db):
        copy = host.file(f"{COPIES}/{backup['name']}")
        assert copy.is_directory, backup["name"]
        assert host.file(f"{COPIES}/{backup['name']}/.copy-checked").exists, backup["name"]
    # Owned by the pulling account, readable by nobody else.
    assert host.file(COPIES).user == "site-backups"
    assert host.file("/srv/backups/mariadb").mode == 0o750


def test_new_writes_reach_the_backup_host_in_the_binary_log(host, db):
    """A write on the database, the check timer's run (rotates and puts the closed logs beside the
    backups), one pull: the log holding the write is on the backup host, checked, and the metrics
    say how old the newest copied write is."""
    db.run_expect([0], "mariadb -e 'CREATE TABLE IF NOT EXISTS site.copy_probe (id INT); "
                       "INSERT INTO site.copy_probe VALUES (42)'")
    db.run_expect([0], "/usr/local/sbin/site-mysql-backup check")
    shipped = db.check_output("ls /var/backups/mariadb/binlog | grep -v SHA256SUMS").split()
    host.run_expect([0], PULL)
    copied = host.check_output(f"ls {COPIES}/binlog").split()
    assert set(shipped) <= set(copied)
    newest = sorted(shipped)[-1]
    # ROW events name their table in plain text.
    assert host.run(f"grep -a -c copy_probe {COPIES}/binlog/{newest}").rc == 0
    assert host.check_output(f"cd {COPIES}/binlog && sha256sum --quiet --strict -c SHA256SUMS && echo whole") == "whole"
    values = metrics(host)
    assert values['site_backup_copy_problem{source="backup-db"}'] == "0"
    assert 0 <= int(values['site_backup_copy_binlog_age_seconds{source="backup-db"}']) < 600


def test_the_backup_hosts_key_reads_and_nothing_else(host, db_address):
    """The key is forced to rrsync -ro on the backup directory: a shell command, a write and a path
    outside are refused."""
    target = f"mysql-backup-reader@{db_address}"
    shell = host.run(f"runuser -u site-backups -- {SSH} {target} cat /etc/shadow")
    assert shell.rc != 0
    write = host.run(f"runuser -u site-backups -- rsync -e '{SSH}' /etc/hostname {target}:./planted")
    assert write.rc != 0 and "read-only" in (write.stdout + write.stderr).lower(), write.stdout + write.stderr
    outside = host.run(f"runuser -u site-backups -- rsync -e '{SSH}' {target}:/etc/shadow /tmp/shadow-copy")
    assert not host.file("/tmp/shadow-copy").exists, outside.stdout + outside.stderr


def test_the_backup_host_holds_no_database_credential(host, db):
    hv = hostvars(db, "backup-db")
    for secret in (hv["mysql_app_password"], hv["mysql_migrate_password"]):
        found = host.run("grep -rlF -- %s /etc /srv /var/lib/site-backups /root", secret)
        assert found.stdout.strip() == "", found.stdout


def test_a_damaged_copy_is_reported_then_fetched_again(host):
    """A copy changed in place (same size and time, so rsync would not notice): the check finds it,
    the unit fails with the alert, the file is removed, and the next pull fetches it whole."""
    newest = sorted(n for n in host.file(COPIES).listdir() if n[0].isdigit())[-1]
    victim = f"{COPIES}/{newest}/backup-my.cnf"
    host.run_expect([0], f"cp -p {victim} /tmp/keep && printf X | dd of={victim} bs=1 seek=0 conv=notrunc "
                         f"status=none && touch -r /tmp/keep {victim} && rm {COPIES}/{newest}/.copy-checked")
    failed = host.run(PULL)
    assert failed.rc != 0
    assert metrics(host)['site_backup_copy_damaged{source="backup-db"}'] == "1"
    host.run_expect([0], PULL)
    assert host.file(f"{COPIES}/{newest}/.copy-checked").exists
    assert metrics(host)['site_backup_copy_damaged{source="backup-db"}'] == "0"


def test_an_incomplete_copy_of_a_backup_the_source_pruned_is_removed(host):
    """A copy left incomplete when the database host pruned its backup mid-transfer can never be
    completed: the next pull (which lists the source through the same read-only account) removes it
    instead of reporting it damaged at every run."""
    gone = f"{COPIES}/20200101T000000Z"
    host.run_expect([0], f"mkdir {gone} && echo data > {gone}/ibdata1 && "
                         f"(cd {gone} && sha256sum ibdata1 > SHA256SUMS && echo '{'0' * 64}  lost.ibd' >> SHA256SUMS) "
                         f"&& chown -R site-backups: {gone}")
    host.run_expect([0], PULL)
    assert not host.file(gone).exists
    assert metrics(host)['site_backup_copy_damaged{source="backup-db"}'] == "0"
