"""The network and its loss (needs the train extra: Keras/TensorFlow)."""

import dataclasses

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from facegender import config as cfg  # noqa: E402
from facegender.errors import FaceGenderError  # noqa: E402
from facegender.training.model import backbone_of, build_model, make_loss, set_trainable  # noqa: E402


@pytest.mark.parametrize("alpha", [None, 0.25, 0.8])  # None: the seed preset's 0.5
def test_focal_loss_matches_the_formula(alpha):
    config = cfg.from_preset("seed")
    if alpha is not None:  # alpha weighs the male class (label 1), 1 - alpha the female
        config = dataclasses.replace(config, focal_alpha=alpha)
    y = np.array([[1.0], [0.0], [1.0], [0.0]], np.float32)
    p = np.array([[0.9], [0.2], [0.3], [0.6]], np.float32)
    got = float(make_loss(config)(y, p))
    pt = np.where(y == 1, p, 1 - p)
    alpha_t = np.where(y == 1, config.focal_alpha, 1 - config.focal_alpha)
    expected = np.mean(-alpha_t * (1 - pt) ** config.focal_gamma * np.log(pt))
    assert got == pytest.approx(expected, rel=1e-4)
    # confident right answers cost far less than under plain cross-entropy
    easy = float(make_loss(config)(np.array([[1.0]]), np.array([[0.95]])))
    assert easy < 0.5 * 0.5 * -np.log(0.95)


def test_model_shape_head_and_trainable_layers():
    config = cfg.resolve("seed", {"image_size": 64, "backbone_weights": "none"})
    model = build_model(config)
    assert model.input_shape == (None, 64, 64, 3) and model.output_shape == (None, 1)
    assert [layer.name for layer in model.layers[-4:]] == ["pool", "head_dense", "head_dropout", "p_male"]
    assert model.get_layer("head_dense").units == 128 and model.get_layer("head_dropout").rate == 0.3
    set_trainable(model, 30)
    trainable = [layer for layer in backbone_of(model).layers if layer.trainable]
    assert len(trainable) == 30 and trainable[-1].name == backbone_of(model).layers[-1].name
    set_trainable(model, 0)
    assert not backbone_of(model).trainable
    out = model.predict(np.zeros((2, 64, 64, 3), np.float32), verbose=0)
    assert out.shape == (2, 1) and np.all((out >= 0) & (out <= 1))


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FaceGenderError, match="backbone_weights must be imagenet, face, none or an existing"):
        cfg.resolve("seed", {"backbone_weights": str(tmp_path / "w.h5")})  # refused up front, before any work
    config = dataclasses.replace(cfg.from_preset("seed"), backbone_weights=str(tmp_path / "w.h5"))
    with pytest.raises(FaceGenderError, match="backbone weights file not found"):  # and still when built directly
        build_model(config)


def test_batch_norm_follows_training_only_in_the_fine_tuned_layers():
    """Keras 3 passes fit's training=True through the nested backbone call (its training=False does not hold),
    so the batch-norm layers of the fine-tuned blocks normalise with batch statistics while training; frozen
    layers stay in inference mode, and so does every batch-norm layer with freeze_batchnorm. docs/usage.md's
    preset descriptions say so; this pins it."""
    config = cfg.resolve("seed", {"image_size": 64, "backbone_weights": "none"})
    model = build_model(config)
    features = keras.Model(model.input, model.get_layer("pool").output)  # below the head's dropout
    x = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)

    def gap() -> float:
        return float(np.abs(np.asarray(features(x, training=True)) - np.asarray(features(x, training=False))).max())

    set_trainable(model, 0)
    assert gap() == 0.0
    set_trainable(model, 30)
    assert gap() > 1e-3
    set_trainable(model, 30, freeze_batchnorm=True)  # the option: ImageNet statistics throughout
    assert gap() == 0.0
    assert any(layer.trainable for layer in backbone_of(model).layers)


def test_training_metrics_read_blended_labels_as_their_class():
    """mixup blends labels; the training accuracy and AUC must still score against the class each label leans to
    (Keras's own AUC counts any label above 0 as a positive)."""
    from facegender.training.fit import hard_label_metrics

    y = np.array([[0.9], [0.2], [0.7], [0.1], [1.0], [0.0]], np.float32)  # classes 1, 0, 1, 0, 1, 0
    p = np.array([[0.8], [0.3], [0.6], [0.4], [0.9], [0.5]], np.float32)  # every positive ranked above
    accuracy, auc = hard_label_metrics()
    accuracy.update_state(y, p)
    auc.update_state(y, p)
    assert float(accuracy.result()) == pytest.approx(1.0)
    assert float(auc.result()) == pytest.approx(1.0)
    plain = keras.metrics.AUC()
    plain.update_state(y, p)
    assert float(plain.result()) < 0.99  # what the plain metric gets wrong


def test_a_backbone_saved_as_arrays_starts_another_model_at_any_input_size(tmp_path):
    from facegender.training.model import save_backbone_arrays

    trained = build_model(cfg.resolve("default", {"image_size": 64, "backbone_weights": "none"}))
    for variable in backbone_of(trained).weights[:5]:  # weights no fresh network would have
        variable.assign(np.full(variable.shape, 0.125, np.float32))
    path = tmp_path / "face_backbone.npz"
    save_backbone_arrays(trained, path)
    started = build_model(cfg.resolve("default", {"image_size": 96, "backbone_weights": str(path)}))
    for a, b in zip(backbone_of(trained).weights, backbone_of(started).weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-4)  # float16 on disk
    assert float(backbone_of(started).weights[0].numpy().max()) == 0.125


def test_a_damaged_or_foreign_backbone_file_is_one_clear_error(tmp_path):
    damaged = tmp_path / "bad.npz"
    damaged.write_bytes(b"not an npz")
    with pytest.raises(FaceGenderError, match=r"bad\.npz is damaged or not facegender's"):
        build_model(cfg.resolve("default", {"image_size": 64, "backbone_weights": str(damaged)}))
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, names=np.array(["x"]), w000=np.zeros(3))
    with pytest.raises(FaceGenderError, match="does not fit a MobileNetV2"):
        build_model(cfg.resolve("default", {"image_size": 64, "backbone_weights": str(foreign)}))


def test_face_backbone_is_a_named_choice(monkeypatch, tmp_path):
    from facegender.training import model

    monkeypatch.setattr(model, "FACE_BACKBONE", tmp_path / "missing.npz")
    with pytest.raises(FaceGenderError, match=r"face-pretrained backbone .* is missing"):
        build_model(cfg.resolve("default", {"image_size": 64, "backbone_weights": "face"}))
