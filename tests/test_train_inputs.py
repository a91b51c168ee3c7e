"""train's own input checks through the real CLI: config files, flags, --resume and --out are refused in one
line (exit 2) before any work, and nothing is written for a refused run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_dataset

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
TINY = ["--preset", "seed", "--backbone-weights", "none", "--image-size", "48", "--epochs", "1", "--batch-size", "4"]


def train(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facegender", "train", *args], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=600)  # fmt: skip


def refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture
def data(tmp_path) -> Path:
    return make_dataset(tmp_path / "data", 3, 3, size=48)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("c.yaml", b"epochs: 1\n\xff\xfe\n", "is not UTF-8 text"),
        ("c.yaml", b"epochs: [1\nseed: 2\n", "could not parse config file"),  # PyYAML's pointer, on one line
        ("c.yaml", b"preset: [a]\n", "preset must be one of seed, default"),
        ("c.json", b'{"learning_rate": Infinity}', "'learning_rate' must be a finite number"),
        ("c.json", b'{"epochs": 1.9}', "'epochs' must be a whole number"),
        ("c.yaml", b"epochs: yes\n", "'epochs' must be a whole number"),
        ("c.json", b'{"epochs": 100000000000000000000000}', "epochs must be at most 10000"),
        ("c.json", b'{"reduce_lr_factor": 5}', "reduce_lr_factor must be in (0, 1)"),
        ("c.json", b'{"early_stopping_patience": -3}', "patiences must be >= 0"),
        ("c.json", b'{"backbone_weights": "/nowhere/w.h5"}', "backbone_weights must be imagenet, face, none or an"),
        ("c.json", b'\xef\xbb\xbf{"seed": -5}', "seed must be a whole number in [0, 2**32)"),  # a BOM is fine
    ],
)
def test_bad_config_files_are_refused_before_anything_is_written(data, tmp_path, name, content, message):
    config = tmp_path / name
    config.write_bytes(content)
    refused(train("--data", str(data), "--config", str(config), "--out", str(tmp_path / "run")), message)
    assert not (tmp_path / "run").exists()


def test_flags(data, tmp_path):
    out = str(tmp_path / "run")
    refused(train("--data", str(data), "--seed", "-5", "--out", out), "seed must be a whole number")
    refused(train("--data", str(data), str(data), "--out", out), "names the same folder twice")
    refused(train("--data", str(data), "--out", ""), "--out is an empty name")
    config = tmp_path / "c.yaml"
    config.write_text("preset: default\nmixup: 0.4\n")  # valid for default (cached views), not for seed
    refused(train("--data", str(data), "--config", str(config), "--preset", "seed", "--out", out), "mixup needs")
    assert not (tmp_path / "run").exists()


def test_resume_refuses_other_flags_and_a_damaged_folder(data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    refused(train("--resume", str(run), "--epochs", "3", "--seed", "0"), "drop --epochs, --seed")
    for damaged in (b"{not json", b"{}", b"[1]", b'{"config": null, "data": ["x"]}', b"\xff\xfe"):
        (run / "train_args.json").write_bytes(damaged)
        refused(train("--resume", str(run)), "train_args.json is damaged", "without --resume")


def test_a_finished_run_is_never_overwritten_resume_works_from_anywhere_and_skipped_photos_exit_1(tmp_path):
    data = make_dataset(tmp_path / "data", 6, 8, size=48)
    run = tmp_path / "run"
    (data / "male" / "broken.png").write_bytes(b"\x89PNG cut short")
    first = train("--data", "data", *TINY, "--out", "run", cwd=tmp_path)  # relative paths, as typed
    assert first.returncode == 1, first.stderr  # one photo unreadable: named, skipped, the model trained
    assert "broken.png" in first.stderr and (run / "model.keras").is_file()
    skipped = json.loads((run / "model.json").read_text())["training"]["skipped"]
    assert [Path(s["file"]).name for s in skipped] == ["broken.png"]
    arguments = json.loads((run / "train_args.json").read_text())
    assert arguments["data"] == [str(data)]  # absolute: --resume works from any working directory
    model = (run / "model.keras").read_bytes()
    refused(train("--data", str(data), *TINY, "--out", str(run)), "holds a finished run", "choose another --out")
    assert (run / "model.keras").read_bytes() == model
    refused(train("--resume", str(run), cwd=Path("/")), "already finished training")
