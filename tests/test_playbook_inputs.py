"""The playbooks refuse an inventory they cannot act on before they touch a host: deploy.yml and
rollback.yml with no web host (every play would match nothing and the run end "ok"). Runs the real
ansible-playbook against an inventory whose only host is this machine, over the local connection;
the refusal comes first, so nothing runs on it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

INVENTORY = """all:
  children:
    loadbalancers:
      hosts:
        lb:
          ansible_connection: local
    webservers:
      hosts: {}
"""


def run_playbook(tmp_path, inventory, playbook, *extra):
    """Run playbooks/<playbook> with the inventory text, from tmp_path: (return code, output with its
    whitespace collapsed, as Ansible wraps long messages)."""
    (tmp_path / "hosts.yml").write_text(inventory)
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           str(ROOT / "playbooks" / playbook), *extra], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    return done.returncode, " ".join((done.stdout + done.stderr).split())


@pytest.mark.parametrize("playbook,verb", [("deploy.yml", "deploy"), ("rollback.yml", "roll back")])
# --limit leaves an implicit localhost out, --tags an untagged check: neither skips the refusal.
@pytest.mark.parametrize("extra", [[], ["--limit", "lb"], ["--tags", "nothing"]], ids=["plain", "limit", "tags"])
def test_no_web_hosts_is_refused(tmp_path, playbook, verb, extra):
    rc, out = run_playbook(tmp_path, INVENTORY, playbook, *extra)
    assert rc == 2, out
    assert "webservers group has no hosts" in out and f"nothing to {verb}" in out, out
    # The refusal is the first play: the plan never ran.
    assert "Plan the site" not in out, out


@pytest.mark.parametrize(("extra", "message"), [
    ([], "The dbservers group of the inventory has no hosts: nothing to restore"),
    (["-e", "restore_host=db9"], "restore_host db9 is not in the dbservers group of the inventory (empty): "
                                 "nothing to restore"),
    (["-e", "restore_host=lb"], "restore_host lb is not in the dbservers group of the inventory (empty)"),
])
def test_a_restore_without_its_database_host_is_refused(tmp_path, extra, message):
    """restore.yml with no database host, or a restore_host that is not one, refuses before any host
    changes instead of matching nothing and ending "ok"."""
    rc, out = run_playbook(tmp_path, INVENTORY, "restore.yml", *extra)
    assert rc == 2, out
    assert message in out, out
    assert "Restore the database" not in out, out


# Hosts nothing can reach (port 1 of loopback): the checks run on the controller, and a run that passes
# them stops at the first connection, changing nothing anywhere.
LIMITED = """all:
  vars:
    ansible_connection: ssh
    ansible_host: 127.0.0.1
    ansible_port: 1
  children:
    webservers:
      hosts:
        web1:
    dbservers:
      hosts:
        db:
"""


def test_a_deploy_limited_to_web_hosts_is_refused_before_the_migrations_lose_their_backup(tmp_path):
    """deploy.yml --limit web1 would skip the backup on the database host and migrate anyway."""
    rc, out = run_playbook(tmp_path, LIMITED, "deploy.yml", "--limit", "web1")
    assert rc == 2, out
    assert "--limit web1 leaves out db, the database host where deploy.yml takes a backup" in out, out
    assert "Add it: --limit 'web1,db'" in out, out
    assert "Plan the site" not in out, out
    # With the database host in the limit, or mysql_backup_enabled false (no backup to skip), the check
    # passes: the run goes on to the plan, which stops at the unreachable hosts.
    # A retry file (--limit @file, one host a line) is read as Ansible reads it.
    (tmp_path / "deploy.retry").write_text("web1\ndb\n")
    (tmp_path / "web.retry").write_text("web1\n")
    rc, out = run_playbook(tmp_path, LIMITED, "deploy.yml", "--limit", "@web.retry")
    assert rc == 2 and "leaves out db" in out, out
    for extra in (["--limit", "web1,db"], ["--limit", "web1", "-e", "mysql_backup_enabled=false"],
                  ["--limit", "@deploy.retry"], ["--limit", f"@{tmp_path / 'deploy.retry'}"],
                  ["--limit", "web1:@deploy.retry"], ["--limit", "web1, @deploy.retry"]):
        rc, out = run_playbook(tmp_path, LIMITED, "deploy.yml", *extra)
        assert rc != 0 and "leaves out db" not in out and "UNREACHABLE" in out, out


def test_a_restore_from_a_host_that_is_not_a_backup_host_is_refused(tmp_path):
    rc, out = run_playbook(tmp_path, LIMITED, "restore.yml", "-e", "restore_from=web1")
    assert rc == 2, out
    assert "restore_from web1 is not in the backupservers group of the inventory (empty)" in out, out
    assert "Restore the database" not in out and "Push the copy" not in out, out
