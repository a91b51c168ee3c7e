"""files.py: atomic_write_bytes keeps a file's mode exactly, whatever the umask, and gives a new file the usual one;
it writes into a stream rather than replacing it; file names are shown on one line; ensure_writable."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

import pytest

from facegender import files
from facegender.errors import OptionError
from facegender.files import atomic_write_bytes, display_name, ensure_writable, is_stream


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


def test_a_missing_folder_is_created_and_a_folder_or_a_link_loop_is_refused(tmp_path):
    atomic_write_bytes(tmp_path / "a" / "b" / "out.json", b"x")
    assert (tmp_path / "a" / "b" / "out.json").read_bytes() == b"x"
    with pytest.raises(IsADirectoryError) as info:
        atomic_write_bytes(tmp_path / "a", b"x")
    assert (info.value.errno, info.value.strerror, info.value.filename) == (
        errno.EISDIR, "is a folder; name a file", str(tmp_path / "a"))  # fmt: skip
    (tmp_path / "loop.json").symlink_to("loop.json")
    with pytest.raises(OSError) as info:
        atomic_write_bytes(tmp_path / "loop.json", b"x")
    assert (info.value.errno, info.value.strerror, info.value.filename) == (
        errno.ELOOP, "symlink loop; fix or remove the link", str(tmp_path / "loop.json"))  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "loop.json"]


def test_a_stream_is_appended_to_not_replaced(tmp_path):
    target = tmp_path / "log.txt"
    target.write_bytes(b"old ")
    with target.open("ab") as handle:  # as a shell's >> hands the process a file
        inode = target.stat().st_ino
        atomic_write_bytes(Path(f"/proc/self/fd/{handle.fileno()}"), b"new")
    assert target.read_bytes() == b"old new" and target.stat().st_ino == inode


def test_is_stream(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    os.mkfifo(tmp_path / "fifo")
    with (tmp_path / "file").open("rb") as handle:
        fd = handle.fileno()
        assert is_stream(Path(f"/dev/fd/{fd}")) and is_stream(Path(f"/proc/self/fd/{fd}"))
    assert is_stream(Path("/dev/fd/999999")) and is_stream(Path("/proc/self/fd/999999"))  # not even open
    assert is_stream(Path("/dev/stdout")) and is_stream(Path("/dev/stderr"))
    assert is_stream(tmp_path / "fifo") and is_stream(Path("/dev/null"))
    assert not is_stream(tmp_path / "file") and not is_stream(tmp_path) and not is_stream(tmp_path / "missing")


def test_the_temporary_file_is_hidden_beside_the_target_and_names_are_not_reused(tmp_path, monkeypatch):
    fd, tmp = files._create_temp(tmp_path / "out.json", 0o600)
    os.close(fd)
    assert tmp.parent == tmp_path and re.fullmatch(r"\.out\.json\.[0-9a-f]{8}\.tmp", tmp.name), tmp.name
    names = iter(["taken000", "free0000"])
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: next(names))
    (tmp_path / ".out.json.taken000.tmp").write_bytes(b"someone else's")
    fd, tmp = files._create_temp(tmp_path / "out.json", 0o600)
    os.close(fd)
    assert tmp.name == ".out.json.free0000.tmp" and (tmp_path / ".out.json.taken000.tmp").read_bytes() != b""
    tries = []
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: tries.append(n) or "taken000")
    with pytest.raises(FileExistsError) as info:
        files._create_temp(tmp_path / "out.json", 0o600)
    assert (info.value.errno, info.value.strerror, info.value.filename) == (
        errno.EEXIST, "no free temporary file name", str(tmp_path))  # fmt: skip
    assert tries == [4] * 100


def test_display_name_puts_any_file_name_on_one_line():
    assert display_name("photos/a b.jpg") == "photos/a b.jpg"
    assert display_name(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"  # Latin-1 bytes, not UTF-8
    assert display_name("café.jpg") == "café.jpg"
    assert display_name("a\nb\tc\rd\x1be\x7ff\u2028g.jpg") == "a\\nb\\tc\\rd\\x1be\\x7ff\\u2028g.jpg"


def test_ensure_writable_creates_the_folder_and_leaves_nothing_behind(tmp_path):
    ensure_writable(tmp_path / "new" / "run")
    ensure_writable(tmp_path / "new" / "run")  # again: it exists
    assert list((tmp_path / "new" / "run").iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OptionError) as info:
        ensure_writable(tmp_path / "file", "val_out")
    assert str(info.value) == f"cannot write to {tmp_path / 'file'} (File exists); choose another val_out"
    assert info.value.worded(lambda name: "--" + name.replace("_", "-")).endswith("choose another --val-out")
    with pytest.raises(OptionError) as info:
        ensure_writable(tmp_path / "file" / "sub")
    assert str(info.value) == f"cannot write to {tmp_path / 'file' / 'sub'} (Not a directory); choose another out"
