"""The runtime's plumbing, exactly: a model whose p(male) is a photo's mean grey level / 256 (conftest's
brightness_onnx) run through the real `predict`, `evaluate` and the web service, checked against numbers worked out
by hand: the stored threshold (inclusive), --threshold, the temperature, the abstain band and the rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from conftest import cli, grey_photo

from facegender.runtime.rows import FIELDS


def calibrated(p: float, temperature: float) -> float:
    """sigmoid(logit(p) / T), written as p^(1/T) / (p^(1/T) + (1-p)^(1/T)): T = 0.5 squares the odds."""
    a, b = p ** (1 / temperature), (1 - p) ** (1 / temperature)
    return a / (a + b)


def predict_json(*args: str) -> dict[str, dict]:
    """`predict ARGS --no-detect --format json` (each grey photo is one face crop), its rows by file name."""
    result = cli("predict", *args, "--no-detect", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    return {Path(row["file"]).name: row for row in rows}


def photos(folder: Path, levels: dict[str, int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, level in levels.items():
        grey_photo(folder / name, level)
    return folder


def test_calibrated_by_hand():
    assert calibrated(0.75, 0.5) == pytest.approx(0.9) and calibrated(0.25, 0.5) == pytest.approx(0.1)
    assert calibrated(0.75, 1.0) == pytest.approx(0.75) and calibrated(0.5, 3.0) == pytest.approx(0.5)


def test_the_stored_threshold_is_inclusive_and_the_rows_are_complete(tmp_path, brightness_model):
    model = brightness_model(threshold=0.5)
    folder = photos(tmp_path / "in", {"dark.png": 124, "edge.png": 128, "bright.png": 132})
    rows = predict_json(str(folder), "--model", str(model))
    base = {"face_index": 0, "box": [0, 0, 40, 32], "threshold": 0.5, "error": None}
    expected = {
        "dark.png": {**base, "file": str(folder / "dark.png"), "label": "female", "p_male": 0.484375},  # 124/256
        "edge.png": {**base, "file": str(folder / "edge.png"), "label": "male", "p_male": 0.5},  # on it: male
        "bright.png": {**base, "file": str(folder / "bright.png"), "label": "male", "p_male": 0.515625},
    }
    assert set(rows) == set(expected)
    for name, row in rows.items():
        assert set(row) == set(FIELDS), row
        assert {key: row[key] for key in expected[name]} == expected[name], name


def test_the_threshold_option_overrides_the_models(tmp_path, brightness_model):
    model = brightness_model(threshold=0.5)
    folder = photos(tmp_path / "in", {"below.png": 188, "on.png": 192, "dark.png": 100})
    rows = predict_json(str(folder), "--model", str(model), "--threshold", "0.75")
    assert {name: (row["label"], row["p_male"], row["threshold"]) for name, row in rows.items()} == {
        "below.png": ("female", 0.734375, 0.75),  # male under the model's own 0.5
        "on.png": ("male", 0.75, 0.75),
        "dark.png": ("female", 0.390625, 0.75),
    }


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_the_models_temperature_calibrates_what_predict_reports(tmp_path, brightness_model, temperature):
    model = brightness_model(threshold=0.6, temperature=temperature)
    levels = {"p25.png": 64, "p625.png": 160, "p6875.png": 176, "p75.png": 192}
    rows = predict_json(str(photos(tmp_path / "in", levels)), "--model", str(model))
    for name, level in levels.items():
        p = calibrated(level / 256, temperature)
        assert rows[name]["p_male"] == pytest.approx(p, abs=1e-6), name
        assert rows[name]["label"] == ("male" if p >= 0.6 else "female"), name
    # the threshold applies to the calibrated probability: at T = 2, 0.625 and 0.6875 become 0.5635 and 0.5973
    labels = {name: row["label"] for name, row in rows.items()}
    if temperature == 2.0:
        assert labels == {"p25.png": "female", "p625.png": "female", "p6875.png": "female", "p75.png": "male"}
    else:  # 0.25 -> 0.1, 0.625 -> 0.7353, 0.6875 -> 0.8288, 0.75 -> 0.9
        assert labels == {"p25.png": "female", "p625.png": "male", "p6875.png": "male", "p75.png": "male"}
        assert rows["p75.png"]["p_male"] == pytest.approx(0.9, abs=1e-6)


def test_the_abstain_band_is_open_and_keeps_p_male(tmp_path, brightness_model):
    model = brightness_model(threshold=0.5)
    levels = {"a.png": 96, "b.png": 100, "c.png": 128, "d.png": 156, "e.png": 160}
    rows = predict_json(str(photos(tmp_path / "in", levels)), "--model", str(model), "--abstain-band", "0.375,0.625")
    assert {name: (row["label"], row["p_male"]) for name, row in rows.items()} == {
        "a.png": ("female", 0.375),  # on the band's edge: outside it
        "b.png": ("uncertain", 0.390625),
        "c.png": ("uncertain", 0.5),
        "d.png": ("uncertain", 0.609375),
        "e.png": ("male", 0.625),
    }


def test_csv_and_table_rows(tmp_path, brightness_model):
    model = brightness_model(threshold=0.5, temperature=0.5)
    photo = grey_photo(tmp_path / "bright.png", 192)  # 0.75 -> 0.9 at T = 0.5
    result = cli("predict", str(photo), "--model", str(model), "--no-detect", "--format", "csv")
    assert result.returncode == 0, result.stderr
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    expected = {"file": str(photo), "face_index": "0", "box": "0 0 40 32", "label": "male", "p_male": "0.9",
                "threshold": "0.5", "error": ""}  # fmt: skip
    assert {key: row[key] for key in expected} == expected
    result = cli("predict", str(photo), "--model", str(model), "--no-detect", "--format", "table")
    assert result.returncode == 0, result.stderr
    header, line = result.stdout.strip().splitlines()
    assert header.split()[:4] == ["file", "face", "label", "p_male"]
    assert line.split()[:4] == [str(photo), "0", "male", "0.9000"] and line.split()[-4:] == ["0", "0", "40", "32"]


def test_evaluate_scores_the_calibrated_probabilities(tmp_path, brightness_model):
    pytest.importorskip("sklearn")
    model = brightness_model(threshold=0.8, temperature=0.5)
    data = tmp_path / "data"
    female = {"f64.png": 64, "f160.png": 160, "f200.png": 200}  # p 0.1, 0.7353, 0.9273 (the last one wrong)
    male = {"m176.png": 176, "m192.png": 192}  # p 0.8288, 0.9
    photos(data / "female", female)
    photos(data / "male", male)
    out = tmp_path / "eval"
    result = cli("evaluate", "--data", str(data), "--model", str(model), "--out", str(out))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    p = {name: calibrated(level / 256, 0.5) for name, level in {**female, **male}.items()}
    truth = {**dict.fromkeys(female, 0), **dict.fromkeys(male, 1)}
    assert metrics["threshold"] == 0.8 and metrics["n"] == 5
    assert metrics["accuracy"] == pytest.approx(4 / 5)  # uncalibrated (0.6875 and 0.75 < 0.8) it would be 2/5
    assert metrics["confusion_matrix"] == [[2, 1], [0, 2]]
    brier = sum((p[name] - truth[name]) ** 2 for name in p) / len(p)
    assert metrics["calibration"]["brier"] == pytest.approx(brier, abs=1e-6)
    (wrong,) = csv.DictReader((out / "misclassified" / "misclassified.csv").open())
    assert (wrong["true_label"], wrong["predicted_label"]) == ("female", "male")
    assert float(wrong["p_male"]) == pytest.approx(p["f200.png"], abs=1e-6)


def test_the_web_service_reports_calibrated_probabilities_and_labels(brightness_model):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from facegender.serve.app import create_app

    client = TestClient(create_app(brightness_model(threshold=0.6, temperature=2.0)))
    files = []
    for level in (64, 160, 192):
        buffer = io.BytesIO()
        grey_photo(buffer, level)  # PNG into memory
        files.append(("files", (f"g{level}.png", buffer.getvalue(), "image/png")))
    response = client.post("/predict/batch?detect=off", files=files)
    assert response.status_code == 200, response.text
    rows = response.json()["results"]
    assert [(r["file"], r["label"], r["threshold"]) for r in rows] == [
        ("g64.png", "female", 0.6), ("g160.png", "female", 0.6), ("g192.png", "male", 0.6)]  # fmt: skip
    for row, level in zip(rows, (64, 160, 192), strict=True):
        assert row["p_male"] == pytest.approx(calibrated(level / 256, 2.0), abs=1e-6)


def test_a_run_folder_reads_threshold_and_temperature_from_model_json(tmp_path):
    """An ONNX file without embedded metadata: model.json beside it says the threshold and temperature, the
    network its input size."""
    from conftest import brightness_onnx

    run = tmp_path / "run"
    run.mkdir()
    brightness_onnx(run / "model.onnx", None, image_size=24)
    (run / "model.json").write_text(json.dumps({"format_version": 1, "threshold": 0.3, "temperature": 0.5}))
    folder = photos(tmp_path / "in", {"p25.png": 64, "p3125.png": 80, "p50.png": 128})
    rows = predict_json(str(folder), "--model", str(run))
    # at T = 0.5: 0.25 -> 0.1, 0.3125 -> 0.1712 (female, though 0.3125 itself is over 0.3), 0.5 -> 0.5
    assert {name: (row["label"], row["threshold"]) for name, row in rows.items()} == {
        "p25.png": ("female", 0.3), "p3125.png": ("female", 0.3), "p50.png": ("male", 0.3)}  # fmt: skip
    for name, p in (("p25.png", 0.1), ("p3125.png", calibrated(0.3125, 0.5)), ("p50.png", 0.5)):
        assert rows[name]["p_male"] == pytest.approx(p, abs=1e-6), name
