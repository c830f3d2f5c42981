"""The common role on a converged host: packages, time sync, limits, floors, disk and log limits."""

import json
import pathlib
import re
import sys

import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[5] / "molecule" / "resources" / "tests"))
from scenario import hostvars, lost_handler_is_made_up, run_playbook  # noqa: E402

DEFAULTS = yaml.safe_load((pathlib.Path(__file__).parents[3] / "defaults" / "main.yml").read_text())


@pytest.fixture(scope="module")
def hvars(host):
    """The role's defaults with the scenario's inventory variables over them."""
    return {**DEFAULTS, **hostvars(host)}


def sysctl(host, key):
    return " ".join(host.file("/proc/sys/" + key.replace(".", "/")).content_string.split())


@pytest.mark.parametrize("pkg", ["ca-certificates", "curl", "procps", "lsof", "logrotate", "systemd-timesyncd"])
def test_base_packages(host, pkg):
    assert host.package(pkg).is_installed


def test_timesync_enabled_with_servers(host):
    assert host.service("systemd-timesyncd").is_enabled
    cfg = host.check_output("systemd-analyze cat-config systemd/timesyncd.conf")
    assert "NTP=0.debian.pool.ntp.org 1.debian.pool.ntp.org" in cfg


def test_services_start_with_the_open_file_limit(host, hvars):
    # A fresh service started by systemd now gets the limit: prove it by starting one.
    out = host.check_output("systemd-run --wait --pipe --quiet /bin/sh -c 'ulimit -n; ulimit -Hn'")
    assert out.split() == [str(hvars["common_nofile_limit"])] * 2


@pytest.mark.parametrize(
    "key,value",
    [
        ("net.ipv4.ip_local_port_range", "1024 65000"),
        ("net.ipv4.tcp_tw_reuse", "1"),
        ("net.ipv4.tcp_fin_timeout", "15"),
        ("net.ipv4.tcp_slow_start_after_idle", "0"),
    ],
)
def test_exact_settings(host, key, value):
    assert sysctl(host, key) == value


def test_floor_raises_a_value_below_it(host, hvars):
    assert int(sysctl(host, "net.core.somaxconn")) >= hvars["common_sysctl_floors"]["net.core.somaxconn"]


def test_floor_never_lowers_a_value_above_it(host, hvars):
    preset = hvars["test_syn_backlog_preset"]
    assert preset > hvars["common_sysctl_floors"]["net.ipv4.tcp_max_syn_backlog"]
    assert int(sysctl(host, "net.ipv4.tcp_max_syn_backlog")) == preset


def test_multi_field_floor_raises_exactly_the_fields_below_it(host, hvars):
    before = [int(v) for v in host.file("/var/tmp/kernel.sem.before").content_string.split()]
    floor = [int(v) for v in hvars["test_sem_floor"].split()]
    expected = [max(b, f) for b, f in zip(before, floor)]
    now = [int(v) for v in sysctl(host, "kernel.sem").split()]
    assert now == expected
    # Every field is at least the floor and none went down.
    assert all(n >= f for n, f in zip(now, floor))
    assert all(n >= b for n, b in zip(now, before))
    if expected != before:
        # Persisted, so a reboot keeps the raised value.
        conf = host.file(hvars["common_sysctl_file"]).content_string
        assert re.search(r"^kernel\.sem\s*=\s*" + r"\s+".join(map(str, expected)) + r"\s*$", conf, re.M)


def test_converge_puts_back_kernel_values_changed_since(host, hvars, request):
    """A setting changed live, a setting's persisted line removed and a floor lowered live: the next
    converge finds each in its one read and sets them again, and only them."""
    conf = hvars["common_sysctl_file"]
    host.check_output("sysctl -w net.ipv4.tcp_fin_timeout=60 net.core.somaxconn=128")
    host.check_output(f"sed -i '/^net.ipv4.tcp_slow_start_after_idle=/d' {conf}")
    name = host.backend.get_hostname()
    rc, result = run_playbook(
        pathlib.Path(__file__).parents[1] / "converge.yml",
        inventory=request.config.option.ansible_inventory,
        limit=name,
        json_output=True,
        timeout=600,
    )
    assert rc == 0, result.get("stats")
    calls = [
        item["item"]["key"]
        for play in result["plays"]
        for task in play["tasks"]
        if task["task"]["name"].endswith("Set the exact kernel settings and raise the values below their floor")
        for item in task["hosts"][name].get("results", [])
    ]
    assert sorted(calls) == ["net.core.somaxconn", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_slow_start_after_idle"]
    assert result["stats"][name]["changed"] == 1
    assert sysctl(host, "net.ipv4.tcp_fin_timeout") == "15"
    assert int(sysctl(host, "net.core.somaxconn")) >= hvars["common_sysctl_floors"]["net.core.somaxconn"]
    assert re.search(r"^net\.ipv4\.tcp_slow_start_after_idle=0$", host.file(conf).content_string, re.M)


def test_container_leaves_host_wide_keys_alone(host, hvars):
    conf = host.file(hvars["common_sysctl_file"]).content_string
    assert "fs.file-max" not in conf
    assert "net.core.netdev_max_backlog" not in conf


@pytest.fixture
def disk_threshold(host):
    """Set the disk check's threshold for one test, then put the rendered settings back."""
    cfg = "/etc/default/disk-space-check"
    original = host.file(cfg).content_string

    def set_threshold(value):
        host.check_output(f"sed -i 's/^THRESHOLD=.*/THRESHOLD={value}/' {cfg}")

    yield set_threshold
    host.check_output(f"cat > {cfg} <<'EOF'\n{original}EOF")
    host.run("systemctl reset-failed disk-space-check.service")


def journal_cursor(host):
    """Where the journal ends now, so a test reads only what comes after."""
    out = host.check_output("journalctl -n 0 --show-cursor")
    return out.rsplit("-- cursor: ", 1)[1].strip()


def warnings_after(host, cursor):
    """disk-space-check's warnings logged after the cursor.

    Filtered here, not with journalctl matches: systemd 252 (Debian 12) skips the first matching
    entry when --after-cursor is combined with a match.
    """
    out = host.check_output(f"journalctl --after-cursor '{cursor}' -o json")
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    return "\n".join(
        e["MESSAGE"]
        for e in entries
        if e.get("SYSLOG_IDENTIFIER") == "disk-space-check" and int(e.get("PRIORITY", 6)) <= 4
    )


def test_disk_check_timer_is_scheduled(host):
    assert host.service("disk-space-check.timer").is_enabled
    assert host.service("disk-space-check.timer").is_running


def test_disk_check_fires_when_the_threshold_is_crossed(host, disk_threshold):
    host.run("rm -f /run/disk-hook.log")
    cursor = journal_cursor(host)
    # Any filesystem holding an OS is at least 1% full.
    disk_threshold(1)
    run = host.run("systemctl start disk-space-check.service")
    assert run.rc != 0, "the unit must fail when a filesystem is over the threshold"
    warnings = warnings_after(host, cursor)
    assert re.search(r"/ \(.*\) is \d+% full in blocks, threshold \d+%", warnings)
    hook = host.file("/run/disk-hook.log").content_string
    assert re.search(r"^/ blocks \d+ \d+$", hook, re.M)


def test_disk_check_quiet_below_the_threshold(host, disk_threshold):
    host.run("rm -f /run/disk-hook.log")
    cursor = journal_cursor(host)
    disk_threshold(100)
    assert host.run("systemctl start disk-space-check.service").rc == 0
    warnings = warnings_after(host, cursor)
    assert warnings.strip() == ""
    assert not host.file("/run/disk-hook.log").exists


def test_journald_is_capped(host):
    # journald reports its effective cap when it opens the system journal.
    log = host.check_output("journalctl -b -u systemd-journald -o cat")
    assert re.search(r"System Journal \(/var/log/journal/.*\) is .*, max 200(\.0)?M", log)


def test_logrotate_rotates_by_size_whatever_the_schedule(host):
    host.check_output(
        "mkdir -p /var/log/sizetest && head -c 2M /dev/zero > /var/log/sizetest/app.log && "
        "printf '/var/log/sizetest/*.log {\\n  monthly\\n  rotate 2\\n  missingok\\n}\\n' "
        "> /etc/logrotate.d/sizetest"
    )
    try:
        host.check_output("logrotate /etc/logrotate.conf")
        assert host.file("/var/log/sizetest/app.log.1").exists
    finally:
        host.run("rm -rf /var/log/sizetest /etc/logrotate.d/sizetest")


def test_logrotate_runs_hourly(host):
    out = host.check_output("systemctl show logrotate.timer -p TimersCalendar")
    assert "*-*-* *:00:00" in out


def test_a_run_stopped_before_its_restarts_is_made_up_by_the_next(host, hvars, request):
    """journald's limits and the manager's open-file default written by a run killed before their
    handlers: the next run restarts journald and re-executes the manager (the host tells, not a
    notification), the run after changes nothing."""
    limits = "/etc/systemd/system.conf.d/60-site-limits.conf"
    # The manager on an older default, its file already as the role writes it: what the stopped run left.
    host.check_output(f"cp {limits} /root/limits.keep && sed -i 's/=.*/=4096:4096/' {limits} && "
                      f"systemctl daemon-reexec && mv /root/limits.keep {limits}")
    assert host.check_output("systemctl show -p DefaultLimitNOFILE --value") == "4096"
    lost_handler_is_made_up(host, host.backend.get_hostname(), "systemd-journald.service",
                            ["/etc/systemd/journald.conf.d/60-site-limits.conf"],
                            pathlib.Path(__file__).parents[1] / "converge.yml",
                            inventory=request.config.option.ansible_inventory, timeout=600)
    assert host.check_output("systemctl show -p DefaultLimitNOFILE --value") == str(hvars["common_nofile_limit"])
