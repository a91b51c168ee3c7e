"""The model schema: what a trained model carries beside its weights (model.json in a run folder, the same JSON
inside an exported ONNX file or beside a LiteRT one), and where a model and its metadata are found.

Training writes it (`model_metadata`), every runtime and the exporter read it (`ModelInfo.from_dict`,
`read_metadata`); `RANGES` is the one valid range of each numeric field, which the training config checks too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from facegender import CLASS_NAMES
from facegender.errors import FaceGenderError, InvalidOption, OptionError
from facegender.faces.images import FACE_FRAMING_SIDE

# The valid range of each numeric field, inclusive (temperature: > 0 as well).
RANGES: dict[str, tuple[float, float]] = {
    "image_size": (32, 512),
    "crop": (0.1, 1.0),
    "threshold": (0.0, 1.0),
    "temperature": (0.0, 100.0),
    "face_scale": (1.0, 4.0),
}

METADATA_KEY = "facegender"  # ONNX metadata_props key holding model.json's content
FORMAT_VERSION = 1  # of model.json / the embedded metadata; a newer one is refused with a clear message
MODEL_FILES = ("model.onnx", "model.tflite", "model.keras", "model.h5")
MODEL_SUFFIXES = (".onnx", ".tflite", ".keras", ".h5")
BUNDLED_MODEL = Path(__file__).parents[1] / "models" / "default"


@dataclass
class ModelInfo:
    """What a model needs beside its weights to turn a photo into a label."""

    image_size: int = 224
    crop: float = 1.0
    threshold: float = 0.5
    temperature: float = 1.0  # applied to the network's output: p = sigmoid(logit(p_raw) / temperature)
    face_crops: bool = False  # trained on detected faces framed by images.frame_face instead of whole photos
    face_scale: float = FACE_FRAMING_SIDE  # that framing square's side, in face-box widths
    class_names: tuple[str, ...] = CLASS_NAMES
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> ModelInfo:
        if not isinstance(data, dict):
            raise FaceGenderError(f"model metadata in {source} is not a JSON object; retrain or re-export the model")
        version = _typed(data, "format_version", FORMAT_VERSION, source)
        if version > FORMAT_VERSION:
            raise FaceGenderError(
                f"model metadata in {source} has format_version {version}; this facegender reads up to "
                f"{FORMAT_VERSION}. Upgrade facegender or use a model made by this version."
            )
        info = cls(
            image_size=_typed(data, "image_size", 224, source),
            crop=_typed(data, "crop", 1.0, source),
            threshold=_typed(data, "threshold", 0.5, source),
            temperature=_typed(data, "temperature", 1.0, source),
            face_crops=_typed(data, "face_crops", False, source),
            face_scale=_typed(data, "face_scale", FACE_FRAMING_SIDE, source),
            class_names=_typed(data, "class_names", CLASS_NAMES, source),
            extra=data,
        )
        if info.class_names != CLASS_NAMES:
            raise FaceGenderError(f"model metadata in {source}: class_names must be {list(CLASS_NAMES)}")
        outside = [name for name, (low, high) in RANGES.items() if not low <= getattr(info, name) <= high]
        if outside or info.temperature <= 0:
            raise FaceGenderError(
                f"model metadata in {source} has an out-of-range {', '.join(outside) or 'temperature'} "
                f"({'; '.join(f'{n} must be in [{RANGES[n][0]}, {RANGES[n][1]}]' for n in outside) or 'must be > 0'})"
            )
        return info


def _typed(data: dict[str, Any], name: str, default: Any, source: str) -> Any:
    """data[name] (or the default) if it has the default's JSON type, else a clear error.

    JSON's true is not an integer here and "false" is not a bool: a loose reading would silently change
    how photos are framed or scored.
    """
    value = data.get(name, default)
    if isinstance(default, bool):
        ok, what = type(value) is bool, "true or false"
    elif isinstance(default, int):
        ok, what = type(value) is int, "a whole number"
    elif isinstance(default, float):
        ok = type(value) in (int, float) and math.isfinite(value)
        what = "a finite number"
    else:
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        what = "a list of names"
    if not ok:
        raise FaceGenderError(
            f"model metadata in {source}: {name} must be {what}, got {json.dumps(value)}; "
            "correct it or re-export the model"
        )
    if isinstance(default, float):
        return float(value)
    return tuple(value) if isinstance(default, tuple) else value


def resolve_model_path(model: str | Path | None) -> Path:
    """A run folder, a .onnx/.keras/.h5 file, or (None) the bundled default model."""
    if model is None:
        path = BUNDLED_MODEL
        if not any((path / name).is_file() for name in MODEL_FILES):
            raise OptionError("no bundled default model in this install; pass {model} RUN_DIR or a model file")
    else:
        path = Path(model)
    if not path.exists():
        raise FaceGenderError(f"model not found: {path}")
    if path.is_dir():
        for name in MODEL_FILES:
            if (path / name).is_file():
                return path / name
        raise FaceGenderError(f"no model file in {path}; expected one of {', '.join(MODEL_FILES)}")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise FaceGenderError(f"unsupported model file {path}; use a run folder or a {', '.join(MODEL_SUFFIXES)} file")
    if path.is_file() and path.stat().st_size == 0:  # caught before any runtime (TensorFlow's start-up) loads
        raise FaceGenderError(f"model file {path} is empty (0 bytes): an interrupted copy or download? copy it again")
    return path


def sidecar_path(model: Path) -> Path:
    """Where an exported model without embedded metadata keeps it: `model.tflite` -> `model.tflite.json`."""
    return model.with_name(model.name + ".json")


def read_metadata(path: Path, onnx_props: dict[str, str] | None = None) -> tuple[ModelInfo, str]:
    """The model's metadata and where it was found (or "no metadata" for the defaults)."""
    if onnx_props and METADATA_KEY in onnx_props:
        try:
            return ModelInfo.from_dict(json.loads(onnx_props[METADATA_KEY]), str(path)), f"the metadata inside {path}"
        except json.JSONDecodeError as exc:
            raise FaceGenderError(f"model metadata inside {path} is not valid JSON: {exc}") from exc
    for sidecar in (sidecar_path(path), path.with_suffix(".json"), path.parent / "model.json"):
        if sidecar.is_file():
            try:
                return ModelInfo.from_dict(json.loads(sidecar.read_text(encoding="utf-8")), str(sidecar)), str(sidecar)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise FaceGenderError(f"{sidecar} is not valid JSON ({exc}); retrain or restore it") from exc
    return ModelInfo(), "no metadata"  # e.g. a legacy .h5: defaults (224 px, whole image, threshold 0.5)


def metadata_file(model: Path) -> Path:
    """Where a Keras model's metadata lives: a run folder's model.json beside model.keras, else `<file>.json`."""
    return model.parent / "model.json" if model.name == "model.keras" else model.with_suffix(".json")


def read_metadata_dict(path: Path) -> dict[str, Any]:
    """A metadata file as a dict ({} where there is none), checked to be readable as ModelInfo."""
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FaceGenderError(f"{path} is not valid JSON ({exc}); retrain or restore it") from None
    ModelInfo.from_dict(data, str(path))
    return data


PREPROCESSING = {
    "input": "RGB, float32 0-255, NHWC, EXIF orientation applied",
    "crop": "centred square, side = crop x the shorter side",
    "resize": "bilinear to image_size x image_size",
    "normalisation": "inside the model (x / 127.5 - 1)",
}


def model_metadata(
    name: str,
    config: dict[str, Any],
    threshold: float,
    temperature: float,
    val_metrics: dict[str, Any],
    training: dict[str, Any],
    versions: dict[str, str],
) -> dict[str, Any]:
    """The metadata of a newly trained model (`config` is the training Config as a dict)."""
    return {
        "format": "facegender-model",
        "format_version": FORMAT_VERSION,
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "class_names": list(CLASS_NAMES),
        "output": "p_male: probability of the class 'male'; female below the threshold",
        "threshold": threshold,
        "temperature": temperature,
        "image_size": config["image_size"],
        "crop": config["crop"],
        "face_crops": config["face_crops"],
        "face_scale": config["face_scale"],
        "preprocessing": PREPROCESSING,
        "config": config,
        "val_metrics": val_metrics,
        "training": training,
        "versions": versions,
    }


def check_threshold(threshold: float | None) -> None:
    """A decision threshold given by the caller (None: the model's own) must lie in [0, 1]."""
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise InvalidOption("threshold", "must be between 0 and 1", threshold)
