"""Exporting a trained Keras model to ONNX with its metadata inside (Keras's exporter, tf2onnx underneath)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from facegender.errors import FaceGenderError, OptionError
from facegender.files import atomic_write_bytes, ensure_writable
from facegender.runtime.schema import (
    METADATA_KEY,
    ModelInfo,
    metadata_file,
    read_metadata_dict,
    resolve_model_path,
    sidecar_path,
)


def export_model(
    keras_model: Any, path: Path, metadata: dict[str, Any], fmt: str, samples: np.ndarray | None = None
) -> Path:
    """Export to "onnx" (metadata inside), "tflite" or "tflite-int8" (metadata in a sidecar `<file>.json`).

    tflite-int8 quantizes weights and activations to 8 bits, calibrated on `samples` (uint8 RGB images from the
    training data); its input and output stay float32, so it is used exactly like the float model.
    """
    if fmt == "onnx":
        return export_onnx(keras_model, path, metadata)
    if fmt not in ("tflite", "tflite-int8"):
        raise FaceGenderError(f"unknown export format {fmt!r}; choose onnx, tflite or tflite-int8")
    import tensorflow as tf

    options: dict[str, Any] = {}
    if fmt == "tflite-int8":
        if samples is None or len(samples) == 0:
            raise OptionError("tflite-int8 needs a representative set: pass {data} with training images")

        def representative() -> Any:
            for image in samples:
                yield [image[None].astype(np.float32)]

        options = {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": representative}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.tflite"
        try:
            keras_model.export(str(raw), format="litert", verbose=False, **options)
        except Exception as exc:
            raise FaceGenderError(f"LiteRT export failed: {exc}") from exc
        atomic_write_bytes(path, raw.read_bytes())
    atomic_write_bytes(sidecar_path(path), json.dumps({**metadata, "export_format": fmt}, indent=2).encode())
    return path


def export_onnx(keras_model: Any, path: Path, metadata: dict[str, Any]) -> Path:
    """Export to ONNX (input `image`: float32 RGB 0-255, NHWC; output p(male)) and embed metadata."""
    import onnx

    size = int(keras_model.input_shape[1])
    keras_model.predict(np.zeros((1, size, size, 3), np.float32), verbose=0)  # the exporter needs a called model
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        try:
            keras_model.export(str(raw), format="onnx", verbose=False)
        except Exception as exc:
            raise FaceGenderError(f"ONNX export failed: {exc}") from exc
        proto = onnx.load(str(raw))
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(metadata)
    proto.producer_name = "facegender"
    atomic_write_bytes(path, proto.SerializeToString())
    return path


def calibration_images(folder: str | Path | None, info: Any, count: int) -> np.ndarray:
    """Up to `count` prepared training images, evenly spread over the folder, for int8 calibration."""
    from facegender.data import load_images
    from facegender.imagefiles import iter_image_files

    if not folder or not Path(folder).is_dir():
        raise OptionError("tflite-int8 needs calibration images: pass {data} with a folder of training images")
    files = list(iter_image_files(Path(folder)))
    if not files:
        raise FaceGenderError(f"no images in {folder} for int8 calibration")
    step = max(1, len(files) // count)
    images, _, _ = load_images(files[::step][:count], info.image_size, info.crop)
    return images


def export_run(model: Path, out: Path, fmt: str, data: str | None = None, samples: int = 200) -> Path:
    """Export a run folder's model.keras (or a .keras/.h5 file) with its metadata to `out` (see export_model);
    `data` (default: the run's first training folder) gives tflite-int8 its calibration photos."""
    from facegender.training.model import load_keras_model

    if model.is_file() and model.suffix.lower() not in (".keras", ".h5"):
        raise FaceGenderError(f"export takes a run folder holding model.keras or a .keras/.h5 file, not {model}")
    source = model / "model.keras" if model.is_dir() else resolve_model_path(model)
    if source.suffix not in (".keras", ".h5") or not source.is_file():
        raise FaceGenderError(
            f"nothing to export at {model}: pass a run folder holding model.keras or a .keras/.h5 file"
        )
    metadata = read_metadata_dict(metadata_file(source))  # the metadata the export will carry must be readable
    info = ModelInfo.from_dict(metadata, str(source))
    if out.is_dir():
        raise OptionError(
            "{out} {folder} is a folder; give a file name, e.g. {example}", folder=out, example=out / "model.onnx"
        )
    ensure_writable(out.parent)  # before loading TensorFlow and the model, not after
    calibration = None
    if fmt == "tflite-int8":
        calibration = calibration_images(data or (metadata.get("training", {}).get("data") or [None])[0], info, samples)
    return export_model(load_keras_model(source), out, metadata, fmt, calibration)
