"""The network: MobileNetV2 backbone + small head, its loss, and which layers train. Imports Keras."""

from __future__ import annotations

import os
from pathlib import Path

from facegender.training.tf_import import import_tensorflow

import_tensorflow()  # before Keras's own import: TensorFlow's start-up lines hidden

import keras  # noqa: E402

from facegender.config import Config  # noqa: E402
from facegender.errors import FaceGenderError, OptionError  # noqa: E402

BACKBONE_NAME = "mobilenetv2_1.00_224"
WEIGHTS_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
# The bundled model's backbone, fine-tuned on faces (float16, written by scripts/ship_default_model.py): what
# `--backbone-weights face` starts from, offline, right after installing.
FACE_BACKBONE = Path(__file__).parents[1] / "models" / "default" / "face_backbone.npz"
BACKBONE_CHOICES = ("imagenet", "face", "none")


def keras_cache_weights() -> Path:
    """Where Keras looks for (and downloads) the ImageNet backbone weights."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "models" / WEIGHTS_FILE


def resolve_backbone_weights(value: str) -> str | None:
    """ "imagenet" (Keras cache or download), "face" (the bundled model's backbone), "none" (random init) or a path
    to a weights file."""
    if value.lower() == "none":
        return None
    if value.lower() == "face":
        if not FACE_BACKBONE.is_file():
            raise OptionError(
                "the face-pretrained backbone {file} is missing from this install; reinstall facegender "
                "or pass {backbone_weights} imagenet",
                file=FACE_BACKBONE,
            )
        return str(FACE_BACKBONE)
    if value.lower() == "imagenet":
        # Without a classifier top the weights do not depend on the input size, so the cached 224 file serves
        # every size; Keras alone would fetch a separate file per size (160, 192, ...).
        cached = keras_cache_weights()
        return str(cached) if cached.is_file() else "imagenet"
    path = Path(value).expanduser()
    if not path.is_file():
        raise OptionError(
            "backbone weights file not found: {value}. Pass {backbone_weights} imagenet, face, none, or the path to "
            "{file}",
            value=value,
            file=WEIGHTS_FILE,
        )
    return str(path)


def build_model(config: Config) -> keras.Model:
    """Input (RGB 0-255, float) -> MobileNetV2 -> GAP -> Dense -> Dropout -> p(male)."""
    size = config.image_size
    weights = resolve_backbone_weights(config.backbone_weights)
    arrays = weights is not None and weights.endswith(".npz")
    try:
        backbone = keras.applications.MobileNetV2(
            input_shape=(size, size, 3), include_top=False, weights=None if arrays else weights, name=BACKBONE_NAME
        )
        if arrays:
            load_backbone_arrays(backbone, weights)
    except FaceGenderError:
        raise
    except Exception as exc:  # download failure, wrong file, incompatible shapes
        raise OptionError(
            "could not load MobileNetV2 backbone weights ({value}): {reason}. Offline, copy {file} into {folder} "
            "(a writable $KERAS_HOME/models) or pass {backbone_weights} PATH",
            value=config.backbone_weights,
            reason=exc,
            file=WEIGHTS_FILE,
            folder=keras_cache_weights().parent,
        ) from exc
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_minus1_1")(inputs)
    # training=False as in Keras's transfer-learning guide; but Keras 3 lets fit's training=True through this
    # nested call, so the batch-norm layers of the trainable blocks do use batch statistics while fine-tuning
    # (frozen layers stay in inference mode). tests/test_model.py pins this.
    x = backbone(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(config.head_units, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(config.dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_male")(x)
    return keras.Model(inputs, outputs, name="facegender")


def save_backbone_arrays(model: keras.Model, path: str | Path) -> None:
    """The model's backbone weights as float16 arrays in an .npz (half the size; a starting point for fine-tuning
    loses nothing measurable), with each weight's name so that loading can check it fits."""
    import numpy as np

    backbone = backbone_of(model)
    arrays = {f"w{i:03d}": np.asarray(v.numpy(), dtype=np.float16) for i, v in enumerate(backbone.weights)}
    names = np.array([v.path.split("/", 1)[-1] for v in backbone.weights])
    with open(path, "wb") as handle:
        np.savez_compressed(handle, names=names, **arrays)


def load_backbone_arrays(backbone: keras.Model, path: str | Path) -> None:
    """Set a MobileNetV2 backbone's weights from save_backbone_arrays' file."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data["names"]]
            arrays = [data[f"w{i:03d}"] for i in range(len(names))]
    except (OSError, KeyError, ValueError) as exc:
        raise FaceGenderError(f"backbone weights file {path} is damaged or not facegender's ({exc})") from None
    expected = [v.path.split("/", 1)[-1] for v in backbone.weights]
    if names != expected or any(a.shape != tuple(v.shape) for a, v in zip(arrays, backbone.weights, strict=True)):
        raise FaceGenderError(f"backbone weights file {path} does not fit a MobileNetV2 (alpha 1.0) backbone")
    for variable, array in zip(backbone.weights, arrays, strict=True):
        variable.assign(array.astype(np.float32))


def backbone_of(model: keras.Model) -> keras.Model:
    return model.get_layer(BACKBONE_NAME)


def set_trainable(model: keras.Model, trainable_layers: int, freeze_batchnorm: bool = False) -> None:
    """Train the head plus the top `trainable_layers` backbone layers (-1: all, 0: none). freeze_batchnorm keeps
    every batch-norm layer frozen, so it normalises with its ImageNet statistics (inference mode) throughout."""
    backbone = backbone_of(model)
    backbone.trainable = trainable_layers != 0
    if 0 < trainable_layers < len(backbone.layers):
        for layer in backbone.layers[:-trainable_layers]:
            layer.trainable = False
    if freeze_batchnorm:
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def make_loss(config: Config) -> keras.losses.Loss:
    if config.loss == "focal":
        return keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True,
            alpha=config.focal_alpha,
            gamma=config.focal_gamma,
            label_smoothing=config.label_smoothing,
        )
    return keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing)


def load_keras_model(path: str | Path) -> keras.Model:
    """Load a .keras or legacy .h5 model for inference (safe mode: no arbitrary code)."""
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        raise FaceGenderError(
            f"could not load model {path}: {exc}. Is it a complete .keras/.h5 file saved by facegender "
            "or the original train_model.py?"
        ) from exc
