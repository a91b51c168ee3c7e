"""Training: data -> tf.data pipeline -> fine-tuning -> threshold -> run folder. Imports TensorFlow."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facegender.config import Config
from facegender.data import SOURCE_COLUMN, Dataset
from facegender.errors import FaceGenderError, ImageError
from facegender.files import atomic_write_bytes, display_name
from facegender.progress import bar, log
from facegender.runtime.schema import model_metadata
from facegender.training.inputs import DataArg, ValArg, as_list, class_weight_of, epoch_indices, load_photos, read_split
from facegender.training.run_folder import (
    TRAIN_ARGS,
    library_versions,
    make_run_dir,
    next_run_dir,
    read_history,
    read_train_args,
    write_train_args,
)

STOP_REQUESTED = threading.Event()  # set with the KeyboardInterrupt of Ctrl-C or SIGTERM (cli._interruptible)


@dataclass
class _Session:
    """What every training phase needs besides the model and data."""

    config: Config
    run_dir: Path
    class_weight: dict[int, float] | None
    resume: bool
    # each training image's square at the photo's resolution, where adverse conditions are applied (cached views)
    squares: list[np.ndarray] | None = None

    @property
    def csv_path(self) -> Path:
        return self.run_dir / "history.csv"

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoint"


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
    train_set, val_set = train_photos.dataset, val_photos.dataset

    rng = _start_tensorflow(config.seed)
    indices = epoch_indices(train_set, config, rng)
    class_weight = class_weight_of(train_set.labels[indices]) if config.class_weights else None
    log(f"per epoch: {len(indices)} training images (oversampled: {config.oversample}); class weights: {class_weight}")

    from facegender.training.model import build_model

    model = build_model(config)
    session = _Session(config, run_dir, class_weight, resuming, train_photos.squares)
    if not resuming:
        session.csv_path.unlink(missing_ok=True)
        shutil.rmtree(session.checkpoints, ignore_errors=True)
    fit = _fit_cached if config.cached_views else _fit_streaming
    fit(session, model, train_photos.images, train_set.labels, indices, val_photos.images, val_set.labels, rng)
    history = read_history(session.csv_path)
    train_seconds = time.time() - started
    run_dir = _finish(
        run_dir, config, model, val_photos.images, val_set, history, train_seconds, started, train_set.counts(),
        split.train_folders, [*train_photos.skipped, *val_photos.skipped],
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


def _hard_accuracy(y_true, y_pred):  # type: ignore[no-untyped-def]
    """Binary accuracy against the rounded label, so that mixup's blended labels still count as a class."""
    import keras

    return keras.metrics.binary_accuracy(keras.ops.round(y_true), y_pred)


def _metrics() -> list:
    """Accuracy and AUC against the rounded label: Keras's AUC counts any label above 0 as a positive, which
    misreads mixup's blended labels."""
    import keras

    class HardAUC(keras.metrics.AUC):
        def update_state(self, y_true, y_pred, sample_weight=None):  # type: ignore[no-untyped-def]
            return super().update_state(keras.ops.round(y_true), y_pred, sample_weight)

    return [keras.metrics.MeanMetricWrapper(_hard_accuracy, name="accuracy"), HardAUC(name="auc")]


def _fit_phases(session, full_model, model, trainable_layers, make_train, val_ds, steps):  # type: ignore[no-untyped-def]
    """Phase 1 (head_epochs): head only on a frozen backbone. Phase 2 (epochs): the top trainable_layers too.

    `model` is what fit() runs: the whole network `full_model`, or its part above the cache layer (same layers,
    shared weights). make_train(epochs) returns the training dataset for that many epochs of `steps` batches.
    Every epoch and the end of each phase are checkpointed (facegender.training.checkpoint), so a resume continues
    after the last completed epoch with the optimizer's and the callbacks' state, and skips a finished phase.
    """
    import keras

    from facegender.training import checkpoint
    from facegender.training.model import make_loss, set_trainable

    config = session.config

    def fit(epochs: int, initial: int, learning_rate, callbacks: list, phase: str) -> None:  # type: ignore[no-untyped-def]
        folder = session.checkpoints / phase
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=make_loss(config),
            metrics=_metrics(),
        )
        state = checkpoint.load(model, folder, len(callbacks)) if session.resume else None
        if state and state["done"]:  # its history rows stay; the next phase truncates what it will redo
            log(f"resume: {phase} already finished")
            return
        start = state["epoch"] if state else initial
        checkpoint.truncate_history(session.csv_path, start)
        if state:
            log(f"resume: {phase} from epoch {start + 1}" if start < initial + epochs else f"resume: {phase} ending")
        saver = checkpoint.EpochCheckpoint(folder, state, callbacks)
        with contextlib.redirect_stdout(sys.stderr):  # Keras's progress goes to stderr; stdout is the run path
            model.fit(
                make_train(initial + epochs - start),
                validation_data=val_ds,
                epochs=initial + epochs,
                initial_epoch=start,
                steps_per_epoch=steps,
                class_weight=session.class_weight,
                callbacks=[  # the logger before ReduceLROnPlateau, which adds a learning_rate column to logs
                    checkpoint.StopWhenAsked(STOP_REQUESTED),
                    keras.callbacks.CSVLogger(str(session.csv_path), append=True),
                    *callbacks,
                    saver,
                ],
                verbose=1 if sys.stderr.isatty() else 2,
            )

    if config.head_epochs:
        log(f"phase 1: head only, backbone frozen, {config.head_epochs} epoch(s) at {config.head_learning_rate:g}")
        set_trainable(full_model, 0)
        fit(config.head_epochs, 0, config.head_learning_rate, [], "phase1")
    if config.epochs:
        log(
            f"fine-tuning: top {trainable_layers} backbone layers, {config.epochs} epoch(s) at {config.learning_rate:g}"
        )
        set_trainable(full_model, trainable_layers, config.freeze_batchnorm)
        callbacks = [
            keras.callbacks.EarlyStopping(
                monitor=config.monitor,
                mode="min" if config.monitor == "val_loss" else "max",
                patience=config.early_stopping_patience,
                restore_best_weights=True,
            )
        ]
        if config.schedule == "cosine":
            learning_rate = keras.optimizers.schedules.CosineDecay(
                config.learning_rate, decay_steps=config.epochs * steps, alpha=0.01
            )
        else:
            learning_rate = config.learning_rate
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_loss",
                    factor=config.reduce_lr_factor,
                    patience=config.reduce_lr_patience,
                    min_lr=config.min_learning_rate,
                )
            )
        fit(config.epochs, config.head_epochs, learning_rate, callbacks, "phase2")


def _pipeline(tf, images, labels, indices, batch_size, augmenter, seed):  # type: ignore[no-untyped-def]
    """Batches of (float32 RGB 0-255 images, float labels), gathered from the in-memory uint8 array."""
    images_t = tf.constant(images)
    labels_t = tf.constant(labels.astype(np.float32).reshape(-1, 1))
    ds = tf.data.Dataset.from_tensor_slices(indices.astype(np.int64))
    if seed is not None:
        ds = ds.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(
        lambda idx: (tf.cast(tf.gather(images_t, idx), tf.float32), tf.gather(labels_t, idx)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if augmenter is not None:
        ds = ds.map(lambda x, y: (augmenter(x, training=True), y))
    return ds.prefetch(tf.data.AUTOTUNE)


def _fit_streaming(session, model, x_train, y_train, indices, x_val, y_val, rng):  # type: ignore[no-untyped-def]
    """The seed's way: every batch is augmented on the fly and runs through the whole network."""
    config = session.config
    import tensorflow as tf

    from facegender.training.augment import build_augmenter

    augmenter = build_augmenter(config, config.seed)
    steps = -(-len(indices) // config.batch_size)

    def make_train(epochs: int):  # type: ignore[no-untyped-def]
        return _pipeline(tf, x_train, y_train, indices, config.batch_size, augmenter, config.seed).repeat(epochs)

    val_ds = _pipeline(tf, x_val, y_val, np.arange(len(y_val)), config.batch_size, None, None)
    _fit_phases(session, model, model, config.trainable_layers, make_train, val_ds, steps)


def _fit_cached(session, model, x_train, y_train, indices, x_val, y_val, rng):  # type: ignore[no-untyped-def]
    """Fast fine-tuning: run the frozen lower backbone once on `cached_views` augmented views of every training
    image, then train only the layers above `cache_layer` (plus the head) on those cached activations.

    Each epoch draws one view per image. The lower layers never change, so this equals fine-tuning the top of
    the network on a fixed pool of augmented images, at a fraction of the cost per epoch.
    """
    import keras
    import tensorflow as tf

    from facegender.training.augment import augment_views
    from facegender.training.model import backbone_of

    config = session.config
    backbone = backbone_of(model)
    names = [layer.name for layer in backbone.layers]
    if config.cache_layer not in names:
        raise FaceGenderError(f"cache_layer {config.cache_layer!r} is not a MobileNetV2 layer")
    cut = backbone.get_layer(config.cache_layer).output
    lower = keras.Model(backbone.input, cut, name="lower")
    upper = keras.Model(cut, backbone.output, name="upper")
    features_in = keras.Input(shape=cut.shape[1:], name="features")
    x = upper(features_in, training=False)
    for name in ("pool", "head_dense", "head_dropout", "p_male"):
        x = model.get_layer(name)(x)
    top = keras.Model(features_in, x, name="top")

    def encode(images: np.ndarray, chunk: int = 1024) -> np.ndarray:
        # in chunks: a float32 copy of 25,000 photos at 160 px is 7.5 GB, and predict copies its input again
        # (the whole set at once was killed for memory on a 24 GB machine)
        parts = []
        for start in range(0, len(images), chunk):
            scaled = images[start : start + chunk].astype(np.float32) / 127.5 - 1.0
            parts.append(lower.predict(scaled, batch_size=64, verbose=0).astype(np.float16))
        return np.concatenate(parts) if parts else np.zeros((0, *lower.output.shape[1:]), np.float16)

    started = time.time()
    views = []
    with bar(config.cached_views * len(x_train), "cache views") as progress:
        for view in range(config.cached_views):
            # view 0: the photo as it is; the others seeded per view, so a rerun or resume caches the same views
            seed = config.seed * 1000 + view
            images = x_train if view == 0 else augment_views(x_train, config, seed, squares=session.squares)
            views.append(encode(images))
            progress.update(len(x_train))
    features = np.stack(views)  # (views, images, h, w, c)
    val_features = encode(x_val)
    log(
        f"cached {features.shape[0]} views x {features.shape[1]} images at {config.cache_layer} "
        f"{tuple(features.shape[2:])} ({features.nbytes / 2**20:.0f} MiB) in {time.time() - started:.0f} s"
    )

    features_t = tf.constant(features)
    labels_t = tf.constant(y_train.astype(np.float32).reshape(-1, 1))
    steps = -(-len(indices) // config.batch_size)

    def make_train(epochs: int):  # type: ignore[no-untyped-def]
        count = steps * config.batch_size

        def draw() -> tuple[np.ndarray, np.ndarray]:  # (view, image) of every example of every epoch
            order = np.concatenate([np.resize(rng.permutation(indices), count) for _ in range(epochs)])
            return rng.integers(0, config.cached_views, len(order)), order

        view, index = draw()
        if config.mixup:  # a partner example per example, and the share of the first (NumPy-seeded: reproducible)
            partner_view, partner_index = draw()
            share = rng.beta(config.mixup, config.mixup, len(index))
        else:
            partner_view, partner_index, share = view, index, np.ones(len(index))
        picks = tuple(a.astype(np.int64) for a in (view, index, partner_view, partner_index))
        ds = tf.data.Dataset.from_tensor_slices((*picks, share.astype(np.float32)))
        return ds.batch(config.batch_size).map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def gather(view, index, partner_view, partner_index, share):  # type: ignore[no-untyped-def]
        first = tf.cast(tf.gather_nd(features_t, tf.stack([view, index], axis=1)), tf.float32)
        labels = tf.gather(labels_t, index)
        if not config.mixup:
            return first, labels
        second = tf.cast(tf.gather_nd(features_t, tf.stack([partner_view, partner_index], axis=1)), tf.float32)
        weight = tf.reshape(share, (-1, 1, 1, 1))
        mixed = weight * first + (1.0 - weight) * second
        weight = tf.reshape(share, (-1, 1))
        return mixed, weight * labels + (1.0 - weight) * tf.gather(labels_t, partner_index)

    val_ds = tf.data.Dataset.from_tensor_slices(
        (val_features.astype(np.float32), y_val.astype(np.float32).reshape(-1, 1))
    ).batch(config.batch_size)
    trainable = len(names) - names.index(config.cache_layer) - 1
    _fit_phases(session, model, top, trainable, make_train, val_ds, steps)


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
