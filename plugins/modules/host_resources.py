#!/usr/bin/python
"""host_resources: the CPUs and memory a host can really use, with the cgroup limits applied."""

from __future__ import annotations

import math
import os
import re

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: host_resources
short_description: The CPUs and memory a host can use, cgroup limits included
description:
  - Reads the machine's CPU count and memory, then the CPU quota, the cpuset and the memory limit of
    the cgroup of the host's init process (PID 1) and of every cgroup above it, for cgroup v1 and v2,
    wherever C(/proc/1/mountinfo) says the cgroup file systems are mounted.
  - On a container or a VM guest with limits, C(/proc/cpuinfo) and C(/proc/meminfo), so Ansible's
    C(processor_vcpus) and C(memtotal_mb) facts, show the whole machine; the sizing of the bundle's
    roles must follow what the host can use instead.
  - Read-only; supports check mode.
options:
  proc_root:
    description: Where procfs is mounted.
    type: path
    default: /proc
author: the bundle's maintainers
"""

EXAMPLES = r"""
- name: Read the CPUs and memory the host can use
  host_resources:
  register: __resources
"""

RETURN = r"""
vcpus:
  description: CPUs the host can use, the smallest of the machine's, the cpuset's and the CPU quota's rounded up.
  type: int
  returned: always
memtotal_mb:
  description: Memory the host can use in MiB, the smaller of the machine's and the memory limit.
  type: int
  returned: always
machine_vcpus:
  description: The machine's online CPUs (what processor_vcpus shows).
  type: int
  returned: always
machine_memtotal_mb:
  description: The machine's memory in MiB (MemTotal, what memtotal_mb shows).
  type: int
  returned: always
cpu_quota:
  description: The CPU quota in CPUs (quota / period, the smallest on the cgroup path), or null for none.
  type: float
  returned: always
cpuset_cpus:
  description: CPUs in the cgroup's effective cpuset, or null when the cpuset is the whole machine or unknown.
  type: int
  returned: always
memory_limit_mb:
  description: The memory limit in MiB (the smallest on the cgroup path), or null for none.
  type: int
  returned: always
cgroup_version:
  description: 1 or 2, or null when no cgroup file system could be read.
  type: int
  returned: always
cgroup_path:
  description: PID 1's cgroup path (of the cpu controller on cgroup v1).
  type: str
  returned: always
cpu_source:
  description: What decided vcpus, in words.
  type: str
  returned: always
memory_source:
  description: What decided memtotal_mb, in words.
  type: str
  returned: always
"""

# A memory limit at or above this means "no limit" on cgroup v1 (PAGE_COUNTER_MAX pages, rounded).
_V1_NO_LIMIT = 1 << 60


def parse_cpuset(text):
    """Number of CPUs in a cpuset list such as "0-3,6,8-9" (cpuset(7) "List format"); None if empty."""
    count = 0
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        count += (int(last) - int(first) + 1) if last else 1
    return count or None


def parse_proc_cgroup(text):
    """{controller: path} from /proc/<pid>/cgroup (cgroups(7)).

    cgroup v2 has one line "0::/path", returned as {"": "/path"}; cgroup v1 has one line per
    hierarchy, "N:cpu,cpuacct:/path", returned once per controller ({"cpu": ..., "cpuacct": ...}).
    Named hierarchies ("name=systemd") are skipped."""
    paths = {}
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":
            paths[""] = path
        for controller in controllers.split(","):
            if controller and not controller.startswith("name="):
                paths[controller] = path
    return paths


def _ancestors(path):
    """"/a/b/c" -> ["/a/b/c", "/a/b", "/a", "/"]."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(len(parts), -1, -1)]


def _read(path):
    """A file's text, stripped; None when it cannot be read. Bytes that are not UTF-8 are kept
    escaped (mountinfo may name a mount point in any encoding)."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", errors="surrogateescape").strip()
    except OSError:
        return None


def _number(text):
    """An integer from a cgroup file's text, or None when there is none."""
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def parse_mountinfo(text):
    """{controller: (mount point, mount root)} of the cgroup file systems in /proc/<pid>/mountinfo
    (proc(5)): one entry per cgroup v1 controller (cpu, cpuset, memory) and "" for cgroup v2. The
    first mount of each wins. The mount point is where the files are; the mount root is the cgroup
    the mount shows as its top (not "/" when a container sees only its own part of the tree)."""
    mounts = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or not tail:
            continue
        # Spaces, tabs, newlines and backslashes in paths are octal escapes (\040 ...).
        root, mount_point = (re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), f) for f in fields[3:5])
        if tail[0] == "cgroup2":
            mounts.setdefault("", (mount_point, root))
        elif tail[0] == "cgroup" and len(tail) > 2:
            for option in tail[2].split(","):
                if option in ("cpu", "cpuset", "memory"):
                    mounts.setdefault(option, (mount_point, root))
    return mounts


def _folders(mount, path):
    """The folders of cgroup `path` (as /proc/<pid>/cgroup names it) and of every cgroup above it,
    nearest first, that the mount (mount point, mount root) shows. Cgroups above the mount's root are
    not in it; a root outside the namespace ("/.." ...) shows nothing this process can place."""
    mount_point, root = mount
    if root.startswith("/.."):
        return []
    found = []
    for cgroup in _ancestors(path):
        if root == "/":
            relative = cgroup
        elif cgroup == root or cgroup.startswith(root.rstrip("/") + "/"):
            relative = cgroup[len(root.rstrip("/")):]
        else:
            continue
        found.append(os.path.join(mount_point, relative.lstrip("/")))
    return found


def _service_path(path):
    """Where a host's services run, from PID 1's cgroup: systemd keeps itself in init.scope and the
    services in system.slice beside it, whose limits (and its parents') are the ones that bind them."""
    if path.rstrip("/").endswith("/init.scope"):
        return path.rstrip("/")[: -len("init.scope")] + "system.slice"
    return path


def read_limits(proc_cgroup_text, mountinfo_text):
    """The limits that bind a host's services: the smallest along the cgroup path up to the root.

    proc_cgroup_text is /proc/1/cgroup, mountinfo_text /proc/1/mountinfo (or /proc/self/...).
    Returns {"version": 1, 2 or None, "path": str, "cpu_quota": float CPUs or None, "cpuset_cpus":
    int or None, "memory_limit_bytes": int or None}. Each controller is read where it is mounted:
    cgroup v1 when a v1 hierarchy has it, else cgroup v2 (a "hybrid" host has both). The path starts
    at PID 1's cgroup, or at system.slice beside it when PID 1 is systemd in init.scope. Files that
    are missing or unreadable (a private cgroup namespace shows only part of the tree; the root
    cgroup has no limit files) are skipped; a quota or limit at its "max" value is no limit.
    Sources: the kernel's cgroup-v2.rst (cpu.max, cpuset.cpus.effective, memory.max) and its
    cgroup-v1 documentation (cpu.cfs_quota_us, cpu.cfs_period_us, cpuset.effective_cpus,
    memory.limit_in_bytes)."""
    paths = parse_proc_cgroup(proc_cgroup_text)
    mounts = parse_mountinfo(mountinfo_text)
    found = {"version": None, "path": "/", "cpu_quota": None, "cpuset_cpus": None, "memory_limit_bytes": None}

    def smallest(key, value):
        if value is not None and value > 0 and (found[key] is None or value < found[key]):
            found[key] = value

    def where(controller):
        """(cgroup version, folders nearest first) of a controller, or (None, [])."""
        if controller in mounts and controller in paths:
            return 1, _folders(mounts[controller], _service_path(paths[controller]))
        if "" in mounts and "" in paths:
            return 2, _folders(mounts[""], _service_path(paths[""]))
        return None, []

    versions = set()
    version, folders = where("cpu")
    for base in folders:
        if version == 1:
            quota = _number(_read(os.path.join(base, "cpu.cfs_quota_us")))
            period = _number(_read(os.path.join(base, "cpu.cfs_period_us")))
        else:
            cpu_max = (_read(os.path.join(base, "cpu.max")) or "max").split()
            quota, period = (_number(cpu_max[0]), _number(cpu_max[-1])) if len(cpu_max) == 2 else (None, None)
        if quota and period and quota > 0 and period > 0:
            smallest("cpu_quota", quota / period)
    versions.add(version)

    version, folders = where("memory")
    for base in folders:
        limit = _number(_read(os.path.join(base, "memory.limit_in_bytes" if version == 1 else "memory.max")))
        if limit is not None and limit < _V1_NO_LIMIT:
            smallest("memory_limit_bytes", limit)
    versions.add(version)

    version, folders = where("cpuset")
    names = ["cpuset.effective_cpus", "cpuset.cpus"] if version == 1 else ["cpuset.cpus.effective"]
    # The nearest cgroup that has the file: a cgroup without the cpuset controller has none.
    cpuset = next((text for base in folders for name in names if (text := _read(os.path.join(base, name)))), None)
    if cpuset:
        try:
            found["cpuset_cpus"] = parse_cpuset(cpuset)
        except ValueError:
            pass
    versions.add(version)

    versions.discard(None)
    if versions:
        found["version"] = min(versions)
        found["path"] = paths.get("cpu", paths.get("memory", paths.get("", "/")))
    return found


def usable(machine_vcpus, machine_memtotal_mb, limits):
    """What the host can use: {"vcpus": int, "memtotal_mb": int, "cpu_source": str, "memory_source": str}.

    machine_vcpus (CPUs) and machine_memtotal_mb (MiB) are the machine's; limits is read_limits()'s
    answer. vcpus is the smallest of the machine's CPUs, the cpuset's and the quota rounded up (as the
    JDK's container support and Go's runtime count a 1.5-CPU quota as 2), at least 1; memtotal_mb
    the smaller of the machine's memory and the limit, in whole MiB."""
    def cpus(n):
        return f"{n:g} CPU" + ("" if n == 1 else "s")

    vcpus, cpu_source = machine_vcpus, f"the machine's {cpus(machine_vcpus)}"
    cpuset = limits.get("cpuset_cpus")
    if cpuset is not None and cpuset < vcpus:
        vcpus, cpu_source = cpuset, f"a cpuset of {cpus(cpuset)}"
    quota = limits.get("cpu_quota")
    if quota is not None and max(math.ceil(quota - 1e-9), 1) < vcpus:
        vcpus, cpu_source = max(math.ceil(quota - 1e-9), 1), f"a CPU quota of {cpus(quota)}"
    memtotal_mb, memory_source = machine_memtotal_mb, f"the machine's {machine_memtotal_mb} MiB"
    limit = limits.get("memory_limit_bytes")
    if limit is not None and limit // 1048576 < memtotal_mb:
        memtotal_mb, memory_source = limit // 1048576, f"a memory limit of {limit // 1048576} MiB"
    return {"vcpus": vcpus, "memtotal_mb": memtotal_mb, "cpu_source": cpu_source, "memory_source": memory_source}


def machine(proc_root):
    """(online CPUs, MemTotal in MiB) of the machine, as Ansible's processor_vcpus and memtotal_mb.

    Not this process's CPU affinity: Ansible's controller (Mitogen's strategy) pins its own workers
    to one CPU each, so a module run over a local connection would see one CPU; the cgroup's cpuset
    files say what the host's services may use."""
    meminfo = _read(os.path.join(proc_root, "meminfo")) or ""
    match = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
    return os.cpu_count() or 1, int(match.group(1)) // 1024 if match else 0


def main():
    module = AnsibleModule(
        argument_spec={
            "proc_root": {"type": "path", "default": "/proc"},
        },
        supports_check_mode=True,
    )
    proc_root = module.params["proc_root"]
    machine_vcpus, machine_mb = machine(proc_root)
    if not machine_mb:
        module.fail_json(msg=f"host_resources: no MemTotal line in {proc_root}/meminfo")
    # PID 1's cgroup (or system.slice beside it) is where the host's services run; a process without
    # the right to read it (not root) falls back to its own.
    pid = "1" if _read(os.path.join(proc_root, "1", "mountinfo")) else "self"
    limits = read_limits(_read(os.path.join(proc_root, pid, "cgroup")) or "",
                         _read(os.path.join(proc_root, pid, "mountinfo")) or "")
    memory_limit = limits["memory_limit_bytes"]
    module.exit_json(
        changed=False,
        machine_vcpus=machine_vcpus,
        machine_memtotal_mb=machine_mb,
        cpu_quota=limits["cpu_quota"],
        cpuset_cpus=limits["cpuset_cpus"],
        memory_limit_mb=memory_limit // 1048576 if memory_limit is not None else None,
        cgroup_version=limits["version"],
        cgroup_path=limits["path"],
        **usable(machine_vcpus, machine_mb, limits),
    )


if __name__ == "__main__":
    main()
