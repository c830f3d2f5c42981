"""plugins/filter/packages.py and the rule every role follows to skip its apt run.

The site plan reads each host's installed packages once per run; a role skips its apt task when
nothing it needs is missing. The rule lives in one filter (`missing_packages`); these tests hold the
filter to its contract and every apt task of every role to using it.
"""

import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
from packages import missing_packages  # noqa: E402


def test_nothing_missing():
    assert missing_packages(["apache2", "libapache2-mod-wsgi-py3"], ["libapache2-mod-wsgi-py3", "apache2", "x"]) == []


def test_missing_in_wanted_order():
    assert missing_packages(["c", "a", "b"], ["b"]) == ["c", "a"]


def test_list_not_read_means_every_package_is_missing():
    assert missing_packages(["nginx", "curl"], None) == ["nginx", "curl"]


@pytest.mark.parametrize("name", ["nginx=1.26.3-3", "nginx:amd64", "nginx/trixie-backports"])
def test_versioned_or_qualified_name_always_goes_to_apt(name):
    assert missing_packages([name], ["nginx"]) == [name]


@pytest.mark.parametrize(
    "wanted, installed",
    [("nginx", []), (["nginx", 1], []), (["nginx"], "nginx"), (["nginx"], {"nginx": 1}), (["nginx"], [1]),
     (["nginx"], [{"nginx": 1}])],
)
def test_bad_shapes_are_refused(wanted, installed):
    with pytest.raises(AnsibleFilterError, match="missing_packages"):
        missing_packages(wanted, installed)


def apt_tasks():
    """Every ansible.builtin.apt task in the roles' task files: [(role, file, task)]."""
    found = []
    for path in sorted(ROOT.glob("roles/*/tasks/*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            for inner in task.get("block", [task]):
                if "ansible.builtin.apt" in inner:
                    found.append((path.parts[-3], path.name, inner))
    return found


def test_every_role_apt_task_is_found():
    assert {role for role, _, _ in apt_tasks()} >= {"apache", "common", "django_app", "haproxy", "memcached",
                                                     "mysql", "nginx_static"}


@pytest.mark.parametrize("role, name, task", apt_tasks(), ids=lambda v: v if isinstance(v, str) else "")
def test_apt_task_skips_through_the_one_rule(role, name, task):
    """The apt task runs when the filter names a missing package, so a list not read runs apt."""
    when = task.get("when", "")
    assert f"missing_packages({role}_installed_packages)" in str(when), (
        f"roles/{role}/tasks/{name}: '{task['name']}' must skip through missing_packages({role}_installed_packages)"
    )
