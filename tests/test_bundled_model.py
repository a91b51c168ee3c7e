"""The default model shipped inside the package: predict works with no --model, and it is a real classifier."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import LFW, portrait

from facegender.data import scan_dataset
from facegender.runtime.inference import Classifier
from facegender.runtime.schema import BUNDLED_MODEL

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
pytestmark = pytest.mark.skipif(not (BUNDLED_MODEL / "model.onnx").is_file(), reason="no bundled model in this tree")


def test_bundled_model_metadata_and_card():
    classifier = Classifier.load()
    info = classifier.info
    assert classifier.backend == "onnxruntime" and classifier.path == BUNDLED_MODEL / "model.onnx"
    assert info.extra["config"]["preset"] == "default" and 0 < info.threshold < 1 and info.temperature > 0
    assert (BUNDLED_MODEL / "model.onnx").stat().st_size < 15 * 2**20
    card = (BUNDLED_MODEL / "MODEL_CARD.md").read_text()
    assert "Intended use" in card and "Known limits and bias" in card and f"{info.threshold:.3f}" in card


def test_predict_without_model_flag_imports_no_tensorflow():
    image = portrait()
    code = (
        "import sys, json\n"
        "from facegender.cli import main\n"
        f"code = main(['predict', {str(image)!r}, '--format', 'json'])\n"
        "assert code == 0\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)  # one face found (by the detector, which imports no TensorFlow either)
    assert row["label"] in ("female", "male") and row["threshold"] == Classifier.load().info.threshold
    assert row["face_index"] == 0 and len(row["box"]) == 4


@pytest.mark.parametrize("dataset", ["lfw-adverse", "celeba-gender", "utkface"])
def test_bundled_model_classifies_real_photos_of_every_domain(dataset):
    """News scenes, tight crops, every age and skin tone: both classes right far above chance on each."""
    folder = LFW.parent / dataset / "val"
    if not folder.is_dir():
        pytest.skip(f"needs {folder} (the ../shared folder beside the project)")
    val = scan_dataset(folder)
    subset = val.subset(range(0, len(val), max(1, len(val) // 90)))  # about 90 photos spread over both classes
    classifier = Classifier.load()
    probs = dict(classifier.predict_files(subset.files))
    said_male = [probs[i] >= classifier.info.threshold for i in range(len(subset))]
    for label in (0, 1):  # per class: a model that answers one label for everything fails
        members = [i for i in range(len(subset)) if subset.labels[i] == label]
        recall = sum(said_male[i] == bool(label) for i in members) / len(members)
        assert recall > 0.8, f"{dataset}: recall {recall:.2f} for class {label}"
