"""roles/backup_server/files/site_backup_pull.py: the checks of the copies that need no SSH (the
scenario roles/mysql_backup/molecule/default runs the pulls themselves)."""

import hashlib
import importlib.util
from pathlib import Path

PATH = Path(__file__).resolve().parents[1] / "roles" / "backup_server" / "files" / "site_backup_pull.py"
_spec = importlib.util.spec_from_file_location("site_backup_pull", PATH)
pull = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pull)

NAME = "20261202T031500Z"


def incomplete_copy(destination):
    """A backup copy whose SHA256SUMS lists a file the transfer never brought."""
    backup = destination / NAME
    backup.mkdir()
    (backup / "ibdata1").write_bytes(b"data")
    digest = hashlib.sha256(b"data").hexdigest()
    (backup / "SHA256SUMS").write_text(f"{digest}  ibdata1\n{digest}  missing.ibd\n")
    return backup


def test_an_incomplete_copy_the_source_still_has_is_damaged_and_kept_for_the_next_pull(tmp_path):
    backup = incomplete_copy(tmp_path)
    damaged = pull.check_copies(str(tmp_path), on_source={".", NAME})
    assert damaged == [f"{NAME} (missing.ibd)"]
    assert backup.is_dir() and not (backup / ".copy-checked").exists()


def test_an_incomplete_copy_of_a_backup_the_source_pruned_is_removed_not_reported_forever(tmp_path):
    backup = incomplete_copy(tmp_path)
    assert pull.check_copies(str(tmp_path), on_source={"."}) == []
    assert not backup.exists()


def test_without_the_sources_list_nothing_is_removed(tmp_path):
    backup = incomplete_copy(tmp_path)
    assert pull.check_copies(str(tmp_path), on_source=None) == [f"{NAME} (missing.ibd)"]
    assert backup.is_dir()


def test_a_whole_copy_is_marked_checked(tmp_path):
    backup = tmp_path / NAME
    backup.mkdir()
    (backup / "ibdata1").write_bytes(b"data")
    (backup / "SHA256SUMS").write_text(f"{hashlib.sha256(b'data').hexdigest()}  ibdata1\n")
    assert pull.check_copies(str(tmp_path), on_source={NAME}) == []
    assert (backup / ".copy-checked").exists()
