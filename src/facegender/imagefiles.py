"""Finding photos: which files are images, and the image files under a folder. Used by dataset scanning,
prediction (folder and glob inputs) and export (calibration photos)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def is_image_file(path: Path) -> bool:
    """A name with an image extension that is not hidden (macOS ._ files, .DS_Store)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def iter_image_files(folder: Path) -> Iterator[Path]:
    """Image files under folder, recursively, sorted, following no symlinked folders (no loops).

    A FIFO, device or socket named like an image is skipped: reading a FIFO would wait forever. A link that
    cannot be followed (dangling, a loop) is kept, and so is a folder that cannot be listed, so that each is
    reported as unreadable rather than silently left out.
    """
    unreadable: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(
        folder, onerror=lambda exc: unreadable.append(Path(exc.filename or folder)), followlinks=False
    ):
        yield from unreadable
        unreadable.clear()
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if is_image_file(path) and not is_special_file(path):
                yield path
    yield from unreadable


def is_special_file(path: Path) -> bool:
    """True for something that exists (links followed) but is not a regular file or folder: FIFO, device, socket."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
