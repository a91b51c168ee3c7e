"""Export round-trips: ONNX and LiteRT models predict what the Keras model predicts, metadata travels along."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("ai_edge_litert")

from conftest import WEIGHTS, requires_shared  # noqa: E402

from facegender import config as cfg  # noqa: E402
from facegender.errors import FaceGenderError  # noqa: E402
from facegender.runtime.inference import Classifier  # noqa: E402
from facegender.training.export import export_model  # noqa: E402
from facegender.training.model import build_model  # noqa: E402

# A randomly initialised MobileNetV2 in inference mode outputs ~0 features (its batch-norm statistics are
# placeholders), which would make every comparison pass; ImageNet weights give real, varied outputs.
pytestmark = requires_shared(WEIGHTS)

METADATA = {"class_names": ["female", "male"], "threshold": 0.42, "image_size": 64, "crop": 0.9}


@pytest.fixture(scope="module")
def model_and_images():
    keras.utils.set_random_seed(0)
    model = build_model(cfg.resolve("seed", {"image_size": 64, "backbone_weights": str(WEIGHTS)}))
    dense = model.get_layer("p_male")  # spread the outputs over (0, 1)
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 20.0, bias])
    images = np.random.default_rng(1).integers(0, 256, (12, 64, 64, 3)).astype(np.uint8)
    expected = model.predict(images.astype(np.float32), verbose=0).reshape(-1)
    assert expected.std() > 0.05
    return model, images, expected


@pytest.mark.parametrize(("fmt", "suffix", "tolerance"), [("onnx", ".onnx", 1e-4), ("tflite", ".tflite", 1e-4)])
def test_float_exports_match_keras(tmp_path, model_and_images, fmt, suffix, tolerance):
    model, images, expected = model_and_images
    path = export_model(model, tmp_path / f"m{suffix}", METADATA, fmt)
    classifier = Classifier.load(path)
    assert classifier.info.threshold == 0.42 and classifier.info.crop == 0.9 and classifier.info.image_size == 64
    np.testing.assert_allclose(classifier.predict(images), expected, atol=tolerance)
    np.testing.assert_allclose(classifier.predict(images[:1]), expected[:1], atol=tolerance)  # batch size changes


def test_onnx_file_alone_carries_its_metadata(tmp_path, model_and_images):
    import onnx

    model, _, _ = model_and_images
    path = export_model(model, tmp_path / "alone.onnx", METADATA, "onnx")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["facegender"])["threshold"] == 0.42
    assert not (tmp_path / "model.json").exists()


def test_int8_export_is_smaller_and_close(tmp_path, model_and_images):
    model, images, expected = model_and_images
    float_path = export_model(model, tmp_path / "f.tflite", METADATA, "tflite")
    int8_path = export_model(model, tmp_path / "q.tflite", METADATA, "tflite-int8", samples=images)
    assert int8_path.stat().st_size < 0.5 * float_path.stat().st_size
    got = Classifier.load(int8_path).predict(images)
    assert np.corrcoef(got, expected)[0, 1] > 0.9
    assert json.loads((tmp_path / "q.tflite.json").read_text())["export_format"] == "tflite-int8"


def test_int8_needs_calibration_images(tmp_path, model_and_images):
    with pytest.raises(FaceGenderError, match="representative set"):
        export_model(model_and_images[0], tmp_path / "q.tflite", METADATA, "tflite-int8")
