"""Bad input stops the role before anything on the host changes, with a message naming the numbers."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts(
    "webservers"
)

SCENARIO = pathlib.Path(__file__).parents[1]
ROLES = SCENARIO.parents[2]
WATCHED = [
    "/etc/apache2/conf-available/site-prefork.conf",
    "/etc/apache2/conf-available/site-server.conf",
    "/etc/apache2/sites-available/scoreboard.conf",
]


def state(host):
    """Checksums of the role's files and Apache's parent PID."""
    sums = host.check_output("sha256sum " + " ".join(WATCHED))
    return sums, host.file("/run/apache2/apache2.pid").content_string.strip()


@pytest.mark.parametrize(
    "extra_vars,message",
    [
        ({"apache_wsgi_processes": 1000000}, "processes at most"),
        ({"apache_prefork_workers": 10000000}, "prefork processes fit next to"),
        ({"apache_wsgi_mode": "fastcgi"}, "apache_wsgi_mode"),
        ({"apache_wsgi_process_memory_mb": 0}, "must be above 0 MiB"),
    ],
)
def test_bad_input_stops_before_any_change(host, extra_vars, message):
    before = state(host)
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    env["ANSIBLE_ROLES_PATH"] = str(ROLES)
    # The bundle's own modules and filters (host_resources, wsgi_sizing), which its ansible.cfg names.
    env["ANSIBLE_LIBRARY"] = str(ROLES.parent / "plugins" / "modules")
    env["ANSIBLE_FILTER_PLUGINS"] = str(ROLES.parent / "plugins" / "filter")
    env["ANSIBLE_NOCOLOR"] = "1"
    playbook = shutil.which("ansible-playbook") or str(pathlib.Path(sys.executable).parent / "ansible-playbook")
    run = subprocess.run(
        [
            playbook,
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            "--limit",
            host.backend.get_hostname(),
            "-e",
            json.dumps(extra_vars),
            str(SCENARIO / "bad-input.yml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0, output
    assert message in output, output
    assert "apache-web1" in output
    assert state(host) == before
