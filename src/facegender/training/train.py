"""Training: data -> tf.data pipeline -> fine-tuning -> threshold -> run folder. Imports TensorFlow."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facegender import __version__
from facegender.config import Config
from facegender.data import (
    SOURCE_COLUMN,
    Dataset,
    concat,
    load_images,
    overlap,
    refuse_inside_class_folders,
    resolve_splits,
    scan_dataset,
    split_train_val,
)
from facegender.errors import FaceGenderError, ImageError
from facegender.files import atomic_write_bytes, display_name
from facegender.progress import bar, log
from facegender.runtime.schema import model_metadata

DataArg = str | Path | list[str] | list[Path]
ValArg = str | Path | list[str] | list[Path] | None
STOP_REQUESTED = threading.Event()  # set with the KeyboardInterrupt of Ctrl-C or SIGTERM (cli._interruptible)


def next_run_dir(base: Path = Path("runs"), name: str = "train") -> Path:
    """runs/train, runs/train2, runs/train3, ... (the first that does not exist)."""
    candidate, n = base / name, 1
    while candidate.exists():
        n += 1
        candidate = base / f"{name}{n}"
    return candidate


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "facegender": __version__, "platform": platform.platform()}
    for module in ("keras", "tensorflow", "numpy", "sklearn", "PIL", "onnxruntime", "onnx"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # not installed or no version: record nothing
            pass
    return versions


def oversample_indices(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """All indices, plus minority-class indices drawn (without replacement first) until the classes match."""
    counts = np.bincount(labels, minlength=2)
    minority = int(np.argmin(counts))
    members = np.flatnonzero(labels == minority)
    need = int(counts.max() - counts.min())
    extra = np.concatenate([rng.permutation(members) for _ in range(need // len(members) + 1)])[:need]
    return np.concatenate([np.arange(len(labels)), extra])


def class_weight_of(labels: np.ndarray) -> dict[int, float]:
    """Balanced class weights n / (2 * count) of the labels the model is trained on."""
    counts = np.bincount(labels, minlength=2).astype(float)
    return {i: float(len(labels) / (2 * counts[i])) for i in range(2)}


def _as_list(folders: DataArg | ValArg) -> list[str | Path]:
    if folders is None:
        return []
    return [folders] if isinstance(folders, (str, Path)) else list(folders)


def source_indices(dataset: Dataset, weights: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Indices of the photos one epoch draws before class balancing: each source's photos repeated by its weight
    (a fraction drawn at random without replacement), in the order of the sources; all photos once without
    weights."""
    if not weights:
        return np.arange(len(dataset))
    sources = dataset.columns.get(SOURCE_COLUMN, ["all"] * len(dataset))
    names = list(dict.fromkeys(sources))
    if len(weights) != len(names):
        raise FaceGenderError(
            f"source_weights has {len(weights)} weight(s) but training reads {len(names)} folder(s) "
            f"({', '.join(names)}); give one weight per --data folder"
        )
    picked = []
    for name, weight in zip(names, weights, strict=True):
        members = np.flatnonzero(np.asarray(sources) == name)
        whole, fraction = divmod(weight, 1.0)
        extra = rng.permutation(members)[: round(fraction * len(members))]
        picked.append(np.concatenate([np.tile(members, int(whole)), np.sort(extra)]))
    return np.concatenate(picked)


def _read_split(config: Config, data: DataArg, val: ValArg) -> tuple[Dataset, Dataset]:
    folders = _as_list(data)
    val_folders = _as_list(val)
    for flag, named in (("--data", folders), ("--val", val_folders)):
        if len({os.path.realpath(folder) for folder in named}) < len(named):
            raise FaceGenderError(f"{flag} names the same folder twice ({' '.join(map(str, named))}); name each once")
    val_dirs = [Path(v) for v in val_folders]
    if len(folders) == 1:
        train_dir, val_dir = resolve_splits(folders[0], val_folders[0] if len(val_folders) == 1 else None)
        val_dirs = val_dirs or ([val_dir] if val_dir is not None else [])
        train_set = scan_dataset(train_dir)
    else:  # several training folders, e.g. train/ and train-extra/
        train_set = concat([scan_dataset(folder) for folder in folders])
    if not val_dirs:
        train_set, val_set = split_train_val(train_set, config.val_fraction, config.seed)
        log(f"no validation folder: split off {len(val_set)} images ({config.val_fraction:.0%}, by identity if known)")
    else:  # several validation folders: one combined set, reported per folder too
        val_set = concat([scan_dataset(folder, min_per_class=1) for folder in val_dirs])
        duplicated = overlap(train_set, val_set)
        if duplicated:
            log(
                f"warning: {len(duplicated)} validation image(s) also appear in the training data "
                f"(e.g. {duplicated[0]}); validation metrics will be optimistic"
            )
    return train_set, val_set


def _load(
    dataset: Dataset, config: Config, name: str, skipped: list[ImageError], squares: list[np.ndarray] | None = None
) -> tuple[np.ndarray, Dataset]:
    """The dataset's images that could be read, and that dataset; the others are named and added to skipped.
    With a `squares` list, each image's square at the photo's resolution is appended (data.load_images)."""
    with bar(len(dataset), f"load {name}") as progress:
        images, kept, errors = load_images(
            dataset.files,
            config.image_size,
            config.crop,
            progress=progress.update,
            face_crops=config.face_crops,
            face_scale=config.face_scale,
            squares=squares,
        )
    for error in errors[:20]:
        log(f"skipped {error.path}: {error.reason}")
    if errors:
        log(f"{name}: skipped {len(errors)} unreadable image(s) of {len(dataset)}")
    skipped.extend(errors)
    kept_set = dataset.subset(kept)
    if min(kept_set.counts().values()) < 1:
        raise FaceGenderError(f"{name} data has no readable image of one class: {kept_set.counts()}")
    return images, kept_set


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
    args_file = run_dir / "train_args.json"
    if not args_file.is_file():
        raise FaceGenderError(f"{run_dir} is not an interrupted run folder (no train_args.json); nothing to resume")
    if (run_dir / "model.keras").is_file():
        raise FaceGenderError(f"{run_dir} already finished training (model.keras exists); nothing to resume")
    try:
        args = json.loads(args_file.read_text(encoding="utf-8"))
        valid = (
            isinstance(args, dict)
            and isinstance(args.get("config"), dict)
            and isinstance(args.get("data"), list)
            and args["data"]
            and all(isinstance(folder, str) for folder in args["data"])
            and (
                args.get("val") is None
                or isinstance(args["val"], str)
                or (isinstance(args["val"], list) and all(isinstance(v, str) for v in args["val"]))
            )
        )
    except (UnicodeDecodeError, json.JSONDecodeError):
        valid = False
    if not valid:
        raise FaceGenderError(
            f"{args_file} is damaged (it should name the data folders and the config); start the run again "
            "without --resume"
        )
    from facegender.config import resolve

    config = resolve(args["config"].get("preset", "default"), args["config"])
    if isinstance(args["val"], str):  # written by a version that took one validation folder
        args["val"] = [args["val"]]
    try:
        return train(config, args["data"], args["val"], run_dir, resuming=True)
    except FaceGenderError as exc:
        if any(not Path(folder).is_dir() for folder in [*args["data"], *(args["val"] or [])]):
            raise FaceGenderError(f"{exc} (the folders come from {args_file}; put the data back there)") from None
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
    folders = _as_list(data)
    val_folders = _as_list(val)
    single_val = val_folders[0] if len(val_folders) == 1 else None
    train_folders = [resolve_splits(folders[0], single_val)[0]] if len(folders) == 1 else folders
    train_set, val_set = _read_split(config, data, val)
    refuse_inside_class_folders(run_dir, [*train_set.files, *val_set.files])
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ".write_test").touch()
        (run_dir / ".write_test").unlink()
    except OSError as exc:
        raise FaceGenderError(f"cannot write the run folder {run_dir}: {exc}; choose another --out") from exc
    log(f"run folder: {run_dir}")
    # absolute paths: --resume works from any working directory
    arguments = {"data": [os.path.abspath(f) for f in folders],
                 "val": [os.path.abspath(v) for v in val_folders] or None, "config": config.to_dict()}  # fmt: skip
    atomic_write_bytes(run_dir / "train_args.json", json.dumps(arguments, indent=2).encode("utf-8"))
    log(f"train: {len(train_set)} images {train_set.counts()}; validation: {len(val_set)} images {val_set.counts()}")

    skipped: list[ImageError] = []
    squares: list[np.ndarray] | None = [] if config.cached_views and config.adverse > 0 else None
    x_train, train_set = _load(train_set, config, "train", skipped, squares)
    x_val, val_set = _load(val_set, config, "validation", skipped)

    from facegender.training.tf_import import import_tensorflow

    import_tensorflow()  # TensorFlow's start-up lines hidden
    import keras
    import tensorflow as tf

    from facegender.training.model import build_model

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(config.seed)

    indices = source_indices(train_set, config.source_weights, rng)
    if config.oversample:
        indices = indices[oversample_indices(train_set.labels[indices], rng)]
    class_weight = class_weight_of(train_set.labels[indices]) if config.class_weights else None
    log(f"per epoch: {len(indices)} training images (oversampled: {config.oversample}); class weights: {class_weight}")

    model = build_model(config)
    session = _Session(config, run_dir, class_weight, resuming, squares)
    if not resuming:
        session.csv_path.unlink(missing_ok=True)
        shutil.rmtree(session.checkpoints, ignore_errors=True)
    fit = _fit_cached if config.cached_views else _fit_streaming
    fit(session, model, x_train, train_set.labels, indices, x_val, val_set.labels, rng)
    history = _read_history(session.csv_path)
    train_seconds = time.time() - started
    run_dir = _finish(
        run_dir, config, model, x_val, val_set, history, train_seconds, started, train_set.counts(), train_folders,
        skipped,
    )  # fmt: skip
    shutil.rmtree(session.checkpoints, ignore_errors=True)
    return run_dir


def _read_history(path: Path) -> dict[str, list[float]]:
    """history.csv (all epochs, across resumes) as column -> values."""
    history: dict[str, list[float]] = {}
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                for key, value in row.items():
                    if key != "epoch" and value not in (None, ""):
                        history.setdefault(key, []).append(float(value))
    return history


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
