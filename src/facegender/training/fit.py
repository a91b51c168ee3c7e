"""The two-phase fit of Keras's transfer-learning guide: the head on a frozen backbone, then the top of the backbone
at a low learning rate. Every epoch is checkpointed (training.checkpoint), so a stopped run resumes after its last
completed epoch. A strategy (training.strategies) says what fit() runs on: whole photos, or cached activations."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from facegender.config import Config
from facegender.progress import log

if TYPE_CHECKING:  # imported where used: TensorFlow starts once training has read its photos (train.train)
    import keras
    import tensorflow as tf

STOP_REQUESTED = threading.Event()  # set with the KeyboardInterrupt of Ctrl-C or SIGTERM (cli._interruptible)


@dataclass
class Session:
    """What every training phase needs besides the model and data."""

    config: Config
    run_dir: Path
    class_weight: dict[int, float] | None
    resume: bool
    # where a resume reads the checkpoint: the run folder's own, or (the other workers of a multi-worker run,
    # which write into folders of their own) the chief's
    resume_from: Path | None = None

    @property
    def csv_path(self) -> Path:
        return self.run_dir / "history.csv"

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoint"

    @property
    def restored_checkpoints(self) -> Path:
        return self.resume_from or self.checkpoints


@dataclass
class Feed:
    """What a strategy gives the two phases to fit."""

    model: keras.Model  # what fit() runs: the whole network, or its part above the cache layer (shared weights)
    trainable_layers: int  # the top backbone layers the fine-tuning phase trains
    make_train: Callable[[int], tf.data.Dataset]  # epochs -> training batches for that many epochs of `steps`
    val_ds: tf.data.Dataset
    steps: int  # batches per epoch


@dataclass
class _Phase:
    name: str  # its checkpoint folder
    epochs: int
    initial_epoch: int  # the epochs of the phases before it: history.csv numbers epochs across phases
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule
    callbacks: list[keras.callbacks.Callback]  # early stopping, learning rate on plateau: their state is checkpointed


def fit_phases(session: Session, network: keras.Model, feed: Feed) -> None:
    """Phase 1 (head_epochs): the head only, on a frozen backbone. Phase 2 (epochs): the top feed.trainable_layers
    of the backbone too, at config.learning_rate (cosine decay, or cut on a plateau), with early stopping.

    `network` is the whole model, whose layers set_trainable freezes and unfreezes; feed.model shares them.
    """
    import keras

    from facegender.training.model import set_trainable

    config = session.config
    if config.head_epochs:
        log(f"phase 1: head only, backbone frozen, {config.head_epochs} epoch(s) at {config.head_learning_rate:g}")
        set_trainable(network, 0)
        _fit_phase(session, feed, _Phase("phase1", config.head_epochs, 0, config.head_learning_rate, []))
    if not config.epochs:
        return
    layers = feed.trainable_layers
    log(f"fine-tuning: top {layers} backbone layers, {config.epochs} epoch(s) at {config.learning_rate:g}")
    set_trainable(network, layers, config.freeze_batchnorm)
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(
            monitor=config.monitor,
            mode="min" if config.monitor == "val_loss" else "max",
            patience=config.early_stopping_patience,
            restore_best_weights=True,
        )
    ]
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule
    if config.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * feed.steps, alpha=0.01
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
    _fit_phase(session, feed, _Phase("phase2", config.epochs, config.head_epochs, learning_rate, callbacks))


def _fit_phase(session: Session, feed: Feed, phase: _Phase) -> None:
    """Compile and fit one phase, from its checkpoint when resuming (a finished phase is skipped)."""
    import keras

    from facegender.training import checkpoint
    from facegender.training.model import make_loss

    model, folder = feed.model, session.checkpoints / phase.name
    model.compile(
        optimizer=keras.optimizers.Adam(phase.learning_rate),
        loss=make_loss(session.config),
        metrics=hard_label_metrics(),
    )
    restored = session.restored_checkpoints / phase.name
    state = checkpoint.load(model, restored, len(phase.callbacks)) if session.resume else None
    if state and state["done"]:  # its history rows stay; the next phase truncates what it will redo
        log(f"resume: {phase.name} already finished")
        return
    end = phase.initial_epoch + phase.epochs
    start = state["epoch"] if state else phase.initial_epoch
    checkpoint.truncate_history(session.csv_path, start)
    if state:
        log(f"resume: {phase.name} from epoch {start + 1}" if start < end else f"resume: {phase.name} ending")
    saver = checkpoint.EpochCheckpoint(folder, state, phase.callbacks)
    with contextlib.redirect_stdout(sys.stderr):  # Keras's progress goes to stderr; stdout is the run path
        model.fit(
            feed.make_train(end - start),
            validation_data=feed.val_ds,
            epochs=end,
            initial_epoch=start,
            steps_per_epoch=feed.steps,
            class_weight=session.class_weight,
            callbacks=[  # the logger before ReduceLROnPlateau, which adds a learning_rate column to logs
                checkpoint.StopWhenAsked(STOP_REQUESTED),
                keras.callbacks.CSVLogger(str(session.csv_path), append=True),
                *phase.callbacks,
                saver,
            ],
            verbose=1 if sys.stderr.isatty() else 2,
        )


def hard_label_metrics() -> list[keras.metrics.Metric]:
    """Accuracy and AUC against the rounded label: Keras's AUC counts any label above 0 as a positive, which
    misreads mixup's blended labels."""
    import keras

    class HardAUC(keras.metrics.AUC):
        def update_state(self, y_true: tf.Tensor, y_pred: tf.Tensor, sample_weight: tf.Tensor | None = None) -> None:
            super().update_state(keras.ops.round(y_true), y_pred, sample_weight)

    return [keras.metrics.MeanMetricWrapper(_hard_accuracy, name="accuracy"), HardAUC(name="auc")]


def _hard_accuracy(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Binary accuracy against the rounded label, so that mixup's blended labels still count as a class."""
    import keras

    return keras.metrics.binary_accuracy(keras.ops.round(y_true), y_pred)
