"""ONNX export agrees with Keras on a network whose outputs really vary, without the shared ImageNet weights.

An untrained MobileNetV2 in inference mode gives features of ~1e-13 (its batch norms' placeholder statistics
shrink every block), so every photo scores 0.5 and any two backends "agree". Setting each batch norm's statistics
to those of its input on the test images (in order, as data-dependent initialisation does) gives features of the
order of 0.1 and probabilities spread over (0, 1).
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tf2onnx")
pytest.importorskip("onnx")

from facegender import config as cfg  # noqa: E402
from facegender.runtime.inference import Classifier  # noqa: E402
from facegender.training.export import export_onnx  # noqa: E402
from facegender.training.model import backbone_of, build_model  # noqa: E402


def varied_model(images: np.ndarray) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_model(cfg.resolve("seed", {"image_size": 64, "backbone_weights": "none"}))
    backbone = backbone_of(model)
    inputs = np.asarray(model.get_layer("to_minus1_1")(images.astype(np.float32)))
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            seen = np.asarray(keras.Model(backbone.input, layer.input)(inputs))
            gamma, beta, _, _ = layer.get_weights()
            layer.set_weights([gamma, beta, seen.mean((0, 1, 2)), seen.var((0, 1, 2)) + 1e-3])
    features = np.asarray(keras.Model(model.input, model.get_layer("p_male").input)(images.astype(np.float32)))
    dense = model.get_layer("p_male")
    kernel, _ = dense.get_weights()
    logits = features @ kernel
    dense.set_weights([kernel / logits.std(), -(logits.mean(0) / logits.std())])  # logits centred, spread ~1
    return model


def test_onnx_export_agrees_with_keras_on_varied_outputs(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (16, 64, 64, 3)).astype(np.uint8)
    model = varied_model(images[:8])
    expected = np.asarray(model(images.astype(np.float32), training=False)).reshape(-1)
    assert expected.std() > 0.1 and expected.min() < 0.35 and expected.max() > 0.65  # not all 0.5
    meta = {"class_names": ["female", "male"], "threshold": 0.5, "image_size": 64, "crop": 1.0}
    classifier = Classifier.load(export_onnx(model, tmp_path / "m.onnx", meta))
    np.testing.assert_allclose(classifier.predict(images), expected, atol=1e-4)
    np.testing.assert_allclose(classifier.predict(images[5:6]), expected[5:6], atol=1e-4)  # another batch size
