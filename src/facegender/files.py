"""Files: written so that a crash, a full disk or kill -9 never leaves half of one; their names shown on one line."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from facegender.errors import OptionError

# Control characters (a newline is legal in a Linux file name) would split a table row or a stderr line.
_NAMED_ESCAPES = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"}
_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]} | _NAMED_ESCAPES


def display_name(path: str | Path) -> str:
    """A file name as one line of valid text: bytes that are not UTF-8 (possible on Linux) shown as \\xNN escapes,
    control characters such as a newline as \\n, \\t, \\xNN."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace").translate(_CONTROL_ESCAPES)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a file.

    A symlink is followed: its target is replaced and the link stays. A stream the process was handed
    (/dev/stdout, /dev/fd/N, /proc/self/fd/N: a pipe, a terminal or a file opened by the shell, perhaps with
    >>) and anything that is not a regular file (a FIFO, a device) are written straight into, appending as a
    shell redirection would; renaming over them would replace them with a plain file. The file gets the mode
    it had, or a new file's usual 0o666 less the umask.
    """
    path = Path(path)
    if is_stream(path):
        with path.open("ab") as handle:
            handle.write(data)
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
        if path.is_symlink():  # realpath stops at a link it cannot resolve: a loop
            raise OSError(errno.ELOOP, "symlink loop; fix or remove the link", str(path))
    try:
        mode: int | None = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder; name a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path, 0o666 if mode is None else stat.S_IMODE(mode))
    try:
        if mode is not None:
            os.fchmod(fd, stat.S_IMODE(mode))  # exactly the old mode, whatever the umask
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def is_stream(path: Path) -> bool:
    """/dev/stdout and the like: a link into /proc/*/fd, whose target (pipe:[N], a shell-opened file) must be
    written through the link, not resolved and replaced."""
    absolute = os.path.abspath(path)
    if absolute.startswith(("/dev/fd/", "/proc/")) or absolute in ("/dev/stdout", "/dev/stderr"):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _create_temp(path: Path, mode: int) -> tuple[int, Path]:
    """A new hidden file beside path, created with `mode` (the umask applies, unlike mkstemp's 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


def ensure_writable(folder: Path, option: str = "out") -> None:
    """Create `folder` (and parents) and check a file can be written there; a clear error naming the parameter
    `option` (the CLI words it as its flag) if not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".facegender_write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OptionError(
            f"cannot write to {{folder}} ({{reason}}); choose another {{{option}}}",
            folder=folder,
            reason=exc.strerror or exc,
        ) from None
