"""Evaluating a model on a labelled dataset and writing the report files."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from facegender import CLASS_NAMES
from facegender.data import Dataset, refuse_inside_class_folders, scan_dataset
from facegender.errors import FaceGenderError, ImageError, OptionError
from facegender.evaluation import metrics, plots
from facegender.evaluation.report import write_report
from facegender.files import display_name, ensure_writable
from facegender.progress import bar
from facegender.runtime import calibration
from facegender.runtime.inference import Classifier
from facegender.runtime.schema import check_threshold


def write_evaluation(
    out: Path,
    dataset: Dataset,
    p_male: np.ndarray,
    threshold: float,
    skipped: list[ImageError] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write classification_report.txt, metrics.json, confusion_matrix.png, roc/pr curves, misclassified/ and
    report.html into `out`.

    Everything is written into a hidden folder inside `out` first and moved into place once all of it is
    complete, so a full disk or an error on the way leaves the previous evaluation as it was, and no file is
    ever half-written. A misclassified/ folder that facegender did not write is never replaced.
    """
    _refuse_foreign_misclassified(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".partial-*"):  # left by an evaluation killed (kill -9) while writing
        shutil.rmtree(stale, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
    try:
        result = _write_evaluation(stage, dataset, p_male, threshold, skipped, extra)
        for entry in sorted(stage.iterdir()):
            if entry.is_dir():
                shutil.rmtree(out / entry.name, ignore_errors=True)
            os.replace(entry, out / entry.name)
        return result
    except OSError as exc:  # disk full, permissions changed mid-way, ...
        raise FaceGenderError(f"could not write the evaluation into {out}: {exc}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _refuse_foreign_misclassified(out: Path) -> None:
    if (out / "misclassified").exists() and not (out / "misclassified" / "misclassified.csv").is_file():
        raise OptionError(
            "{folder} exists and was not written by facegender; move it or choose another {out}",
            folder=out / "misclassified",
        )


def _write_evaluation(
    out: Path,
    dataset: Dataset,
    p_male: np.ndarray,
    threshold: float,
    skipped: list[ImageError] | None,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    y_true = dataset.labels
    result = metrics.classification_metrics(y_true, p_male, threshold)
    result["slices"] = metrics.slice_metrics(y_true, p_male, threshold, dataset.columns)
    result["worst_slice"] = metrics.worst_slice(result["slices"])
    result["slice_gaps"] = metrics.slice_gaps(result["slices"])
    result["calibration"] = {
        "ece": calibration.expected_calibration_error(y_true, p_male),
        "brier": calibration.brier(y_true, p_male),
    }
    result["skipped"] = [{"file": display_name(e.path), "error": e.reason} for e in (skipped or [])]
    result.update(extra or {})

    (out / "classification_report.txt").write_text(metrics.report_text(y_true, p_male, threshold), encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    plots.confusion_matrix_plot(result["confusion_matrix"], out / "confusion_matrix.png", f"threshold {threshold:.3f}")
    plots.roc_pr_plots(y_true, p_male, out)
    plots.reliability_diagram(y_true, p_male, out / "reliability_diagram.png", result["calibration"]["ece"])
    plots.threshold_sweep_plot(metrics.threshold_sweep(y_true, p_male), threshold, out / "threshold_sweep.png")
    _write_misclassified(out / "misclassified", dataset, p_male, threshold)
    write_report(out, result)
    return result


def _write_misclassified(folder: Path, dataset: Dataset, p_male: np.ndarray, threshold: float) -> None:
    folder.mkdir(parents=True)
    predicted = metrics.predict_labels(p_male, threshold)
    with (folder / "misclassified.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "source", "true_label", "predicted_label", "p_male"])
        used: set[str] = set()
        for i in np.flatnonzero(predicted != dataset.labels):
            source = dataset.files[i]
            # a name that is not valid UTF-8 (possible on Linux) is copied under its escaped spelling
            name = unique_name(
                display_name(f"{CLASS_NAMES[dataset.labels[i]]}_as_{CLASS_NAMES[predicted[i]]}_{source.name}"), used
            )
            shutil.copyfile(source, folder / name)
            writer.writerow(
                [name, display_name(source), CLASS_NAMES[dataset.labels[i]], CLASS_NAMES[predicted[i]],
                 f"{p_male[i]:.6f}"]
            )  # fmt: skip


def unique_name(name: str, used: set[str]) -> str:
    """`name`, or with -2, -3, ... before its suffix when already used (two photos of one name in different
    subfolders); case-insensitively, so no two copies collide on a file system that ignores case. Added to used."""
    stem, dot, suffix = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    candidate, n = name, 1
    while candidate.lower() in used:
        n += 1
        candidate = f"{stem}-{n}{dot}{suffix}"
    used.add(candidate.lower())
    return candidate


def evaluate(
    data: str | Path,
    out: str | Path,
    model: str | Path | None = None,
    threshold: float | None = None,
    batch_size: int = 32,
    corrupt: bool = False,
    corrupt_seed: int = 0,
) -> dict[str, Any]:
    """Run the model over a labelled folder and write every report file into `out`.

    With corrupt=True, also run the robustness suite on the clean photos (see corrupt.py) into out/robustness/.
    """
    check_threshold(threshold)
    if not str(data) or not str(out):
        raise OptionError("{data} and {out} need a folder, got an empty path (an unset shell variable?)")
    dataset = scan_dataset(data, min_per_class=1)
    classifier = Classifier.load(model)
    out = Path(out)
    refuse_inside_class_folders(out, dataset.files)
    _refuse_foreign_misclassified(out)
    ensure_writable(out)  # fail before the work, not after it; and no empty folder left for a bad dataset or model
    threshold = classifier.info.threshold if threshold is None else threshold
    p_male = np.full(len(dataset), np.nan)
    skipped: list[ImageError] = []
    no_face: list[int] = []
    with bar(len(dataset), "evaluate") as progress:
        for index, result in classifier.predict_files(dataset.files, batch_size, progress.update, no_face=no_face):
            if isinstance(result, ImageError):
                skipped.append(result)
            else:
                p_male[index] = result
    kept = np.flatnonzero(~np.isnan(p_male))
    if len(kept) == 0:
        raise FaceGenderError(f"none of the {len(dataset)} images in {data} could be read")
    extra: dict[str, Any] = {"model": display_name(classifier.path), "backend": classifier.backend,
                             "data": display_name(data)}  # fmt: skip
    if classifier.info.face_crops:  # the one fallback of the shared framing: no face found, the whole photo
        extra["no_face"] = {
            "count": len(no_face),
            "scored_as": "the whole photo (predict and serve answer no_face for these)",
            "files": [dataset.relative(i) for i in no_face],
        }
    if corrupt:
        from facegender.evaluation.corrupt import robustness_suite

        if threshold != classifier.info.threshold:
            classifier.info.threshold = threshold
        extra["robustness"] = robustness_suite(classifier, dataset.subset(kept), Path(out) / "robustness", corrupt_seed)
    return write_evaluation(out, dataset.subset(kept), p_male[kept], threshold, skipped, extra=extra)
