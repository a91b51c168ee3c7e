"""`facegender train --workers N` (distributed/train.py, training/multiworker.py): one training run across Ray Train
workers under MultiWorkerMirroredStrategy, on a local Ray cluster the command starts itself (no external service)."""

from __future__ import annotations

import csv
import json
import re
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CLI_ENV, assert_clean_error, cli, interrupt_at, make_dataset

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_ray_cluster_at_a_time")]  # conftest: Ray files take turns
EPOCHS = 3


@pytest.fixture(scope="module")
def two_worker_run(tmp_path_factory) -> tuple[Path, Path, str]:
    """A 2-worker training of 3 epochs, interrupted with Ctrl-C (SIGINT) as its second epoch begins, then resumed
    with --workers 2: the run folder the other tests read is the resumed one."""
    pytest.importorskip("ray.train.tensorflow")
    pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("workers")
    make_dataset(root / "data" / "train", n_female=8, n_male=12, seed=0)
    make_dataset(root / "data" / "val", n_female=4, n_male=6, seed=1)
    run = root / "run"
    before = set(Path(tempfile.gettempdir()).glob("facegender-worker*"))
    command = [sys.executable, "-m", "facegender", "train", "--data", str(root / "data"), "--preset", "seed",
               "--epochs", str(EPOCHS), "--batch-size", "8", "--image-size", "64", "--backbone-weights", "none",
               "--seed", "3", "--out", str(run), "--workers", "2"]  # fmt: skip
    # every worker's lines, none held back by Ray as a repeat
    stopped = interrupt_at(command, chief_line_starts("Epoch 2/"), signal.SIGINT, {**CLI_ENV, "RAY_DEDUP_LOGS": "0"})
    assert stopped.returncode == 130, stopped.stderr[-4000:]
    assert f"continue with: facegender train --resume {run}" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert (run / "checkpoint").is_dir() and not (run / "model.json").exists()  # nothing final half-written
    assert sorted(p.name for p in root.iterdir()) == ["data", "run"]  # Ray Train's records removed after Ctrl-C too

    result = cli("train", "--resume", str(run), "--workers", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip() == str(run)
    leftovers = set(Path(tempfile.gettempdir()).glob("facegender-worker*")) - before
    assert not leftovers, leftovers  # the other worker's folder is removed
    return root, run, result.stderr


def chief_line_starts(text: str) -> Callable[[str], bool]:
    """Whether a line, less Ray's worker prefix (`(RayTrainWorker pid=N)`, maybe coloured), starts with `text`."""
    prefix = re.compile(r"^(\x1b\[\d+m)?\(\w+ pid=\d+[^)]*\)(\x1b\[0m)? ")
    return lambda line: prefix.sub("", line).startswith(text)


def test_two_workers_write_one_normal_run_folder(two_worker_run):
    root, run, _ = two_worker_run
    for name in ("model.keras", "model.onnx", "model.json", "config.json", "history.csv", "results.csv",
                 "val_evaluation/metrics.json", "training_plots/loss_curve.png"):  # fmt: skip
        assert (run / name).is_file(), name
    assert not (run / "checkpoint").exists()  # removed at the end, as in one process
    assert sorted(p.name for p in root.iterdir()) == ["data", "run"]  # Ray Train's records beside it: removed
    meta = json.loads((run / "model.json").read_text())
    assert meta["training"]["workers"] == 2 and meta["training"]["epochs_run"] == EPOCHS
    assert meta["image_size"] == 64 and meta["val_metrics"]["n"] == 10
    rows = list(csv.DictReader((run / "history.csv").open()))
    # the chief's log alone, the interrupted run's rows kept: no row lost or written twice
    assert [row["epoch"] for row in rows] == [str(epoch) for epoch in range(EPOCHS)]


def test_the_workers_trained_together(two_worker_run):
    """The chief's log says the strategy spanned both workers' devices."""
    _, _, stderr = two_worker_run
    assert "world_rank=1" in stderr  # Ray Train started the second worker
    assert "run folder:" in stderr
    # Ray Train's placement-group cleaner, on a cluster without the dashboard, would warn every few seconds
    assert "Failed to query Ray Train Controller" not in stderr


def test_the_model_of_two_workers_loads_and_predicts(two_worker_run):
    root, run, _ = two_worker_run
    result = cli("predict", str(root / "data" / "val"), "--model", str(run), "--no-detect", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 10 and all(row["label"] in ("female", "male") and 0 <= row["p_male"] <= 1 for row in rows)
    again = cli("predict", str(root / "data" / "val"), "--model", str(run / "model.keras"), "--no-detect",
                "--format", "json")  # fmt: skip
    assert again.returncode == 0, again.stderr
    for onnx_row, keras_row in zip(rows, json.loads(again.stdout), strict=True):  # the ONNX export is that model
        assert onnx_row["p_male"] == pytest.approx(keras_row["p_male"], abs=1e-4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "error: --workers must be >= 1, got 0"),
        (["--ray-address", "127.0.0.1:1"], "error: --ray-address trains on Ray workers: add --workers N"),
    ],
)
def test_worker_options_are_checked_before_any_work(tmp_path, args, message):
    make_dataset(tmp_path / "data", n_female=2, n_male=2)
    result = cli("train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *args)
    assert_clean_error(result, message)
    assert not (tmp_path / "run").exists()
