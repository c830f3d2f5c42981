"""A lost database host, rebuilt under the same name: the backup host sets the lost host's copies
aside (the new host's binary logs start again at the same numbers and would overwrite them), and
playbooks/restore.yml -e restore_from=<backup host> restores the rebuilt host from them, as an operator
would after docs/backups.md's "A lost database host" runbook. Runs after the other tests: it replaces
the database host's data, backups and binary logs."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(ROOT / "molecule" / "resources" / "tests"))
from scenario import other_host, run_playbook  # noqa: E402

testinfra_hosts = ["ansible://backup-db"]

PLAYBOOKS = ROOT / "playbooks"
BACKUP = "/usr/local/sbin/site-mysql-backup"
COPIES = "/srv/backups/mariadb/backup-db"
PULL = "systemctl start site-backup-pull.service"
TABLE = "site.lost_host_probe"


def run(request, playbook, **extra):
    rc, output = run_playbook(PLAYBOOKS / playbook, extra_vars=extra, inventory=request.config.option.ansible_inventory,
                              env_extra={"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}, timeout=900)
    assert rc == 0, output[-5000:]
    return output


def sql(host, query):
    return host.check_output("mariadb -N -B -e %s", query)


def test_a_lost_database_host_is_rebuilt_and_restored_from_the_backup_host(host, request):
    store = other_host("backup-store", request.config.option.ansible_inventory)
    # The lost host's last hours: a backup between two writes; the second write reaches the backup host
    # in a shipped binary log only.
    sql(host, f"CREATE TABLE {TABLE} (id INT PRIMARY KEY)")
    sql(host, f"INSERT INTO {TABLE} VALUES (1), (2), (3)")
    taken = json.loads(host.check_output(f"{BACKUP} run --reason before-loss"))
    sql(host, f"INSERT INTO {TABLE} VALUES (4), (5)")
    host.run_expect([0], f"{BACKUP} check")
    store.run_expect([0], PULL)
    old_id = store.file(f"{COPIES}/SOURCE_ID").content_string
    old_logs = store.file(f"{COPIES}/binlog/SHA256SUMS").content_string

    # The host is lost. Its replacement, under the same name and address: a new data directory, no
    # backups, no binary logs; then the runbook's site.yml (the tiers that matter here).
    host.run_expect([0], "systemctl stop mariadb && rm -rf /var/lib/mysql /var/lib/mysql.before-restore-* "
                         "/var/backups/mariadb /var/log/mysql/mariadb-bin.* /var/log/mysql/before-restore-* "
                         "&& mariadb-install-db --user=mysql >/dev/null 2>&1 && systemctl start mariadb")
    run(request, "dbservers.yml")
    run(request, "backupservers.yml")
    store.run_expect([0], PULL)
    assert sql(host, f"SHOW TABLES FROM site LIKE '{TABLE.split('.')[1]}'") == ""

    # The backup host kept the lost host's copies whole, aside, and pulls the new host afresh.
    replaced = store.check_output(f"ls -d {COPIES}.replaced-*").split()
    assert len(replaced) == 1, replaced
    assert store.file(f"{replaced[0]}/SOURCE_ID").content_string == old_id
    assert store.file(f"{replaced[0]}/binlog/SHA256SUMS").content_string == old_logs
    assert store.file(f"{replaced[0]}/{taken['name']}/.copy-checked").exists
    assert store.file(f"{COPIES}/SOURCE_ID").content_string != old_id

    output = run(request, "restore.yml", restore_from="backup-store", restore_to="end")
    assert [int(v) for v in sql(host, f"SELECT id FROM {TABLE} ORDER BY id").split()] == [1, 2, 3, 4, 5]
    assert f"Restored {taken['name']}" in output and "Binary log replay stopped at" in output
    # The push key was admitted for the push only.
    keys = host.file("/var/lib/mysql-backup-reader/.ssh/authorized_keys").content_string
    assert "restore-push@" not in keys and "site-backups@" in keys
    # The restored host's new timeline has a backup of its own, which the backup host copies.
    newest = json.loads(host.check_output(f"{BACKUP} list"))[-1]
    assert newest["reason"] == "after restore"
    store.run_expect([0], PULL)
    assert store.file(f"{COPIES}/{newest['name']}/.copy-checked").exists
