"""Explain pip's failures in the build of a release: which requirement, why, and what to do.

pip's own last line ("No matching distribution found for x==1.0", "Failed to build x") names the
package but not the cause an operator can act on: that the hosts' Python is older than the release
needs, that a compiled package has no wheel for a host's Python, or that a PostgreSQL driver is not
needed on a MariaDB site. The messages parsed are pip's (23 to 25), as the build's tasks run it.
"""

import re

from ansible.errors import AnsibleFilterError
from packaging.specifiers import InvalidSpecifier, SpecifierSet

# pip: "ERROR: Ignored the following versions that require a different python version: 6.0 Requires-Python
# >=3.12; 6.0.1 Requires-Python >=3.12"
_IGNORED = re.compile(r"Ignored the following versions that require a different python version: (.*)")
_IGNORED_ITEM = re.compile(r"(\S+) Requires-Python (\S+)")
_NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")
_NOT_BUILT = re.compile(r"(?:Failed to build|Failed building wheel for|Could not build wheels for) ([A-Za-z0-9._-]+)")
_SPEC = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?\s*(?:(==|>=|<=|~=|!=|<|>)\s*([^,;\s]+))?")

# What to do about packages that sites commonly list and that are compiled, by normalised name.
_ADVICE = {
    "psycopg2": "a PostgreSQL driver is not needed on MariaDB: remove it from the requirements file",
    "psycopg": "a PostgreSQL driver is not needed on MariaDB: remove it from the requirements file",
    "mysqlclient": ("the hosts get the MySQL driver from Debian's python3-mysqldb (django_app_packages), which "
                    "every release's virtualenv sees: remove mysqlclient from the requirements file"),
}


def _outside(needs, versions):
    """The versions ("3.11") that a Requires-Python specifier (">=3.12") leaves out; all of them when
    the specifier does not parse."""
    try:
        spec = SpecifierSet(needs)
    except InvalidSpecifier:
        return list(versions)
    return [v for v in versions if f"{v}.0" not in spec]


def _normalise(name):
    """PEP 503 name: lower case, runs of '-', '_', '.' as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _advice(name, pythons):
    key = _normalise(name)
    for prefix, text in _ADVICE.items():
        if key == prefix or key.startswith(prefix + "-"):
            return text
    return (f"pin a version of {name} that publishes a wheel for Python {', '.join(pythons)} (py3-none-any, or "
            f"cpXY manylinux for each version), or install Debian's python3-{key} on the hosts "
            f"(django_app_packages) and remove it from the requirements file")


def pip_failure(output, pythons, controller_python, requirements="the requirements file"):
    """One sentence that explains why pip could not build or resolve a release's requirements.

    output: pip's standard error and output (str). pythons: the hosts' Python versions as "3.11"
    strings (list). controller_python: the controller's version, "3.11" (str). requirements: the
    requirements file's path, for the message (str).
    Returns a str: the requirement, its version, the cause and the fix. Falls back to pip's last
    ERROR line when the output matches nothing known. Raises AnsibleFilterError on input of the
    wrong type.
    """
    if not isinstance(output, str) or not isinstance(pythons, (list, tuple)):
        raise AnsibleFilterError("pip_failure expects pip's output (str) and the hosts' Pythons (list)")
    pythons = [str(p) for p in pythons]
    hosts = ", ".join(pythons)

    ignored = {}
    match = _IGNORED.search(output)
    if match:
        for version, needs in _IGNORED_ITEM.findall(match.group(1)):
            ignored[version] = needs.rstrip(";")

    found = _NOT_FOUND.search(output)
    if found:
        spec = _SPEC.match(found.group(1))
        name, version = (spec.group(1), spec.group(3)) if spec else (found.group(1), None)
        needs = ignored.get(version) if version else None
        if needs is None and ignored and not version:
            needs = next(iter(ignored.values()))
        if needs:
            what = f"{name} {version}" if version else name
            hosts_out = _outside(needs, pythons)
            advice = [f"{what} requires Python {needs}"]
            if hosts_out:
                advice.append(f"the hosts run Python {', '.join(hosts_out)}")
                if _normalise(name) == "django":
                    advice.append("Debian 12's mod_wsgi embeds Python 3.11: a Django that needs a newer Python "
                                  "needs Debian 13 web hosts (Python 3.13), or pin Django 5.2 LTS")
                else:
                    advice.append(f"pin a version of {name} that supports Python {hosts}")
            if _outside(needs, [str(controller_python)]):
                advice.append(f"the controller, which builds and checks each release, runs Python {controller_python}: "
                              f"deploy from a controller whose Python meets {needs}")
            return f"{requirements}: {'; '.join(advice)}."
        what = f"{name} {version}" if version else name
        return (f"{requirements}: no wheel of {what} for the hosts' Python {hosts} (the controller, Python "
                f"{controller_python}, builds wheels for its own version; a compiled package needs one per "
                f"version): {_advice(name, pythons)}.")

    built = _NOT_BUILT.search(output)
    if built:
        name = built.group(1)
        return (f"{requirements}: {name} has no wheel for Python {controller_python} and does not build on the "
                f"controller (it needs a compiler and headers): {_advice(name, pythons)}.")

    errors = [line.strip() for line in output.splitlines() if line.strip().startswith("ERROR")]
    last = errors[-1] if errors else (output.strip().splitlines() or ["pip failed"])[-1]
    return f"{requirements}: {last}"


class FilterModule:
    """The build's explanation of pip's failures."""

    def filters(self):
        return {"pip_failure": pip_failure}
