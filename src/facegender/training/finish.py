"""The end of a training run: the temperature and threshold fitted on validation, the evaluation there, and the run
folder's model files (model.json, config.json, model.onnx, results.csv, plots, and last model.keras)."""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facegender.config import Config
from facegender.data import SOURCE_COLUMN, Dataset
from facegender.errors import FaceGenderError, ImageError
from facegender.files import atomic_write_bytes, display_name
from facegender.progress import log
from facegender.runtime.schema import model_metadata
from facegender.training.inputs import Photos
from facegender.training.run_folder import library_versions

if TYPE_CHECKING:
    import keras

# the validation results model.json keeps (write_evaluation returns more)
_KEPT_METRICS = ("accuracy", "macro_f1", "n", "per_class", "slices", "calibration", "ece_before_temperature")


@dataclass
class RunRecord:
    """How the model was made, as model.json's "training" entry and the last log line tell it."""

    run_dir: Path
    config: Config
    train_folders: list[str | Path]
    train_counts: dict[str, int]
    skipped: list[ImageError]  # the photos of training and validation that could not be read
    history: dict[str, list[float]]  # history.csv: every epoch, across resumes
    train_seconds: float  # the wall time up to the end of fitting
    started: float  # time.time() at the start of the run
    workers: int = 1  # the processes that trained it together (training.multiworker)


def finish(model: keras.Model, val: Photos, record: RunRecord) -> Path:
    """Fit the temperature and tune the threshold (max macro-F1) on the validation photos, evaluate there, and
    write the run folder's model files; returns the run folder."""
    from facegender.evaluation import metrics, plots
    from facegender.evaluation.evaluate import write_evaluation
    from facegender.runtime import calibration

    run_dir, config, labels = record.run_dir, record.config, val.dataset.labels
    raw = model.predict(val.images.astype(np.float32), batch_size=config.batch_size, verbose=0).reshape(-1)
    temperature = calibration.fit_temperature(labels, raw) if config.calibrate else 1.0
    p_val = calibration.apply_temperature(raw, temperature)
    threshold = metrics.tune_threshold(labels, p_val)
    ece_before = calibration.expected_calibration_error(labels, raw)
    ece_after = calibration.expected_calibration_error(labels, p_val)
    log(
        f"temperature {temperature:.3f} (validation ECE {ece_before:.4f} -> {ece_after:.4f}); "
        f"threshold tuned on validation (max macro-F1): {threshold:.3f}"
    )
    val_metrics = write_evaluation(
        run_dir / "val_evaluation",
        val.dataset,
        p_val,
        threshold,
        extra={"temperature": temperature, "ece_before_temperature": ece_before},
    )
    sources = _evaluate_sources(run_dir / "val_evaluation" / "sources", val.dataset, p_val, threshold)
    plots.training_curves(record.history, run_dir / "training_plots")
    metadata = model_metadata(
        run_dir.name,
        config.to_dict(),
        threshold,
        temperature,
        val_metrics={k: val_metrics[k] for k in _KEPT_METRICS} | sources,
        training=_training_entry(record, val.dataset),
        versions=library_versions(),
    )
    _write_model_files(model, metadata, record, val_metrics)
    per_class = val_metrics["per_class"]
    log(
        f"done in {time.time() - record.started:.0f} s: val accuracy {val_metrics['accuracy']:.4f}, "
        f"macro-F1 {val_metrics['macro_f1']:.4f}, female recall {per_class['female']['recall']:.4f}"
    )
    return run_dir


def _training_entry(record: RunRecord, val_set: Dataset) -> dict[str, Any]:
    return {
        "wall_time_s": round(record.train_seconds, 1),
        "epochs_run": len(record.history.get("loss", [])),
        "workers": record.workers,
        "train_counts": record.train_counts,
        "data": [str(Path(d).resolve()) for d in record.train_folders],
        "val_counts": val_set.counts(),
        "skipped": [{"file": display_name(e.path), "error": e.reason} for e in record.skipped],
    }


def _write_model_files(
    model: keras.Model, metadata: dict[str, Any], record: RunRecord, val_metrics: dict[str, Any]
) -> None:
    """model.json, config.json, model.onnx (a failed export is a warning), results.csv, then model.keras."""
    from facegender.training.export import export_onnx

    run_dir, config = record.run_dir, record.config
    atomic_write_bytes(run_dir / "model.json", json.dumps(metadata, indent=2).encode("utf-8"))
    atomic_write_bytes(run_dir / "config.json", json.dumps(config.to_dict(), indent=2).encode("utf-8"))
    try:
        export_onnx(model, run_dir / "model.onnx", metadata)
    except FaceGenderError as exc:
        log(f"warning: {exc}; predict will use model.keras instead")
    _write_results_csv(run_dir, val_metrics, record.train_seconds)
    # last: model.keras marks a finished run (--resume refuses it), so a stop before here can still be resumed
    tmp = run_dir / ".model.tmp.keras"
    model.save(tmp)
    os.replace(tmp, run_dir / "model.keras")


def _evaluate_sources(out: Path, val_set: Dataset, p_val: np.ndarray, threshold: float) -> dict[str, Any]:
    """With several validation folders, a full evaluation of each (out/<source>/) at the model's one threshold, and
    {"sources": {name: accuracy, macro_f1, female_recall, n}, "sources_mean_macro_f1", "sources_worst_macro_f1"}."""
    from facegender.evaluation.evaluate import write_evaluation

    names = list(dict.fromkeys(val_set.columns.get(SOURCE_COLUMN, [])))
    if len(names) < 2:
        return {}
    column = np.asarray(val_set.columns[SOURCE_COLUMN])
    summary = {}
    for name in names:
        members = np.flatnonzero(column == name)
        result = write_evaluation(out / name.replace("/", "-"), val_set.subset(members), p_val[members], threshold)
        summary[name] = {
            "accuracy": result["accuracy"],
            "macro_f1": result["macro_f1"],
            "female_recall": result["per_class"]["female"]["recall"],
            "n": result["n"],
        }
        log(
            f"validation {name}: accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}, "
            f"female recall {result['per_class']['female']['recall']:.4f} ({result['n']} photos)"
        )
    f1s = [row["macro_f1"] for row in summary.values()]
    return {"sources": summary, "sources_mean_macro_f1": float(np.mean(f1s)), "sources_worst_macro_f1": min(f1s)}


def _write_results_csv(run_dir: Path, val_metrics: dict[str, Any], seconds: float) -> None:
    with (run_dir / "results.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["accuracy", "macro_f1", "female_recall", "male_recall", "threshold", "wall_time_s"])
        writer.writerow(
            [
                f"{val_metrics['accuracy']:.4f}",
                f"{val_metrics['macro_f1']:.4f}",
                f"{val_metrics['per_class']['female']['recall']:.4f}",
                f"{val_metrics['per_class']['male']['recall']:.4f}",
                f"{val_metrics['threshold']:.3f}",
                f"{seconds:.1f}",
            ]
        )
