"""A converge never takes the site down: a run stopped halfway, then a clean one.

The fault, as it happened before the bundle read pending restarts from the hosts: a converge that
switched Apache's MPM was interrupted; the next run found the modules already switched, notified only
a reload (which cannot change the MPM), and Apache exited on both web hosts at once while the play
reported success. Now the apache role reads what Apache has not loaded from the host
(roles/apache/tasks/pending.yml) and webservers.yml restarts one host at a time behind a drain,
checking that Apache answers before it goes on.
"""

import os
import pathlib
import signal
import subprocess
import time

from helpers import BUNDLE, DOMAIN, LB, WEB, PacedLoad, lab_image_only, playbook
from scenario import ansible_playbook

testinfra_hosts = [LB]

pytestmark = lab_image_only


def docker_exec(container, command):
    """(exit status, output) of a shell command in a container."""
    proc = subprocess.run(["docker", "exec", container, "sh", "-c", command], capture_output=True, text=True,
                          check=False)
    return proc.returncode, proc.stdout.strip()


def running_mpm(container):
    """The MPM the running Apache loaded (from its parent's memory maps), or None when Apache is down."""
    rc, out = docker_exec(container, "grep -o 'mod_mpm_[a-z]*' /proc/$(cat /run/apache2/apache2.pid)/maps | sort -u")
    return out.replace("mod_mpm_", "") if rc == 0 and out else None


def interrupted_run(*extra):
    """Start webservers.yml and kill it (SIGKILL, its whole process group: no handler, no cleanup) once
    every web host has switched its MPM's module. Returns whether it was killed before it ended."""
    inventory = pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    proc = subprocess.Popen([ansible_playbook(), "-i", str(inventory), str(BUNDLE / "playbooks" / "webservers.yml"),
                             *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 900
    try:
        while time.time() < deadline and proc.poll() is None:
            if all(docker_exec(w, "test -e /etc/apache2/mods-enabled/mpm_event.load")[0] == 0 for w in WEB):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.2)
        return False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_run_stopped_after_the_mpm_switch_then_a_clean_run_restart_apache_host_by_host_under_load():
    assert {w: running_mpm(w) for w in WEB} == {w: "prefork" for w in WEB}
    load = PacedLoad(LB, DOMAIN, "/", connections=32, delay_ms=250)
    try:
        assert interrupted_run("-e", "apache_mpm=event"), "the run ended before it could be interrupted"
        # The killed run left the modules switched and Apache running the old MPM.
        assert {w: running_mpm(w) for w in WEB} == {w: "prefork" for w in WEB}
        rc, out = playbook("webservers.yml", "-e", "apache_mpm=event")
        assert rc == 0, out[-4000:]
        assert {w: running_mpm(w) for w in WEB} == {w: "event" for w in WEB}
        # And back, with the same care.
        rc, out = playbook("webservers.yml")
        assert rc == 0, out[-4000:]
        assert {w: running_mpm(w) for w in WEB} == {w: "prefork" for w in WEB}
    finally:
        result = load.stop()
        # A failure above must not leave the next tests on the other MPM.
        if {w: running_mpm(w) for w in WEB} != {w: "prefork" for w in WEB}:
            playbook("webservers.yml")
    assert result["requests"] > 1000, result["output"]
    assert (result["non_2xx"], result["socket_errors"]) == (0, 0), result["output"]
