"""Issue 16: bad inputs found by an adversarial pass over predict, evaluate and serve; each one pinned here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLI_ENV, assert_clean_error, cli, grey_photo
from test_bad_models_and_outputs import bound_by_permission_bits


def predict_cli(model: Path, *args: str) -> subprocess.CompletedProcess:
    return cli("predict", *args, "--model", str(model), "--no-detect", "--format", "json")


def test_output_naming_an_input_photo_is_refused_before_any_work(tmp_path, brightness_model):
    model = brightness_model()
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = [grey_photo(folder / name, 128) for name in ("a.png", "b.png")]
    before = photos[0].read_bytes()
    (folder / "link.json").symlink_to("a.png")
    for output in (photos[0], folder / "link.json"):  # a glob's own file, and a link to it
        result = predict_cli(model, *map(str, photos), "--output", str(output))
        assert_clean_error(result, "is one of the photos being predicted", "name a new file")
        assert photos[0].read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png", "link.json"]


def test_output_into_a_read_only_folder_is_refused_before_any_work(tmp_path, brightness_model):
    model = brightness_model()
    photo = grey_photo(tmp_path / "a.png", 128)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    prefix = bound_by_permission_bits()
    result = subprocess.run([*prefix, sys.executable, "-m", "facegender", "predict", str(photo), "--model", str(model),
                             "--no-detect", "--output", str(locked / "out.json")],
                            capture_output=True, text=True, env=CLI_ENV, timeout=120)  # fmt: skip
    assert_clean_error(result, "cannot write to", "choose another --output")
    assert "could not read" not in result.stderr
    assert list(locked.iterdir()) == []


def test_output_check_comes_before_reading_any_photo(tmp_path, brightness_model, monkeypatch):
    from facegender import inference
    from facegender.errors import FaceGenderError
    from facegender.predict import predict

    read = []
    monkeypatch.setattr(inference, "load_image", lambda path: read.append(path))
    photo = grey_photo(tmp_path / "a.png", 128)
    with pytest.raises(FaceGenderError, match="cannot write to"):
        list(predict([str(photo)], brightness_model(), detect="off", output=photo / "x.json"))
    with pytest.raises(FaceGenderError, match="is a folder"):
        list(predict([str(photo)], brightness_model(), detect="off", output=tmp_path))
    assert read == []


def test_an_empty_output_name_is_refused(tmp_path, brightness_model):
    photo = grey_photo(tmp_path / "a.png", 128)
    result = predict_cli(brightness_model(), str(photo), "--output", "")
    assert_clean_error(result, "--output is an empty name", "unset shell variable")
    assert result.stdout == ""
