"""roles/django_app/lookup_plugins/source_fingerprint.py: a source tree in, the release's hash out."""

import os
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleLookupError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "roles" / "django_app" / "lookup_plugins"))
from source_fingerprint import source_fingerprint  # noqa: E402

# The role's own exclude pattern (build and cache byproducts never count).
EXCLUDE = yaml.safe_load((ROOT / "roles" / "django_app" / "vars" / "main.yml").read_text())[
    "__django_app_hash_exclude_pattern"
]


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "views.py").write_text("def index(): pass\n")
    (src / ".env.example").write_text("DJANGO_DEBUG=false\n")
    (src / "requirements.txt").write_text("Django==5.2.8\n")
    return src


def fp(src):
    return source_fingerprint(str(src), str(src / "requirements.txt"), EXCLUDE)


def test_same_tree_same_hash(tree):
    first = fp(tree)
    assert len(first) == 64
    assert fp(tree) == first


@pytest.mark.parametrize("change", ["edit", "add", "hidden", "rename", "requirements"])
def test_any_source_change_changes_the_hash(tree, change):
    before = fp(tree)
    if change == "edit":
        (tree / "pkg" / "views.py").write_text("def index(): return 1\n")
    elif change == "add":
        (tree / "pkg" / "models.py").write_text("\n")
    elif change == "hidden":
        (tree / ".env.example").write_text("DJANGO_DEBUG=true\n")
    elif change == "rename":
        (tree / "pkg" / "views.py").rename(tree / "pkg" / "urls.py")
    else:
        (tree / "requirements.txt").write_text("Django==5.2.9\n")
    assert fp(tree) != before


@pytest.mark.parametrize(
    "path", ["pkg/__pycache__/views.cpython-311.pyc", "build/lib/x.py", "pkg.egg-info/PKG-INFO", ".venv/bin/python",
             "node_modules/a/index.js", "staticfiles/app.css", "pkg/old.pyc"],
)
def test_byproducts_do_not_count(tree, path):
    before = fp(tree)
    target = tree / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("byproduct\n")
    assert fp(tree) == before


def test_symbolic_links_do_not_count(tree):
    before = fp(tree)
    os.symlink(tree / "pkg" / "views.py", tree / "pkg" / "link.py")
    assert fp(tree) == before


def test_missing_folder_or_requirements_is_named(tmp_path, tree):
    with pytest.raises(AnsibleLookupError, match="folder .*missing"):
        source_fingerprint(str(tmp_path / "missing"), str(tree / "requirements.txt"))
    with pytest.raises(AnsibleLookupError, match="requirements file .*nope.txt"):
        source_fingerprint(str(tree), str(tree / "nope.txt"))


def test_bad_pattern_is_named(tree):
    with pytest.raises(AnsibleLookupError, match="not a regular expression"):
        source_fingerprint(str(tree), str(tree / "requirements.txt"), "(")
