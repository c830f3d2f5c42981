"""roles/common/filter_plugins/sysctl_floor.py: kernel values in, the sysctl calls to make out."""

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "roles" / "common" / "filter_plugins"))
from sysctl_floor import sysctl_calls, sysctl_changes, sysctl_floor, sysctl_normalize, sysctl_raises  # noqa: E402

SETTINGS = {"net.ipv4.ip_local_port_range": "1024 65000", "net.ipv4.tcp_tw_reuse": 1}
PERSISTED = "net.ipv4.ip_local_port_range=1024 65000\nnet.ipv4.tcp_tw_reuse=1\n"


def test_normalize_folds_tabs_and_lists():
    assert sysctl_normalize("32000\t1024000000\t500\t32000") == "32000 1024000000 500 32000"
    assert sysctl_normalize([250, 32000]) == "250 32000"


def test_floor_raises_only_lower_fields():
    assert sysctl_floor("250 32000 32 128", [500, 1000, 64], "kernel.sem") == "500 32000 64 128"
    assert sysctl_floor("4096", 1024) == "4096"


def test_floor_with_more_fields_than_the_kernel_is_refused():
    with pytest.raises(AnsibleFilterError, match="kernel.sem.*3 fields"):
        sysctl_floor("1 2", "1 2 3", "kernel.sem")


def test_settings_held_live_and_persisted_need_nothing():
    assert sysctl_changes(SETTINGS, ["1024\t65000", "1"], PERSISTED) == []


def test_setting_changed_live_is_set_again():
    assert sysctl_changes(SETTINGS, ["32768\t60999", "1"], PERSISTED) == [
        {"key": "net.ipv4.ip_local_port_range", "value": "1024 65000"}
    ]


def test_setting_not_persisted_is_written():
    assert sysctl_changes(SETTINGS, ["1024\t65000", "1"], "net.ipv4.tcp_tw_reuse=1\n") == [
        {"key": "net.ipv4.ip_local_port_range", "value": "1024 65000"}
    ]
    assert [c["key"] for c in sysctl_changes(SETTINGS, ["1024 65000", "1"], "")] == list(SETTINGS)


def test_live_values_must_match_the_keys():
    with pytest.raises(AnsibleFilterError, match="1 live value"):
        sysctl_changes(SETTINGS, ["1"], PERSISTED)


def test_raises_lists_only_keys_below_their_floor():
    request = {"net.core.somaxconn": 4096, "kernel.sem": "250 32000 32 1024", "fs.file-max": 100}
    keys = ["net.core.somaxconn", "kernel.sem"]  # fs.file-max left to a container's host
    assert sysctl_raises(request, keys, ["4096", "32000\t1024000000\t500\t32000"]) == []
    assert sysctl_raises(request, keys, ["128", "250\t32000\t32\t128"]) == [
        {"key": "net.core.somaxconn", "value": "4096"},
        {"key": "kernel.sem", "value": "250 32000 32 1024"},
    ]


def test_raises_with_nothing_read():
    assert sysctl_raises({"fs.file-max": 100}, [], []) == []


def test_calls_split_one_read_between_settings_and_floors():
    request = {"net.core.somaxconn": 4096}
    live = ["1024\t65000", "0", "128"]  # the settings' keys, then the floor keys
    assert sysctl_calls(SETTINGS, request, ["net.core.somaxconn"], live, PERSISTED) == [
        {"key": "net.ipv4.tcp_tw_reuse", "value": "1"},
        {"key": "net.core.somaxconn", "value": "4096"},
    ]
    with pytest.raises(AnsibleFilterError, match="2 live value"):
        sysctl_calls(SETTINGS, request, ["net.core.somaxconn"], live[:2], PERSISTED)


def test_values_compare_as_the_module_writes_them():
    wanted = {"net.ipv4.tcp_tw_reuse": "yes", "net.ipv4.tcp_slow_start_after_idle": False, "a.b": " 3 "}
    assert sysctl_changes(wanted, ["1", "0", "3"],
                          "net.ipv4.tcp_tw_reuse=1\nnet.ipv4.tcp_slow_start_after_idle = 0\na.b=3\n") == []
    assert sysctl_changes(wanted, ["1", "0", "3"], "") == [
        {"key": "net.ipv4.tcp_tw_reuse", "value": "1"},
        {"key": "net.ipv4.tcp_slow_start_after_idle", "value": "0"},
        {"key": "a.b", "value": "3"},
    ]
