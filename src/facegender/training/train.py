"""Training, one verb: read the photos, fit (training.fit: the head, then the top of the backbone, fed by one of
training.strategies), then finish (training.finish: threshold, temperature, evaluation, model files) in a run
folder (training.run_folder). Imports TensorFlow once the photos are read."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import numpy as np

from facegender.config import Config
from facegender.errors import FaceGenderError
from facegender.progress import log
from facegender.training.finish import RunRecord, finish
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
from facegender.training.multiworker import Worker, worker_folder
from facegender.training.run_folder import (
    TRAIN_ARGS,
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
    worker: Worker | None = None,
) -> Path:
    """Train a model with `config` and write a complete run folder; returns its path.

    Each completed epoch is checkpointed in RUN_DIR/checkpoint; after Ctrl-C or SIGTERM, `resume(RUN_DIR)`
    (`facegender train --resume RUN_DIR`) continues from the last completed epoch. `worker`: this process is one
    of several training together (training.multiworker); only the chief writes RUN_DIR.
    """
    run_dir = Path(out) if out else next_run_dir()
    with worker_folder(run_dir, worker) as folder:
        _train(config, data, val, folder, resuming, worker, resume_from=None if folder == run_dir else run_dir)
    return run_dir


def _train(
    config: Config,
    data: DataArg,
    val: ValArg,
    run_dir: Path,
    resuming: bool,
    worker: Worker | None,
    resume_from: Path | None,
) -> None:
    started = time.time()
    split = read_split(config, data, val)
    train_set, val_set = split.train, split.val
    make_run_dir(run_dir, [*train_set.files, *val_set.files])
    write_train_args(run_dir, as_list(data), as_list(val), config)
    log(f"train: {len(train_set)} images {train_set.counts()}; validation: {len(val_set)} images {val_set.counts()}")
    # each training photo's square at its resolution too, where cached views degrade it
    train_photos = load_photos(train_set, config, "train", keep_squares=config.cached_views > 0 and config.adverse > 0)
    val_photos = load_photos(val_set, config, "validation")
    train_set = train_photos.dataset

    rng, scope = _start_tensorflow(config.seed, worker)
    indices = epoch_indices(train_set, config, rng)
    class_weight = class_weight_of(train_set.labels[indices]) if config.class_weights else None
    log(f"per epoch: {len(indices)} training images (oversampled: {config.oversample}); class weights: {class_weight}")

    from facegender.training.model import build_model

    restore = resume_from / "checkpoint" if resume_from else None
    session = Session(config, run_dir, class_weight, resume=resuming, resume_from=restore)
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
    with scope:  # a multi-worker run: the variables made here are mirrored on every worker
        model = build_model(config)
        if config.cached_views:
            fit_cached(session, model, inputs, rng)  # each epoch's views and mixup partners drawn from rng
        else:
            fit_streaming(session, model, inputs)
    if worker is not None:
        from facegender.training.multiworker import local_copy

        if not worker.chief:  # the chief finishes the run: threshold, temperature, evaluation, model files
            return
        model = local_copy(model, config)
    record = RunRecord(
        run_dir=run_dir,
        config=config,
        train_folders=split.train_folders,
        train_counts=train_set.counts(),
        skipped=[*train_photos.skipped, *val_photos.skipped],
        history=read_history(session.csv_path),
        train_seconds=time.time() - started,
        started=started,
        workers=worker.count if worker else 1,
    )
    finish(model, val_photos, record)
    shutil.rmtree(session.checkpoints, ignore_errors=True)


def _start_tensorflow(
    seed: int, worker: Worker | None
) -> tuple[np.random.Generator, contextlib.AbstractContextManager]:
    """Import TensorFlow quietly (and, for a worker of several, start the multi-worker strategy first, as
    TensorFlow requires), seed Keras and make its operations deterministic. Returns the NumPy generator that draws
    each epoch's photos, and the scope to build and fit the model in."""
    from facegender.training.tf_import import import_tensorflow

    import_tensorflow()  # TensorFlow's start-up lines hidden
    import keras
    import tensorflow as tf

    scope: contextlib.AbstractContextManager = contextlib.nullcontext()
    if worker is not None:
        from facegender.training.multiworker import start_strategy

        scope = start_strategy().scope()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return np.random.default_rng(seed), scope


def resume(run_dir: str | Path, worker: Worker | None = None) -> Path:
    """Continue an interrupted run from its last completed epoch (same config, data and seed)."""
    run_dir = Path(run_dir)
    args = read_train_args(run_dir)
    try:
        return train(args.config, args.data, args.val, run_dir, resuming=True, worker=worker)
    except FaceGenderError as exc:
        if any(not Path(folder).is_dir() for folder in [*args.data, *(args.val or [])]):
            raise FaceGenderError(
                f"{exc} (the folders come from {run_dir / TRAIN_ARGS}; put the data back there)"
            ) from None
        raise
