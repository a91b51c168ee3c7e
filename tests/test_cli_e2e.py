"""End to end: the real CLI trains on a tiny generated dataset, then evaluates and predicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_dataset

pytest.importorskip("keras")

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def cli(*args: str, cwd: Path | None = None, script: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, script] if script else [sys.executable, "-m", "facegender"]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600)


def predict_crops(*args: str) -> list[dict]:
    """`predict --format json --no-detect`: the generated stand-ins are not faces, each file is one face crop."""
    return json.loads(cli("predict", *args, "--format", "json", "--no-detect").stdout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("e2e")
    make_dataset(root / "data" / "train", n_female=8, n_male=12, seed=0)
    make_dataset(root / "data" / "val", n_female=4, n_male=6, seed=1)
    run = root / "run"
    result = cli(
        "train",
        "--data",
        str(root / "data"),
        "--preset",
        "seed",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--image-size",
        "64",
        "--backbone-weights",
        "none",
        "--seed",
        "3",
        "--out",
        str(run),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(run)
    return root, run


def test_train_writes_a_complete_run_folder(trained):
    _, run = trained
    for name in (
        "model.keras",
        "model.onnx",
        "model.json",
        "config.json",
        "history.csv",
        "results.csv",
        "training_plots/accuracy_curve.png",
        "training_plots/loss_curve.png",
        "val_evaluation/metrics.json",
        "val_evaluation/confusion_matrix.png",
    ):
        assert (run / name).is_file(), name
    meta = json.loads((run / "model.json").read_text())
    assert meta["class_names"] == ["female", "male"] and meta["image_size"] == 64
    assert 0 < meta["threshold"] < 1 and meta["config"]["preset"] == "seed" and meta["config"]["epochs"] == 1
    assert {"keras", "tensorflow", "numpy"} <= set(meta["versions"])
    assert meta["val_metrics"]["n"] == 10
    assert (run / "history.csv").read_text().count("\n") == 2  # header + one epoch


def test_evaluate_writes_every_report_file(trained):
    root, run = trained
    out = root / "eval"
    result = cli("evaluate", "--data", str(root / "data" / "val"), "--model", str(run), "--out", str(out))
    assert result.returncode == 0, result.stderr
    for name in (
        "classification_report.txt",
        "metrics.json",
        "confusion_matrix.png",
        "roc_curve.png",
        "pr_curve.png",
        "misclassified/misclassified.csv",
    ):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "threshold", "n", "per_class", "confusion_matrix", "labels", "slices"} <= set(m)
    assert set(m["calibration"]) == {"ece", "brier"} and m["worst_slice"]["column"] == "condition"
    assert set(m["per_class"]) == {"female", "male"}
    assert set(m["per_class"]["female"]) == {"precision", "recall", "f1", "support"}
    assert m["n"] == 10 and m["labels"] == ["female", "male"]
    assert set(m["slices"]["condition"]) == {"clean", "foggy"}
    assert m["threshold"] == json.loads((run / "model.json").read_text())["threshold"]
    wrong = (out / "misclassified" / "misclassified.csv").read_text().strip().splitlines()
    n_wrong = m["confusion_matrix"][0][1] + m["confusion_matrix"][1][0]
    assert len(wrong) - 1 == n_wrong == len(list((out / "misclassified").glob("*_as_*")))


def test_predict_json_files_folders_globs_and_errors(trained):
    root, run = trained
    val = root / "data" / "val"
    (root / "bad.jpg").write_text("not an image")
    result = cli(
        "predict",
        str(val / "female"),
        str(val / "male" / "*.png"),
        str(root / "bad.jpg"),
        "--model",
        str(run),
        "--format",
        "json",
        "--no-detect",  # generated stand-ins, not faces: each file is one face crop
    )
    assert result.returncode == 1  # one input unreadable, the others predicted
    rows = json.loads(result.stdout)
    assert len(rows) == 11
    good = [r for r in rows if r["label"] != "error"]
    assert len(good) == 10 and all(r["label"] in ("female", "male") and 0 <= r["p_male"] <= 1 for r in good)
    fields = {"file", "face_index", "box", "face_score", "label", "p_male", "threshold", "error"}
    assert all(set(r) == fields and r["face_score"] is None for r in rows)  # no detector looked: no score
    assert all(r["face_index"] == 0 and r["box"] == [0, 0, 48, 48] for r in good)
    bad = [r for r in rows if r["label"] == "error"]
    assert bad[0]["p_male"] is None and "bad.jpg" in bad[0]["file"] and bad[0]["error"]
    assert "bad.jpg" in result.stderr and "Traceback" not in result.stderr
    # the label follows the stored threshold
    assert all(r["label"] == ("male" if r["p_male"] >= r["threshold"] else "female") for r in good)


def test_predict_csv_to_file_and_threshold_override(trained):
    root, run = trained
    out = root / "preds.csv"
    image = next((root / "data" / "val" / "male").iterdir())
    result = cli(
        "predict", str(image), "--model", str(run), "--format", "csv", "--output", str(out), "--threshold", "0",
        "--no-detect",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "file,face_index,box,face_score,label,p_male,threshold,error"
    assert lines[1].split(",")[1:5] == ["0", "0 0 48 48", "", "male"]  # no detector: no face_score


def test_keras_and_onnx_models_agree(trained):
    """Both backends answer for the same files in the same order. This tiny untrained network scores every photo
    about 0.5, so the numbers agree whatever either backend does: test_export_agreement compares them for real."""
    root, run = trained
    val = str(root / "data" / "val")
    via_onnx = predict_crops(val, "--model", str(run / "model.onnx"))
    via_keras = predict_crops(val, "--model", str(run / "model.keras"))
    assert [r["file"] for r in via_onnx] == [r["file"] for r in via_keras]
    for a, b in zip(via_onnx, via_keras, strict=True):
        assert abs(a["p_male"] - b["p_male"]) < 1e-3


def test_user_errors_are_one_line_messages_with_exit_2(tmp_path):
    cases = [
        (["train", "--data", str(tmp_path / "none")], "dataset folder not found"),
        (
            ["evaluate", "--data", str(tmp_path), "--model", str(tmp_path / "m.keras"), "--out", str(tmp_path / "e")],
            "no 'female/' or 'male/' folder",
        ),
        (["predict", "x.jpg", "--model", str(tmp_path / "nothing")], "model not found"),
        (["train", "--data", str(tmp_path), "--preset", "best"], "unknown preset"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_seed_compatible_scripts(trained, tmp_path):
    root, run = trained
    out = tmp_path / "evaluation_results"
    result = cli(
        "--data_path",
        str(root / "data" / "val"),
        "--model_path",
        str(run),
        "--output_dir",
        str(out),
        script=str(ROOT / "test_script.py"),
    )
    assert result.returncode == 0, result.stderr
    assert (out / "classification_report.txt").is_file()
    image = next((root / "data" / "val" / "female").iterdir())
    result = cli("--image_path", str(image), "--model_path", str(run), script=str(ROOT / "predict.py"))
    assert result.returncode == 0 and image.name in result.stdout


def test_train_model_script_writes_h5(tmp_path):
    data = make_dataset(tmp_path / "d", n_female=4, n_male=6)
    model = tmp_path / "model_new.h5"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train_model.py"),
            "--data_path",
            str(data),
            "--epochs",
            "1",
            "--batch_size",
            "8",
            "--output_model",
            str(model),
            "--image_size",
            "64",
            "--backbone_weights",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr
    assert model.is_file() and model.with_suffix(".json").is_file()
    result = cli("predict", str(data / "male"), "--model", str(model), "--format", "json", "--no-detect")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 6


def test_predict_and_evaluate_with_onnx_import_no_tensorflow(trained):
    root, run = trained
    code = (
        "import sys\n"
        "from facegender.cli import main\n"
        f"code = main(['predict', {str(root / 'data' / 'val')!r}, '--model', {str(run)!r}, '--format', 'json'])\n"
        "assert code == 0, f'predict exited {code}'\n"
        f"code = main(['evaluate', '--data', {str(root / 'data' / 'val')!r}, '--model', {str(run)!r}, "
        f"'--out', {str(root / 'eval_no_tf')!r}])\n"
        "assert code == 0, f'evaluate exited {code}'\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads((root / "eval_no_tf" / "metrics.json").read_text())["n"] == 10  # both commands did their work


def test_cached_views_training_from_a_config_file(tmp_path):
    """The fast path: cached lower-backbone activations of augmented views mixed up, two phases, cosine schedule."""
    data = tmp_path / "data"
    make_dataset(data / "train", n_female=6, n_male=10, seed=0)
    make_dataset(data / "val", n_female=3, n_male=4, seed=1)
    duplicate = next((data / "train" / "male").iterdir())
    (data / "val" / "male" / "copy.png").write_bytes(duplicate.read_bytes())  # the same photo in train and val
    config = tmp_path / "fast.json"
    config.write_text(
        json.dumps(
            {
                "image_size": 64,
                "crop": 0.8,
                "cached_views": 2,
                "adverse": 0.5,
                "mixup": 0.4,
                "head_epochs": 1,
                "epochs": 1,
                "learning_rate": 1e-4,
                "schedule": "cosine",
                "backbone_weights": "none",
                "batch_size": 4,
            }
        )
    )
    run = tmp_path / "run"
    result = cli("train", "--data", str(data), "--config", str(config), "--out", str(run))
    assert result.returncode == 0, result.stderr
    assert "cached 2 views x 16 images at block_9_add" in result.stderr
    assert "1 validation image(s) also appear in the training data" in result.stderr
    assert (run / "history.csv").read_text().count("\n") == 3  # header + head epoch + fine-tuning epoch
    meta = json.loads((run / "model.json").read_text())
    assert meta["crop"] == 0.8 and meta["config"]["cached_views"] == 2 and meta["config"]["mixup"] == 0.4
    via_onnx = predict_crops(str(data / "val"), "--model", str(run))
    via_keras = predict_crops(str(data / "val"), "--model", str(run / "model.keras"))
    assert max(abs(a["p_male"] - b["p_male"]) for a, b in zip(via_onnx, via_keras, strict=True)) < 1e-3


def test_abstain_band_labels_uncertain(trained):
    root, run = trained
    val = str(root / "data" / "val")
    # the tiny model's outputs all sit near 0.5: a band around it makes every answer 'uncertain'
    rows = predict_crops(val, "--model", str(run), "--abstain-band", "0.2,0.8")
    assert rows and all(r["label"] == "uncertain" and r["p_male"] is not None for r in rows)
    rows = predict_crops(val, "--model", str(run), "--abstain-band", "0.9,0.95")
    assert all(r["label"] in ("female", "male") for r in rows)
    result = cli("predict", val, "--model", str(run), "--abstain-band", "0.7,0.3")
    assert result.returncode == 2 and "LOW < HIGH" in result.stderr
