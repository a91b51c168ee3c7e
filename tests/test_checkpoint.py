"""Training checkpoints: a kill during a save leaves the previous epoch readable, and a resume gets early
stopping's best epoch, counters and best weights back."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from facegender.errors import FaceGenderError  # noqa: E402
from facegender.training import checkpoint  # noqa: E402

X = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
Y = (X[:, :1] > 0).astype(np.float32)


class Interrupt(keras.callbacks.Callback):
    """Ctrl-C at the end of epoch `at` (0-based), after the callbacks listed before it."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):  # type: ignore[no-untyped-def]
        if epoch == self.at:
            raise KeyboardInterrupt


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return model


def early_stopping() -> keras.callbacks.EarlyStopping:
    return keras.callbacks.EarlyStopping(monitor="val_loss", patience=50, restore_best_weights=True)


def fit(model, callbacks, initial: int = 0, epochs: int = 6) -> None:  # type: ignore[no-untyped-def]
    model.fit(X, Y, validation_data=(X, Y), batch_size=8, epochs=epochs, initial_epoch=initial,
              callbacks=callbacks, verbose=0, shuffle=False)  # fmt: skip


def test_resume_restores_early_stopping_state_and_the_epoch(tmp_path: Path):
    model, stopping = tiny_model(), early_stopping()
    saver = checkpoint.EpochCheckpoint(tmp_path, None, [stopping])
    with pytest.raises(KeyboardInterrupt):
        fit(model, [stopping, saver, Interrupt(at=2)])
    weights, best = model.get_weights(), [w.copy() for w in stopping.best_weights]

    resumed, new_stopping = tiny_model(), early_stopping()  # a fresh process: other initial weights
    state = checkpoint.load(resumed, tmp_path, 1)
    assert state is not None and state["epoch"] == 3 and not state["done"]
    for saved, loaded in zip(weights, resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, loaded)
    # the optimizer's moments and step count come back too
    assert int(resumed.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 12

    class Seen(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):  # type: ignore[no-untyped-def]
            self.best, self.wait, self.best_epoch = new_stopping.best, new_stopping.wait, new_stopping.best_epoch
            self.best_weights = [w.copy() for w in new_stopping.best_weights]

    seen = Seen()
    fit(resumed, [new_stopping, checkpoint.EpochCheckpoint(tmp_path, state, [new_stopping]), seen], initial=3)
    assert (seen.best, seen.wait, seen.best_epoch) == (stopping.best, stopping.wait, stopping.best_epoch)
    for saved, restored in zip(best, seen.best_weights, strict=True):
        np.testing.assert_array_equal(saved, restored)
    final = checkpoint.load(tiny_model(), tmp_path, 1)
    assert final is not None and final["done"] and final["epoch"] == 6
    assert {p.name for p in tmp_path.iterdir()} == {"state.json", "epoch-0006-done.weights.h5"}  # old epochs gone


def test_a_kill_while_saving_leaves_the_previous_epoch_readable(tmp_path: Path, monkeypatch):
    model = tiny_model()
    saver = checkpoint.EpochCheckpoint(tmp_path, None, [])
    with pytest.raises(KeyboardInterrupt):
        fit(model, [saver, Interrupt(at=1)])
    after_two = model.get_weights()

    def killed_halfway(self, filepath, overwrite=True):  # type: ignore[no-untyped-def]
        Path(filepath).write_bytes(b"\x89HDF\r\n\x1a\n half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save_weights", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        fit(model, [checkpoint.EpochCheckpoint(tmp_path, None, [])], initial=2)
    monkeypatch.undo()

    resumed = tiny_model()
    state = checkpoint.load(resumed, tmp_path, 0)
    assert state is not None and state["epoch"] == 2
    for saved, loaded in zip(after_two, resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, loaded)


def test_an_unreadable_checkpoint_is_named_with_the_fix(tmp_path: Path):
    model, stopping = tiny_model(), early_stopping()
    with pytest.raises(KeyboardInterrupt):
        fit(model, [stopping, checkpoint.EpochCheckpoint(tmp_path, None, [stopping]), Interrupt(at=1)])
    state = json.loads((tmp_path / "state.json").read_text())
    assert checkpoint.load(tiny_model(), tmp_path, 1) is not None
    damages = [
        lambda: (tmp_path / state["weights"]).write_bytes(b"not hdf5"),
        lambda: (tmp_path / state["best_weights"][0]).unlink(),
        lambda: (tmp_path / "state.json").write_text(json.dumps({**state, "callbacks": []})),
        lambda: (tmp_path / "state.json").write_text("[1, 2]"),
        lambda: (tmp_path / "state.json").write_text("{cut sh"),
    ]
    saved = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for damage in damages:
        damage()
        with pytest.raises(FaceGenderError, match=f"cannot read the training checkpoint in {tmp_path}.*delete"):
            checkpoint.load(tiny_model(), tmp_path, 1)
        for name, data in saved.items():
            (tmp_path / name).write_bytes(data)


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_a_resume_in_the_second_phase_keeps_every_history_row(tmp_path: Path, monkeypatch, schedule: str):
    """Phase 1 finished, phase 2 stopped after its second epoch: the resume skips phase 1, keeps its rows and
    phase 2's, and the history reads back whole (ReduceLROnPlateau's learning_rate column included)."""
    import tensorflow as tf

    from facegender.config import Config
    from facegender.training import fit
    from facegender.training import model as model_module
    from facegender.training.run_folder import read_history

    monkeypatch.setattr(model_module, "set_trainable", lambda *args, **kwargs: None)  # no backbone here
    config = Config(head_epochs=2, epochs=5, schedule=schedule, early_stopping_patience=10, reduce_lr_patience=1)

    def make_train(epochs: int) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices((X, Y)).batch(8).repeat(epochs)

    val = tf.data.Dataset.from_tensor_slices((X, Y)).batch(8)
    stop_after = checkpoint.EpochCheckpoint.on_epoch_end

    def stop_at_epoch_3(self, epoch, logs=None):  # type: ignore[no-untyped-def]
        stop_after(self, epoch, logs)
        if epoch == 3:
            fit.STOP_REQUESTED.set()

    monkeypatch.setattr(checkpoint.EpochCheckpoint, "on_epoch_end", stop_at_epoch_3)
    model = tiny_model()
    try:
        with pytest.raises(KeyboardInterrupt):
            fit.fit_phases(fit.Session(config, tmp_path, None, False), model, fit.Feed(model, 0, make_train, val, 4))
    finally:  # a flag left set would stop every later training in this process
        fit.STOP_REQUESTED.clear()
    monkeypatch.setattr(checkpoint.EpochCheckpoint, "on_epoch_end", stop_after)
    assert json.loads((tmp_path / "checkpoint" / "phase2" / "state.json").read_text())["epoch"] == 4

    model = tiny_model()
    fit.fit_phases(fit.Session(config, tmp_path, None, True), model, fit.Feed(model, 0, make_train, val, 4))
    with (tmp_path / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == list(range(7))
    assert all(None not in row and all(value != "" for value in row.values()) for row in rows)
    assert len(read_history(tmp_path / "history.csv")["val_loss"]) == 7


def test_truncate_history_keeps_the_checkpointed_epochs_only(tmp_path: Path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,0.9,0.8\n1,0.7,0.6\n2,0.5,0.4\n3,0.3")  # 2 not saved, 3 cut short
    checkpoint.truncate_history(path, 2)
    assert path.read_text() == "epoch,loss,val_loss\n0,0.9,0.8\n1,0.7,0.6\n"
    checkpoint.truncate_history(path, 5)  # nothing to drop: the file stays as it is
    assert path.read_text() == "epoch,loss,val_loss\n0,0.9,0.8\n1,0.7,0.6\n"


def test_a_stop_request_ends_training_at_the_next_batch(tmp_path: Path):
    import threading

    asked, model = threading.Event(), tiny_model()
    fit(model, [checkpoint.StopWhenAsked(asked)], epochs=1)  # not asked: trains
    assert int(model.optimizer.iterations.numpy()) == 4
    asked.set()  # as cli's signal handler does, whether or not its KeyboardInterrupt got through
    with pytest.raises(KeyboardInterrupt):
        fit(model, [checkpoint.StopWhenAsked(asked)], epochs=1)
    assert int(model.optimizer.iterations.numpy()) == 5
