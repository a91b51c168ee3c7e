"""Predicting labels for image files, folders and globs, and formatting the results. No TensorFlow."""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from facegender import CLASS_NAMES
from facegender.data import is_image_file, iter_image_files
from facegender.errors import FaceGenderError, ImageError
from facegender.inference import Classifier
from facegender.progress import bar

FIELDS = ("file", "label", "p_male", "threshold", "error")


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[dict[str, Any]]]:
    """Files to predict from files, folders (recursive) and globs; plus error rows for inputs that match nothing."""
    files: list[Path] = []
    missing: list[dict[str, Any]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = list(iter_image_files(path))
            if not found:
                missing.append(error_row(item, "folder holds no jpg, jpeg, png, bmp or webp images"))
            files.extend(found)
        elif path.exists() or path.is_symlink():
            files.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            found = [m for m in matches if m.is_file() and is_image_file(m)]
            if not found:
                missing.append(error_row(item, "pattern matches no image file"))
            files.extend(found)
        else:
            missing.append(error_row(item, "file not found"))
    return files, missing


def display_name(path: str | Path) -> str:
    """A file name as valid text: bytes that are not UTF-8 (possible on Linux) shown as \\xNN escapes."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def error_row(file: str, message: str, threshold: float | None = None) -> dict[str, Any]:
    """An input that could not be read, as `predict --format json` and the web service report it."""
    return {"file": display_name(file), "label": "error", "p_male": None, "threshold": threshold, "error": message}


def parse_band(text: str | None) -> tuple[float, float] | None:
    """'LOW,HIGH' (0 <= LOW < HIGH <= 1) for --abstain-band."""
    if text is None:
        return None
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise FaceGenderError(f"--abstain-band takes LOW,HIGH such as 0.35,0.65, got {text!r}") from None
    if not 0.0 <= low < high <= 1.0:
        raise FaceGenderError(f"--abstain-band needs 0 <= LOW < HIGH <= 1, got {text!r}")
    return low, high


def result_row(
    file: str, p_male: float, threshold: float, abstain: tuple[float, float] | None = None
) -> dict[str, Any]:
    """One prediction as `predict --format json` and the web service report it.

    With an abstain band (low, high), a p(male) inside it gives the label 'uncertain' (p_male is kept).
    """
    label = CLASS_NAMES[int(p_male >= threshold)]
    if abstain is not None and abstain[0] < p_male < abstain[1]:
        label = "uncertain"
    return {"file": display_name(file), "label": label, "p_male": round(float(p_male), 6), "threshold": threshold,
            "error": None}  # fmt: skip


def predict(
    inputs: list[str],
    model: str | Path | None = None,
    threshold: float | None = None,
    batch_size: int = 32,
    abstain: tuple[float, float] | None = None,
) -> Iterator[dict[str, Any]]:
    """One result dict per input image (see FIELDS), in input order; unreadable files give label 'error'."""
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise FaceGenderError(f"--threshold must be between 0 and 1, got {threshold}")
    classifier = Classifier.load(model)  # a wrong model is a usage error, whatever the inputs
    files, missing = expand_inputs(inputs)
    cut = classifier.info.threshold if threshold is None else threshold
    yield from (dict(row, threshold=cut) for row in missing)
    with bar(len(files), "predict") as progress:
        for index, result in classifier.predict_files(files, batch_size, progress.update):
            if isinstance(result, ImageError):
                yield error_row(str(files[index]), result.reason, cut)
            else:
                yield result_row(str(files[index]), result, cut, abstain)


def format_results(rows: list[dict[str, Any]], fmt: str) -> str:
    """Render rows as 'json' (an array), 'csv' or an aligned 'table'."""
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    lines = []
    width = max([len(str(r["file"])) for r in rows] + [4])
    lines.append(f"{'file':<{width}}  {'label':<7}  p_male")
    for r in rows:
        p = "" if r["p_male"] is None else f"{r['p_male']:.4f}"
        tail = f"  ({r['error']})" if r.get("error") else ""
        lines.append(f"{r['file']!s:<{width}}  {r['label']:<7}  {p}{tail}")
    return "\n".join(lines)
