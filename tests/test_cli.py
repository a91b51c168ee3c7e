"""The CLI's own checks, through the real `python -m facegender`: export's inputs, option ranges, SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facegender", *args], capture_output=True, text=True, env=ENV,
                          timeout=300)  # fmt: skip


def assert_clean_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run folder whose model.keras is never loaded: every check below must refuse before loading it."""
    pytest.importorskip("keras")
    pytest.importorskip("tf2onnx")
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"PK\x03\x04 not really a model")
    (run / "model.json").write_text('{"format_version": 1, "image_size": 64}')
    return run


def test_export_with_bad_json_metadata_names_the_file(run_dir, tmp_path):
    (run_dir / "model.json").write_text("{not json")
    result = cli("export", "--model", str(run_dir), "--out", str(tmp_path / "m.onnx"))
    assert_clean_error(result, "model.json is not valid JSON")
    assert not (tmp_path / "m.onnx").exists()


def test_export_checks_out_is_writable_before_the_work(run_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = cli("export", "--model", str(run_dir), "--out", str(blocker / "m.onnx"))
    assert_clean_error(result, "cannot write to", "choose another --out")  # not "could not load model": not reached
    assert blocker.read_text() == "x"
    assert_clean_error(cli("export", "--model", str(run_dir), "--out", str(run_dir)), "is a folder")


def test_export_says_what_it_accepts(run_dir):
    text = run_dir / "model.txt"
    text.write_text("x")
    result = cli("export", "--model", str(text), "--out", "m.onnx")
    assert_clean_error(result, "export takes a run folder holding model.keras or a .keras/.h5 file")
    assert ".onnx" not in result.stderr.replace("m.onnx", "")


def test_negative_corrupt_seed_is_a_usage_error(tmp_path, onnx_model):
    pytest.importorskip("albumentations")
    pytest.importorskip("sklearn")
    from conftest import make_dataset

    data = make_dataset(tmp_path / "d", 2, 2)
    out = tmp_path / "evaluation"
    args = ("evaluate", "--data", str(data), "--model", str(onnx_model), "--out", str(out), "--corrupt")
    assert_clean_error(cli(*args, "--corrupt-seed", "-1"), "--corrupt-seed: must be a whole number >= 0, got -1")
    assert not out.exists()  # refused before any work
