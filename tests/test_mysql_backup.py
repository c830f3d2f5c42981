"""roles/mysql_backup/files/site_mysql_backup.py: the decisions of the backup command that need no
server (which backups to prune, which one to restore, which binary logs to replay, how much room a
backup needs). The scenario roles/mysql_backup/molecule/default runs the command on a real MariaDB."""

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "roles" / "mysql_backup" / "files" / "site_mysql_backup.py"
_spec = importlib.util.spec_from_file_location("site_mysql_backup", PATH)
backup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(backup)

DAY = 86400
NOW = 100 * DAY


def made(*ages_days):
    """Manifests of backups finished ages_days ago, oldest first."""
    return [{"name": f"b{i}", "finished_epoch": NOW - age * DAY, "finished": f"{age} days ago"}
            for i, age in enumerate(ages_days)]


def names(found):
    return [b["name"] for b in found]


def test_prune_deletes_by_age_but_keeps_the_newest_few():
    # Kept 7 days: 10 and 8 days old go; at least 2 stay however old.
    assert names(backup.plan_prune(made(10, 8, 6, 1, 0), NOW, 7, 2, 30)) == ["b0", "b1"]
    assert names(backup.plan_prune(made(30, 20), NOW, 7, 2, 30)) == []
    assert names(backup.plan_prune(made(30, 20, 10), NOW, 7, 2, 30)) == ["b0"]


def test_prune_caps_the_count_whatever_the_age():
    assert names(backup.plan_prune(made(4, 3, 2, 1, 0), NOW, 7, 1, 3)) == ["b0", "b1"]


def test_prune_never_deletes_the_newest():
    assert names(backup.plan_prune(made(50), NOW, 7, 0, 0)) == []


def test_space_needed_counts_the_checked_copy_and_the_reserve():
    assert backup.space_needed(1000, True, 500) == 2700
    assert backup.space_needed(1000, False, 0) == 1100


def test_the_backup_to_restore():
    found = made(3, 2, 1)
    assert backup.choose_backup(found, "latest")["name"] == "b2"
    assert backup.choose_backup(found, "b0")["name"] == "b0"
    # A point in time: the newest backup that finished before it.
    assert backup.choose_backup(found, "latest", NOW - 1.5 * DAY)["name"] == "b1"


@pytest.mark.parametrize(("name", "target", "message"), [
    ("b9", None, "no good backup named b9; there are: b0, b1"),
    ("b1", NOW - 2.5 * DAY, r"backup b1 \(finished at 2 days ago\) is after the point in time asked"),
    ("latest", NOW - 5 * DAY, "no backup was taken before the point in time asked; the oldest finished at 3 days ago"),
])
def test_a_backup_that_cannot_serve_is_named(name, target, message):
    with pytest.raises(backup.BackupError, match=message):
        backup.choose_backup(made(3, 2), name, target)


def test_a_position_picks_the_newest_backup_taken_before_it():
    """deploy.yml prints a position, not a backup: a backup taken after it in the same log (the
    nightly one, another deploy's) must not be the start, or the replay would start past the stop."""
    found = made(3, 2, 1)
    for one, (log, position) in zip(found, [(7, 900), (9, 120), (9, 5000)], strict=True):
        one["binlog"] = {"file": f"mariadb-bin.{log:06d}", "position": position, "gtid": ""}
    assert backup.choose_backup(found, "latest", target_position=(9, 4000))["name"] == "b1"
    assert backup.choose_backup(found, "latest", target_position=(12, 4))["name"] == "b2"
    assert backup.choose_backup(found, "latest", target_position=(9, 120))["name"] == "b1"
    with pytest.raises(backup.BackupError, match=r"backup b2 \(finished at 1 days ago\) is after the position asked"):
        backup.choose_backup(found, "b2", target_position=(9, 4000))
    with pytest.raises(backup.BackupError, match="no backup was taken before the position asked"):
        backup.choose_backup(found, "latest", target_position=(6, 4))
    assert backup.log_number("mariadb-bin.000042") == 42


def test_no_backup_at_all():
    with pytest.raises(backup.BackupError, match="there is no good backup on this host"):
        backup.choose_backup([], "latest")


def test_the_logs_to_replay_start_at_the_backups():
    index = ["/var/log/mysql/mariadb-bin.000007\n", "/var/log/mysql/mariadb-bin.000008\n",
             "/var/log/mysql/mariadb-bin.000009\n", "\n"]
    assert backup.binlogs_from(index, "mariadb-bin.000008") == ["/var/log/mysql/mariadb-bin.000008",
                                                                 "/var/log/mysql/mariadb-bin.000009"]
    with pytest.raises(backup.BackupError, match=r"mariadb-bin\.000003, where the backup stops, is not in the "
                                                 r"index any more \(oldest kept: mariadb-bin\.000007\)"):
        backup.binlogs_from(index, "mariadb-bin.000003")


def test_binlog_info_of_both_mariadb_versions():
    assert backup.parse_binlog_info("mariadb-bin.000004\t1732\t0-1-6\n") == {
        "file": "mariadb-bin.000004", "position": 1732, "gtid": "0-1-6"}
    assert backup.parse_binlog_info("mariadb-bin.000001\t874") == {"file": "mariadb-bin.000001", "position": 874,
                                                                    "gtid": ""}
    assert backup.parse_binlog_info("") is None


def test_the_replay_reports_the_last_committed_transaction():
    text = ("# at 874\n#261202 11:29:03 server id 1  end_log_pos 916 CRC32 0x1\tGTID 0-1-4 trans\n"
            "#261202 11:29:03 server id 1  end_log_pos 1001 CRC32 0x2\tWrite_rows: table id 30 flags: STMT_END_F\n"
            "#261202 11:29:03 server id 1  end_log_pos 1032 CRC32 0x3\tXid = 12\n"
            "#261202 11:29:05 server id 1  end_log_pos 1100 CRC32 0x4\tQuery\tthread_id=5\texec_time=0\n")
    assert backup.last_transaction_end(text) == 1100
    assert backup.last_transaction_end("# nothing\n") is None


def test_a_point_in_time_must_be_a_time():
    with pytest.raises(backup.BackupError, match="--to must be 'YYYY-MM-DD HH:MM:SS', a binary log position FILE:POS"):
        backup.parse_target("yesterday")


def test_a_position_cuts_the_logs_after_its_own():
    files = ["/l/mariadb-bin.000008", "/l/mariadb-bin.000009", "/l/mariadb-bin.000010"]
    assert backup.logs_up_to(files, "mariadb-bin.000009") == files[:2]
    assert backup.POSITION_PATTERN.match("mariadb-bin.000009:1732").groups() == ("mariadb-bin.000009", "1732")
    with pytest.raises(backup.BackupError, match=r"the position's log mariadb-bin\.000002 is not among the logs after "
                                                 r"the backup \(mariadb-bin\.000008, "):
        backup.logs_up_to(files, "mariadb-bin.000002")


def timeline(directory, *numbers):
    """A binary log timeline in directory: the logs and their index, as MariaDB writes them."""
    directory.mkdir(parents=True, exist_ok=True)
    live = "/var/log/mysql/mariadb-bin"
    for n in numbers:
        (directory / f"mariadb-bin.{n:06d}").write_bytes(b"\xfebin")
    (directory / "mariadb-bin.index").write_text("".join(f"{live}.{n:06d}\n" for n in numbers))


def test_a_backups_logs_are_found_in_the_timeline_that_holds_them(tmp_path):
    """Each restore sets the live logs aside and numbers the new timeline after every log seen: a
    backup of any timeline finds its own logs, a re-run after a failed restore too."""
    timeline(tmp_path / "before-restore-20261201T000000Z", 1, 2, 3)
    timeline(tmp_path / "before-restore-20261202T000000Z", 4, 5)
    timeline(tmp_path, 6, 7)
    config = {"binlog_basename": str(tmp_path / "mariadb-bin")}
    assert [where for where, _logs in backup.timelines(config)] == [
        str(tmp_path), str(tmp_path / "before-restore-20261202T000000Z"),
        str(tmp_path / "before-restore-20261201T000000Z")]
    where, logs = backup.logs_for(config, "mariadb-bin.000002")
    assert where.endswith("20261201T000000Z") and [Path(p).name for p in logs] == ["mariadb-bin.000002",
                                                                                   "mariadb-bin.000003"]
    assert backup.logs_for(config, "mariadb-bin.000007")[0] == str(tmp_path)
    assert backup.highest_log_number(config) == 7
    with pytest.raises(backup.BackupError, match=r"mariadb-bin\.000009, where the backup stops, is kept nowhere"):
        backup.logs_for(config, "mariadb-bin.000009")


def test_choose_on_a_backup_host_takes_only_the_copies_it_checked(tmp_path, capsys):
    """`choose` reads a backup host's copies (no settings file): a copy without the backup host's
    .copy-checked mark (not checked yet, or damaged) is never chosen."""
    for name, finished, checked in (("20261201T000000Z", 1000, True), ("20261202T000000Z", 2000, True),
                                    ("20261203T000000Z", 3000, False)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "backup.json").write_text(
            f'{{"name": "{name}", "finished_epoch": {finished}, "finished": "t{finished}", "verified": true, '
            f'"binlog": {{"file": "mariadb-bin.00000{finished // 1000}", "position": 4}}}}')
        if checked:
            (tmp_path / name / ".copy-checked").write_text("1\n")
    assert backup.main(["choose", "--dir", str(tmp_path), "--to", "end"]) == 0
    assert '"name": "20261202T000000Z"' in capsys.readouterr().out
    assert backup.main(["choose", "--dir", str(tmp_path), "--to", "mariadb-bin.000001:100"]) == 0
    assert '"name": "20261201T000000Z"' in capsys.readouterr().out
    assert backup.main(["choose", "--dir", str(tmp_path / "missing")]) == 2
    assert "there is no good backup" in capsys.readouterr().err


def test_a_gap_in_the_logs_is_named():
    logs = [f"/x/mariadb-bin.{n:06d}" for n in (3, 4, 6, 9)]
    assert backup.log_gaps(logs) == ["mariadb-bin.000005", "mariadb-bin.000007", "mariadb-bin.000008"]
    assert backup.log_gaps(logs[:2]) == [] and backup.log_gaps([]) == []


def test_a_restore_time_is_read_in_the_database_hosts_zone():
    """A backup host chooses for the database host: 'YYYY-MM-DD HH:MM:SS' is the database host's time."""
    utc = backup.parse_target("2026-12-03 12:00:00", "UTC")
    assert utc == 1796299200
    assert backup.parse_target("2026-12-03 12:00:00", "Etc/UTC") == utc
    if Path("/usr/share/zoneinfo/Europe/Paris").exists():
        assert backup.parse_target("2026-12-03 12:00:00", "Europe/Paris") == utc - 3600
    with pytest.raises(backup.BackupError, match="Mars/Olympus"):
        backup.parse_target("2026-12-03 12:00:00", "Mars/Olympus")


def pushed(incoming, logs=(), link=False):
    """What a backup host pushes into incoming: one backup with its SHA256SUMS, and binlog/ with the
    logs numbered `logs` and theirs."""
    name = incoming / "20261202T000000Z"
    name.mkdir(parents=True)
    (name / "ibdata1").write_bytes(b"data")
    (name / "backup.json").write_text('{"name": "20261202T000000Z"}')
    backup.write_sums(str(name))
    if link:
        (name / "evil").symlink_to("/etc/shadow")
    if logs:
        (incoming / "binlog").mkdir()
        for n in logs:
            (incoming / "binlog" / f"mariadb-bin.{n:06d}").write_bytes(b"\xfebin")
        backup.write_sums(str(incoming / "binlog"))


def adopt_config(tmp_path):
    (tmp_path / "backups").mkdir()
    (tmp_path / "log").mkdir()
    return {"backup_dir": str(tmp_path / "backups"), "binlog_basename": str(tmp_path / "log" / "mariadb-bin"),
            "group": "root"}


def test_a_push_with_a_symbolic_link_is_refused_before_anything_moves(tmp_path):
    pushed(tmp_path / "incoming", logs=(1,), link=True)
    with pytest.raises(backup.BackupError, match="symbolic links.*evil"):
        backup.adopt_copies(adopt_config(tmp_path), str(tmp_path / "incoming"), "20261203T000000Z")
    assert not list((tmp_path / "backups").iterdir())


def test_pushed_logs_become_a_timeline_of_their_own(tmp_path, monkeypatch):
    monkeypatch.setattr(backup, "run", lambda argv, **kwargs: None)  # chown -R mysql:adm
    monkeypatch.setattr(backup, "share_with_group", lambda path, group: None)
    pushed(tmp_path / "incoming", logs=(4, 5))
    config = adopt_config(tmp_path)
    name, timeline_dir = backup.adopt_copies(config, str(tmp_path / "incoming"), "20261203T000000Z")
    assert name == "20261202T000000Z" and (tmp_path / "backups" / name / "ibdata1").exists()
    assert timeline_dir == str(tmp_path / "log" / "before-restore-copies-20261203T000000Z")
    assert backup.logs_for(config, "mariadb-bin.000004", only=timeline_dir)[1] == [
        f"{timeline_dir}/mariadb-bin.000004", f"{timeline_dir}/mariadb-bin.000005"]


def copies(directory, source_id, *finished):
    """A backup host's copies of one source incarnation: checked backups finished at `finished` (s)."""
    directory.mkdir()
    (directory / "SOURCE_ID").write_text(source_id + "\n")
    for epoch in finished:
        name = f"2026120{epoch // 1000}T000000Z"
        (directory / name).mkdir()
        (directory / name / "backup.json").write_text(
            f'{{"name": "{name}", "finished_epoch": {epoch}, "finished": "t{epoch}", "verified": true}}')
        (directory / name / ".copy-checked").write_text("1\n")


def test_a_host_lost_twice_is_restored_from_its_newest_incarnation_not_the_rebuilt_one(tmp_path, capsys):
    """db lost once (its copies set aside), rebuilt, run for a while, lost again: the push takes the
    newest copies of any earlier incarnation, and never the rebuilt host's own (its empty database)."""
    copies(tmp_path / "db.replaced-20261101T000000Z", "first", 1000, 2000)
    copies(tmp_path / "db", "second", 3000, 4000)
    dirs = ["--dir", str(tmp_path / "db"), "--dir", str(tmp_path / "db.replaced-20261101T000000Z")]
    # Lost again, before the new host's first pull: db/ still holds the second incarnation's copies.
    assert backup.main(["choose", *dirs, "--not-source-id", "third"]) == 0
    out = capsys.readouterr().out
    assert '"name": "20261204T000000Z"' in out and f'"dir": "{tmp_path / "db"}"' in out
    # After it: db/ is the rebuilt host's own, left out.
    assert backup.main(["choose", *dirs, "--not-source-id", "second"]) == 0
    out = capsys.readouterr().out
    assert '"name": "20261202T000000Z"' in out and "replaced-20261101T000000Z" in out


def test_a_timeline_a_restore_set_aside_takes_no_replay_past_that_restore(tmp_path):
    """The backup after a restore failed, so the newest backup is of the timeline the restore set aside:
    replaying its logs to their end or past the restore would undo the restore's writes since."""
    aside = tmp_path / "before-restore-20261202T120000Z"
    timeline(aside, 1, 2)
    assert backup.abandoned_problem(str(aside), "b", "end", None) is None  # a failed attempt: no mark
    (aside / "ABANDONED_AT").write_text("1796299200\n")
    assert "lose what was written since" in backup.abandoned_problem(str(aside), "b", "end", None)
    assert backup.abandoned_problem(str(aside), "b", "2026-12-03 13:00:00", 1796299200 + 3600) is not None
    assert backup.abandoned_problem(str(aside), "b", "2026-12-03 11:00:00", 1796299200 - 3600) is None
    assert backup.abandoned_problem(str(aside), "b", "mariadb-bin.000002:4", None) is None


def test_a_completed_restore_marks_every_timeline_it_left_and_only_those(tmp_path):
    """A restore retried after a failed attempt set aside two timelines (the real one and the attempt's):
    on success both get ABANDONED_AT; a timeline marked by an earlier restore keeps its own time."""
    timeline(tmp_path / "before-restore-20261201T000000Z", 1, 2)
    (tmp_path / "before-restore-20261201T000000Z" / "ABANDONED_AT").write_text("1000\n")
    timeline(tmp_path / "before-restore-20261202T000000Z", 3, 4)
    timeline(tmp_path / "before-restore-20261202T000500Z", 5)
    timeline(tmp_path / "before-restore-copies-20261202T000000Z", 1, 2)
    timeline(tmp_path, 6)
    backup.mark_abandoned({"binlog_basename": str(tmp_path / "mariadb-bin")}, now=5000)
    marks = {p.parent.name: p.read_text().strip() for p in tmp_path.glob("*/ABANDONED_AT")}
    assert marks == {"before-restore-20261201T000000Z": "1000", "before-restore-20261202T000000Z": "5000",
                     "before-restore-20261202T000500Z": "5000", "before-restore-copies-20261202T000000Z": "5000"}
    assert not (tmp_path / "ABANDONED_AT").exists()


def test_a_restore_time_in_the_database_hosts_offset():
    utc = backup.parse_target("2026-12-03 12:00:00", "UTC")
    assert backup.parse_target("2026-12-03 12:00:00", "+0100") == utc - 3600
    assert backup.parse_target("2026-12-03 12:00:00", "-0530") == utc + 5.5 * 3600


def test_a_copy_cut_short_is_replaced_by_the_next_push(tmp_path, monkeypatch):
    """An earlier adoption left a copy of the same name that fails its sums: the new push replaces it."""
    monkeypatch.setattr(backup, "run", lambda argv, **kwargs: None)
    monkeypatch.setattr(backup, "share_with_group", lambda path, group: None)
    config = adopt_config(tmp_path)
    broken = tmp_path / "backups" / "20261202T000000Z"
    broken.mkdir()
    (broken / "SHA256SUMS").write_text("0" * 64 + "  ibdata1\n")
    pushed(tmp_path / "incoming")
    assert backup.adopt_copies(config, str(tmp_path / "incoming"), "20261203T000000Z")[0] == "20261202T000000Z"
    assert (broken / "ibdata1").read_bytes() == b"data"
    backup.check_sums(str(broken))
    assert not list((tmp_path / "backups").glob(".partial-*"))
