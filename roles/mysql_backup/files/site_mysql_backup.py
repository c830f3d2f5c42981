#!/usr/bin/python3
# Installed by the mysql_backup role: changes made here are lost at the next run.
"""site-mysql-backup: physical backups of this host's MariaDB, and their restore.

Installed by the bundle's mysql_backup role as /usr/local/sbin/site-mysql-backup; its settings are the
JSON file /etc/site-mysql-backup.json that the role renders. Every backup is taken with Debian's
mariadb-backup (MariaDB's "mariadb-backup Overview": --backup, then --prepare), then checked: it is
copied back into a scratch directory and a throw-away mariadbd must start on it and list the site's
databases. Only then does it count: the directory gets its final name, a SHA256SUMS file and a
manifest (backup.json, with the binary log position the backup stops at).

Commands (each prints one JSON object on stdout; messages go to stderr, so to the journal):
    run [--reason TEXT]          take, prepare, check and keep a backup; prune the old ones
    protect --max-age-hours H    before a migration: a backup, or only the binary log position when
                                 a good backup younger than H hours exists and the binary log is on
    position                     the current binary log position and GTID
    list                         the good backups, oldest first
    check                        write the metrics file; exit 1 (and run the alert hook) when the
                                 newest good backup is older than its window
    restore --backup NAME|latest [--to 'YYYY-MM-DD HH:MM:SS' | FILE:POS | end | backup]
                                 replace the data directory with a backup (the old one is moved
                                 aside, never deleted), then replay the binary logs up to the time
                                 given (host local time), to a position (as `position` prints it),
                                 to their end, or not at all (backup, the default)
             [--incoming DIR]    first take a backup and binary logs a backup host pushed into DIR
                                 (restore.yml -e restore_from=...: a lost host rebuilt): the
                                 backup joins the others, the logs become a timeline of their own
    choose --dir DIR [--dir DIR ...] [--not-source-id ID] [--backup NAME|latest] [--to ...]
           [--time-zone ZONE]    which checked copy in a backup host's DIRs a restore would take,
                                 leaving out a DIR whose SOURCE_ID is ID (the rebuilt host's own);
                                 prints its manifest and its "dir" (run on the backup host; no
                                 settings file needed); a time in --to is read in ZONE (the
                                 database host's, an IANA name), else locally

Exit status: 0 done, 1 a check failed (stale backup), 2 the command failed (BackupError).
"""

import argparse
import datetime
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zoneinfo

CONFIG = "/etc/site-mysql-backup.json"
# A backup's directory name: its start time in UTC.
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
STAMP_PATTERN = re.compile(r"^\d{8}T\d{6}Z$")
MANIFEST = "backup.json"
SUMS = "SHA256SUMS"
# mariadb-backup writes the binary log position into one of these (the first name since 10.8, the
# second before: MariaDB's "mariadb-backup Overview", "Files Created by mariadb-backup").
BINLOG_INFO_FILES = ("mariadb_backup_binlog_info", "xtrabackup_binlog_info")
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
# In <backup_dir>/binlog/: the time (Unix s) of the last whole shipment of the closed binary logs.
SHIPPED = "SHIPPED_AT"
# A backup host's mark on a copy it checked against its SHA256SUMS (role backup_server).
COPY_CHECKED = ".copy-checked"
# In a timeline a restore set aside (before-restore-<UTC>/): when that restore was done (Unix s). The
# timeline's writes stop there: a later moment is in the timeline the restore began.
ABANDONED = "ABANDONED_AT"
# The identity of a backup directory (made once by the mysql_backup role): a rebuilt host has a new one.
SOURCE_ID = "SOURCE_ID"


class BackupError(Exception):
    """A step failed; the message names the step and what it saw."""


def log(message, warning=False):
    """Write one line to stderr; under systemd a <4> prefix makes it a journal warning."""
    prefix = "<4>" if warning and not sys.stderr.isatty() else ""
    print(f"{prefix}site-mysql-backup: {message}", file=sys.stderr, flush=True)


def load_config(path=CONFIG):
    """The role's settings file as a dict. Raises BackupError when it is missing or not JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise BackupError(f"cannot read the settings {path}: {error}") from error


def run(argv, **kwargs):
    """Run a command; its stdout as text. Raises BackupError with the last lines of its stderr."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    result = subprocess.run(argv, stderr=subprocess.PIPE, text=True, check=False, **kwargs)
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-8:])
        raise BackupError(f"{argv[0]} {' '.join(argv[1:3])} failed (exit {result.returncode}): {tail}")
    return result.stdout


def sql(config, query, socket=None):
    """Rows of a query run as root over the unix socket: a list of lists of strings."""
    out = run(["mariadb", "--socket", socket or config["socket"], "-N", "-B", "-e", query])
    return [line.split("\t") for line in out.splitlines()]


def parse_binlog_info(text):
    """mariadb-backup's binlog info line ("FILE<TAB>POSITION[<TAB>GTID]") as
    {"file": str, "position": int, "gtid": str}; None when the binary log was off (empty file)."""
    fields = text.strip().split("\t") if text.strip() else []
    if len(fields) < 2:
        return None
    return {"file": fields[0], "position": int(fields[1]), "gtid": fields[2] if len(fields) > 2 else ""}


def space_needed(estimate_bytes, verify, reserve_bytes):
    """Bytes a backup needs free before it starts: the backup itself, as much again for the
    check's scratch copy when verify is on, 10 % for growth since the estimate, plus the reserve."""
    copies = 2 if verify else 1
    return int(estimate_bytes * copies * 1.1) + int(reserve_bytes)


def plan_prune(backups, now, retention_days, keep_min, keep_max):
    """The backups to delete, oldest first.

    backups: manifests (dicts with "name" and "finished_epoch", in s), in any order; now: epoch s.
    A backup older than retention_days is deleted unless it is among the keep_min newest; beyond
    keep_max backups, the oldest go whatever their age. The newest is never deleted.
    """
    ordered = sorted(backups, key=lambda b: b["finished_epoch"])
    keep_min = max(1, keep_min)
    doomed = []
    for index, backup in enumerate(ordered):
        newer = len(ordered) - index - 1
        too_old = now - backup["finished_epoch"] > retention_days * 86400
        if newer >= keep_min and (too_old or newer >= keep_max):
            doomed.append(backup)
    return doomed


def log_number(log_name):
    """The number of a binary log file name ("mariadb-bin.000042" gives 42). Numbers grow along a
    timeline and go on across timelines (each restore begins after every log it has seen)."""
    found = re.search(r"\.(\d+)$", log_name)
    if not found:
        raise BackupError(f"{log_name!r} is not a binary log file name")
    return int(found.group(1))


def _stops_at(backup):
    """(log number, position) where a backup stops, or None (taken with the binary log off)."""
    binlog = backup.get("binlog")
    return (log_number(binlog["file"]), binlog["position"]) if binlog else None


def choose_backup(backups, name, target_epoch=None, target_position=None):
    """The backup to restore: the one named, or with name "latest" the newest one; when a point in
    time (target_epoch, s) or a binary log position (target_position: (log number, position)) is
    asked, the newest one taken before it. Raises BackupError when none fits or the one named is
    after the target."""
    ordered = sorted(backups, key=lambda b: b["finished_epoch"])
    if not ordered:
        raise BackupError("there is no good backup on this host")

    def before(backup):
        if target_epoch is not None:
            return backup["finished_epoch"] <= target_epoch
        if target_position is not None:
            return _stops_at(backup) is not None and _stops_at(backup) <= target_position
        return True

    what = "point in time" if target_epoch is not None else "position"
    if name != "latest":
        chosen = [b for b in ordered if b["name"] == name]
        if not chosen:
            raise BackupError(f"no good backup named {name}; there are: {', '.join(b['name'] for b in ordered)}")
        if not before(chosen[0]):
            raise BackupError(f"backup {name} (finished at {chosen[0]['finished']}) is after the {what} asked: "
                              "name an earlier backup, or use latest")
        return chosen[0]
    fitting = [b for b in ordered if before(b)]
    if not fitting:
        raise BackupError(f"no backup was taken before the {what} asked; the oldest finished at "
                          f"{ordered[0]['finished']}")
    return fitting[-1]


def binlogs_from(index_lines, first_file):
    """The binary log files to replay, in order: those listed in the .index from first_file on.
    index_lines: the index file's lines (paths); first_file: a base name. Raises BackupError when
    first_file is not listed (the logs the backup needs were purged or lost)."""
    paths = [line.strip() for line in index_lines if line.strip()]
    names = [os.path.basename(p) for p in paths]
    if first_file not in names:
        raise BackupError(f"the binary log {first_file}, where the backup stops, is not in the index any more "
                          f"(oldest kept: {names[0] if names else 'none'}): restore the backup alone (--to backup)")
    return paths[names.index(first_file):]


# An event line of mariadb-binlog's output that ends a transaction: an Xid event (InnoDB's commit) or
# a query event (COMMIT, DDL); its end_log_pos is where the next transaction starts.
TRANSACTION_END = re.compile(rb"end_log_pos (\d+)[^\n]*\t(?:Xid = |Query\t)")


def last_transaction_end(binlog_text):
    """The end_log_pos of the last committed transaction in mariadb-binlog's text output (str), or None."""
    position = None
    for line in binlog_text.encode().splitlines():
        found = TRANSACTION_END.search(line)
        if found:
            position = int(found.group(1))
    return position


class Lock:
    """An exclusive lock (flock) on a file, so a timer's backup and a restore never overlap; waits
    up to wait seconds (s) for it, then raises BackupError."""

    def __init__(self, path, wait=0):
        self.path = path
        self.wait = wait
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError as error:
                if time.monotonic() >= deadline:
                    self.handle.close()
                    raise BackupError(f"another backup or restore holds {self.path} (waited {self.wait} s)") from error
                time.sleep(1)

    def __exit__(self, *exc):
        self.handle.close()


def tree_bytes(path):
    """Bytes of the regular files under path (0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def good_backups(config, marker=None):
    """The manifests of the complete, checked backups in config["backup_dir"], oldest first (each with
    its "path"); with marker, only those holding that file (a backup host's checked copies)."""
    found = []
    directory = config["backup_dir"]
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        path = os.path.join(directory, name)
        if not STAMP_PATTERN.match(name) or not os.path.isdir(path):
            continue
        if marker and not os.path.exists(os.path.join(path, marker)):
            continue
        try:
            with open(os.path.join(path, MANIFEST), encoding="utf-8") as handle:
                manifest = json.load(handle)
        except (OSError, ValueError):
            continue
        if manifest.get("verified"):
            manifest["path"] = path
            found.append(manifest)
    return sorted(found, key=lambda b: b["finished_epoch"])


def copies_in(directories, not_source_id=None):
    """The checked copies (good_backups with the backup host's COPY_CHECKED mark) of several
    directories of a backup host, oldest first: a source's and those it set aside when the host was
    rebuilt (<source>.replaced-<UTC>). A directory whose SOURCE_ID is not_source_id holds the backups
    of the host as it is now (a rebuilt host's, of its empty database): left out."""
    found = []
    for directory in directories:
        try:
            with open(os.path.join(directory, SOURCE_ID), encoding="utf-8") as handle:
                source_id = handle.read().strip()
        except OSError:
            source_id = None
        if not_source_id and source_id == not_source_id:
            continue
        found += good_backups({"backup_dir": directory}, COPY_CHECKED)
    return sorted(found, key=lambda b: b["finished_epoch"])


def check_space(config):
    """Refuse to start when the backup directory's filesystem has less free than space_needed()."""
    previous = good_backups(config)
    estimate = max(tree_bytes(config["datadir"]), previous[-1]["bytes"] if previous else 0)
    need = space_needed(estimate, config["verify"], config["reserve_mb"] * 1024 * 1024)
    stats = os.statvfs(config["backup_dir"])
    free = stats.f_bavail * stats.f_frsize
    if free < need:
        mib = 1024 * 1024
        raise BackupError(f"not enough free space in {config['backup_dir']}: {free // mib} MiB free, "
                          f"{need // mib} MiB needed (data {estimate // mib} MiB x {2 if config['verify'] else 1} "
                          f"+ 10 % + reserve {config['reserve_mb']} MiB)")
    return {"free_bytes": free, "needed_bytes": need}


def wait_for_socket(config, socket, seconds, process=None):
    """Wait until a server answers on socket; raise BackupError after seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BackupError(f"mariadbd exited with {process.returncode} before it answered")
        try:
            sql(config, "SELECT 1", socket)
            return
        except BackupError:
            time.sleep(0.5)
    raise BackupError(f"no answer on {socket} after {seconds} s")


def verify(config, backup_path, stamp):
    """Copy a prepared backup into a scratch directory and start a throw-away mariadbd on it (no
    network, its own socket). Returns {"databases": [...], "tables": n}. Raises BackupError when the
    server does not start or a database of config["databases"] is missing."""
    scratch = os.path.join(config["backup_dir"], f".verify-{stamp}")
    shutil.rmtree(scratch, ignore_errors=True)
    process = None
    try:
        run(["mariadb-backup", "--copy-back", f"--target-dir={backup_path}", f"--datadir={scratch}"])
        run(["chown", "-R", "mysql:mysql", scratch])
        socket = os.path.join(scratch, "verify.sock")
        process = subprocess.Popen(  # noqa: S603
            ["mariadbd", "--no-defaults", f"--datadir={scratch}", f"--socket={socket}", "--skip-networking",
             "--user=mysql", "--innodb-buffer-pool-size=64M", f"--pid-file={scratch}/verify.pid",
             f"--log-error={scratch}/verify.err"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_socket(config, socket, config["verify_timeout"], process)
        except BackupError as error:
            with open(f"{scratch}/verify.err", encoding="utf-8", errors="replace") as handle:
                tail = " | ".join(handle.read().strip().splitlines()[-5:])
            raise BackupError(f"the checked copy does not start: {error}: {tail}") from error
        databases = [row[0] for row in sql(config, "SHOW DATABASES", socket)]
        missing = [d for d in config["databases"] if d not in databases]
        if missing:
            raise BackupError(f"the checked copy lacks the database(s) {', '.join(missing)}")
        tables = int(sql(config, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN "
                                 f"({', '.join(repr(s) for s in SYSTEM_SCHEMAS)})", socket)[0][0])
        run(["mariadb-admin", "--socket", socket, "shutdown"])
        process.wait(timeout=config["verify_timeout"])
        return {"databases": sorted(set(databases) - set(SYSTEM_SCHEMAS)), "tables": tables}
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def write_sums(path):
    """Write SHA256SUMS (sha256sum's format, paths relative to the backup) for every file of path."""
    lines = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            relative = os.path.relpath(full, path)
            if relative == SUMS:
                continue
            lines.append(f"{sha256(full)}  {relative}\n")
    with open(os.path.join(path, SUMS), "w", encoding="utf-8") as handle:
        handle.writelines(lines)


def check_sums(path):
    """Check a backup against its SHA256SUMS (sha256sum -c). Raises BackupError on any mismatch."""
    result = subprocess.run(["sha256sum", "--quiet", "--strict", "-c", SUMS], cwd=path, text=True,
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{path} does not match its {SUMS}: {(result.stdout + result.stderr).strip()[:400]}")


def write_metrics(config, status):
    """Write the metrics (Prometheus text format, for node_exporter's textfile collector) atomically."""
    path = config["metrics_file"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lines = []
    for name, help_text, value in status["metrics"]:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".site_mysql_backup.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def status(config, now=None):
    """The freshness of the backups and binary logs: a dict with "stale" (bool), the ages (s) and
    the metric lines (name, help, value)."""
    now = time.time() if now is None else now
    backups = good_backups(config)
    newest = backups[-1] if backups else None
    age = now - newest["finished_epoch"] if newest else -1
    binlog_age = -1
    index = config["binlog_basename"] + ".index"
    if config["binlog_enabled"] and os.path.exists(index):
        with open(index, encoding="utf-8") as handle:
            paths = [line.strip() for line in handle if line.strip()]
        times = [os.stat(p).st_mtime for p in paths if os.path.exists(p)]
        binlog_age = now - max(times) if times else -1
    window = int(config["alert_age_hours"] * 3600)
    stale = newest is None or age > window
    metrics = [
        ("site_mysql_backup_last_success_timestamp_seconds", "End of the newest good backup (Unix time).",
         newest["finished_epoch"] if newest else 0),
        ("site_mysql_backup_age_seconds", "Age of the newest good backup (-1: none).", int(age)),
        ("site_mysql_backup_window_seconds", "Age past which the newest good backup is stale.", window),
        ("site_mysql_backup_stale", "1 when the newest good backup is older than its window or missing.", int(stale)),
        ("site_mysql_backup_count", "Good backups kept on this host.", len(backups)),
        ("site_mysql_backup_last_duration_seconds", "Time the newest good backup took, checks included.",
         newest["seconds"] if newest else 0),
        ("site_mysql_backup_last_size_bytes", "Size of the newest good backup.", newest["bytes"] if newest else 0),
        ("site_mysql_binlog_last_write_age_seconds", "Age of the newest binary log write (-1: none).",
         int(binlog_age)),
    ]
    return {"stale": stale, "newest": newest["name"] if newest else None, "age_seconds": int(age),
            "window_seconds": window, "binlog_age_seconds": int(binlog_age), "metrics": metrics}


def position(config):
    """The server's binary log position now: {"file", "position", "gtid", "time"}."""
    rows = sql(config, "SHOW MASTER STATUS")
    if not rows:
        raise BackupError("the binary log is off: there is no position to record (mysql_binlog_enabled)")
    gtid = sql(config, "SELECT @@gtid_binlog_pos")[0][0]
    now = datetime.datetime.now().astimezone()
    return {"file": rows[0][0], "position": int(rows[0][1]), "gtid": gtid,
            "time": now.strftime("%Y-%m-%d %H:%M:%S"), "time_zone": now.strftime("%Z")}


def prune(config):
    """Delete the backups plan_prune() selects and leftovers of interrupted runs; their names."""
    doomed = plan_prune(good_backups(config), time.time(), config["retention_days"], config["keep_min"],
                        config["keep_max"])
    for backup in doomed:
        shutil.rmtree(backup["path"])
        log(f"pruned {backup['name']} (finished {backup['finished']})")
    return [b["name"] for b in doomed]


def share_with_group(path, group):
    """Make a backup readable by group (root:group, directories 0750, files 0640): the read-only
    account the backup hosts pull as is its only other member, with mysql."""
    for root, _dirs, files in os.walk(path):
        shutil.chown(root, "root", group)
        os.chmod(root, 0o750)
        for name in files:
            full = os.path.join(root, name)
            shutil.chown(full, "root", group)
            os.chmod(full, 0o640)


def sha256(path):
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ship_binlogs(config):
    """Put the closed binary logs beside the backups (<backup_dir>/binlog/, with SHA256SUMS), for the
    backup hosts to pull. The live log is rotated first (FLUSH BINARY LOGS) when it holds events
    written since the last rotation here, so what a lost host can lose is what was written since
    the last call (the check timer's interval). Logs MariaDB has purged are removed from here too.
    Returns the names copied now. Raises BackupError when the server does not answer."""
    target = os.path.join(config["backup_dir"], "binlog")
    os.makedirs(target, exist_ok=True)
    shutil.chown(target, "root", config["group"])
    os.chmod(target, 0o750)
    state_path = os.path.join(target, ".rotated-at")
    now = sql(config, "SHOW MASTER STATUS")
    if not now:
        return []
    current = f"{now[0][0]}:{now[0][1]}"
    try:
        with open(state_path, encoding="utf-8") as handle:
            rotated_at = handle.read().strip()
    except OSError:
        rotated_at = ""
    if current != rotated_at:
        sql(config, "FLUSH BINARY LOGS")
        now = sql(config, "SHOW MASTER STATUS")
        with open(state_path, "w", encoding="utf-8") as handle:
            handle.write(f"{now[0][0]}:{now[0][1]}\n")
    with open(config["binlog_basename"] + ".index", encoding="utf-8") as handle:
        live = [line.strip() for line in handle if line.strip()]
    closed = live[:-1]
    sums_path = os.path.join(target, SUMS)
    sums = {}
    if os.path.exists(sums_path):
        with open(sums_path, encoding="utf-8") as handle:
            sums = {line.split()[1]: line.split()[0] for line in handle if len(line.split()) == 2}
    copied = []
    for path in closed:
        name = os.path.basename(path)
        if name in sums and os.path.exists(os.path.join(target, name)):
            continue
        temporary = os.path.join(target, f".{name}.partial")
        # copy2: the copy keeps the log's own time of last write, which the backup hosts report as the age.
        shutil.copy2(path, temporary)
        shutil.chown(temporary, "root", config["group"])
        os.chmod(temporary, 0o640)
        sums[name] = sha256(temporary)
        os.replace(temporary, os.path.join(target, name))
        copied.append(name)
    names = {os.path.basename(p) for p in closed}
    for name in list(sums):
        if name not in names:
            sums.pop(name)
            if os.path.exists(os.path.join(target, name)):
                os.unlink(os.path.join(target, name))
    handle, temporary = tempfile.mkstemp(dir=target, prefix=".sums.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.writelines(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))
    shutil.chown(temporary, "root", config["group"])
    os.chmod(temporary, 0o640)
    os.replace(temporary, sums_path)
    # When this shipment was whole (every closed log beside the backups): the backup hosts report its
    # age, which stays small on an idle site too (no write, no new log, nothing lost).
    handle, temporary = tempfile.mkstemp(dir=target, prefix=".shipped.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(f"{int(time.time())}\n")
    shutil.chown(temporary, "root", config["group"])
    os.chmod(temporary, 0o640)
    os.replace(temporary, os.path.join(target, SHIPPED))
    if copied:
        log(f"binary logs put beside the backups for the backup hosts: {', '.join(copied)}")
    return copied


def wait_for_debian_start(seconds=300):
    """Wait until Debian's /etc/mysql/debian-start is done: after every start of MariaDB it runs
    mariadb-upgrade and table checks in the background, writing to the Aria system tables. A backup
    taken meanwhile copied an Aria log that --prepare could not read ("Cannot find checkpoint
    record", "log data error"; seen on the lab on 10.11 and 11.8, right after a restore)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        busy = False
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        busy = busy or b"/etc/mysql/debian-start" in handle.read()
                except OSError:
                    continue
        if not busy:
            return
        time.sleep(1)
    log(f"/etc/mysql/debian-start still runs after {seconds} s; the backup goes ahead", warning=True)


def take_backup(config, reason):
    """Take, prepare, check and keep one backup; prune; write the metrics. Its manifest."""
    wait_for_debian_start()
    # The check's throw-away mariadbd runs as mysql: it must traverse the directory (not read the backups).
    os.makedirs(config["backup_dir"], mode=0o750, exist_ok=True)
    shutil.chown(config["backup_dir"], "root", config["group"])
    os.chmod(config["backup_dir"], 0o750)
    for name in os.listdir(config["backup_dir"]):
        if name.startswith((".partial-", ".verify-")):
            log(f"removing {name}, left by an interrupted run")
            shutil.rmtree(os.path.join(config["backup_dir"], name), ignore_errors=True)
    space = check_space(config)
    started = datetime.datetime.now(datetime.timezone.utc)
    stamp = started.strftime(STAMP_FORMAT)
    partial = os.path.join(config["backup_dir"], f".partial-{stamp}")
    began = time.monotonic()
    log(f"backup {stamp} ({reason}) starts: {space['free_bytes'] // 2**20} MiB free")
    run(["mariadb-backup", "--backup", f"--target-dir={partial}", "--user=root", f"--socket={config['socket']}"])
    backup_seconds = time.monotonic() - began
    run(["mariadb-backup", "--prepare", f"--target-dir={partial}"])
    binlog = None
    for name in BINLOG_INFO_FILES:
        info = os.path.join(partial, name)
        if os.path.exists(info):
            with open(info, encoding="utf-8") as handle:
                binlog = parse_binlog_info(handle.read())
            break
    checked = verify(config, partial, stamp) if config["verify"] else None
    finished = datetime.datetime.now(datetime.timezone.utc)
    manifest = {
        "name": stamp, "reason": reason, "host": os.uname().nodename,
        "started": started.isoformat(timespec="seconds"), "finished": finished.isoformat(timespec="seconds"),
        "finished_epoch": int(finished.timestamp()), "seconds": round(time.monotonic() - began, 1),
        "backup_seconds": round(backup_seconds, 1), "bytes": tree_bytes(partial), "binlog": binlog,
        "server_version": sql(config, "SELECT VERSION()")[0][0],
        # Reached only when the check passed, or when the operator turned it off (checked: null).
        "verified": True, "checked": checked,
    }
    with open(os.path.join(partial, MANIFEST), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
    write_sums(partial)
    final = os.path.join(config["backup_dir"], stamp)
    share_with_group(partial, config["group"])
    os.rename(partial, final)
    latest = os.path.join(config["backup_dir"], "latest")
    temporary = latest + ".new"
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(stamp, temporary)
    os.replace(temporary, latest)
    manifest["pruned"] = prune(config)
    if config["ship_binlogs"]:
        manifest["shipped_binlogs"] = ship_binlogs(config)
    write_metrics(config, status(config))
    log(f"backup {stamp} is good: {manifest['bytes'] // 2**20} MiB in {manifest['seconds']} s, binary log "
        f"{binlog['file'] + ':' + str(binlog['position']) if binlog else 'off'}")
    return manifest


POSITION_PATTERN = re.compile(r"^([A-Za-z0-9_.-]+\.\d+):(\d+)$")


def parse_target(text, time_zone=None):
    """A point in time 'YYYY-MM-DD HH:MM:SS' as epoch s: in time_zone (an IANA name, e.g. Europe/Paris,
    or a UTC offset +HHMM: the database host's, when another host chooses for it) or in this host's
    local time. Raises
    BackupError on a malformed time or an unknown zone."""
    try:
        moment = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError as error:
        raise BackupError(f"--to must be 'YYYY-MM-DD HH:MM:SS', a binary log position FILE:POS, 'end' or "
                          f"'backup' (got {text!r})") from error
    if not time_zone:
        return time.mktime(moment.timetuple())
    if time_zone in ("UTC", "Etc/UTC"):
        # Known without the zone files (a host without tzdata).
        return moment.replace(tzinfo=datetime.timezone.utc).timestamp()
    offset = re.fullmatch(r"([+-])(\d{2})(\d{2})", time_zone)
    if offset:
        # The database host's offset at that moment (date -d TIME +%z there): no zone files needed.
        sign = 1 if offset.group(1) == "+" else -1
        delta = datetime.timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3)))
        return moment.replace(tzinfo=datetime.timezone(sign * delta)).timestamp()
    try:
        return moment.replace(tzinfo=zoneinfo.ZoneInfo(time_zone)).timestamp()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise BackupError(f"--time-zone {time_zone!r} is not a time zone this host knows") from error


def parse_to(to, time_zone=None):
    """A restore's --to as (target_epoch s or None, target_position (log number, position) or None,
    the FILE:POS match or None); a time is read in time_zone (parse_target). Raises BackupError on a
    malformed time."""
    position_match = POSITION_PATTERN.match(to)
    target_epoch = parse_target(to, time_zone) if to not in ("end", "backup") and not position_match else None
    target_position = (log_number(position_match.group(1)), int(position_match.group(2))) if position_match else None
    return target_epoch, target_position, position_match


def logs_up_to(files, log_name):
    """files (paths, in order) cut after the one named log_name (a base name). Raises BackupError
    when it is not among them (the position is older than the backup, or of another timeline)."""
    names = [os.path.basename(f) for f in files]
    if log_name not in names:
        raise BackupError(f"the position's log {log_name} is not among the logs after the backup "
                          f"({', '.join(names) or 'none'}): name an older backup, or a later position")
    return files[:names.index(log_name) + 1]


# The largest packet MariaDB takes (1 GiB): a replayed row event of a big transaction is one statement.
MAX_PACKET = 1073741824


def replay(config, files, start_position, stop_datetime=None, stop_position=None):
    """Apply the binary logs to the running server, file by file, from start_position in the first;
    up to stop_datetime (host local time), or to stop_position in the last file, or to their end.
    mariadb-binlog's output is streamed to the client (a log is never held in memory whole).
    Where the replay stopped: {"file", "position"} of the last committed transaction, or None.
    Raises BackupError when either program fails."""
    stopped = None
    for number, path in enumerate(files):
        argv = ["mariadb-binlog"]
        if number == 0:
            argv.append(f"--start-position={start_position}")
        if stop_datetime:
            argv.append(f"--stop-datetime={stop_datetime}")
        if stop_position is not None and number == len(files) - 1:
            argv.append(f"--stop-position={stop_position}")
        # Their messages go to files: a pipe nobody reads until the end could fill and stall them.
        with tempfile.TemporaryFile() as reader_errors, tempfile.TemporaryFile() as client_errors:
            reader = subprocess.Popen(argv + [path], stdout=subprocess.PIPE, stderr=reader_errors)  # noqa: S603
            client = subprocess.Popen(  # noqa: S603
                ["mariadb", "--socket", config["socket"], "--binary-mode", f"--max-allowed-packet={MAX_PACKET}"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=client_errors)
            end = None
            try:
                for line in reader.stdout:
                    found = TRANSACTION_END.search(line)
                    if found:
                        end = int(found.group(1))
                    client.stdin.write(line)
            except BrokenPipeError:
                # The client stopped (an error in a statement): stop the reader too, or it would block
                # on a pipe nobody reads.
                reader.kill()
            finally:
                try:
                    client.stdin.close()
                except BrokenPipeError:
                    pass
                reader.stdout.close()
            # The client first: its error is the cause when both failed.
            for program, process, errors in (("mariadb", client, client_errors),
                                              ("mariadb-binlog", reader, reader_errors)):
                if process.wait() != 0:
                    errors.seek(0)
                    tail = " | ".join(errors.read().decode(errors="replace").strip().splitlines()[-4:])
                    raise BackupError(f"the replay of {path} failed in {program} (exit {process.returncode}): {tail}")
        if end is not None:
            stopped = {"file": os.path.basename(path), "position": end}
    return stopped


def timelines(config):
    """The binary log timelines on this host, newest first: [(directory, [log paths in order])]. The
    live one (the index beside mysql_binlog_basename) first, then each one a restore set aside
    (before-restore-<UTC> beside it). Log names never repeat across them (each restore numbers its
    new timeline after every log it has seen)."""
    directory, base = os.path.split(config["binlog_basename"])
    if not os.path.isdir(directory):
        return []
    candidates = [directory] + sorted((os.path.join(directory, d) for d in os.listdir(directory)
                                       if d.startswith("before-restore-")), reverse=True)
    found = []
    for where in candidates:
        index = os.path.join(where, base + ".index")
        if os.path.exists(index):
            with open(index, encoding="utf-8") as handle:
                found.append((where, [os.path.join(where, os.path.basename(line.strip())) for line in handle
                                      if line.strip()]))
    return found


def logs_for(config, first_file, only=None):
    """The logs a backup that stops in first_file needs, from the timeline that holds it (only: that
    timeline's directory): (its directory, [paths from first_file on]). Raises BackupError when no
    timeline holds it."""
    kept = [(where, paths) for where, paths in timelines(config) if only is None or where == only]
    for where, paths in kept:
        if first_file in (os.path.basename(p) for p in paths):
            return where, binlogs_from(paths, first_file)
    oldest = [os.path.basename(paths[0]) for _where, paths in kept if paths]
    raise BackupError(f"the binary log {first_file}, where the backup stops, is kept nowhere any more (oldest "
                      f"kept: {min(oldest) if oldest else 'none'}): restore the backup alone (--to backup)")


def log_gaps(files):
    """The log names missing between the first and the last of files (paths in order, one timeline):
    a log a backup host pruned, or one a transfer never brought. [] when they follow on."""
    numbers = [log_number(os.path.basename(f)) for f in files]
    if not files:
        return []
    base, width = os.path.basename(files[0]).rsplit(".", 1)[0], len(os.path.basename(files[0]).rsplit(".", 1)[1])
    present = set(numbers)
    return [f"{base}.{n:0{width}d}" for n in range(min(numbers), max(numbers) + 1) if n not in present]


def abandoned_problem(source, backup_name, to, target_epoch):
    """Why the logs of `source` (a timeline directory) cannot take a restore `to` (its target_epoch for
    a time), or None. A timeline a completed restore set aside (its ABANDONED_AT) holds the writes up
    to that restore only: replaying it to its end, or to a later time, would bring back the data as it
    was before that restore and lose what was written since (the newer timeline's, which a backup
    taken after the restore holds; that backup is missing when the one after the restore failed)."""
    try:
        with open(os.path.join(source, ABANDONED), encoding="utf-8") as handle:
            abandoned = float(handle.read().strip())
    except (OSError, ValueError):
        return None
    if to != "end" and (target_epoch is None or target_epoch <= abandoned):
        return None
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(abandoned))
    return (f"backup {backup_name}'s binary logs ({source}) stop at a restore done at {when}: replaying them to "
            f"{'their end' if to == 'end' else to} would bring back the data as it was before that restore and lose "
            f"what was written since. Restore to a time before {when} or to a position in them, or restore a backup "
            "taken after that restore (take one now: site-mysql-backup run)")


def mark_abandoned(config, now=None):
    """After a restore succeeded: every timeline set aside without an ABANDONED_AT yet (this restore's,
    those of its failed attempts, and the pushed copies it replayed) gets one, now (Unix s): their
    writes stop here. A failed attempt marks nothing, so the same restore can run again from them."""
    now = time.time() if now is None else now
    for where, _paths in timelines(config):
        if os.path.basename(where).startswith("before-restore-") and not os.path.exists(os.path.join(where, ABANDONED)):
            with open(os.path.join(where, ABANDONED), "w", encoding="utf-8") as handle:
                handle.write(f"{now:.0f}\n")


def highest_log_number(config):
    """The highest number of any binary log of any timeline on this host (0: none)."""
    numbers = [int(m.group(1)) for _where, paths in timelines(config) for p in paths
               if (m := re.search(r"\.(\d+)$", p))]
    return max(numbers, default=0)


def set_binlogs_aside(config, stamp):
    """Move the live binary logs and their index into before-restore-<stamp> beside them (the
    timeline the restore abandons: never deleted here). Returns that directory, or None when
    there is no index."""
    index = config["binlog_basename"] + ".index"
    if not os.path.exists(index):
        return None
    with open(index, encoding="utf-8") as handle:
        listed = [line.strip() for line in handle if line.strip()]
    aside = os.path.join(os.path.dirname(config["binlog_basename"]), f"before-restore-{stamp}")
    os.makedirs(aside, mode=0o750)
    shutil.chown(aside, "mysql", "adm")
    for path in listed:
        for candidate in (path, path + ".idx"):
            if os.path.exists(candidate):
                os.rename(candidate, os.path.join(aside, os.path.basename(candidate)))
    os.rename(index, os.path.join(aside, os.path.basename(index)))
    return aside


def start_service(config, options=None):
    """Start MariaDB (with MYSQLD_OPTS=options for this start only, when given) and wait until it
    answers on its socket. A restore starts it twice in a few seconds: the start rate limit of an
    earlier failure is cleared first."""
    run(["systemctl", "reset-failed", config["service"]])
    if options:
        run(["systemctl", "set-environment", f"MYSQLD_OPTS={options}"])
    try:
        run(["systemctl", "start", config["service"]])
    finally:
        if options:
            run(["systemctl", "unset-environment", "MYSQLD_OPTS"])
    wait_for_socket(config, config["socket"], config["start_timeout"])


def adopt_copies(config, incoming, stamp):
    """Take what a backup host pushed into incoming (restore.yml -e restore_from=...) into place: the
    one backup directory <incoming>/<name>/, checked against its SHA256SUMS, joins the backups (one
    of that name already here is kept instead); the binary logs of <incoming>/binlog/, each checked
    against binlog/SHA256SUMS, become a timeline of their own beside the live logs
    (before-restore-copies-<stamp>, with an index). Returns (the backup's name, that timeline's
    directory or None without logs). Raises BackupError when incoming holds no single backup or a
    file fails its checksum; nothing of MariaDB's has changed then."""
    names = sorted(n for n in os.listdir(incoming) if STAMP_PATTERN.match(n)) if os.path.isdir(incoming) else []
    if len(names) != 1:
        raise BackupError(f"{incoming} must hold one backup pushed by a backup host; it holds {len(names)}")
    # What a backup host wrote is owned and moved by root here: a link in it could point anywhere.
    links = [os.path.join(root, n) for root, dirs, files in os.walk(incoming) for n in dirs + files
             if os.path.islink(os.path.join(root, n))]
    if links:
        raise BackupError(f"the push holds symbolic links, which a backup never has: {', '.join(links[:5])}")
    name, pushed = names[0], os.path.join(incoming, names[0])
    check_sums(pushed)
    target = os.path.join(config["backup_dir"], name)
    if os.path.exists(target):
        try:
            check_sums(target)
        except BackupError:
            # A copy of that name that fails its sums (an adoption cut short): the pushed one replaces it.
            shutil.rmtree(target)
    if os.path.exists(target):
        shutil.rmtree(pushed)
    else:
        # Maybe another filesystem: copied beside the backups as a .partial-* (which the next backup run
        # removes if this one is cut short), then renamed whole.
        partial = os.path.join(config["backup_dir"], f".partial-pushed-{name}")
        if os.path.exists(partial):
            shutil.rmtree(partial)
        shutil.move(pushed, partial)
        share_with_group(partial, config["group"])
        os.rename(partial, target)
    logs_in = os.path.join(incoming, "binlog")
    if not os.path.exists(os.path.join(logs_in, SUMS)):
        return name, None
    # Logs the backup host pruned are listed but absent; a log the restore needs and lacks is named later.
    result = subprocess.run(["sha256sum", "--quiet", "--strict", "--ignore-missing", "-c", SUMS], cwd=logs_in,
                            text=True, capture_output=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"the pushed binary logs do not match their {SUMS}: "
                          f"{(result.stdout + result.stderr).strip()[:400]}")
    directory, base = os.path.split(config["binlog_basename"])
    logs = sorted((n for n in os.listdir(logs_in) if re.fullmatch(re.escape(base) + r"\.\d+", n)), key=log_number)
    timeline = os.path.join(directory, f"before-restore-copies-{stamp}")
    os.makedirs(timeline, mode=0o750)
    for log_name in logs:
        shutil.move(os.path.join(logs_in, log_name), os.path.join(timeline, log_name))
    with open(os.path.join(timeline, base + ".index"), "w", encoding="utf-8") as handle:
        handle.writelines(os.path.join(timeline, n) + "\n" for n in logs)
    run(["chown", "-R", "mysql:adm", timeline])
    shutil.rmtree(logs_in)
    log(f"took backup {name} and {len(logs)} binary log(s) pushed by a backup host; the logs are in {timeline}")
    return name, timeline


def restore(config, name, to, incoming=None):
    """Replace the data directory with a backup, then replay the binary logs. A report (dict).

    The backup's logs are found in the timeline that holds them (the live one, or one an earlier
    restore set aside). The old data directory and the live binary logs are moved aside, never
    deleted. The restored server starts without networking, begins a new binary log numbered after
    every log seen (RESET MASTER TO), replays the logs from the backup's position (to the time or
    position asked, or to their end), and only then starts normally; then a backup is taken, the
    new timeline's first. Raises BackupError before anything changes when the backup or its logs
    cannot serve; after, MariaDB is left stopped and the message says where everything is (running
    the same restore again finds the logs where they were set aside)."""
    began = time.monotonic()
    target_epoch, target_position, position_match = parse_to(to)
    copies_timeline = None
    if incoming:
        name, copies_timeline = adopt_copies(
            config, incoming, datetime.datetime.now(datetime.timezone.utc).strftime(STAMP_FORMAT))
    backup = choose_backup(good_backups(config), name, target_epoch, target_position)
    check_sums(backup["path"])
    replaying = to != "backup"
    if replaying and not (config["binlog_enabled"] and backup.get("binlog")):
        raise BackupError(f"backup {backup['name']} has no binary log position (the log was off): only --to backup "
                          "restores it")
    source, files = None, []
    if replaying:
        # Checked before anything changes: the logs the replay needs are all there.
        # Pushed logs are the lost host's: this host's own logs may have the same names, so they are
        # never used for a pushed backup.
        if incoming and copies_timeline is None:
            raise BackupError(f"the backup host pushed backup {backup['name']} without binary logs: only --to backup "
                              "restores it (the copies hold no binlog/ to replay)")
        source, files = logs_for(config, backup["binlog"]["file"], copies_timeline if incoming else None)
        if position_match:
            files = logs_up_to(files, position_match.group(1))
        problem = abandoned_problem(source, backup["name"], to, target_epoch)
        if problem:
            raise BackupError(problem)
        missing = log_gaps(files)
        if missing:
            raise BackupError(f"the binary logs after backup {backup['name']} in {source} lack {', '.join(missing)}: a "
                              "replay past a missing log would skip its writes. Restore to a position before the "
                              "first of them, or --to backup")
    datadir = config["datadir"].rstrip("/")
    if os.path.ismount(datadir):
        raise BackupError(f"{datadir} is a mount point: the restore moves the data directory aside whole and cannot; "
                          "restore into a data directory that is a folder of its filesystem (docs/backups.md)")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime(STAMP_FORMAT)
    highest = highest_log_number(config)
    run(["systemctl", "stop", config["service"]])
    binlog_aside, aside, stopped = None, None, None
    try:
        binlog_aside = set_binlogs_aside(config, stamp) if config["binlog_enabled"] else None
        if source == os.path.dirname(config["binlog_basename"]) and binlog_aside:
            source = binlog_aside
            files = [os.path.join(binlog_aside, os.path.basename(f)) for f in files]
        if os.path.isdir(datadir) and os.listdir(datadir):
            aside = f"{datadir}.before-restore-{stamp}"
            os.rename(datadir, aside)
            log(f"the data directory was moved aside to {aside}")
        elif os.path.isdir(datadir):
            os.rmdir(datadir)
        run(["mariadb-backup", "--copy-back", f"--target-dir={backup['path']}", f"--datadir={datadir}"])
        run(["chown", "-R", "mysql:mysql", datadir])
        os.chmod(datadir, 0o755)
        # No client but this restore until it is done: the server starts without networking.
        start_service(config, f"--skip-networking --max-allowed-packet={MAX_PACKET}")
        if config["binlog_enabled"]:
            # A new timeline whose log numbers go on after every old one, so a log name never means two
            # files (a backup names the log it stops at). Not gtid_binlog_state: setting it starts the
            # numbering again at 1. The replayed events keep their GTIDs.
            sql(config, f"RESET MASTER TO {highest + 1}")
        if files:
            stopped = replay(config, files, backup["binlog"]["position"], to if target_epoch is not None else None,
                             target_position[1] if target_position else None)
        run(["systemctl", "stop", config["service"]])
        start_service(config)
        mark_abandoned(config)
    except (BackupError, OSError) as error:
        subprocess.run(["systemctl", "stop", config["service"]], check=False)  # noqa: S603
        live_dir = os.path.dirname(config["binlog_basename"])
        raise BackupError(
            f"{error}. MariaDB is stopped: a half-restored database serves nobody. The data directory before this "
            f"attempt is {aside or '(there was none)'} (after several attempts, the data as it was is the oldest "
            f"{datadir}.before-restore-*); the binary logs are in {binlog_aside or source or 'none'}. Either run the "
            f"same restore again once the cause is fixed (it finds the logs there), or put things back: move "
            f"{aside or 'that directory'} to {datadir}, move the logs and their .index from "
            f"{binlog_aside or 'there'} back to {live_dir}, and start MariaDB") from error
    # The restore began a new binary log timeline: a backup of its own lets the next point-in-time
    # restore start from it.
    try:
        after, after_error = take_backup(config, "after restore"), None
    except BackupError as error:
        # The data is back: a failed backup is reported, not turned into a failed restore.
        after, after_error = {"name": None, "seconds": None}, str(error)
        log(f"the backup after the restore failed: {error}; take one (site-mysql-backup run) before relying on a "
            "point-in-time restore of the restored data", warning=True)
    report = {
        "restored": backup["name"], "backup_finished": backup["finished"], "backup_binlog": backup.get("binlog"),
        "to": to, "replayed_files": [os.path.basename(f) for f in files],
        "stopped_at": stopped or backup.get("binlog"),
        "gtid_binlog_pos": sql(config, "SELECT @@gtid_binlog_pos")[0][0],
        "data_moved_aside": aside, "binlogs_moved_aside": binlog_aside, "new_backup": after["name"],
        "new_backup_error": after_error,
        "seconds": round(time.monotonic() - began, 1), "backup_seconds": after["seconds"],
    }
    log(f"restored {backup['name']} to {to}: stopped at {report['stopped_at']}; the old data directory is "
        f"{aside or 'gone (there was none)'}, the old binary logs {binlog_aside or 'none'}")
    return report


def main(argv=None):
    """Command-line entry point; see the module's docstring."""
    parser = argparse.ArgumentParser(prog="site-mysql-backup", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=CONFIG)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run")
    run_parser.add_argument("--reason", default="scheduled")
    protect_parser = commands.add_parser("protect")
    protect_parser.add_argument("--max-age-hours", type=float, required=True)
    protect_parser.add_argument("--reason", default="before migrate")
    commands.add_parser("position")
    commands.add_parser("list")
    commands.add_parser("check")
    restore_parser = commands.add_parser("restore")
    restore_parser.add_argument("--backup", default="latest")
    restore_parser.add_argument("--to", default="backup")
    restore_parser.add_argument("--incoming")
    choose_parser = commands.add_parser("choose")
    choose_parser.add_argument("--dir", required=True, action="append")
    choose_parser.add_argument("--not-source-id")
    choose_parser.add_argument("--backup", default="latest")
    choose_parser.add_argument("--to", default="backup")
    choose_parser.add_argument("--time-zone")
    args = parser.parse_args(argv)
    try:
        if args.command == "choose":
            target_epoch, target_position, _ = parse_to(args.to, args.time_zone)
            chosen = choose_backup(copies_in(args.dir, args.not_source_id), args.backup, target_epoch, target_position)
            json.dump({**{k: v for k, v in chosen.items() if k != "path"}, "dir": os.path.dirname(chosen["path"])},
                      sys.stdout)
            print()
            return 0
        config = load_config(args.config)
        if args.command == "list":
            result = [{k: v for k, v in b.items() if k != "path"} for b in good_backups(config)]
        elif args.command == "position":
            result = position(config)
        elif args.command == "check":
            if config["ship_binlogs"] and config["binlog_enabled"]:
                try:
                    with Lock(config["lock_file"]):
                        ship_binlogs(config)
                except BackupError as error:
                    log(f"the binary logs were not put beside the backups this time: {error}", warning=True)
            result = status(config)
            write_metrics(config, result)
            if result["stale"]:
                log(f"the newest good backup ({result['newest'] or 'none'}) is {result['age_seconds']} s old, "
                    f"window {result['window_seconds']} s", warning=True)
                if config.get("alert_hook"):
                    subprocess.run(["/bin/sh", "-c", config["alert_hook"]], check=False,  # noqa: S603
                                   env=dict(os.environ, BACKUP_AGE_SECONDS=str(result["age_seconds"]),
                                            BACKUP_WINDOW_SECONDS=str(result["window_seconds"])))
            result = {k: v for k, v in result.items() if k != "metrics"}
        else:
            # A deploy's protect and a restore wait for a backup under way; a timer's backup does not queue.
            with Lock(config["lock_file"], 0 if args.command == "run" else config["lock_wait"]):
                if args.command == "run":
                    result = take_backup(config, args.reason)
                elif args.command == "protect":
                    backups = good_backups(config)
                    fresh = backups and time.time() - backups[-1]["finished_epoch"] < args.max_age_hours * 3600
                    if fresh and config["binlog_enabled"]:
                        result = {"kind": "position", "backup": backups[-1]["name"], "position": position(config)}
                    else:
                        # With the binary log off, the backup is the only way back (no position).
                        manifest = take_backup(config, args.reason)
                        result = {"kind": "backup", "backup": manifest["name"],
                                  "position": position(config) if config["binlog_enabled"] else None}
                else:
                    result = restore(config, args.backup, args.to, args.incoming)
    except BackupError as error:
        log(f"error: {error}", warning=True)
        return 2
    json.dump(result, sys.stdout)
    print()
    if args.command == "check" and result["stale"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
