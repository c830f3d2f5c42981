"""The controller's scripts: their exit status says whether they did their job.

A script that did its work must exit 0 and one that failed must exit non-zero with a message that
says why; a trap or pipeline that turns one into the other hid a broken image build for weeks (the
EXIT trap of scripts/build-image failed on a grep that found nothing). These tests run the scripts
for real: the image build needs root and a Docker engine (`make script-test` starts one).
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB_DISTRO = os.environ.get("LAB_DISTRO", "trixie")
LAB_IMAGE = os.environ.get("LAB_IMAGE", f"local/debian-systemd:{LAB_DISTRO}")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap needs root")


def run(*argv, env=None, timeout=900):
    """Run a script from the repository's root: (exit status, stdout + stderr)."""
    proc = subprocess.run(
        [str(a) for a in argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
        stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout + proc.stderr


def image_recipe(image):
    """The recipe label of a local image, or None when there is no such image."""
    proc = subprocess.run(
        ["docker", "image", "inspect", "-f", '{{ index .Config.Labels "bundle.recipe" }}', image],
        capture_output=True, text=True, check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


@needs_root
def test_image_build_exits_0_and_a_rebuild_is_a_no_op():
    """CI removes the cached images first, so here the lab's image is built from nothing."""
    rc, out = run("scripts/build-image", LAB_DISTRO, LAB_IMAGE)
    assert rc == 0, out
    assert image_recipe(LAB_IMAGE), out
    for scratch in re.findall(r"debootstrap \S+ into (/\S+)", out):
        assert not Path(scratch).exists()
    rc, out = run("scripts/build-image", LAB_DISTRO, LAB_IMAGE)
    assert rc == 0, out
    assert "is up to date" in out


@needs_root
def test_failed_image_build_exits_non_zero_and_leaves_nothing():
    """A mirror that refuses every connection: the build fails fast, says why, and cleans up."""
    image = f"local/debian-systemd:test-failed-build-{os.getpid()}"
    rc, out = run("scripts/build-image", LAB_DISTRO, image, env={"BUILD_IMAGE_MIRROR": "http://127.0.0.1:9/debian"})
    assert rc != 0, out
    assert f"debootstrap of {LAB_DISTRO} from the machine's apt mirror failed" in out
    assert image_recipe(image) is None
    scratch = re.search(r"debootstrap \S+ into (/\S+)", out).group(1)
    assert not Path(scratch).exists()
    assert scratch not in Path("/proc/self/mounts").read_text()


def test_image_build_refuses_an_unknown_release():
    rc, out = run("scripts/build-image", "sid")
    assert rc != 0
    assert "usage:" in out and "got 'sid'" in out


def test_scenario_runner_refuses_a_folder_without_a_scenario(tmp_path):
    rc, out = run("scripts/run-scenario", tmp_path, LAB_IMAGE)
    assert rc == 2
    assert "no molecule.yml" in out


def test_suite_runner_refuses_an_item_without_an_image():
    rc, out = run("scripts/run-suite", "molecule/site")
    assert rc == 2
    assert "is not <scenario dir>@<image>" in out


def test_suite_runner_fails_when_a_scenario_fails(tmp_path):
    """A scenario that cannot run makes the whole suite fail, with its log's tail and the time table."""
    rc, out = run("scripts/run-suite", f"{tmp_path}@{LAB_IMAGE}", env={"SUITE_LOGS": str(tmp_path / "logs")})
    assert rc != 0, out
    assert "FAILED" in out or "no molecule.yml" in out
    assert "Where the time went" in out


def test_ensure_deb_exits_0_for_a_command_that_is_there():
    rc, out = run("scripts/ensure-deb", "bash", "bash")
    assert rc == 0, out


def test_bench_without_a_lab_says_so():
    """No balancer answers on this port: bench stops with a message, not a stack of wrk errors."""
    rc, out = run("scripts/bench.py", env={"BENCH_URL": "http://127.0.0.1:9"}, timeout=300)
    assert rc != 0
    assert "nothing answers on http://127.0.0.1:9" in out
