"""Predicting labels for image files, folders and globs, and formatting the results. No TensorFlow."""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import stat
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from facegender.errors import FaceGenderError, ImageError, InvalidOption, OptionError
from facegender.faces.detect import DETECT_MODES
from facegender.faces.images import load_image
from facegender.files import display_name, ensure_writable, is_stream
from facegender.imagefiles import is_image_file, is_special_file, iter_image_files
from facegender.progress import bar
from facegender.runtime.annotate import Annotator
from facegender.runtime.inference import Classifier
from facegender.runtime.rows import FIELDS, error_row, face_rows
from facegender.runtime.schema import check_threshold


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[dict[str, Any]]]:
    """Files to predict from files, folders (recursive) and globs; plus error rows for inputs that match nothing."""
    files: list[Path] = []
    missing: list[dict[str, Any]] = []
    for item in inputs:
        for found in iter_input(item):
            (missing if isinstance(found, dict) else files).append(found)
    return files, missing


def iter_input(item: str) -> Iterator[Path | dict[str, Any]]:
    """The files one input names (a file, a folder recursively, a glob) in order, or the error row of an input that
    names none. A generator: a folder of a million photos is walked, not listed first (the Ray engine's workers)."""
    path = Path(item)
    if path.is_dir():
        found = False
        for file in iter_image_files(path):
            found = True
            yield file
        if not found:
            yield error_row(item, "folder holds no jpg, jpeg, png, bmp or webp images")
    elif is_special_file(path):  # never opened: reading a FIFO would wait forever
        yield error_row(item, "not a regular file (a FIFO, device or socket); name an image file")
    elif path.exists() or path.is_symlink():
        yield path
    elif glob.has_magic(item):
        matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
        images = [m for m in matches if m.is_file() and is_image_file(m)]
        if not images:
            yield error_row(item, "pattern matches no image file")
        yield from images
    else:
        yield error_row(item, "file not found")


def check_scoring(threshold: float | None, detect: str, min_face_score: float | None) -> None:
    """The options that decide how faces are found and labelled, checked before any work (local and Ray predict)."""
    check_threshold(threshold)
    if detect not in DETECT_MODES:
        raise InvalidOption("detect", f"must be one of {', '.join(DETECT_MODES)}", detect)
    if min_face_score is not None and not 0.0 < min_face_score < 1.0:
        raise InvalidOption("min_face_score", "must be between 0 and 1", min_face_score)


def predict(
    inputs: list[str],
    model: str | Path | None = None,
    threshold: float | None = None,
    batch_size: int = 32,
    abstain: tuple[float, float] | None = None,
    detect: str = "auto",
    min_face_score: float | None = None,
    annotate: str | Path | None = None,
    output: str | Path | None = None,
) -> Iterator[dict[str, Any]]:
    """Result dicts (see FIELDS) in input order: one per face found (detect.face_inputs modes), 'no_face' for a
    photo without one, 'error' for a file that cannot be read. With `annotate`, a copy of each photo with its
    boxes and labels drawn is written into that folder. `output`, the file the caller will write the results
    to, is checked before any work: refused if it is one of the inputs or cannot be written."""
    if any(item == "" for item in inputs):  # Path("") is the current folder: never predict it by accident
        raise FaceGenderError("an input is an empty name (an unset shell variable?); name a file, folder or glob, "
                              "or '.' for the current folder")  # fmt: skip
    if annotate is not None and str(annotate) == "":
        raise OptionError("{annotate} is an empty name (an unset shell variable?); name a folder for the copies")
    if output is not None and str(output) == "":
        raise OptionError("{output} is an empty name (an unset shell variable?); name a file for the results, "
                          "or leave {output} out to print them")  # fmt: skip
    check_scoring(threshold, detect, min_face_score)
    classifier = Classifier.load(model)  # a wrong model is a usage error, whatever the inputs
    files, missing = expand_inputs(inputs)
    cut = classifier.info.threshold if threshold is None else threshold
    if output is not None:
        check_output(Path(output), files)
    annotator = _annotator(Path(annotate), files) if annotate is not None else None
    yield from (dict(row, threshold=cut) for row in missing)
    with bar(len(files), "predict") as progress:
        results = classifier.predict_faces(files, batch_size, progress.update, detect=detect,
                                           min_face_score=min_face_score)  # fmt: skip
        for index, result in results:
            if isinstance(result, ImageError):
                yield error_row(str(files[index]), result.reason, cut)
            else:
                rows = face_rows(str(files[index]), result, cut, abstain)
                if annotator is not None:
                    _annotate(annotator, files[index], rows)
                yield from rows


def _annotator(folder: Path, files: list[Path]) -> Annotator:
    # realpath, not Path.resolve: a symlink loop among the inputs is reported as unreadable, not a crash here
    folder = Path(os.path.realpath(folder))
    if any(Path(os.path.realpath(path)).is_relative_to(folder) for path in files):
        raise OptionError("{annotate} {folder} holds photos being predicted; choose a folder outside the inputs "
                          "so that no photo is overwritten or read back", folder=folder)  # fmt: skip
    ensure_writable(folder, "annotate")
    return Annotator(folder)


def check_output(output: Path, files: list[Path]) -> None:
    """Refuse an `output` that is one of the input photos (links resolved: a shell glob makes this easy) or that
    cannot be written, before any photo is read rather than after all of them."""
    try:
        target = os.stat(output)  # links followed, as atomic_write_bytes writes through them
    except OSError:
        target = None
    if target is not None:
        for path in files:
            try:
                same = os.path.samestat(target, os.stat(path))
            except OSError:  # unreadable inputs are reported as such later
                continue
            if same:
                raise OptionError("{output} {file} is one of the photos being predicted ({photo}); name a new file "
                                  "for the results", file=display_name(output), photo=display_name(path))  # fmt: skip
        if stat.S_ISDIR(target.st_mode):
            raise OptionError(
                "{output} {folder} is a folder; name a file, e.g. {example}",
                folder=display_name(output),
                example=display_name(output / "results.json"),
            )
        if not stat.S_ISREG(target.st_mode):
            return  # a FIFO or device is written straight into, never replaced
    if is_stream(output):
        return
    ensure_writable(Path(os.path.realpath(output)).parent, "output")


def _annotate(annotator: Annotator, path: Path, rows: list[dict[str, Any]]) -> None:
    try:
        annotator.write(path, load_image(path), rows)
    except ImageError:  # read a moment ago; gone or changed since: its rows still stand
        return
    except OSError as exc:
        raise FaceGenderError(f"cannot write to {annotator.folder} ({exc.strerror or exc})") from None


def format_results(rows: list[dict[str, Any]], fmt: str) -> str:
    """Render rows as 'json' (an array), 'csv' or an aligned 'table'."""
    if fmt in ("json", "csv"):
        return "".join(stream_results(rows, fmt)).rstrip("\n")
    lines = []
    width = max([len(str(r["file"])) for r in rows] + [4])
    # the free-width box last: face_score (after box in JSON and CSV) stands before it here to keep columns aligned
    lines.append(f"{'file':<{width}}  {'face':>4}  {'label':<9}  {'p_male':<6}  {'face_score':<10}  "
                 "box (x y width height)")  # fmt: skip
    for r in rows:
        p = "" if r["p_male"] is None else f"{r['p_male']:.4f}"
        face = "" if r.get("face_index") is None else str(r["face_index"])
        score = "" if r.get("face_score") is None else f"{r['face_score']:.4f}"
        tail = f"  ({r['error']})" if r.get("error") else ""
        lines.append(f"{r['file']!s:<{width}}  {face:>4}  {r['label']:<9}  {p:<6}  {score:<10}  "
                     f"{_box_text(r.get('box'))}{tail}")  # fmt: skip
    return "\n".join(lines)


def stream_results(rows: Iterable[dict[str, Any]], fmt: str) -> Iterator[str]:
    """format_results(rows, 'json' or 'csv') in pieces, one row at a time, so that millions of rows can be written
    without holding them (the Ray engine's merge)."""
    if fmt == "json":  # the pieces of json.dumps(rows, indent=2), row by row
        opening = "[\n"
        for row in rows:
            yield opening + textwrap.indent(json.dumps(row, indent=2, ensure_ascii=False), "  ")
            opening = ",\n"
        yield "[]" if opening == "[\n" else "\n]"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(dict(row, box=_box_text(row.get("box"))))
        if buffer.tell() > 1 << 16:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _box_text(box: list[int] | None) -> str:
    return "" if box is None else " ".join(str(v) for v in box)
