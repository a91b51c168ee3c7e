"""One configuration dataclass for training, with named presets.

`seed` reproduces the original hackathon recipe; `default` is the project's best recipe.
A config is saved into every run folder (and into `model.json`), so any model can say how it was made.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facegender.errors import FaceGenderError
from facegender.runtime.schema import RANGES


@dataclass
class Config:
    # Input: the centred square crop (fraction of the shorter side) resized to image_size.
    image_size: int = 224
    crop: float = 1.0
    # Frame each training and validation photo around its detected face (detect.face_inputs) as prediction
    # frames faces found in other photos, instead of using the whole photo.
    face_crops: bool = False
    # The side of that square around the detected face, in face-box widths (images.frame_face); parts outside
    # the photo are filled with its edge pixels, so a tight crop and a wide scene frame the face alike.
    face_scale: float = 2.38

    # Model: MobileNetV2 backbone + GAP -> Dense -> Dropout -> sigmoid. Batch-norm runs in inference mode in the
    # frozen layers and with batch statistics in the trainable ones while training (see model.build_model),
    # unless freeze_batchnorm keeps every batch-norm layer frozen (inference mode throughout).
    # "imagenet", "face" (the bundled model's backbone, fine-tuned on ~25,000 faces), "none", or a weights file
    backbone_weights: str = "imagenet"
    trainable_layers: int = 30  # backbone layers (from the top) trained in the fine-tuning phase; -1 = all
    freeze_batchnorm: bool = False
    head_units: int = 128
    dropout: float = 0.3

    # Loss: "focal" (Keras BinaryFocalCrossentropy with class balancing) or "bce".
    loss: str = "focal"
    focal_alpha: float = 0.5
    focal_gamma: float = 1.5
    label_smoothing: float = 0.0

    # Optimisation. head_epochs > 0 first trains the head on a frozen backbone at head_learning_rate.
    learning_rate: float = 1e-5
    head_epochs: int = 0
    head_learning_rate: float = 1e-3
    epochs: int = 25
    batch_size: int = 32
    early_stopping_patience: int = 5
    monitor: str = "val_loss"  # what early stopping watches: "val_loss" (lower is better) or "val_auc" (higher)
    reduce_lr_patience: int = 3
    reduce_lr_factor: float = 0.2
    min_learning_rate: float = 1e-7

    # Augmentation (geometric and photometric, applied on the fly to training batches).
    rotation_degrees: float = 20.0
    zoom: float = 0.2
    shear: float = 0.2
    brightness: float = 0.2
    horizontal_flip: bool = True
    adverse: float = 0.0  # probability that a training view also gets one adverse condition (fog, blur, ...)

    # Speed: cached_views > 0 runs the frozen lower backbone (up to cache_layer) once on that many augmented
    # views of each training image and trains only the layers above it on the cached activations.
    cached_views: int = 0
    cache_layer: str = "block_12_add"
    schedule: str = "plateau"  # "plateau" (ReduceLROnPlateau) or "cosine" (cosine decay over the epochs)
    # Mixup of cached views: each training example is blended with another, features and labels alike, with a
    # weight drawn from Beta(mixup, mixup) (0: off). Needs cached_views.
    mixup: float = 0.0

    # Several --data folders: how often each folder's photos are drawn per epoch, one weight per folder in the
    # order given (2.0 doubles a folder, 0.5 halves it); empty = every photo once. Class balancing comes after.
    source_weights: tuple[float, ...] = ()

    # Class balancing: repeat minority-class images until the classes match; weight the loss by class.
    oversample: bool = True
    class_weights: bool = True

    # Fit temperature scaling on validation so that p_male means what it says (stored with the model).
    calibrate: bool = True

    # Validation split used when no validation folder is given.
    val_fraction: float = 0.2
    seed: int = 42

    preset: str = field(default="seed")

    def validate(self) -> None:
        """Refuse values that cannot train, with a message naming the field."""
        checks = [
            *(
                (low <= getattr(self, name) <= high, f"{name} must be in [{low:g}, {high:g}]")
                for name, (low, high) in RANGES.items()
                if name in ("image_size", "crop", "face_scale")  # the ones a model takes from its config
            ),
            (self.trainable_layers >= -1, "trainable_layers must be -1 (all) or >= 0"),
            (self.head_units >= 1, "head_units must be >= 1"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (self.loss in ("focal", "bce"), "loss must be 'focal' or 'bce'"),
            (0.0 <= self.focal_alpha <= 1.0, "focal_alpha must be in [0, 1]"),
            (self.focal_gamma >= 0.0, "focal_gamma must be >= 0"),
            (0.0 <= self.label_smoothing < 0.5, "label_smoothing must be in [0, 0.5)"),
            (self.learning_rate > 0 and self.head_learning_rate > 0, "learning rates must be > 0"),
            (self.epochs >= 0 and self.head_epochs >= 0, "epochs must be >= 0"),
            (self.epochs + self.head_epochs >= 1, "train at least one epoch"),
            (self.epochs <= 10_000 and self.head_epochs <= 10_000, "epochs must be at most 10000"),
            (0 <= self.seed < 2**32, "seed must be a whole number in [0, 2**32)"),
            (0.0 < self.reduce_lr_factor < 1.0, "reduce_lr_factor must be in (0, 1)"),
            (0 <= self.min_learning_rate, "min_learning_rate must be >= 0"),
            (self.early_stopping_patience >= 0 and self.reduce_lr_patience >= 0, "patiences must be >= 0"),
            (0.0 <= self.rotation_degrees <= 180.0, "rotation_degrees must be in [0, 180]"),
            (0.0 <= self.shear < 1.0, "shear must be in [0, 1)"),
            (self.batch_size <= 4096, "batch_size must be at most 4096"),
            (
                self.backbone_weights in ("imagenet", "face", "none") or Path(self.backbone_weights).is_file(),
                f"backbone_weights must be imagenet, face, none or an existing weights file, got "
                f"{self.backbone_weights!r}",
            ),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0.0 < self.val_fraction < 0.9, "val_fraction must be in (0, 0.9)"),
            (0.0 <= self.zoom < 1.0 and 0.0 <= self.brightness < 1.0, "zoom and brightness must be in [0, 1)"),
            (0.0 <= self.adverse <= 1.0, "adverse must be a probability in [0, 1]"),
            (0 <= self.cached_views <= 64, "cached_views must be in [0, 64]"),
            (0.0 <= self.mixup <= 100.0, "mixup must be in [0, 100] (0: off)"),
            (self.mixup == 0.0 or self.cached_views > 0, "mixup needs cached_views > 0"),
            (self.schedule in ("plateau", "cosine"), "schedule must be 'plateau' or 'cosine'"),
            (self.monitor in ("val_loss", "val_auc"), "monitor must be 'val_loss' or 'val_auc'"),
            (
                all(0.0 < w <= 100.0 for w in self.source_weights),
                "source_weights must be numbers in (0, 100], one per training data folder",
            ),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise FaceGenderError("invalid configuration: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The original hackathon recipe, exactly (see BENCHMARK.md): last 30 layers trainable, focal loss
# alpha 0.5 gamma 1.5, Adam 1e-5, batch 32, 224 px, 25 epochs, early stopping 5, ReduceLROnPlateau,
# rotation/zoom/shear/brightness/flip augmentation, female oversampling with class weights.
SEED = Config(preset="seed", calibrate=False)

# The project's default, chosen on lfw-adverse val (see benchmarks/README.md for the measurements): the
# shoulders-up centre crop at 160 px (frozen-feature probes: crop 0.85 at 160 px 0.80 macro-F1, whole
# image at 224 px 0.73, face-only crop 0.6 0.69-0.71), adverse-condition views cached below block 10
# so only the top of the network trains (caching below block 13 instead: 0.853 macro-F1 over 3 seeds,
# below block 10 more in benchmarks/README.md), a head-only warm-up, then a low cosine-decayed rate.
DEFAULT = dataclasses.replace(
    SEED,
    preset="default",
    image_size=160,
    # One framing in every verb: the detected face in a square 1.5 face-box widths wide (frozen-feature probe
    # over lfw-adverse, celeba-gender and utkface val, benchmarks/framing.py: mean macro-F1 0.798 at 1.5 against
    # 0.778-0.790 at 1.2, 1.8, 2.1 and 2.38), the whole photo where no face is found.
    face_crops=True,
    face_scale=1.5,
    crop=1.0,
    cached_views=8,
    cache_layer="block_9_add",
    adverse=0.5,
    head_epochs=5,
    head_learning_rate=1e-3,
    epochs=30,
    learning_rate=5e-5,
    schedule="cosine",
    early_stopping_patience=8,
    # Validation loss bottoms out in the first fine-tuning epochs while accuracy and AUC keep rising for
    # twenty more (measured: restoring the lowest-loss epoch cost 3 points of macro-F1), so watch AUC.
    monitor="val_auc",
    class_weights=False,  # oversampling already balances what is fed
    calibrate=True,
)

PRESETS: dict[str, Config] = {"seed": SEED, "default": DEFAULT}


def field_names() -> set[str]:
    return {f.name for f in dataclasses.fields(Config)}


def from_preset(name: str) -> Config:
    if name not in PRESETS:
        raise FaceGenderError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name])


def load_overrides(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict of field overrides (unknown keys are refused)."""
    path = Path(path)
    if not path.is_file():
        raise FaceGenderError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark (Windows editors) is fine
    except UnicodeDecodeError as exc:
        raise FaceGenderError(f"config file {path} is not UTF-8 text ({exc}); save it as UTF-8") from None
    import yaml

    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        where = " ".join(str(exc).split())  # PyYAML's pointer block, on one line
        raise FaceGenderError(f"could not parse config file {path}: {where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FaceGenderError(f"config file {path} must hold a mapping of field: value")
    if isinstance(data.get("config"), dict):  # accept a model.json / config.json written by a run
        data = data["config"]
    if "preset" in data and not isinstance(data["preset"], str):
        raise FaceGenderError(f"config file {path}: preset must be one of {', '.join(PRESETS)}, got {data['preset']!r}")
    return data


def resolve(preset: str = "default", overrides: dict[str, Any] | None = None) -> Config:
    """The preset, updated by overrides (config file first, then flags), validated."""
    config = from_preset(overrides.get("preset", preset) if overrides else preset)
    for key, value in (overrides or {}).items():
        if key == "preset":
            continue
        if key not in field_names():
            raise FaceGenderError(f"unknown config field {key!r}; known fields: {', '.join(sorted(field_names()))}")
        expected = type(getattr(config, key))
        try:
            value = _convert(value, expected)
        except (TypeError, ValueError, OverflowError):
            raise FaceGenderError(f"config field {key!r} must be {_KINDS[expected]}, got {value!r}") from None
        setattr(config, key, value)
    config.validate()
    return config


_KINDS = {
    int: "a whole number",
    float: "a finite number",
    bool: "true or false",
    str: "text",
    tuple: "a list of numbers (or text such as '2,1,1')",
}


def _convert(value: Any, expected: type) -> Any:
    """A config value as its field's type, refusing what would change meaning on the way: 1.9 or true for a
    whole number, an infinite or NaN number, null or a list for text."""
    if expected is bool:
        return value if isinstance(value, bool) else _to_bool(value)
    if expected is tuple:
        parts = [p for p in value.split(",") if p.strip()] if isinstance(value, str) else value
        if not isinstance(parts, (list, tuple)):
            raise TypeError(value)
        return tuple(_convert(part, float) for part in parts)
    if expected is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise TypeError(value)
        return str(value)
    if isinstance(value, bool):
        raise TypeError(value)
    if expected is int:
        number = float(value) if isinstance(value, str) else value
        if not isinstance(number, (int, float)) or not math.isfinite(number) or number != int(number):
            raise ValueError(value)
        return int(number)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _to_bool(value: Any) -> bool:
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def from_sources(preset: str | None, config_file: str | Path | None, flags: dict[str, Any]) -> Config:
    """The training config from a preset, a config file and flags, each beating the one before: the file's values
    beat its preset's, a flag (not None) beats the file, and a `preset` given beside the file beats the file's."""
    overrides: dict[str, Any] = load_overrides(config_file) if config_file else {}
    overrides.update({name: value for name, value in flags.items() if value is not None})
    if preset is not None:
        overrides["preset"] = preset
    return resolve(overrides.get("preset", "default"), overrides)
