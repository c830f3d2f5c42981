#!/usr/bin/python3
# Installed by the backup_server role: changes made here are lost at the next run.
"""site-backup-pull: copies of the database hosts' backups and binary logs, pulled and checked.

Installed by the bundle's backup_server role as /usr/local/sbin/site-backup-pull, run by
site-backup-pull.timer as the account site-backups; settings in /etc/site-backup-pull.json. For each
database host (a "source"): rsync over SSH from its read-only account (rrsync -ro on its backup
directory, role mysql_backup), then every new backup is checked against its SHA256SUMS and every new
binary log against binlog/SHA256SUMS before it counts (a damaged file is removed, so the next pull
fetches it again); copies older than the retention are pruned
(the newest keep_min backups stay); the metrics are written. A source rebuilt under the same name (a
new SOURCE_ID) has its old copies moved to <dir>/<source>.replaced-<UTC> first, kept for a restore.

Commands (each prints one JSON object on stdout; messages go to stderr, so to the journal):
    pull     pull, check, prune, write the metrics
    status   the metrics only

Exit status: 0 every source fresh and whole; 1 a source could not be pulled, a copy failed its
checksums, or the newest copy is older than its window (the alert hook ran); 2 bad settings.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

CONFIG = "/etc/site-backup-pull.json"
STAMP_PATTERN = re.compile(r"^\d{8}T\d{6}Z$")
CHECKED = ".copy-checked"
SUMS = "SHA256SUMS"
# What rsync leaves alone on the database host: work in progress of site-mysql-backup.
EXCLUDES = [".partial-*", ".verify-*", ".sums.*", ".shipped.*", ".*.partial", ".rotated-at"]
# The database host's last whole shipment of its closed binary logs (role mysql_backup), Unix s.
SHIPPED = "SHIPPED_AT"
# The source's identity (role mysql_backup): a rebuilt host has a new one.
SOURCE_ID = "SOURCE_ID"


def log(message, warning=False):
    """One line to stderr; under systemd a <4> prefix makes it a journal warning."""
    prefix = "<4>" if warning and not sys.stderr.isatty() else ""
    print(f"{prefix}site-backup-pull: {message}", file=sys.stderr, flush=True)


def sha256(path):
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(path):
    """sha256sum's format as {relative path: hex digest}; {} when the file is missing."""
    if not os.path.exists(path):
        return {}
    found = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                found[parts[1]] = parts[0]
    return found


def damaged_files(directory, sums):
    """The files of sums (relative to directory) missing or with another SHA-256: a list of names."""
    return [name for name, digest in sums.items()
            if not os.path.exists(os.path.join(directory, name)) or sha256(os.path.join(directory, name)) != digest]


def ssh_command(config, source):
    """The ssh command rsync runs to reach a source: this host's key, the source's known host key only."""
    return (f"ssh -i {config['key']} -p {source['ssh_port']} -o BatchMode=yes -o IdentitiesOnly=yes "
            f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={config['known_hosts']} -o ConnectTimeout=20")


def set_aside_if_replaced(config, source, destination, now):
    """When the source's SOURCE_ID (a random id its backup directory got once, role mysql_backup)
    differs from the one of the copies here, the host was rebuilt under the same name: its binary logs
    start again at the same numbers and would overwrite the old host's. The old copies then move to
    <destination>.replaced-<UTC> (kept, never pruned here: what a restore of the lost host needs,
    playbooks/restore.yml -e restore_from=...). Returns that path, or None (same source, a first pull,
    a source without an id, or the id could not be read: the pull reports that)."""
    with tempfile.TemporaryDirectory() as scratch:
        argv = ["rsync", "-t", "-e", ssh_command(config, source),
                f"{source['reader']}@{source['address']}:./{SOURCE_ID}", scratch + "/"]
        if subprocess.run(argv, capture_output=True, text=True, check=False).returncode != 0:  # noqa: S603
            return None
        with open(os.path.join(scratch, SOURCE_ID), encoding="utf-8") as handle:
            remote = handle.read().strip()
    local_path = os.path.join(destination, SOURCE_ID)
    if not os.path.exists(local_path):
        return None
    with open(local_path, encoding="utf-8") as handle:
        local = handle.read().strip()
    if not remote or remote == local:
        return None
    aside = f"{destination}.replaced-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}"
    os.rename(destination, aside)
    os.makedirs(destination)
    log(f"{source['source']}: its backup directory has a new identity ({remote}, was {local}): the host was rebuilt. "
        f"The old host's copies were moved to {aside}, kept for a restore", warning=True)
    return aside


def pull(config, source, destination):
    """rsync the source's backup directory into destination. Returns None, or the error (str)."""
    ssh = ssh_command(config, source)
    # An interrupted transfer waits in .rsync-partial/, never under the file's own name, so a file that
    # has its name here is whole (and is still checked against its checksum).
    argv = ["rsync", "-rlt", "--partial-dir=.rsync-partial", "--safe-links", "-e", ssh]
    argv += [f"--exclude={pattern}" for pattern in EXCLUDES]
    argv += [f"{source['reader']}@{source['address']}:./", destination + "/"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        return f"rsync exit {result.returncode}: {' | '.join(result.stderr.strip().splitlines()[-3:])}"
    return None


def source_names(config, source):
    """The names at the top of the source's backup directory (rsync --list-only through the same
    read-only account), or None when it cannot be listed."""
    argv = ["rsync", "--list-only", "-e", ssh_command(config, source), f"{source['reader']}@{source['address']}:./"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        return None
    return {line.split()[-1] for line in result.stdout.splitlines() if line.strip()}


def check_copies(destination, on_source=None):
    """Check what is new since the last run: each backup directory against its SHA256SUMS (a marker
    file records a whole one), each binary log against binlog/SHA256SUMS. on_source: the names the
    source still has (source_names), or None: an incomplete copy of a backup the source no longer
    has (pruned there while this host copied it) can never be completed, and is removed instead of
    being reported damaged at every pull. Returns the damaged names (backups and logs)."""
    damaged = []
    for name in sorted(os.listdir(destination)):
        path = os.path.join(destination, name)
        if not STAMP_PATTERN.match(name) or not os.path.isdir(path) or os.path.exists(os.path.join(path, CHECKED)):
            continue
        sums = read_sums(os.path.join(path, SUMS))
        bad = damaged_files(path, sums) if sums else [SUMS]
        if bad and on_source is not None and name not in on_source:
            shutil.rmtree(path)
            log(f"{path}: incomplete, and its source pruned it before the copy was whole: removed", warning=True)
            continue
        if bad:
            damaged.append(f"{name} ({', '.join(bad[:3])})")
            # Removed, so the next pull fetches them again (rsync skips a file of the same size and time).
            for file_name in bad:
                if file_name != SUMS and os.path.exists(os.path.join(path, file_name)):
                    os.unlink(os.path.join(path, file_name))
            continue
        with open(os.path.join(path, CHECKED), "w", encoding="utf-8") as handle:
            handle.write(f"{int(time.time())}\n")
    binlogs = os.path.join(destination, "binlog")
    sums = read_sums(os.path.join(binlogs, SUMS))
    checked_path = os.path.join(binlogs, CHECKED)
    checked = read_sums(checked_path)
    # A log pruned here and fetched again is checked again.
    checked = {name: digest for name, digest in checked.items() if os.path.exists(os.path.join(binlogs, name))}
    for name, digest in sums.items():
        if checked.get(name) == digest:
            continue
        if damaged_files(binlogs, {name: digest}):
            damaged.append(f"binlog/{name}")
            if os.path.exists(os.path.join(binlogs, name)):
                os.unlink(os.path.join(binlogs, name))
        else:
            checked[name] = digest
    if os.path.isdir(binlogs):
        with open(checked_path, "w", encoding="utf-8") as handle:
            handle.writelines(f"{digest}  {name}\n" for name, digest in sorted(checked.items()))
    return damaged


def copies(destination):
    """The checked backups of a source here, oldest first: their manifests (with "path")."""
    found = []
    for name in sorted(os.listdir(destination)) if os.path.isdir(destination) else []:
        path = os.path.join(destination, name)
        if STAMP_PATTERN.match(name) and os.path.exists(os.path.join(path, CHECKED)):
            try:
                with open(os.path.join(path, "backup.json"), encoding="utf-8") as handle:
                    manifest = json.load(handle)
            except (OSError, ValueError):
                continue
            manifest["path"] = path
            found.append(manifest)
    return sorted(found, key=lambda b: b["finished_epoch"])


def prune(config, destination, now):
    """Delete copies older than the retention (not the newest keep_min backups); binary logs older
    than the retention. The names deleted."""
    limit = now - config["retention_days"] * 86400
    backups = copies(destination)
    deleted = []
    for backup in backups[:max(0, len(backups) - config["keep_min"])]:
        if backup["finished_epoch"] < limit:
            shutil.rmtree(backup["path"])
            deleted.append(backup["name"])
    binlogs = os.path.join(destination, "binlog")
    for name in sorted(os.listdir(binlogs)) if os.path.isdir(binlogs) else []:
        path = os.path.join(binlogs, name)
        if not name.startswith(".") and name not in (SUMS, SHIPPED) and os.path.getmtime(path) < limit:
            os.unlink(path)
            deleted.append(f"binlog/{name}")
    return deleted


def source_status(config, source, destination, now, pull_error=None, damaged=()):
    """The freshness of one source's copies: a dict with the ages (s, -1: none) and "problems"."""
    backups = copies(destination)
    newest = backups[-1] if backups else None
    age = int(now - newest["finished_epoch"]) if newest else -1
    try:
        with open(os.path.join(destination, "binlog", SHIPPED), encoding="utf-8") as handle:
            binlog_age = int(now - int(handle.read().strip()))
    except (OSError, ValueError):
        binlog_age = -1
    problems = []
    if pull_error:
        problems.append(f"pull failed: {pull_error}")
    if damaged:
        problems.append(f"damaged: {', '.join(damaged)}")
    if newest is None or age > source["alert_age_hours"] * 3600:
        problems.append(f"newest backup copy {'missing' if newest is None else f'{age} s old'}, window "
                        f"{int(source['alert_age_hours'] * 3600)} s")
    if config["binlog_alert_age_hours"] and (binlog_age < 0 or binlog_age > config["binlog_alert_age_hours"] * 3600):
        problems.append(f"last binary log shipment {'missing' if binlog_age < 0 else f'{binlog_age} s old'}, window "
                        f"{int(config['binlog_alert_age_hours'] * 3600)} s")
    return {"source": source["source"], "newest": newest["name"] if newest else None, "count": len(backups),
            "age_seconds": age, "binlog_age_seconds": binlog_age, "damaged": len(damaged), "problems": problems}


def write_metrics(config, statuses):
    """The metrics (Prometheus text format) for node_exporter's textfile collector, atomically."""
    metrics = [
        ("site_backup_copy_age_seconds", "Age of the newest checked backup copy of the database host (-1: none).",
         "age_seconds"),
        ("site_backup_copy_binlog_age_seconds", "Age of the database host's last whole binary log shipment copied "
         "here (-1: none).",
         "binlog_age_seconds"),
        ("site_backup_copy_count", "Checked backup copies of the database host kept here.", "count"),
        ("site_backup_copy_damaged", "Copies that failed their checksums in the last pull.", "damaged"),
    ]
    lines = []
    for name, help_text, key in metrics:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        lines += [f'{name}{{source="{s["source"]}"}} {s[key]}' for s in statuses]
    lines += ["# HELP site_backup_copy_problem 1 when the copies of the database host are stale, damaged or "
              "were not pulled.", "# TYPE site_backup_copy_problem gauge"]
    lines += [f'site_backup_copy_problem{{source="{s["source"]}"}} {int(bool(s["problems"]))}' for s in statuses]
    # Written where the account may write (its home); the unit's ExecStopPost, with root's rights,
    # moves it into node_exporter's directory after every run, failed ones too.
    path = config["metrics_work_file"]
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".site_backup_copies.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def main(argv=None):
    """Command-line entry point; see the module's docstring."""
    parser = argparse.ArgumentParser(prog="site-backup-pull", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("command", choices=["pull", "status"])
    args = parser.parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as error:
        log(f"error: cannot read the settings {args.config}: {error}", warning=True)
        return 2
    statuses = []
    for source in config["sources"]:
        destination = os.path.join(config["dir"], source["source"])
        os.makedirs(destination, exist_ok=True)
        pull_error, damaged, pruned, replaced = None, [], [], None
        if args.command == "pull":
            replaced = set_aside_if_replaced(config, source, destination, time.time())
            pull_error = pull(config, source, destination)
            damaged = check_copies(destination, None if pull_error else source_names(config, source))
            pruned = prune(config, destination, time.time())
        found = source_status(config, source, destination, time.time(), pull_error, damaged)
        found["pruned"] = pruned
        found["replaced"] = replaced
        statuses.append(found)
        for problem in found["problems"]:
            log(f"{source['source']}: {problem}", warning=True)
            if config.get("alert_hook"):
                subprocess.run(["/bin/sh", "-c", config["alert_hook"]], check=False,  # noqa: S603
                               env=dict(os.environ, SOURCE=source["source"], REASON=problem))
        if not found["problems"]:
            log(f"{source['source']}: {found['count']} backup copies, the newest {found['age_seconds']} s old, "
                f"the last binary log shipment {found['binlog_age_seconds']} s old")
    write_metrics(config, statuses)
    json.dump({"sources": statuses}, sys.stdout)
    print()
    return 1 if any(s["problems"] for s in statuses) else 0


if __name__ == "__main__":
    sys.exit(main())
