"""runtime/schema.py: what a model carries beside its weights, where it is found, and the messages for each way it
can be wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from facegender.cli import flag
from facegender.errors import FaceGenderError, InvalidOption
from facegender.runtime import schema
from facegender.runtime.schema import (
    ModelInfo,
    check_threshold,
    metadata_file,
    model_metadata,
    read_metadata,
    read_metadata_dict,
    resolve_model_path,
    sidecar_path,
)

SRC = "run/model.json"


def refused(data, source: str = SRC) -> str:
    with pytest.raises(FaceGenderError) as info:
        ModelInfo.from_dict(data, source)
    return str(info.value)


def test_missing_fields_take_the_documented_defaults():
    info = ModelInfo.from_dict({}, SRC)
    assert (info.image_size, info.crop, info.threshold, info.temperature, info.face_crops, info.face_scale) == (
        224, 1.0, 0.5, 1.0, False, 2.38)  # fmt: skip
    assert info.class_names == ("female", "male") and info.extra == {}


def test_every_field_is_read_and_whole_numbers_are_fine_for_real_ones():
    data = {"format_version": 1, "image_size": 96, "crop": 0.8, "threshold": 0, "temperature": 2, "face_crops": True,
            "face_scale": 1.5, "class_names": ["female", "male"], "name": "mine"}  # fmt: skip
    info = ModelInfo.from_dict(data, SRC)
    assert (info.image_size, info.crop, info.threshold, info.temperature, info.face_crops, info.face_scale) == (
        96, 0.8, 0.0, 2.0, True, 1.5)  # fmt: skip
    assert type(info.threshold) is float and type(info.temperature) is float
    assert info.class_names == ("female", "male") and info.extra == data
    edges = {"image_size": 512, "crop": 0.1, "threshold": 1.0, "temperature": 100.0, "face_scale": 4.0}
    assert ModelInfo.from_dict(edges, SRC).image_size == 512
    low = {"image_size": 32, "crop": 1.0, "temperature": 1e-6, "face_scale": 1.0}
    assert ModelInfo.from_dict(low, SRC).temperature == 1e-6


@pytest.mark.parametrize(
    ("field", "value", "what"),
    [
        ("format_version", "1", "a whole number"),
        ("image_size", 96.0, "a whole number"),
        ("image_size", True, "a whole number"),
        ("crop", "0.8", "a finite number"),
        ("crop", float("nan"), "a finite number"),
        ("threshold", True, "a finite number"),
        ("temperature", None, "a finite number"),
        ("face_crops", "false", "true or false"),
        ("face_crops", 1, "true or false"),
        ("face_scale", [1.5], "a finite number"),
        ("class_names", "female,male", "a list of names"),
        ("class_names", ["female", 1], "a list of names"),
    ],
)
def test_a_field_of_the_wrong_type_is_named(field, value, what):
    assert refused({field: value}) == (
        f"model metadata in {SRC}: {field} must be {what}, got {json.dumps(value)}; correct it or re-export the model"
    )


def test_the_metadata_itself_the_format_version_and_the_class_names():
    assert refused([1, 2]) == f"model metadata in {SRC} is not a JSON object; retrain or re-export the model"
    assert refused({"format_version": 2}) == (
        f"model metadata in {SRC} has format_version 2; this facegender reads up to 1. Upgrade facegender or use a "
        "model made by this version."
    )
    assert refused({"class_names": ["male", "female"]}) == (
        f"model metadata in {SRC}: class_names must be ['female', 'male']"
    )


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"image_size": 16}, "image_size (image_size must be in [32, 512])"),
        ({"image_size": 513}, "image_size (image_size must be in [32, 512])"),
        ({"crop": 0.05, "face_scale": 4.5},
         "crop, face_scale (crop must be in [0.1, 1.0]; face_scale must be in [1.0, 4.0])"),
        ({"threshold": 1.5}, "threshold (threshold must be in [0.0, 1.0])"),
        ({"temperature": 0}, "temperature (must be > 0)"),
        ({"temperature": -1.0}, "temperature (temperature must be in [0.0, 100.0])"),
    ],
)  # fmt: skip
def test_values_out_of_range_are_named_with_their_range(data, problem):
    assert refused(data) == f"model metadata in {SRC} has an out-of-range {problem}"


def test_model_paths_a_run_folder_a_file_or_the_bundled_model(tmp_path, monkeypatch):
    assert resolve_model_path(None) == schema.BUNDLED_MODEL / "model.onnx"
    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.h5", "model.keras", "model.tflite"):
        (run / name).write_bytes(b"x")
    assert resolve_model_path(run) == run / "model.tflite"
    (run / "model.onnx").write_bytes(b"x")
    assert resolve_model_path(str(run)) == run / "model.onnx"
    (tmp_path / "NET.ONNX").write_bytes(b"x")  # one byte is enough to be tried
    assert resolve_model_path(tmp_path / "NET.ONNX") == tmp_path / "NET.ONNX"
    problems = {
        tmp_path / "nowhere": f"model not found: {tmp_path / 'nowhere'}",
        tmp_path / "empty": f"no model file in {tmp_path / 'empty'}; expected one of model.onnx, model.tflite, "
        "model.keras, model.h5",
        tmp_path / "notes.txt": f"unsupported model file {tmp_path / 'notes.txt'}; use a run folder or a .onnx, "
        ".tflite, .keras, .h5 file",
        tmp_path / "cut.onnx": f"model file {tmp_path / 'cut.onnx'} is empty (0 bytes): an interrupted copy or "
        "download? copy it again",
    }
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "cut.onnx").write_bytes(b"")
    for path, message in problems.items():
        with pytest.raises(FaceGenderError) as info:
            resolve_model_path(path)
        assert str(info.value) == message
    monkeypatch.setattr(schema, "BUNDLED_MODEL", tmp_path / "empty")
    with pytest.raises(FaceGenderError) as info:
        resolve_model_path(None)
    assert str(info.value) == "no bundled default model in this install; pass model RUN_DIR or a model file"
    assert info.value.worded(flag) == "no bundled default model in this install; pass --model RUN_DIR or a model file"


def test_where_metadata_lives_beside_a_model():
    assert sidecar_path(Path("out/model.tflite")) == Path("out/model.tflite.json")
    assert metadata_file(Path("run/model.keras")) == Path("run/model.json")
    assert metadata_file(Path("out/net.keras")) == Path("out/net.json")
    assert metadata_file(Path("out/net.h5")) == Path("out/net.json")


def test_read_metadata_inside_the_file_then_beside_it(tmp_path):
    model = tmp_path / "net.onnx"
    inside = {"facegender": json.dumps({"image_size": 64}), "producer": "x"}
    info, where = read_metadata(model, inside)
    assert (info.image_size, where) == (64, f"the metadata inside {model}")
    with pytest.raises(FaceGenderError, match=re.escape(f"model metadata in {model}: image_size must be")):
        read_metadata(model, {"facegender": json.dumps({"image_size": "64"})})
    with pytest.raises(FaceGenderError, match=re.escape(f"model metadata inside {model} is not valid JSON: ")):
        read_metadata(model, {"facegender": "{"})
    assert read_metadata(model, {"producer": "x"}) == (ModelInfo(), "no metadata")
    assert read_metadata(model) == (ModelInfo(), "no metadata")
    sidecars = [tmp_path / "net.onnx.json", tmp_path / "net.json", tmp_path / "model.json"]  # the first found wins
    for size, path in zip((96, 128, 160), reversed(sidecars), strict=True):
        path.write_text(json.dumps({"image_size": size, "name": "café"}), encoding="utf-8")
        info, where = read_metadata(model)
        assert (info.image_size, where) == (size, str(path))
    sidecars[0].write_text(json.dumps({"image_size": 8}))
    with pytest.raises(FaceGenderError, match=re.escape(f"model metadata in {sidecars[0]} has an out-of-range")):
        read_metadata(model)
    for content in (b"{", b'{"name": "caf\xe9"}'):
        sidecars[0].write_bytes(content)
        with pytest.raises(FaceGenderError, match=re.escape(f"{sidecars[0]} is not valid JSON (")) as info:
            read_metadata(model)
        assert str(info.value).endswith("); retrain or restore it")


def test_read_metadata_dict_checks_what_it_reads(tmp_path):
    path = tmp_path / "model.json"
    assert read_metadata_dict(path) == {}
    path.write_text(json.dumps({"image_size": 96, "name": "café"}), encoding="utf-8")
    assert read_metadata_dict(path) == {"image_size": 96, "name": "café"}
    path.write_text(json.dumps({"image_size": 8}))
    with pytest.raises(FaceGenderError, match=re.escape(f"model metadata in {path} has an out-of-range image_size")):
        read_metadata_dict(path)
    path.write_text("{")
    with pytest.raises(FaceGenderError, match=re.escape(f"{path} is not valid JSON (")) as info:
        read_metadata_dict(path)
    assert str(info.value).endswith("); retrain or restore it")


def test_a_new_models_metadata_in_full():
    config = {"image_size": 96, "crop": 0.9, "face_crops": True, "face_scale": 1.5, "epochs": 3}
    meta = model_metadata("mine", config, 0.4, 1.3, {"macro_f1": 0.9}, {"epochs_run": 3}, {"facegender": "0.1.0"})
    created = meta.pop("created")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", created), created
    assert meta == {
        "format": "facegender-model",
        "format_version": 1,
        "name": "mine",
        "class_names": ["female", "male"],
        "output": "p_male: probability of the class 'male'; female below the threshold",
        "threshold": 0.4,
        "temperature": 1.3,
        "image_size": 96,
        "crop": 0.9,
        "face_crops": True,
        "face_scale": 1.5,
        "preprocessing": schema.PREPROCESSING,
        "config": config,
        "val_metrics": {"macro_f1": 0.9},
        "training": {"epochs_run": 3},
        "versions": {"facegender": "0.1.0"},
    }
    info = ModelInfo.from_dict({**meta, "created": created}, SRC)  # what training writes, every runtime reads
    assert (info.image_size, info.crop, info.threshold, info.temperature, info.face_scale) == (96, 0.9, 0.4, 1.3, 1.5)


@pytest.mark.parametrize("threshold", [None, 0.0, 0.5, 1.0])
def test_a_threshold_in_0_1_is_accepted(threshold):
    check_threshold(threshold)


@pytest.mark.parametrize("threshold", [-0.01, 1.01, 2.0])
def test_a_threshold_outside_0_1_is_refused_with_the_parameter_named(threshold):
    with pytest.raises(InvalidOption) as info:
        check_threshold(threshold)
    assert (info.value.name, info.value.requirement, info.value.value) == ("threshold", "must be between 0 and 1",
                                                                           threshold)  # fmt: skip
    assert str(info.value) == f"threshold must be between 0 and 1, got {threshold}"
