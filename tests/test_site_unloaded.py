"""roles/common/files/site_unloaded.py: which settings a running service has not loaded, from the
files' times against its processes' (the scenarios of memcached, mysql, haproxy and nginx_static run
it against the real services after a lost handler)."""

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "roles" / "common" / "files" / "site_unloaded.py"
_spec = importlib.util.spec_from_file_location("site_unloaded", PATH)
unloaded = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(unloaded)


def test_a_process_start_is_read_on_the_wall_clock_within_a_tick():
    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = unloaded.started(child.pid)
        assert before - 0.02 <= start <= time.time()
        assert child.pid in unloaded.children(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert unloaded.started(child.pid) is None


@pytest.fixture(name="service")
def fixture_service(monkeypatch, tmp_path):
    """A service run by this test: the main process is this one, its worker a child started now."""
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    state = {"pid": os.getpid(), "active": "active", "daemon_reload": False}
    monkeypatch.setattr(unloaded, "unit_state",
                        lambda unit: (state["pid"], state["active"], state["daemon_reload"], None))
    yield state, tmp_path
    worker.kill()
    worker.wait()


def old(path):
    """path, written an hour ago."""
    path.write_text("x")
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    return path


def test_files_older_than_the_processes_are_loaded(service):
    _state, tmp = service
    paths = {"restart": [str(old(tmp / "limits.conf"))], "reload": [str(old(tmp / "site.cfg"))]}
    assert unloaded.unloaded("x.service", paths)["action"] == "none"


def test_a_file_newer_than_the_main_process_asks_for_a_restart(service):
    _state, tmp = service
    (tmp / "limits.conf").write_text("new")
    result = unloaded.unloaded("x.service", {"restart": [str(tmp / "limits.conf")], "reload": []})
    assert (result["action"], result["newer"]) == ("restart", [str(tmp / "limits.conf")])


def test_a_reload_setting_is_compared_with_the_newest_worker(service):
    _state, tmp = service
    os.utime(old(tmp / "site.cfg"), (time.time() - 600, time.time() - 600))
    # Newer than this test's process (the master), older than its worker: loaded by the last reload.
    master_start = unloaded.started(os.getpid())
    os.utime(tmp / "site.cfg", (master_start + 0.001, master_start + 0.001))
    assert unloaded.unloaded("x.service", {"reload": [str(tmp / "site.cfg")]})["action"] == "none"
    (tmp / "site.cfg").write_text("new")
    result = unloaded.unloaded("x.service", {"reload": [str(tmp / "site.cfg")]})
    assert (result["action"], result["newer"]) == ("reload", [str(tmp / "site.cfg")])


def test_a_file_removed_from_a_directory_is_seen_by_the_directory_s_time(service):
    _state, tmp = service
    dropins = tmp / "x.service.d"
    dropins.mkdir()
    os.utime(dropins, (time.time() - 3600, time.time() - 3600))
    assert unloaded.unloaded("x.service", {"restart": [str(dropins)]})["action"] == "none"
    (dropins / "gone.conf").write_text("x")
    (dropins / "gone.conf").unlink()
    assert unloaded.unloaded("x.service", {"restart": [str(dropins)]})["newer"] == [str(dropins)]


def test_a_stopped_unit_is_left_to_its_start_and_a_missing_file_to_the_role(service):
    state, tmp = service
    (tmp / "new.conf").write_text("new")
    paths = {"restart": [str(tmp / "new.conf"), str(tmp / "missing.conf")]}
    assert unloaded.unloaded("x.service", paths)["newer"] == [str(tmp / "new.conf")]
    state["active"] = "inactive"
    assert unloaded.unloaded("x.service", paths)["action"] == "none"


def test_a_unit_systemd_has_not_re_read_says_so(service):
    state, tmp = service
    state["daemon_reload"] = True
    result = unloaded.unloaded("x.service", {"restart": [str(old(tmp / "a.conf"))]})
    assert (result["action"], result["daemon_reload"]) == ("none", True)


def test_children_are_found_without_the_kernels_children_files(monkeypatch):
    """A kernel without CONFIG_PROC_CHILDREN: the children come from each process's parent."""
    real_open = open

    def no_children_files(path, *args, **kwargs):
        if str(path).endswith("/children"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        monkeypatch.setattr(unloaded, "open", no_children_files, raising=False)
        assert child.pid in unloaded.children(os.getpid())
    finally:
        child.kill()
        child.wait()
