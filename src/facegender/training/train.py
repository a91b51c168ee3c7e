"""Training, one verb: read the photos, fit (training.fit: the head, then the top of the backbone, fed by one of
training.strategies), then finish (training.finish: threshold, temperature, evaluation, model files) in a run
folder (training.run_folder). Imports TensorFlow once the photos are read."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from facegender.config import Config
from facegender.data import SOURCE_COLUMN, Dataset
from facegender.errors import FaceGenderError, ImageError
from facegender.files import atomic_write_bytes, display_name
from facegender.progress import log
from facegender.runtime.schema import model_metadata
from facegender.training.fit import STOP_REQUESTED, Session
from facegender.training.inputs import (
    DataArg,
    TrainingData,
    ValArg,
    as_list,
    class_weight_of,
    epoch_indices,
    load_photos,
    read_split,
)
from facegender.training.run_folder import (
    TRAIN_ARGS,
    library_versions,
    make_run_dir,
    next_run_dir,
    read_history,
    read_train_args,
    write_train_args,
)
from facegender.training.strategies import fit_cached, fit_streaming

__all__ = ["STOP_REQUESTED", "next_run_dir", "resume", "train"]


def train(
    config: Config,
    data: DataArg,
    val: ValArg = None,
    out: str | Path | None = None,
    resuming: bool = False,
) -> Path:
    """Train a model with `config` and write a complete run folder; returns its path.

    Each completed epoch is checkpointed in RUN_DIR/checkpoint; after Ctrl-C or SIGTERM, `resume(RUN_DIR)`
    (`facegender train --resume RUN_DIR`) continues from the last completed epoch.
    """
    started = time.time()
    run_dir = Path(out) if out else next_run_dir()
    split = read_split(config, data, val)
    train_set, val_set = split.train, split.val
    make_run_dir(run_dir, [*train_set.files, *val_set.files])
    write_train_args(run_dir, as_list(data), as_list(val), config)
    log(f"train: {len(train_set)} images {train_set.counts()}; validation: {len(val_set)} images {val_set.counts()}")
    # each training photo's square at its resolution too, where cached views degrade it
    train_photos = load_photos(train_set, config, "train", keep_squares=config.cached_views > 0 and config.adverse > 0)
    val_photos = load_photos(val_set, config, "validation")
    train_set = train_photos.dataset

    rng = _start_tensorflow(config.seed)
    indices = epoch_indices(train_set, config, rng)
    class_weight = class_weight_of(train_set.labels[indices]) if config.class_weights else None
    log(f"per epoch: {len(indices)} training images (oversampled: {config.oversample}); class weights: {class_weight}")

    from facegender.training.model import build_model

    model = build_model(config)
    session = Session(config, run_dir, class_weight, resume=resuming)
    if not resuming:
        session.csv_path.unlink(missing_ok=True)
        shutil.rmtree(session.checkpoints, ignore_errors=True)
    inputs = TrainingData(
        x_train=train_photos.images,
        y_train=train_set.labels,
        indices=indices,
        x_val=val_photos.images,
        y_val=val_photos.dataset.labels,
        squares=train_photos.squares,
    )
    if config.cached_views:
        fit_cached(session, model, inputs, rng)  # each epoch's views and mixup partners drawn from rng
    else:
        fit_streaming(session, model, inputs)
    history = read_history(session.csv_path)
    train_seconds = time.time() - started
    run_dir = _finish(
        run_dir, config, model, val_photos.images, val_photos.dataset, history, train_seconds, started,
        train_set.counts(), split.train_folders, [*train_photos.skipped, *val_photos.skipped],
    )  # fmt: skip
    shutil.rmtree(session.checkpoints, ignore_errors=True)
    return run_dir


def _start_tensorflow(seed: int) -> np.random.Generator:
    """Import TensorFlow quietly, seed Keras and make its operations deterministic; the NumPy generator that draws
    each epoch's photos."""
    from facegender.training.tf_import import import_tensorflow

    import_tensorflow()  # TensorFlow's start-up lines hidden
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return np.random.default_rng(seed)


def resume(run_dir: str | Path) -> Path:
    """Continue an interrupted run from its last completed epoch (same config, data and seed)."""
    run_dir = Path(run_dir)
    args = read_train_args(run_dir)
    try:
        return train(args.config, args.data, args.val, run_dir, resuming=True)
    except FaceGenderError as exc:
        if any(not Path(folder).is_dir() for folder in [*args.data, *(args.val or [])]):
            raise FaceGenderError(
                f"{exc} (the folders come from {run_dir / TRAIN_ARGS}; put the data back there)"
            ) from None
        raise


def _finish(
    run_dir: Path,
    config: Config,
    model: Any,
    x_val: np.ndarray,
    val_set: Dataset,
    history: dict[str, list[float]],
    train_seconds: float,
    started: float,
    train_counts: dict[str, int],
    data_folders: list[str | Path],
    skipped: list[ImageError],
) -> Path:
    """Tune the threshold on validation, evaluate, save model.keras, model.json, model.onnx and plots."""
    from facegender.evaluation import metrics, plots
    from facegender.evaluation.evaluate import write_evaluation
    from facegender.runtime import calibration
    from facegender.training.export import export_onnx

    raw = model.predict(x_val.astype(np.float32), batch_size=config.batch_size, verbose=0).reshape(-1)
    temperature = calibration.fit_temperature(val_set.labels, raw) if config.calibrate else 1.0
    p_val = calibration.apply_temperature(raw, temperature)
    threshold = metrics.tune_threshold(val_set.labels, p_val)
    ece_before = calibration.expected_calibration_error(val_set.labels, raw)
    ece_after = calibration.expected_calibration_error(val_set.labels, p_val)
    log(
        f"temperature {temperature:.3f} (validation ECE {ece_before:.4f} -> {ece_after:.4f}); "
        f"threshold tuned on validation (max macro-F1): {threshold:.3f}"
    )
    val_metrics = write_evaluation(
        run_dir / "val_evaluation",
        val_set,
        p_val,
        threshold,
        extra={"temperature": temperature, "ece_before_temperature": ece_before},
    )
    sources = _evaluate_sources(run_dir / "val_evaluation" / "sources", val_set, p_val, threshold)
    plots.training_curves(history, run_dir / "training_plots")

    metadata = model_metadata(
        run_dir.name,
        config.to_dict(),
        threshold,
        temperature,
        val_metrics={
            k: val_metrics[k]
            for k in ("accuracy", "macro_f1", "n", "per_class", "slices", "calibration", "ece_before_temperature")
        }
        | sources,
        training={
            "wall_time_s": round(train_seconds, 1),
            "epochs_run": len(history.get("loss", [])),
            "train_counts": train_counts,
            "data": [str(Path(d).resolve()) for d in data_folders],
            "val_counts": val_set.counts(),
            "skipped": [{"file": display_name(e.path), "error": e.reason} for e in skipped],
        },
        versions=library_versions(),
    )
    text = json.dumps(metadata, indent=2).encode("utf-8")
    atomic_write_bytes(run_dir / "model.json", text)
    atomic_write_bytes(run_dir / "config.json", json.dumps(config.to_dict(), indent=2).encode("utf-8"))
    try:
        export_onnx(model, run_dir / "model.onnx", metadata)
    except FaceGenderError as exc:
        log(f"warning: {exc}; predict will use model.keras instead")
    _write_results_csv(run_dir, val_metrics, train_seconds)
    # last: model.keras marks a finished run (--resume refuses it), so a stop before here can still be resumed
    tmp = run_dir / ".model.tmp.keras"
    model.save(tmp)
    os.replace(tmp, run_dir / "model.keras")

    per_class = val_metrics["per_class"]
    log(
        f"done in {time.time() - started:.0f} s: val accuracy {val_metrics['accuracy']:.4f}, "
        f"macro-F1 {val_metrics['macro_f1']:.4f}, female recall {per_class['female']['recall']:.4f}"
    )
    return run_dir


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
