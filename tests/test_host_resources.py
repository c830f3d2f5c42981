"""plugins/modules/host_resources.py: the CPUs and memory a host can use, read from fake cgroup trees
laid out as the kernel lays them out (cgroup v1 with the host's namespace, as the lab's containers;
cgroup v2 with a private namespace, as Docker on Debian 12 and 13; a VM with no limits)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "modules"))
import host_resources as hr  # noqa: E402

GIB = 1 << 30


def write(root, relative, text):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


@pytest.mark.parametrize(("text", "count"), [("0-3", 4), ("0", 1), ("0-1,4,6-7", 5), ("", None), ("\n", None)])
def test_cpuset_lists_are_counted(text, count):
    assert hr.parse_cpuset(text) == count


def test_proc_cgroup_v1_lists_each_controller_and_skips_named_hierarchies():
    text = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n3:cpuset:/docker/abc\n1:name=systemd:/docker/abc/init.scope\n"
    assert hr.parse_proc_cgroup(text) == {
        "memory": "/docker/abc", "cpu": "/docker/abc", "cpuacct": "/docker/abc", "cpuset": "/docker/abc"}


def v1_container(root, quota="100000", period="100000", limit=str(2 * GIB), cpuset="0-1"):
    """A cgroup v1 tree seen with the host's cgroup namespace, as in the lab's containers: one mount
    per controller, the container under /docker/abc, systemd's own cgroups below it. An empty
    "cpu,cpuacct" folder that is no mount sits beside them, as on Debian's hosts."""
    write(root, "cpu/cpu.cfs_quota_us", "-1")
    write(root, "cpu/cpu.cfs_period_us", "100000")
    write(root, "cpu/docker/cpu.cfs_quota_us", "-1")
    write(root, "cpu/docker/cpu.cfs_period_us", "100000")
    write(root, "cpu/docker/abc/cpu.cfs_quota_us", quota)
    write(root, "cpu/docker/abc/cpu.cfs_period_us", period)
    write(root, "memory/memory.limit_in_bytes", "9223372036854771712")
    write(root, "memory/docker/abc/memory.limit_in_bytes", limit)
    write(root, "memory/docker/abc/init.scope/memory.limit_in_bytes", "9223372036854771712")
    write(root, "cpuset/docker/abc/cpuset.effective_cpus", cpuset)
    (root / "cpu,cpuacct").mkdir(exist_ok=True)
    cgroup = ("12:memory:/docker/abc/init.scope\n2:cpuacct:/docker/abc\n1:cpu:/docker/abc\n"
              "3:cpuset:/docker/abc\n9:name=systemd:/docker/abc/init.scope\n0::/docker/abc/init.scope\n")
    mountinfo = "\n".join([
        f"84 76 0:28 / {root} ro,nosuid - tmpfs tmpfs ro,size=4096k",
        f"85 84 0:29 / {root}/cpu rw,relatime - cgroup cgroup rw,cpu",
        f"86 84 0:30 / {root}/cpuacct rw,relatime - cgroup cgroup rw,cpuacct",
        f"87 84 0:31 / {root}/cpuset rw,relatime - cgroup cgroup rw,cpuset",
        f"88 84 0:32 / {root}/memory rw,relatime - cgroup cgroup rw,memory",
        f"93 84 0:37 / {root}/systemd rw,relatime - cgroup cgroup rw,name=systemd",
        f"94 84 0:38 / {root}/unified rw,relatime - cgroup2 cgroup2 rw",
    ])
    return cgroup, mountinfo


def test_v1_container_with_one_cpu_and_2_gib(tmp_path):
    limits = hr.read_limits(*v1_container(tmp_path))
    assert limits == {"version": 1, "path": "/docker/abc", "cpu_quota": 1.0, "cpuset_cpus": 2,
                      "memory_limit_bytes": 2 * GIB}
    assert hr.usable(2, 24105, limits) == {
        "vcpus": 1, "memtotal_mb": 2048,
        "cpu_source": "a CPU quota of 1 CPU", "memory_source": "a memory limit of 2048 MiB"}


def test_v1_container_without_limits_is_the_machine(tmp_path):
    limits = hr.read_limits(*v1_container(tmp_path, quota="-1", limit="9223372036854771712", cpuset="0-1"))
    assert (limits["cpu_quota"], limits["memory_limit_bytes"]) == (None, None)
    assert hr.usable(2, 24105, limits)["vcpus"] == 2
    assert hr.usable(2, 24105, limits)["memtotal_mb"] == 24105
    assert hr.usable(2, 24105, limits)["cpu_source"] == "the machine's 2 CPUs"


def test_a_fractional_quota_is_rounded_up_and_never_below_one(tmp_path):
    limits = hr.read_limits(*v1_container(tmp_path, quota="150000", cpuset="0-7"))
    assert limits["cpu_quota"] == 1.5
    assert hr.usable(8, 24105, limits)["vcpus"] == 2
    limits = hr.read_limits(*v1_container(tmp_path, quota="20000", cpuset="0-7"))
    assert hr.usable(8, 24105, limits)["vcpus"] == 1


def test_a_limit_higher_up_the_path_applies(tmp_path):
    text = v1_container(tmp_path, quota="-1", limit="9223372036854771712")
    write(tmp_path, "cpu/docker/cpu.cfs_quota_us", "300000")
    limits = hr.read_limits(*text)
    assert limits["cpu_quota"] == 3.0
    # A quota above the machine's CPUs changes nothing.
    assert hr.usable(2, 24105, limits)["vcpus"] == 2


def test_a_cpuset_smaller_than_the_quota_wins(tmp_path):
    limits = hr.read_limits(*v1_container(tmp_path, quota="400000", cpuset="3"))
    assert hr.usable(8, 24105, limits) | {"memory_source": None} == {
        "vcpus": 1, "memtotal_mb": 2048, "cpu_source": "a cpuset of 1 CPU", "memory_source": None}


def v2_private_namespace(root, cpu_max="200000 100000", memory_max=str(4 * GIB), cpuset="0-3"):
    """cgroup v2 with a private cgroup namespace (Docker's default on cgroup v2): the container's
    cgroup is the top of what it sees, and its own limit files are there."""
    write(root, "cgroup.controllers", "cpuset cpu io memory pids")
    write(root, "cpu.max", cpu_max)
    write(root, "memory.max", memory_max)
    write(root, "cpuset.cpus.effective", cpuset)
    return "0::/\n", f"30 25 0:26 / {root} rw,nosuid - cgroup2 cgroup rw,nsdelegate"


def test_v2_private_namespace(tmp_path):
    limits = hr.read_limits(*v2_private_namespace(tmp_path))
    assert limits == {"version": 2, "path": "/", "cpu_quota": 2.0, "cpuset_cpus": 4, "memory_limit_bytes": 4 * GIB}
    assert hr.usable(16, 64000, limits)["vcpus"] == 2
    assert hr.usable(16, 64000, limits)["memtotal_mb"] == 4096


def test_v2_host_namespace_reads_the_scope_and_its_parents(tmp_path):
    write(tmp_path, "cgroup.controllers", "cpuset cpu io memory pids")
    write(tmp_path, "cpuset.cpus.effective", "0-15")
    write(tmp_path, "system.slice/memory.max", str(8 * GIB))
    write(tmp_path, "system.slice/cpu.max", "max 100000")
    write(tmp_path, "system.slice/docker-abc.scope/memory.max", "max")
    write(tmp_path, "system.slice/docker-abc.scope/cpu.max", "50000 100000")
    limits = hr.read_limits("0::/system.slice/docker-abc.scope/init.scope\n",
                            f"30 25 0:26 / {tmp_path} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate")
    assert limits["cpu_quota"] == 0.5
    assert limits["memory_limit_bytes"] == 8 * GIB
    assert hr.usable(16, 64000, limits) == {
        "vcpus": 1, "memtotal_mb": 8192,
        "cpu_source": "a CPU quota of 0.5 CPUs", "memory_source": "a memory limit of 8192 MiB"}


def test_v2_without_limits_is_the_machine(tmp_path):
    limits = hr.read_limits(*v2_private_namespace(tmp_path, cpu_max="max 100000", memory_max="max", cpuset="0-15"))
    assert hr.usable(16, 64000, limits) == {
        "vcpus": 16, "memtotal_mb": 64000,
        "cpu_source": "the machine's 16 CPUs", "memory_source": "the machine's 64000 MiB"}


def test_no_cgroup_file_system_is_the_machine(tmp_path):
    limits = hr.read_limits("", "")
    assert limits["version"] is None
    assert hr.usable(4, 8000, limits)["vcpus"] == 4
    assert hr.usable(4, 8000, limits)["memtotal_mb"] == 8000


def test_the_machine_is_read_from_meminfo(tmp_path):
    write(tmp_path, "meminfo", "MemTotal:       24683520 kB\nMemFree:        1000 kB")
    assert hr.machine(tmp_path)[1] == 24105


def test_v1_mount_of_the_containers_own_cgroup(tmp_path):
    """cgroup v1 without a cgroup namespace (older Docker, LXC): /proc/1/cgroup names /docker/abc and
    the mount shows that cgroup as its top, so its limit files sit at the mount point itself."""
    write(tmp_path, "cpu/cpu.cfs_quota_us", "200000")
    write(tmp_path, "cpu/cpu.cfs_period_us", "100000")
    write(tmp_path, "memory/memory.limit_in_bytes", str(GIB))
    mountinfo = (f"85 84 0:29 /docker/abc {tmp_path}/cpu rw - cgroup cgroup rw,cpu,cpuacct\n"
                 f"88 84 0:32 /docker/abc {tmp_path}/memory rw - cgroup cgroup rw,memory\n")
    limits = hr.read_limits("4:cpu,cpuacct:/docker/abc\n9:memory:/docker/abc\n", mountinfo)
    assert (limits["cpu_quota"], limits["memory_limit_bytes"]) == (2.0, GIB)


def test_module_on_this_machine_answers_within_the_machine():
    """The real /proc of the machine running the tests: whatever its cgroups, the answer is a
    non-empty share of the machine."""
    cpus, memory_mb = hr.machine("/proc")
    text = Path("/proc/self/cgroup").read_text()
    limits = hr.read_limits(text, Path("/proc/self/mountinfo").read_text())
    found = hr.usable(cpus, memory_mb, limits)
    assert 1 <= found["vcpus"] <= cpus
    assert 0 < found["memtotal_mb"] <= memory_mb


def test_each_controller_is_read_where_it_is_mounted(tmp_path):
    """A cgroup v2 host with one v1 hierarchy left over (cpuset): the v2 limits still count."""
    write(tmp_path, "v2/cgroup.controllers", "cpu memory")
    write(tmp_path, "v2/system.slice/cpu.max", "100000 100000")
    write(tmp_path, "v2/system.slice/memory.max", str(GIB))
    write(tmp_path, "cpuset/cpuset.effective_cpus", "0-3")
    mountinfo = (f"30 25 0:26 / {tmp_path}/v2 rw - cgroup2 cgroup2 rw\n"
                 f"31 25 0:27 / {tmp_path}/cpuset rw - cgroup cgroup rw,cpuset\n")
    limits = hr.read_limits("0::/init.scope\n3:cpuset:/\n", mountinfo)
    assert (limits["cpu_quota"], limits["memory_limit_bytes"], limits["cpuset_cpus"]) == (1.0, GIB, 4)


def test_systemd_host_limits_on_system_slice_bind_its_services(tmp_path):
    """PID 1 sits in init.scope; the services run in system.slice beside it, where the limit is."""
    write(tmp_path, "cgroup.controllers", "cpuset cpu memory")
    write(tmp_path, "init.scope/memory.max", "max")
    write(tmp_path, "system.slice/memory.max", str(3 * GIB))
    write(tmp_path, "cpuset.cpus.effective", "0-7")
    limits = hr.read_limits("0::/init.scope\n", f"30 25 0:26 / {tmp_path} rw - cgroup2 cgroup2 rw")
    assert limits["memory_limit_bytes"] == 3 * GIB
    # The cpuset of the nearest cgroup that has one (here the root).
    assert limits["cpuset_cpus"] == 8


def test_cgroups_outside_the_mount_are_skipped(tmp_path):
    """A mount whose root is the container's own cgroup shows nothing above it, and a root outside
    the namespace ("/..") shows nothing this process can place: no limit is read from the wrong
    folder."""
    write(tmp_path, "memory.limit_in_bytes", str(GIB))
    write(tmp_path, "docker/memory.limit_in_bytes", str(GIB // 2))  # would be wrong if read
    limits = hr.read_limits("9:memory:/docker/abc\n", f"88 84 0:32 /docker/abc {tmp_path} rw - cgroup cgroup rw,memory")
    assert limits["memory_limit_bytes"] == GIB
    limits = hr.read_limits("9:memory:/init.scope\n", f"88 84 0:32 /../.. {tmp_path} rw - cgroup cgroup rw,memory")
    assert limits["memory_limit_bytes"] is None


@pytest.mark.parametrize("content", ["", "garbage", "max max", "-1", "\xff\xfe"])
def test_unexpected_file_contents_are_no_limit(tmp_path, content):
    write(tmp_path, "cgroup.controllers", "cpu memory")
    (tmp_path / "cpu.max").write_bytes(content.encode("latin-1"))
    (tmp_path / "memory.max").write_bytes(content.encode("latin-1"))
    limits = hr.read_limits("0::/\n", f"30 25 0:26 / {tmp_path} rw - cgroup2 cgroup2 rw")
    assert (limits["cpu_quota"], limits["memory_limit_bytes"]) == (None, None)


def test_mount_points_with_escapes_and_other_encodings(tmp_path):
    folder = tmp_path / "cgroup fs"
    write(folder, "memory.max", str(GIB))
    mountinfo = ("40 25 0:50 / /media/Cl\udcc3\udca9 rw - ext4 /dev/sdb1 rw\n"
                 f"30 25 0:26 / {str(folder).replace(' ', chr(92) + '040')} rw - cgroup2 cgroup2 rw\n")
    assert hr.read_limits("0::/\n", mountinfo)["memory_limit_bytes"] == GIB
