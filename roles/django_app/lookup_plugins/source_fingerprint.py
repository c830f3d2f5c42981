"""Lookup ``source_fingerprint``: one hash of an app's source tree and its requirements file.

The django_app role names a release after this hash, so the same source and requirements are built
once and a re-run changes nothing. It runs inside the controller's Ansible process: reading the
files here costs milliseconds, where ``ansible.builtin.find`` with checksums, run as a module on the
controller, cost about 1 s per run on the lab's demo app (docs/performance.md, "Where the time goes").
"""

from __future__ import annotations

import hashlib
import os
import re
import stat

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = """
    name: source_fingerprint
    short_description: a SHA-256 of a source tree's regular files and a requirements file
    description:
        - Walks the folder without following symbolic links; hidden files count; paths (relative to
          the folder, with /) that match C(exclude) are left out, and excluded folders are not entered.
        - Returns one string, the hex SHA-256 over each file's relative path and SHA-256, in path
          order, then the requirements file's SHA-256.
    options:
        _terms:
            description: the source folder, then the requirements file (paths on the controller)
            required: true
        exclude:
            description: a regular expression (Python, searched) for relative paths to leave out
            type: str
            default: ''
    author: the bundle's maintainers
"""


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_fingerprint(source_dir, requirements, exclude=""):
    """Return the hex SHA-256 (64 characters) of the tree ``source_dir`` and the file ``requirements``.

    ``source_dir``: a folder (str path). ``requirements``: a file (str path). ``exclude``: a Python
    regular expression searched in each relative path (``a/b.py``; a folder as ``a/``).
    Raises AnsibleLookupError when the folder or the file is missing, or the pattern is invalid.
    """
    if not os.path.isdir(source_dir):
        raise AnsibleLookupError(f"source_fingerprint: the folder {source_dir} does not exist")
    if not os.path.isfile(requirements):
        raise AnsibleLookupError(f"source_fingerprint: the requirements file {requirements} does not exist")
    try:
        skip = re.compile(exclude) if exclude else None
    except re.error as exc:
        raise AnsibleLookupError(f"source_fingerprint: exclude {exclude!r} is not a regular expression: {exc}")
    entries = []
    for top, dirs, files in os.walk(source_dir):
        rel_top = os.path.relpath(top, source_dir).replace(os.sep, "/")
        prefix = "" if rel_top == "." else rel_top + "/"
        dirs[:] = sorted(d for d in dirs if not (skip and skip.search(prefix + d + "/")))
        for name in files:
            rel = prefix + name
            path = os.path.join(top, name)
            if (skip and skip.search(rel)) or not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            entries.append(f"{rel} {_sha256(path)}\n")
    digest = hashlib.sha256("".join(sorted(entries)).encode())
    digest.update(f"requirements {_sha256(requirements)}\n".encode())
    return digest.hexdigest()


class LookupModule(LookupBase):
    """``lookup('source_fingerprint', source_dir, requirements_file, exclude=pattern)``."""

    def run(self, terms, variables=None, **kwargs):
        """Return ``[fingerprint]`` for the two terms (see ``source_fingerprint``)."""
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 2:
            raise AnsibleLookupError(f"source_fingerprint: give the source folder and the requirements file, got {terms}")
        return [source_fingerprint(terms[0], terms[1], self.get_option("exclude"))]
