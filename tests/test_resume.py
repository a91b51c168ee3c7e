"""Training survives interruption: SIGINT and SIGKILL in a real training process, then --resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import interrupt_at, make_dataset

pytest.importorskip("keras")

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
EPOCHS = 6


def train_command(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "facegender", "train", "--data", str(data), "--preset", "seed",
            "--epochs", str(EPOCHS), "--batch-size", "4", "--image-size", "48", "--backbone-weights", "none",
            "--out", str(out)]  # fmt: skip


def epochs_done(run: Path) -> int:
    path = run / "history.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.is_file() else 0


def interrupt_after(command: list[str], run: Path, epochs: int, sig: int) -> subprocess.CompletedProcess:
    """Train, and send `sig` as epoch `epochs + 1` begins: Keras prints "Epoch N/M" (to stderr here) once every
    callback of the epoch before has run, the checkpoint's included."""
    return interrupt_at(command, lambda line: line.startswith(f"Epoch {epochs + 1}/"), sig, ENV)


def val_losses(run: Path) -> list[float]:
    with (run / "history.csv").open() as handle:
        return [float(row["val_loss"]) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    make_dataset(root / "train", n_female=6, n_male=8, seed=0, size=48)
    make_dataset(root / "val", n_female=3, n_male=3, seed=1, size=48)
    return root


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """The same training, never interrupted."""
    run = tmp_path_factory.mktemp("reference") / "run"
    result = subprocess.run(train_command(data, run), capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr
    return run


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupt_then_resume_matches_an_uninterrupted_run(data, reference, tmp_path, sig):
    run = tmp_path / "run"
    stopped = interrupt_after(train_command(data, run), run, 2, sig)
    if sig == signal.SIGINT:
        assert stopped.returncode == 130
        assert f"facegender train --resume {run}" in stopped.stderr and "Traceback" not in stopped.stderr
    else:
        assert stopped.returncode == -signal.SIGKILL
    assert not (run / "model.keras").exists() and not (run / "model.json").exists()  # nothing half-written
    done_before = epochs_done(run)
    assert 2 <= done_before < EPOCHS

    resumed = subprocess.run([sys.executable, "-m", "facegender", "train", "--resume", str(run)],
                             capture_output=True, text=True, env=ENV, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert epochs_done(run) == EPOCHS  # no epoch lost, none repeated
    assert (run / "model.keras").is_file() and not (run / "checkpoint").exists()
    assert json.loads((run / "model.json").read_text())["training"]["epochs_run"] == EPOCHS
    # same seed, same data: the resumed run ends where the uninterrupted one does (the augmentation stream
    # differs after a restart, so allow a tolerance)
    assert val_losses(run)[-1] == pytest.approx(val_losses(reference)[-1], rel=0.05)


def test_resume_refuses_a_finished_or_unknown_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "facegender", "train", "--resume", str(tmp_path)],
                            capture_output=True, text=True, env=ENV, timeout=120)  # fmt: skip
    assert result.returncode == 2 and "nothing to resume" in result.stderr


def test_a_cached_views_run_resumes_in_its_second_phase(data, tmp_path):
    """The default preset's path: phase 1 is skipped as finished, phase 2 continues after its saved epoch."""
    config = tmp_path / "cached.json"
    # cached epochs take a fraction of a second: enough of them that the run is still going when it is stopped
    fields = {"image_size": 48, "cached_views": 2, "head_epochs": 2, "epochs": 20, "early_stopping_patience": 100,
              "batch_size": 4, "backbone_weights": "none"}  # fmt: skip
    config.write_text(json.dumps(fields))
    run = tmp_path / "run"
    command = [sys.executable, "-m", "facegender", "train", "--data", str(data), "--config", str(config),
               "--out", str(run)]  # fmt: skip
    stopped = interrupt_after(command, run, 8, signal.SIGINT)  # well into phase 2
    assert stopped.returncode == 130
    assert 8 <= epochs_done(run) < 22
    saved_epochs = json.loads((run / "checkpoint" / "phase2" / "state.json").read_text())["epoch"]  # 8 or more

    resumed = subprocess.run([sys.executable, "-m", "facegender", "train", "--resume", str(run)],
                             capture_output=True, text=True, env=ENV, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "resume: phase1 already finished" in resumed.stderr
    assert f"resume: phase2 from epoch {saved_epochs + 1}" in resumed.stderr
    with (run / "history.csv").open() as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == list(range(22))
    assert (run / "model.keras").is_file() and not (run / "checkpoint").exists()
