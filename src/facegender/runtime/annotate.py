"""`predict --annotate DIR`: copies of the photos with each face's box and label drawn. Pillow only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facegender.files import atomic_write_bytes

COLOURS = {"male": (30, 110, 230), "female": (225, 40, 130), "uncertain": (140, 140, 140), "no_face": (230, 60, 30)}


def caption(row: dict[str, Any]) -> str:
    """What is drawn above a face: its label with the confidence in that label, as the web page says it ('female
    98%', not p(male) beside 'female'), and the detector's face score."""
    label, p_male = row["label"], row["p_male"]
    if label in ("male", "female"):
        text = f"{label} {(p_male if label == 'male' else 1 - p_male):.0%}"
    else:  # uncertain: no label to be sure of
        text = f"{label} p(male) {p_male:.2f}"
    if row.get("face_score") is not None:  # the detector's confidence that this is a face
        text += f"  face {row['face_score']:.2f}"
    return text


class Annotator:
    """Writes annotated copies into one folder. A name already taken (by another input or a file already in the
    folder) gets `name-2.jpg`, `name-3.jpg`, ...: nothing there is ever replaced."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._taken: set[str] = set()

    def write(self, source: Path, image: np.ndarray, rows: list[dict[str, Any]]) -> Path:
        """Draw `rows` (one photo's predict rows) on the upright `image` and save it; returns the new file."""
        picture = Image.fromarray(image)
        draw = ImageDraw.Draw(picture)
        side = min(picture.size)
        font = ImageFont.load_default(size=max(12, side // 30))
        line = max(2, side // 200)
        for row in rows:
            label = row["label"]
            colour = COLOURS.get(label, COLOURS["no_face"])
            if row.get("box") is None:
                _caption(draw, (line, line), "no face found" if label == "no_face" else label, colour, font)
                continue
            x, y, w, h = row["box"]
            # a degenerate box (zero width or height) is drawn as a mark at its corner, never an error
            draw.rectangle((x, y, x + max(w - 1, 0), y + max(h - 1, 0)), outline=colour, width=line)
            _caption(draw, (x, max(0, y - font.size - 2 * line)), caption(row), colour, font)
        return self._save(source, picture)

    def _save(self, source: Path, picture: Image.Image) -> Path:
        jpeg = source.suffix.lower() in (".jpg", ".jpeg")
        stem, suffix = source.stem, (source.suffix if jpeg else ".png")
        name, n = f"{stem}{suffix}", 1
        while name.lower() in self._taken or (self.folder / name).exists():  # never replace a file already there
            n += 1
            name = f"{stem}-{n}{suffix}"
        self._taken.add(name.lower())
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG" if jpeg else "PNG", quality=92)
        path = self.folder / name
        atomic_write_bytes(path, buffer.getvalue())
        return path


def _caption(
    draw: ImageDraw.ImageDraw,
    at: tuple[int, int],
    text: str,
    colour: tuple[int, int, int],
    font: ImageFont.FreeTypeFont,
) -> None:
    left, top, right, bottom = draw.textbbox(at, text, font=font)
    draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=colour)
    draw.text(at, text, fill=(255, 255, 255), font=font)
