"""files.atomic_write_bytes keeps a file's mode exactly, whatever the umask, and gives a new file the usual one."""

from __future__ import annotations

import os
import stat

import pytest

from facegender.files import atomic_write_bytes


@pytest.fixture
def strict_umask():
    """The umask 0o077 (group and others get nothing on new files) for one test, the previous one restored."""
    previous = os.umask(0o077)
    try:
        yield 0o077
    finally:
        os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("old_mode", [0o644, 0o664, 0o755, 0o604])
def test_an_existing_file_keeps_a_mode_the_umask_would_take_away(tmp_path, strict_umask, old_mode):
    target = tmp_path / "results.json"
    target.write_bytes(b"old")
    target.chmod(old_mode)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and mode(target) == old_mode
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left


def test_a_new_file_gets_0o666_less_the_umask(tmp_path, strict_umask):
    atomic_write_bytes(tmp_path / "new.json", b"x")
    assert mode(tmp_path / "new.json") == 0o600  # 0o666 & ~0o077
    os.umask(0o002)
    atomic_write_bytes(tmp_path / "shared.json", b"x")
    assert mode(tmp_path / "shared.json") == 0o664  # not mkstemp's 0o600


def test_a_symlinked_file_keeps_its_mode_and_the_link(tmp_path, strict_umask):
    target = tmp_path / "real.csv"
    target.write_bytes(b"old")
    target.chmod(0o644)
    (tmp_path / "link.csv").symlink_to("real.csv")
    atomic_write_bytes(tmp_path / "link.csv", b"new")
    assert (tmp_path / "link.csv").is_symlink() and target.read_bytes() == b"new" and mode(target) == 0o644
