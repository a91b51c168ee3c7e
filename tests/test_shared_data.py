"""Checks on the real shared data (../shared/data/lfw-adverse); skipped where it is absent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import LFW, WEIGHTS, requires_shared

from facegender.data import scan_dataset

pytestmark = requires_shared(LFW)


def test_lfw_adverse_scans_with_conditions():
    train = scan_dataset(LFW / "train")
    val = scan_dataset(LFW / "val")
    assert train.counts() == {"female": 394, "male": 1532}
    assert val.counts() == {"female": 105, "male": 317}
    conditions = set(val.columns["condition"])
    assert conditions == {"clean", "blurred", "foggy", "lowlight", "noisy", "rainy", "resized", "sunny"}
    assert set(train.columns["identity"]).isdisjoint(val.columns["identity"])


@requires_shared(WEIGHTS)
def test_short_real_training_with_imagenet_weights(tmp_path):
    pytest.importorskip("keras")
    # a small real subset: 12 photos a class for training, 10 for validation
    for split, n in (("train", 12), ("val", 10)):
        for label in ("female", "male"):
            (tmp_path / split / label).mkdir(parents=True)
            for path in sorted((LFW / split / label).iterdir())[:n]:
                shutil.copyfile(path, tmp_path / split / label / path.name)
        shutil.copyfile(LFW / split / "labels.csv", tmp_path / split / "labels.csv")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "facegender",
            "train",
            "--data",
            str(tmp_path),
            "--preset",
            "seed",
            "--epochs",
            "1",
            "--image-size",
            "96",
            "--backbone-weights",
            str(WEIGHTS),
            "--out",
            str(run),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    meta = json.loads((run / "model.json").read_text())
    assert meta["val_metrics"]["n"] == 20
    assert set(meta["val_metrics"]["slices"]["condition"]) <= {
        "clean",
        "blurred",
        "foggy",
        "lowlight",
        "noisy",
        "rainy",
        "resized",
        "sunny",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "facegender",
            "evaluate",
            "--data",
            str(tmp_path / "val"),
            "--model",
            str(run),
            "--out",
            str(tmp_path / "eval"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n"] == 20
    # the exported ONNX model gives Keras's probabilities (a real network here, not a random one)
    outputs = {}
    for name in ("model.onnx", "model.keras"):
        result = subprocess.run(
            [sys.executable, "-m", "facegender", "predict", str(tmp_path / "val"), "--model", str(run / name),
             "--format", "json", "--no-detect"], capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs[name] = json.loads(result.stdout)
    probs = [[r["p_male"] for r in outputs[name]] for name in ("model.onnx", "model.keras")]
    assert max(abs(a - b) for a, b in zip(*probs, strict=True)) < 1e-3
    assert [r["label"] for r in outputs["model.onnx"]] == [r["label"] for r in outputs["model.keras"]]
    assert max(probs[0]) - min(probs[0]) > 1e-3  # the outputs vary, so the comparison means something
