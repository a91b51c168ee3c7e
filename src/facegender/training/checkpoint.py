"""Per-epoch training checkpoints that a kill at any instant cannot corrupt.

Keras's BackupAndRestore overwrites its weights file in place, so a kill -9 during the write leaves a file
that a resume cannot open, and it forgets the callbacks' state, so early stopping restarts its patience and
restores the best weights seen since the resume rather than the best of the run. Here each phase's folder
holds whole files named by epoch plus `state.json`, which is replaced atomically only after the files it
names are complete: the epoch count, the weights (with the optimizer's state), early stopping's best weights
and the counters of early stopping and the learning-rate-on-plateau callback. A resumed run therefore sees
exactly the state after the last completed epoch.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from pathlib import Path
from typing import Any

import keras
import numpy as np

from facegender.errors import FaceGenderError
from facegender.files import atomic_write_bytes

STATE = "state.json"
# the counters of EarlyStopping and ReduceLROnPlateau that their on_train_begin resets
_COUNTERS = ("wait", "best", "best_epoch", "stopped_epoch", "cooldown_counter")


def load(model: keras.Model, folder: Path, tracked: int) -> dict[str, Any] | None:
    """Restore `model` (compiled, with its trainable layers set as when saved) from the phase folder; returns
    the saved state, with the `tracked` callbacks' best weights read into "best_arrays", or None when the phase
    has no checkpoint yet. A damaged checkpoint is a FaceGenderError that says how to start the phase over."""
    path = folder / STATE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        valid = (
            isinstance(state, dict)
            and type(state.get("epoch")) is int
            and isinstance(state.get("done"), bool)
            and isinstance(state.get("weights"), str)
            and isinstance(state.get("callbacks"), list)
            and isinstance(state.get("best_weights"), list)
            and len(state["callbacks"]) == len(state["best_weights"]) == tracked
        )
        if not valid:
            raise ValueError(f"{path} does not hold this phase's checkpoint state")
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(folder / state["weights"])
        state["best_arrays"] = []
        for name in state["best_weights"]:
            if name is None:
                state["best_arrays"].append(None)
                continue
            with np.load(folder / name) as arrays:
                state["best_arrays"].append([arrays[f"arr_{i}"] for i in range(len(arrays.files))])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FaceGenderError(
            f"cannot read the training checkpoint in {folder}: {exc}; delete {folder} to redo this phase from its start"
        ) from None
    return state


def truncate_history(path: Path, epochs: int) -> None:
    """Keep only the rows of history.csv for epochs before `epochs` (the ones the checkpoint holds): a kill
    between writing an epoch's row and its checkpoint, or halfway through a row, leaves rows to drop."""
    if not path.is_file():
        return
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:  # a damaged byte: its row is dropped
        rows = list(csv.reader(handle))
    if not rows:
        return
    header, kept = rows[0], [rows[0]]
    for row in rows[1:]:
        if len(row) == len(header) and row[0].isdigit() and int(row[0]) < epochs and _numbers(row[1:]):
            kept.append(row)
    if len(kept) != len(rows):
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(kept)
        atomic_write_bytes(path, text.getvalue().encode("utf-8"))


def _numbers(values: list[str]) -> bool:
    try:
        [float(value) for value in values if value != ""]
    except ValueError:
        return False
    return True


class StopWhenAsked(keras.callbacks.Callback):
    """Raise KeyboardInterrupt at the next batch once `asked` is set: a Ctrl-C whose KeyboardInterrupt Python
    could only print (it arrived inside a finalizer, say) still stops training."""

    def __init__(self, asked: threading.Event):
        super().__init__()
        self.asked = asked

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.asked.is_set():
            raise KeyboardInterrupt


class EpochCheckpoint(keras.callbacks.Callback):
    """Save the phase's state after every epoch and when the phase ends; restore the tracked callbacks'
    counters and best weights from `state`. List it after every tracked callback and after the CSV logger,
    so that it saves what they did in that epoch and restores what their on_train_begin resets."""

    def __init__(self, folder: Path, state: dict[str, Any] | None, tracked: list[keras.callbacks.Callback]):
        super().__init__()
        self.folder = folder
        self.state = state
        self.tracked = tracked
        self.epochs = state["epoch"] if state else 0
        self._best_files: dict[int, tuple[list, str]] = {}  # tracked index -> (its best weights, their file)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.state:
            return
        for index, callback in enumerate(self.tracked):
            for name, value in self.state["callbacks"][index].items():
                if name in _COUNTERS:
                    setattr(callback, name, value)
            best = self.state["best_arrays"][index]
            if best is not None:
                callback.best_weights = best
                self._best_files[index] = (best, self.state["best_weights"][index])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs = epoch + 1
        self._save(done=False)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._save(done=True)  # after early stopping has put its best weights back

    def _save(self, done: bool) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"epoch-{self.epochs:04d}{'-done' if done else ''}"
        weights = f"{stem}.weights.h5"
        partial = self.folder / f".partial-{weights}"
        self.model.save_weights(partial, overwrite=True)
        with partial.open("rb+") as handle:  # on disk before state.json, which is fsynced, names it
            os.fsync(handle.fileno())
        os.replace(partial, self.folder / weights)
        best_files: list[str | None] = []
        for index, callback in enumerate(self.tracked):
            arrays = getattr(callback, "best_weights", None)
            if arrays is None or done:  # a finished phase's weights already are the best ones
                best_files.append(None)
                continue
            saved, name = self._best_files.get(index, (None, ""))
            if saved is not arrays:  # early stopping replaces the list when it finds a better epoch
                buffer = io.BytesIO()
                np.savez(buffer, *arrays)
                name = f"{stem}.best-{index}.npz"
                atomic_write_bytes(self.folder / name, buffer.getvalue())
                self._best_files[index] = (arrays, name)
            best_files.append(name)
        state = {
            "epoch": self.epochs,
            "done": done,
            "weights": weights,
            "best_weights": best_files,
            "callbacks": [_counters(callback) for callback in self.tracked],
        }
        atomic_write_bytes(self.folder / STATE, json.dumps(state, indent=2).encode("utf-8"))
        keep = {STATE, weights, *(name for name in best_files if name)}
        for path in self.folder.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)


def _counters(callback: keras.callbacks.Callback) -> dict[str, Any]:
    counters: dict[str, Any] = {}
    for name in _COUNTERS:
        value = getattr(callback, name, None)
        if isinstance(value, (int, float, np.integer, np.floating)):
            counters[name] = value.item() if isinstance(value, np.generic) else value
    return counters
