"""The site after a restore of its database (playbooks/restore.yml, docs/backups.md): the whole-site
scenario's MariaDB is restored from its newest backup and replayed to the end of its binary logs,
while the site runs; the site then answers the same pages from the restored data. Runs after the
other whole-site tests (file order)."""

import re
import time

from helpers import DB, LB, get, playbook

testinfra_hosts = [LB]


def page(host, path):
    """A page without its footer, which names the release and the web host that served it."""
    status, _, body = get(host, path)
    return status, re.sub(r"<footer>.*?</footer>", "", body, flags=re.S)


def test_the_site_answers_from_the_restored_database(host):
    db = host.get_host(f"docker://{DB}")
    before = {path: page(host, path) for path in ("/", "/leaderboard/")}
    assert all(status == 200 for status, _ in before.values()), before
    count = "mariadb -N -B -e \"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'site'\""
    tables = db.check_output(count)
    rc, out = playbook("restore.yml", "-e", "restore_to=end", "-e", "restore_while_live=true")
    assert rc == 0, out[-5000:]
    assert "Restored " in out and "A new backup, the base of the restored timeline" in out, out[-3000:]
    # The web hosts' pooled connections were cut by the restart; Django's health checks reconnect.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and page(host, "/")[0] != 200:
        time.sleep(1)
    after = {path: page(host, path) for path in ("/", "/leaderboard/")}
    assert after == before
    assert db.check_output(count) == tables
    # What the restore replaced is kept, not deleted.
    assert db.check_output("ls -d /var/lib/mysql.before-restore-*").strip()
