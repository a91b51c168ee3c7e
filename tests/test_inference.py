"""Loading a model checks its metadata's types and that its image_size is the one the network takes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import cli

from facegender.errors import FaceGenderError
from facegender.runtime.inference import Classifier

onnx = pytest.importorskip("onnx")

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def with_metadata(source: Path, target: Path, metadata: dict | None) -> Path:
    """A copy of the 64 px test model with other embedded metadata (None: none at all)."""
    proto = onnx.load(str(source))
    del proto.metadata_props[:]
    if metadata is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "facegender", json.dumps(metadata)
    onnx.save(proto, str(target))
    return target


def test_stated_image_size_the_network_cannot_take_is_refused_at_load(tmp_path, onnx_model, image):
    model = with_metadata(onnx_model, tmp_path / "m224.onnx", {"image_size": 224, "threshold": 0.5})
    result = cli("predict", str(image), "--model", str(model), "--no-detect")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "InvalidArgument" not in result.stderr
    assert "m224.onnx" in result.stderr and "image_size 224" in result.stderr and "64x64" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout


def test_run_folder_with_bare_model_json_takes_the_networks_size(tmp_path, onnx_model, image):
    run = tmp_path / "run"
    run.mkdir()
    with_metadata(onnx_model, run / "model.onnx", None)
    (run / "model.json").write_text(json.dumps({"format_version": 1}))
    assert Classifier.load(run).info.image_size == 64
    result = cli("predict", str(image), "--model", str(run), "--no-detect", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["label"] in ("female", "male")


def test_onnx_without_metadata_takes_the_networks_size(tmp_path, onnx_model):
    (tmp_path / "bare").mkdir()  # no model.json beside it either
    classifier = Classifier.load(with_metadata(onnx_model, tmp_path / "bare" / "m.onnx", None))
    assert classifier.info.image_size == 64 and classifier.info.threshold == 0.5


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("face_crops", "false", 'face_crops must be true or false, got "false"'),
        ("face_crops", 0, "face_crops must be true or false, got 0"),
        ("format_version", True, "format_version must be a whole number, got true"),
        ("image_size", 64.0, "image_size must be a whole number, got 64.0"),
        ("image_size", True, "image_size must be a whole number, got true"),
        ("threshold", "0.5", 'threshold must be a finite number, got "0.5"'),
        ("threshold", float("nan"), "threshold must be a finite number, got NaN"),
        ("temperature", None, "temperature must be a finite number, got null"),
        ("crop", False, "crop must be a finite number, got false"),
        ("class_names", "female,male", 'class_names must be a list of names, got "female,male"'),
    ],
)
def test_metadata_fields_of_the_wrong_type_are_refused(tmp_path, onnx_model, field, value, expected):
    metadata = {"image_size": 64, "threshold": 0.5, "face_crops": False, field: value}
    model = with_metadata(onnx_model, tmp_path / "typed.onnx", metadata)
    with pytest.raises(FaceGenderError) as caught:
        Classifier.load(model)
    assert expected in str(caught.value) and "typed.onnx" in str(caught.value)


def test_well_typed_metadata_still_loads(tmp_path, onnx_model):
    metadata = {"format_version": 1, "image_size": 64, "threshold": 1, "crop": 0.9, "face_crops": True}
    info = Classifier.load(with_metadata(onnx_model, tmp_path / "ok.onnx", metadata)).info
    assert info.threshold == 1.0 and isinstance(info.threshold, float) and info.face_crops is True


def test_string_false_face_crops_is_refused_through_the_cli(tmp_path, onnx_model, image):
    model = with_metadata(onnx_model, tmp_path / "s.onnx", {"image_size": 64, "face_crops": "false"})
    result = cli("predict", str(image), "--model", str(model))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "s.onnx" in result.stderr and "face_crops" in result.stderr
