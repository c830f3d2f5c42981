#!/usr/bin/python3
"""What a running systemd service has not loaded: settings files newer than the process that read them.

A run stopped between a settings file's change and its handler (a restart or a reload) loses the
handler; the next run finds the file unchanged and would never apply it. This script reads the answer
from the host instead, so a role can notify the handler again (roles/common/tasks/unloaded.yml).

Usage: site_unloaded.py UNIT JSON
  JSON: {"restart": [path, ...], "reload": [path, ...]}; a path is a file or a directory (itself and
        every file under it); missing paths are skipped.
Prints one JSON object:
  {"action": "restart" | "reload" | "none", "newer": [path, ...], "daemon_reload": bool,
   "loaded_at": epoch seconds (float) or null}
  - restart: a "restart" path is newer than the main process's start (or, for a unit without one,
    such as a timer, than the moment the unit last became active);
  - reload: a "reload" path is newer than the newest child of the main process (a master and its
    workers: HAProxy and nginx start new workers at each reload and keep their master), or than the
    main process when it has no children;
  - none: the unit is not running (its start will read everything) or runs what the files say.
  daemon_reload: systemd has not re-read the unit's files (NeedDaemonReload); the caller re-reads
    them, and lists the drop-ins only a restart applies among the "restart" paths.
Times: a process's start is /proc/<pid>/stat's starttime (clock ticks after boot, proc(5)), taken
back from the boot-time clock's now, so its resolution is one tick (10 ms, earlier rather than later);
file times are mtimes.
Exit status 0; 2 on bad arguments.
"""

import json
import os
import subprocess
import sys
import time


def started(pid):
    """When process pid started, epoch seconds (float), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command's ")": field 3 (state) is fields[0], so starttime (field 22) is fields[19]: clock
    # ticks on the boot-time clock, which counts from the same zero as CLOCK_BOOTTIME.
    ago = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return time.time() - ago


def children(pid):
    """The pids of pid's children: every thread's children file (proc(5)), or, on a kernel without
    them (CONFIG_PROC_CHILDREN), the processes whose parent (field 4 of /proc/<pid>/stat) is pid."""
    found, readable = [], False
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as kids:
                found += [int(kid) for kid in kids.read().split()]
                readable = True
        except OSError:
            continue
    if readable:
        return found
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def files(path):
    """(path, mtime) of path, and of every file under it when it is a directory (a directory's own
    mtime tells a file removed from it); none when missing."""
    if os.path.isdir(path):
        yield path, os.stat(path).st_mtime
        for root, _dirs, names in os.walk(path):
            for name in sorted(names):
                yield from files(os.path.join(root, name))
        return
    try:
        yield path, os.stat(path).st_mtime
    except OSError:
        return


def newer(paths, since):
    """The files among paths modified after since (epoch seconds)."""
    found = [path for top in paths for path, mtime in files(top) if mtime > since]
    return list(dict.fromkeys(found))


def unit_state(unit):
    """systemd's MainPID (int), ActiveState, NeedDaemonReload (bool) and the time the unit last became
    active (epoch seconds, from ActiveEnterTimestampMonotonic: microseconds on the monotonic clock,
    which a container shares with its host and its systemd) of unit."""
    out = subprocess.run(["systemctl", "show", "-p", "MainPID", "-p", "ActiveState", "-p", "NeedDaemonReload",
                          "-p", "ActiveEnterTimestampMonotonic", unit], capture_output=True, text=True,
                         check=True).stdout
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    entered = int(props.get("ActiveEnterTimestampMonotonic", "0") or 0)
    active_since = time.time() - (time.monotonic() - entered / 1e6) if entered else None
    return (int(props.get("MainPID", "0") or 0), props.get("ActiveState", ""),
            props.get("NeedDaemonReload") == "yes", active_since)


def unloaded(unit, paths):
    """What unit has not loaded of paths ({"restart": [...], "reload": [...]}): the dict the module's
    docstring describes."""
    pid, active, daemon_reload, active_since = unit_state(unit)
    result = {"action": "none", "newer": [], "daemon_reload": daemon_reload, "loaded_at": None}
    if active != "active":
        return result
    started_at = (started(pid) if pid else None) or active_since
    if started_at is None:
        return result
    stale = newer(paths.get("restart", []), started_at)
    if stale:
        return {**result, "action": "restart", "newer": stale, "loaded_at": started_at}
    workers = [t for t in (started(kid) for kid in children(pid)) if t is not None] if pid else []
    loaded_at = max(workers, default=started_at)
    stale = newer(paths.get("reload", []), loaded_at)
    return {**result, "action": "reload" if stale else "none", "newer": stale, "loaded_at": loaded_at}


def main(argv):
    """Print what UNIT has not loaded (see the module's docstring); 2 on bad arguments."""
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(unloaded(argv[1], json.loads(argv[2]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
