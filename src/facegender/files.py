"""Writing files so that a crash, a full disk or kill -9 never leaves half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from facegender.errors import FaceGenderError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_writable(folder: Path, option: str = "--out") -> None:
    """Create `folder` (and parents) and check a file can be written there; a clear error if not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".facegender_write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise FaceGenderError(f"cannot write to {folder} ({exc.strerror or exc}); choose another {option}") from None
