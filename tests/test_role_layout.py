"""Each role's task files say what they are: an entry point or an internal step.

A task file a playbook may call (`tasks_from: <name>`, or `main`) is an entry point: it is named
`<name>.yml` and `meta/argument_specs.yml` declares it, so Ansible checks its inputs before it runs.
Every other task file is an internal step of the role, named `_<name>.yml`, and only the role's own
task files import or include it. These tests read the repository's files, nothing else.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLES = sorted(p.parent.parent for p in ROOT.glob("roles/*/tasks/main.yml"))
# `tasks_from: name` in a playbook, a scenario or a role: {role: ..., tasks_from: ...} or the block form.
TASKS_FROM = re.compile(r"^\s*tasks_from:\s*['\"]?([A-Za-z0-9_./-]+)", re.M)
ROLE_NAME = re.compile(r"^\s*name:\s*['\"]?([A-Za-z0-9_.]+)['\"]?\s*$", re.M)
# `import_tasks: x.yml`, `include_tasks: x.yml`, or the long form's `file: x.yml`.
INCLUDE = re.compile(r"(?:(?:import|include)_tasks:|^\s+file:)\s*['\"]?([A-Za-z0-9_./-]+\.yml)", re.M)


def entry_points(role):
    """The entry points `meta/argument_specs.yml` of `role` (a Path) declares: a set of names."""
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    return set(specs["argument_specs"])


def task_files(role):
    """The task files of `role` (a Path): {name without .yml: Path}."""
    return {p.stem: p for p in sorted((role / "tasks").glob("*.yml"))}


def tasks_from_calls():
    """Every `include_role`/`import_role` with `tasks_from` in the repository: [(file, role, name)].

    The role is the nearest `name:` above the `tasks_from:` line (the include_role block's own).
    """
    calls = []
    for path in sorted(ROOT.glob("**/*.yml")):
        if ".venv" in path.parts or ".cache" in path.parts:
            continue
        text = path.read_text()
        for match in TASKS_FROM.finditer(text):
            names = ROLE_NAME.findall(text[: match.start()])
            calls.append((path.relative_to(ROOT), names[-1] if names else None, match.group(1)))
    return calls


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_every_task_file_is_an_entry_point_or_marked_internal(role):
    """A file without the `_` prefix is declared in argument_specs; one with it is not."""
    declared = entry_points(role)
    files = task_files(role)
    undeclared = sorted(n for n in files if not n.startswith("_") and n not in declared)
    declared_internal = sorted(n for n in files if n.startswith("_") and n.lstrip("_") in declared)
    assert not undeclared, (
        f"{role.name}: tasks/{undeclared} are not in meta/argument_specs.yml: declare them as entry points "
        f"or rename them _<name>.yml (internal)"
    )
    assert not declared_internal, f"{role.name}: entry points {declared_internal} must not start with _"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_every_declared_entry_point_has_its_file(role):
    """argument_specs declares no entry point the role lacks."""
    missing = sorted(entry_points(role) - set(task_files(role)))
    assert not missing, f"{role.name}: meta/argument_specs.yml declares {missing}, tasks/ has no such file"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_every_internal_file_is_used_by_its_role(role):
    """An internal step that no task file of its role imports is dead code."""
    files = task_files(role)
    used = {Path(m).stem for p in files.values() for m in INCLUDE.findall(p.read_text())}
    unused = sorted(n for n in files if n.startswith("_") and n not in used)
    assert not unused, f"{role.name}: tasks/{unused} are imported by no task file of the role"


def test_tasks_from_names_an_entry_point():
    """Playbooks, scenarios and roles call another role only through its declared entry points."""
    roles = {r.name: entry_points(r) for r in ROLES}
    calls = tasks_from_calls()
    assert calls, "no tasks_from found: the pattern no longer matches the repository's style"
    wrong = [
        f"{path}: role {role}, tasks_from {name}"
        for path, role, name in calls
        if role in roles and name not in roles[role]
    ]
    unknown = [f"{path}: tasks_from {name} under no known role name" for path, role, name in calls
               if role not in roles]
    assert not wrong, "tasks_from names no entry point: " + "; ".join(wrong)
    assert not unknown, "; ".join(unknown)
