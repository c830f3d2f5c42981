"""Helpers the whole-site scenario's test files share: running the bundle's playbooks against the
scenario's hosts from this machine, as an operator would, and reading their play recap."""

import os
import pathlib
import re
import subprocess

BUNDLE = pathlib.Path(__file__).resolve().parents[3]


def playbook(name, *extra):
    """Run playbooks/<name> against this scenario's hosts: (return code, stdout + stderr)."""
    inventory = pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(BUNDLE / "playbooks" / name), *extra],
        capture_output=True, text=True, timeout=1800, check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def recap(output):
    """{host: (changed, failed)} from the play recap."""
    found = re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output, re.M)
    return {h: (int(c), int(f)) for h, c, f in found}
