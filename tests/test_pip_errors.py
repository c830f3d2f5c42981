"""The build's explanations of pip's failures (roles/django_app/filter_plugins/pip_errors.py), on
pip's own output as the build's tasks get it."""

import importlib.util
import pathlib

import pytest
from ansible.errors import AnsibleFilterError

_PATH = pathlib.Path(__file__).resolve().parents[1] / "roles/django_app/filter_plugins/pip_errors.py"
_SPEC = importlib.util.spec_from_file_location("pip_errors", _PATH)
pip_errors = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(pip_errors)
pip_failure = pip_errors.pip_failure

# pip 23's output for `pip wheel Django==6.0` on Python 3.11 (cut).
DJANGO_6 = """WARNING: Location 'file:///x/simple/django/' is ignored: it is neither a file nor a directory.
ERROR: Ignored the following versions that require a different python version: 6.0 Requires-Python >=3.12; \
6.0.1 Requires-Python >=3.12; 6.1 Requires-Python >=3.12
ERROR: Could not find a version that satisfies the requirement Django==6.0 (from versions: 5.2.18, 5.2.19)
ERROR: No matching distribution found for Django==6.0
"""

# pip's dry run for a host's Python when the wheelhouse holds only the controller's compiled wheel.
NO_WHEEL = """ERROR: Could not find a version that satisfies the requirement psycopg2-binary==2.9.10 (from versions: none)
ERROR: No matching distribution found for psycopg2-binary==2.9.10
"""

# A source distribution that does not build on the controller.
NOT_BUILT = """  error: subprocess-exited-with-error
  Error: pg_config executable not found.
  note: This error originates from a subprocess, and is likely not a problem with pip.
ERROR: Failed building wheel for psycopg2
Failed to build psycopg2
ERROR: Could not build wheels for psycopg2, which is required to install pyproject.toml-based projects
"""


def test_a_django_the_hosts_cannot_run_names_the_hosts_and_debian_13():
    # A controller recent enough: the Debian 12 host is the limit, the Debian 13 one is not named.
    message = pip_failure(DJANGO_6, ["3.11", "3.13"], "3.13", "proj/requirements.txt")
    assert message.startswith("proj/requirements.txt: Django 6.0 requires Python >=3.12")
    assert "the hosts run Python 3.11;" in message
    assert "Debian 13" in message and "Django 5.2 LTS" in message
    assert "controller" not in message


def test_a_django_the_controller_cannot_run_names_the_controller_only():
    message = pip_failure(DJANGO_6, ["3.13"], "3.11")
    assert "Django 6.0 requires Python >=3.12" in message
    assert "the controller, which builds and checks each release, runs Python 3.11" in message
    assert "hosts run" not in message and "Debian 13" not in message


def test_a_compiled_package_without_a_wheel_for_a_host_says_what_to_do():
    message = pip_failure(NO_WHEEL, ["3.13"], "3.11")
    assert "no wheel of psycopg2-binary 2.9.10 for the hosts' Python 3.13" in message
    assert "PostgreSQL driver is not needed on MariaDB" in message


def test_a_package_that_does_not_build_names_it():
    message = pip_failure(NOT_BUILT, ["3.11"], "3.11")
    assert "psycopg2 has no wheel for Python 3.11 and does not build on the controller" in message
    assert "PostgreSQL driver is not needed on MariaDB" in message


@pytest.mark.parametrize("name, advice", [
    ("mysqlclient", "python3-mysqldb"),
    ("lxml", "install Debian's python3-lxml"),
])
def test_advice_by_package(name, advice):
    out = f"ERROR: No matching distribution found for {name}==1.0\n"
    assert advice in pip_failure(out, ["3.13"], "3.11")


def test_unknown_output_falls_back_to_pips_last_error():
    assert pip_failure("noise\nERROR: something new\n", ["3.11"], "3.11", "r.txt") == "r.txt: ERROR: something new"


def test_wrong_input_types_are_refused():
    with pytest.raises(AnsibleFilterError):
        pip_failure(None, ["3.11"], "3.11")
