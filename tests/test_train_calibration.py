"""The end of training: the temperature fitted on validation, and the threshold tuned on the probabilities it
calibrates, the ones predict and evaluate will apply it to. A stand-in network with fixed outputs; no TensorFlow."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset

from facegender.config import Config
from facegender.data import scan_dataset

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

# an over-confident network's validation outputs: 6 female photos, then 8 male ones (scan_dataset's order)
RAW = np.array([0.01, 0.04, 0.30, 0.70, 0.93, 0.05, 0.97, 0.99, 0.80, 0.40, 0.995, 0.90, 0.75, 0.98], np.float32)


class FixedOutputs:
    """What finish uses of a Keras model: predict (the same outputs every time) and save."""

    def predict(self, x: np.ndarray, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
        assert len(x) == len(RAW)
        return RAW.reshape(-1, 1)

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(b"stand-in")


def calibrated(p: np.ndarray, temperature: float) -> np.ndarray:
    """p^(1/T) / (p^(1/T) + (1-p)^(1/T)): sigmoid(logit(p) / T) by hand."""
    p = p.astype(np.float64)
    a, b = p ** (1 / temperature), (1 - p) ** (1 / temperature)
    return a / (a + b)


def finish(tmp_path: Path, monkeypatch, calibrate: bool) -> dict:
    from facegender.errors import FaceGenderError
    from facegender.training import export
    from facegender.training import finish as finish_module
    from facegender.training.inputs import Photos

    def no_export(*args, **kwargs):  # the stand-in cannot be exported; training logs this and goes on
        raise FaceGenderError("no ONNX export of a stand-in")

    monkeypatch.setattr(export, "export_onnx", no_export)
    monkeypatch.setattr(finish_module, "library_versions", dict)  # it would import TensorFlow for its version
    val_set = scan_dataset(make_dataset(tmp_path / "val", n_female=6, n_male=8))
    assert val_set.labels.tolist() == [0] * 6 + [1] * 8
    run = tmp_path / "run"
    run.mkdir()
    history = {"loss": [0.5], "val_loss": [0.6], "accuracy": [0.7], "val_accuracy": [0.6]}
    x_val = np.zeros((len(RAW), 8, 8, 3), np.uint8)
    record = finish_module.RunRecord(run, Config(calibrate=calibrate), [tmp_path / "val"], val_set.counts(), [],
                                     history, 1.0, time.time())  # fmt: skip
    finish_module.finish(FixedOutputs(), Photos(x_val, val_set, []), record)
    return json.loads((run / "model.json").read_text())


def test_the_threshold_is_tuned_on_the_calibrated_probabilities(tmp_path, monkeypatch):
    from facegender.evaluation.metrics import tune_threshold

    meta = finish(tmp_path, monkeypatch, calibrate=True)
    temperature, threshold = meta["temperature"], meta["threshold"]
    assert 1.3 < temperature < 1.5  # over-confident outputs are softened
    p = calibrated(RAW, temperature)
    # tuned on these, 0.65 (12 of 14 right); tuned on the raw outputs, 0.705, which on these gets 11 right
    assert threshold == tune_threshold(np.r_[[0] * 6, [1] * 8], p) == 0.65
    correct = int(((p >= threshold) == np.r_[[False] * 6, [True] * 8]).sum())
    assert correct == 12 and meta["val_metrics"]["accuracy"] == pytest.approx(12 / 14)
    evaluation = json.loads((tmp_path / "run" / "val_evaluation" / "metrics.json").read_text())
    assert evaluation["threshold"] == threshold and evaluation["temperature"] == temperature


def test_without_calibration_the_temperature_is_one(tmp_path, monkeypatch):
    from facegender.evaluation.metrics import tune_threshold

    meta = finish(tmp_path, monkeypatch, calibrate=False)
    assert meta["temperature"] == 1.0
    assert meta["threshold"] == tune_threshold(np.r_[[0] * 6, [1] * 8], RAW) == 0.7  # float32 0.7 is below 0.7
