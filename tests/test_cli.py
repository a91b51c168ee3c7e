"""The CLI's own checks, through the real `python -m facegender`: export's inputs, option ranges, SIGTERM."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import assert_clean_error, cli

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


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


def many_photos(folder: Path, count: int) -> Path:
    """`count` links to one 256 px photo: work for many seconds (a signal lands mid-run even on a fast machine),
    at no cost to make; the run is stopped long before it ends."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    first = folder / "p0.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(first)
    for i in range(1, count):
        os.link(first, folder / f"p{i}.png")
    return folder


def terminated(args: list[str], working: Callable[[], bool]) -> subprocess.CompletedProcess:
    """Run the CLI, send SIGTERM once `working()` says it is in the middle of its work, return how it ended.

    A condition the command itself brings about, not a delay: the test means the same on a fast or a slow machine.
    """
    import signal
    import time

    process = subprocess.Popen([sys.executable, "-m", "facegender", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not working():
            assert process.poll() is None, "finished before the signal: give it more work"
            assert time.monotonic() < deadline, "never started working"
            time.sleep(0.02)
        assert process.poll() is None, "finished before the signal: give it more work"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait(timeout=60)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def test_sigterm_stops_predict_like_ctrl_c_with_no_partial_output(tmp_path, onnx_model):
    photos = many_photos(tmp_path / "photos", 5000)
    out = tmp_path / "results" / "rows.json"
    out.parent.mkdir()
    drawn = tmp_path / "drawn"  # a copy of each photo lands here as it is predicted: the run is under way

    def predicting() -> bool:
        return drawn.is_dir() and any(not p.name.startswith(".") for p in drawn.iterdir())

    args = ["predict", str(photos), "--model", str(onnx_model), "--detect", "on", "--output", str(out),
            "--annotate", str(drawn)]  # fmt: skip
    result = terminated(args, predicting)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "interrupted" and "Traceback" not in result.stderr
    assert list(out.parent.iterdir()) == []  # neither the file nor a temporary one
    assert 0 < len(list(drawn.iterdir())) < 5000  # stopped part of the way


def test_sigterm_stops_evaluate_like_ctrl_c(tmp_path, onnx_model):
    pytest.importorskip("sklearn")
    data = tmp_path / "data"
    many_photos(data / "female", 2500)
    many_photos(data / "male", 2500)
    out = tmp_path / "ev"  # made (and checked writable) once the model is loaded, as the photos start
    result = terminated(["evaluate", "--data", str(data), "--model", str(onnx_model), "--out", str(out)], out.is_dir)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "interrupted" and "Traceback" not in result.stderr
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "export", "serve"])
def test_every_command_s_help_has_a_description_examples_and_its_defaults(command):
    from facegender.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    text = sub.format_help()
    assert sub.description and f"examples:\n  facegender {command}" in text
    for action in sub._actions:  # every option explains itself; a default is shown where there is one
        if action.option_strings and action.dest != "help":
            assert action.help, f"{command} {action.option_strings[0]} has no help"
            if action.default not in (None, False):
                assert str(action.default) in sub._get_formatter()._format_action(action), action.option_strings
