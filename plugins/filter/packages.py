"""Filter ``missing_packages``: which of a role's packages a host lacks, from a list read at run time.

The site plan (playbooks/plan.yml) reads each host's installed packages once per run with
``dpkg-query`` and passes the list to each role as ``<role>_installed_packages``; a role skips its
apt run when nothing it needs is missing (an apt run costs seconds even when it changes nothing:
docs/performance.md, "Reading the installed packages"). This filter is the one rule every role applies.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def missing_packages(wanted, installed):
    """Return the packages of ``wanted`` that ``installed`` does not hold, in ``wanted``'s order.

    ``wanted``: a list of Debian package names (str), as given to ``ansible.builtin.apt``'s ``name``;
    a name with a version or release (``pkg=1.2``, ``pkg/bookworm-backports``) or an architecture
    (``pkg:amd64``) never matches a plain installed name, so it always counts as missing and apt
    decides.
    ``installed``: the names of the packages installed on the host (list of str), or ``None`` when
    they were not read, in which case every wanted package counts as missing (apt always runs).
    Returns a list of str. Raises AnsibleFilterError when ``wanted`` is not a list of strings, or
    ``installed`` is neither ``None`` nor a list of strings.
    """
    if isinstance(wanted, str) or not isinstance(wanted, (list, tuple)):
        raise AnsibleFilterError(f"missing_packages: the wanted packages must be a list of names, got {wanted!r}")
    if not all(isinstance(name, str) for name in wanted):
        raise AnsibleFilterError(f"missing_packages: every wanted package must be a name, got {list(wanted)!r}")
    if installed is None:
        return list(wanted)
    if isinstance(installed, str) or not isinstance(installed, (list, tuple)) or not all(
        isinstance(name, str) for name in installed
    ):
        raise AnsibleFilterError(
            f"missing_packages: the installed packages must be a list of names or null, got {installed!r}"
        )
    have = set(installed)
    return [name for name in wanted if name not in have]


class FilterModule:
    """The bundle's package filter."""

    def filters(self):
        """Map the filter names to their functions."""
        return {"missing_packages": missing_packages}
