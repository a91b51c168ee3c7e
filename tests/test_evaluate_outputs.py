"""evaluate's output folder: staged so that a failure leaves the previous evaluation whole, refused where it
would pollute the dataset or replace a folder it did not write, and valid for file names that are not UTF-8."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def evaluate(data: Path, model: Path, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "facegender", "evaluate", "--data", str(data), "--model", str(model),
               "--out", str(out)]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_names_that_are_not_utf8_are_reported_escaped(tmp_path, onnx_model):
    data = make_dataset(Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/d\xffata")), 3, 3)
    female = next((data / "female").iterdir())
    odd = female.with_name(os.fsdecode(b"f\xfe" + os.fsencode(female.name)))
    female.rename(odd)
    result = evaluate(data, onnx_model, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    rows = (tmp_path / "out" / "misclassified" / "misclassified.csv").read_text(encoding="utf-8")
    assert "f\\xfe" in rows and "d\\xffata" in rows  # the model calls every photo male: the odd one is listed
    assert (tmp_path / "out" / "misclassified" / f"female_as_male_f\\xfe{female.name}").is_file()
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["data"].endswith("d\\xffata")
    assert (tmp_path / "out" / "report.html").is_file()


def test_out_inside_a_class_folder_is_refused(tmp_path, onnx_model):
    data = make_dataset(tmp_path / "data", 3, 3)
    before = snapshot(data)
    result = evaluate(data, onnx_model, data / "male" / "report")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "inside the class folder" in result.stderr and "choose a folder outside" in result.stderr
    assert snapshot(data) == before and not (data / "male" / "report").exists()


def test_a_misclassified_folder_it_did_not_write_is_kept(tmp_path, onnx_model):
    data = make_dataset(tmp_path / "data", 3, 3)
    mine = tmp_path / "out" / "misclassified" / "holiday.jpg"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my photo")
    result = evaluate(data, onnx_model, tmp_path / "out")
    assert result.returncode == 2 and "was not written by facegender" in result.stderr
    assert mine.read_bytes() == b"my photo" and not (tmp_path / "out" / "metrics.json").exists()
    assert evaluate(data, onnx_model, tmp_path / "out2").returncode == 0
    assert evaluate(data, onnx_model, tmp_path / "out2").returncode == 0  # its own misclassified/ is replaced


def test_a_failed_write_leaves_the_previous_evaluation_whole(tmp_path, monkeypatch):
    from facegender.data import scan_dataset
    from facegender.errors import FaceGenderError
    from facegender.evaluation import plots
    from facegender.evaluation.evaluate import write_evaluation

    dataset = scan_dataset(make_dataset(tmp_path / "data", 3, 3))
    out = tmp_path / "out"
    (out / ".partial-killed").mkdir(parents=True)  # what a kill -9 while writing leaves
    (out / ".partial-killed" / "metrics.json").write_text("{}")
    write_evaluation(out, dataset, np.linspace(0.1, 0.9, len(dataset)), 0.5)
    assert not (out / ".partial-killed").exists()
    before = snapshot(out)
    assert {"metrics.json", "report.html", "roc_curve.png", "misclassified/misclassified.csv"} <= set(before)

    def disk_full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(plots, "threshold_sweep_plot", disk_full)
    with pytest.raises(FaceGenderError, match=r"could not write the evaluation into .*No space left"):
        write_evaluation(out, dataset, np.full(len(dataset), 0.7), 0.5)
    assert snapshot(out) == before  # nothing replaced, nothing half-written
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # the staging folder is gone
