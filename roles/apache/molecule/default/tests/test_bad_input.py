"""Bad input stops the role before anything on the host changes, with a message naming the numbers."""

import os
import pathlib
import sys

import pytest
import testinfra.utils.ansible_runner

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[5] / "molecule" / "resources" / "tests"))
from scenario import expect_stop_before_change  # noqa: E402

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
    output = expect_stop_before_change(
        SCENARIO / "bad-input.yml",
        limit=host.backend.get_hostname(),
        extra_vars=extra_vars,
        env_extra={
            "ANSIBLE_CONFIG": None,
            "ANSIBLE_ROLES_PATH": str(ROLES),
            # The bundle's own modules and filters (host_resources, wsgi_sizing), which its ansible.cfg names.
            "ANSIBLE_LIBRARY": str(ROLES.parent / "plugins" / "modules"),
            "ANSIBLE_FILTER_PLUGINS": str(ROLES.parent / "plugins" / "filter"),
            "ANSIBLE_NOCOLOR": "1",
        },
        watch=lambda: state(host),
    )
    output = " ".join(output.split())
    assert message in output, output
    assert "apache-web1" in output
