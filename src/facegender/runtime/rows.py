"""The result rows of prediction: one per face, a 'no_face' row for a photo without one, an 'error' row for an
input that cannot be read. `facegender predict` (JSON, CSV, text) and the web service report exactly these."""

from __future__ import annotations

from typing import Any

from facegender import CLASS_NAMES
from facegender.errors import InvalidOption
from facegender.files import display_name

FIELDS = ("file", "face_index", "box", "face_score", "label", "p_male", "threshold", "error")


def error_row(file: str, message: str, threshold: float | None = None) -> dict[str, Any]:
    """An input that could not be read, as `predict --format json` and the web service report it."""
    return {"file": display_name(file), "face_index": None, "box": None, "face_score": None, "label": "error",
            "p_male": None, "threshold": threshold, "error": message}  # fmt: skip


def no_face_row(file: str, threshold: float | None = None) -> dict[str, Any]:
    """A photo in which face detection found no face."""
    return {"file": display_name(file), "face_index": None, "box": None, "face_score": None, "label": "no_face",
            "p_male": None, "threshold": threshold, "error": None}  # fmt: skip


def parse_band(text: str | None) -> tuple[float, float] | None:
    """'LOW,HIGH' (0 <= LOW < HIGH <= 1) for --abstain-band."""
    if text is None:
        return None
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise InvalidOption("abstain_band", "takes LOW,HIGH such as 0.35,0.65", text) from None
    if not 0.0 <= low < high <= 1.0:
        raise InvalidOption("abstain_band", "needs 0 <= LOW < HIGH <= 1", text)
    return low, high


def result_row(
    file: str,
    p_male: float,
    threshold: float,
    abstain: tuple[float, float] | None = None,
    box: tuple[int, int, int, int] | None = None,
    face_index: int = 0,
    face_score: float | None = None,
) -> dict[str, Any]:
    """One face's prediction as `predict --format json` and the web service report it.

    box is [x, y, width, height] in the upright photo, face_score the detector's confidence in it (None without
    detection). With an abstain band (low, high), a p(male) inside it gives the label 'uncertain' (p_male is kept).
    """
    label = CLASS_NAMES[int(p_male >= threshold)]
    if abstain is not None and abstain[0] < p_male < abstain[1]:
        label = "uncertain"
    return {"file": display_name(file), "face_index": face_index, "box": None if box is None else list(box),
            "face_score": None if face_score is None else round(float(face_score), 4), "label": label,
            "p_male": round(float(p_male), 6), "threshold": threshold, "error": None}  # fmt: skip


def face_rows(
    file: str,
    faces: list[tuple[tuple[int, int, int, int], float, float | None]],
    threshold: float,
    abstain: tuple[float, float] | None = None,
) -> list[dict[str, Any]]:
    """The rows of one photo from its (box, p_male, face_score) faces: one per face, left to right, or one
    'no_face' row."""
    if not faces:
        return [no_face_row(file, threshold)]
    ordered = sorted(faces, key=lambda face: (face[0][0], face[0][1]))
    return [result_row(file, p, threshold, abstain, box, i, score) for i, (box, p, score) in enumerate(ordered)]
