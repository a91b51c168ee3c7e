"""The robustness suite: each condition degrades a photo more at each severity, the suite scores the classifier on
the degraded clean photos reproducibly for a seed, and the table shows the numbers it is given."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import grey_photo

from facegender.data import Dataset
from facegender.errors import FaceGenderError
from facegender.evaluation.corrupt import (
    CONDITIONS,
    SEVERITIES,
    clean_subset,
    corruption,
    robustness_suite,
    robustness_table,
)
from facegender.runtime.inference import Classifier

A = pytest.importorskip("albumentations")


def scene(size: int = 160) -> np.ndarray:
    """A mid-grey photo with smooth shading, fine stripes, a disc's edge and a little noise: room to darken and
    brighten, and detail for blur, downscaling and JPEG blocks to remove or disturb."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    grey = 128 + 40 * np.sin(2 * np.pi * 3 * xx) * np.cos(2 * np.pi * 2 * yy) + 20 * np.sin(2 * np.pi * 11 * (xx + yy))
    grey += 25 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.08)
    rgb = np.stack([grey, grey * 0.85 + 15, grey * 0.7 + 30], axis=-1)
    rgb += np.random.default_rng(0).normal(0, 6, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


FLAT = np.full((160, 160, 3), 128, np.uint8)


def detail(image: np.ndarray) -> float:
    """High-frequency energy: the mean absolute difference between neighbouring pixels."""
    grey = image.astype(np.float64).mean(axis=2)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


def blockiness(image: np.ndarray) -> float:
    """How much larger the steps across JPEG's 8-pixel block edges are than the steps inside the blocks."""
    steps = np.abs(np.diff(image.astype(np.float64).mean(axis=2), axis=1))  # steps[:, j]: columns j to j + 1
    return float(steps[:, 7::8].mean() - np.delete(steps, np.s_[7::8], axis=1).mean())


def brightness(image: np.ndarray) -> float:
    return float(image.mean())


def spread(image: np.ndarray) -> float:
    return float(image.astype(np.float64).std())


# condition -> (the photo it is measured on, the quantity, +1 if more severe raises it or -1 if it lowers it, and
# the least step from one severity to the next: rounding alone, as a gamma of 1.0 gives, moves these by under 0.1)
MEASURES = {
    "blur": (scene(), detail, -1, 0.5),
    "motion_blur": (scene(), detail, -1, 0.5),
    "fog": (scene(), brightness, +1, 2.0),  # a white veil
    "rain": (FLAT, spread, +1, 2.0),  # streaks on a plain grey: more of them
    "low_light": (scene(), brightness, -1, 2.0),
    "noise": (FLAT, spread, +1, 2.0),
    "jpeg": (scene(), blockiness, +1, 0.5),
    "downscale": (scene(), detail, -1, 0.5),
    "overexposure": (scene(), brightness, +1, 2.0),
}


def corrupt(name: str, severity: int, image: np.ndarray, seed: int = 0) -> np.ndarray:
    return A.Compose([corruption(name, severity)], seed=seed)(image=image)["image"]


@pytest.mark.parametrize("name", CONDITIONS)
def test_each_condition_degrades_more_at_each_severity(name):
    photo, measure, direction, least = MEASURES[name]
    degraded = [corrupt(name, severity, photo) for severity in SEVERITIES]
    for image in degraded:
        assert image.shape == photo.shape and image.dtype == np.uint8
        assert not np.array_equal(image, photo)
    values = [measure(photo)] + [measure(image) for image in degraded]
    steps = direction * np.diff(values)
    assert np.all(steps >= least), f"{name}: {measure.__name__} from clean through severities 1-3: {values}"


def test_every_condition_has_a_measure_here():
    assert set(MEASURES) == set(CONDITIONS) and len(CONDITIONS) == 9 and SEVERITIES == (1, 2, 3)


def dataset(root: Path, levels: dict[str, list[int]], conditions: list[str] | None = None) -> Dataset:
    """Grey photos (64 x 48) of the given levels per class; the brightness model's p(male) is level / 256."""
    root.mkdir(parents=True, exist_ok=True)
    files, labels = [], []
    for label, (name, values) in enumerate(levels.items()):
        for i, level in enumerate(values):
            files.append(grey_photo(root / f"{name}_{i}.png", level, (64, 48)))
            labels.append(label)
    columns = {"condition": conditions} if conditions is not None else {}
    return Dataset(root=root, files=files, labels=np.array(labels), columns=columns)


# dark females (p(male) 0.39-0.44), bright males (0.56-0.61): all right at the threshold 0.5 when clean
LEVELS = {"female": [100, 104, 108, 112], "male": [144, 148, 152, 156]}


def test_the_suite_scores_the_classifier_on_the_corrupted_clean_photos(tmp_path, brightness_model):
    classifier = Classifier.load(brightness_model())
    # a fifth 'foggy' male as dark as a female: counted, it would lower the clean accuracy
    data = dataset(tmp_path, {"female": LEVELS["female"], "male": [*LEVELS["male"], 100]}, ["clean"] * 8 + ["foggy"])
    summary = robustness_suite(classifier, data, tmp_path / "out", seed=0)
    rows = {(r["condition"], r["severity"]): r for r in summary["rows"]}
    assert [(r["condition"], r["severity"]) for r in summary["rows"]] == [("clean", 0)] + [
        (name, severity) for name in CONDITIONS for severity in SEVERITIES
    ]
    assert summary["n"] == 8 and summary["clean"] == {"accuracy": 1.0, "macro_f1": 1.0}
    for severity in SEVERITIES:
        # darkened, every photo reads female; brightened, every photo reads male: half right, macro-F1 1/3
        for name in ("low_light", "overexposure"):
            assert rows[name, severity]["accuracy"] == 0.5 and rows[name, severity]["accuracy_drop"] == 0.5
            assert rows[name, severity]["macro_f1"] == pytest.approx(1 / 3)
        for name in ("blur", "downscale"):  # a plain grey photo has nothing to blur or lose
            assert rows[name, severity]["accuracy"] == 1.0 and rows[name, severity]["accuracy_drop"] == 0.0
    corrupted = [r for r in summary["rows"] if r["severity"]]
    assert summary["mean_corrupted_accuracy"] == pytest.approx(np.mean([r["accuracy"] for r in corrupted]))
    assert summary["mean_accuracy_drop"] == pytest.approx(1.0 - summary["mean_corrupted_accuracy"])
    assert json.loads((tmp_path / "out" / "robustness.json").read_text(encoding="utf-8")) == summary
    with (tmp_path / "out" / "robustness.csv").open(newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["condition"], int(r["severity"]), float(r["accuracy"])) for r in table] == [
        (r["condition"], r["severity"], r["accuracy"]) for r in summary["rows"]
    ]


def test_the_suite_is_reproducible_for_a_seed_and_differs_between_seeds(tmp_path, brightness_model):
    data = dataset(tmp_path, LEVELS)

    def inputs(seed: int) -> list[np.ndarray]:
        """Every batch the classifier is given during one run of the suite."""
        classifier = Classifier.load(brightness_model())
        seen, predict = [], classifier.predict

        def recorded(batch: np.ndarray) -> np.ndarray:
            seen.append(batch.copy())
            return predict(batch)

        classifier.predict = recorded
        robustness_suite(classifier, data, tmp_path / f"out{seed}", seed=seed)
        return seen

    first, again, other = inputs(3), inputs(3), inputs(4)
    assert len(first) == 1 + len(CONDITIONS) * len(SEVERITIES)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    same = [np.array_equal(a, b) for a, b in zip(first, other, strict=True)]
    noise = 1 + CONDITIONS.index("noise") * len(SEVERITIES)
    assert same[0] and not any(same[noise : noise + len(SEVERITIES)])  # clean photos alike, the random draws not


def test_the_suite_skips_unreadable_photos_and_needs_both_classes(tmp_path, brightness_model):
    classifier = Classifier.load(brightness_model())
    data = dataset(tmp_path, LEVELS)
    data.files[0].write_bytes(b"not an image")
    assert robustness_suite(classifier, data, tmp_path / "out")["n"] == len(data) - 1
    females = dataset(tmp_path / "females", {"female": LEVELS["female"], "male": []})
    with pytest.raises(FaceGenderError, match="both classes"):
        robustness_suite(classifier, females, tmp_path / "out2")


def listing(conditions: list[str] | None) -> Dataset:
    files = [Path(f"/data/{i}.png") for i in range(5)]
    columns = {"identity": ["a", "b", "c", "d", "e"]}
    if conditions is not None:
        columns["condition"] = conditions
    return Dataset(root=Path("/data"), files=files, labels=np.array([0, 1, 0, 1, 1]), columns=columns)


def test_clean_subset_keeps_the_clean_rows_with_their_labels_and_columns():
    subset = clean_subset(listing(["clean", "fog", "Clean", "rain", "CLEAN"]))
    assert [f.name for f in subset.files] == ["0.png", "2.png", "4.png"]
    assert subset.labels.tolist() == [0, 0, 1]
    assert subset.columns == {"identity": ["a", "c", "e"], "condition": ["clean", "Clean", "CLEAN"]}


def test_clean_subset_without_a_condition_column_is_every_photo():
    data = listing(None)
    assert clean_subset(data).files == data.files


def test_clean_subset_refuses_a_condition_column_without_clean_rows():
    with pytest.raises(FaceGenderError, match="no 'clean' rows"):
        clean_subset(listing(["fog", "rain", "fog", "noise", "blur"]))


def test_the_table_shows_the_numbers_it_is_given():
    rows = [{"condition": "clean", "severity": 0, "accuracy": 0.9, "accuracy_drop": 0.0}]
    for index, name in enumerate(CONDITIONS):
        for severity in SEVERITIES:
            accuracy = 0.8 - 0.1 * severity + 0.01 * index
            drop = 0.9 - accuracy
            rows.append({"condition": name, "severity": severity, "accuracy": accuracy, "accuracy_drop": drop})
    rows[1:4] = [dict(r, accuracy=0.95, accuracy_drop=-0.05) for r in rows[1:4]]  # blur helped: a negative drop
    means = {"mean_corrupted_accuracy": 0.6123, "mean_accuracy_drop": 0.2877}
    summary = {"clean": {"accuracy": 0.9}, **means, "rows": rows}
    lines = robustness_table(summary).splitlines()
    assert lines[0] == "| condition | severity 1 | severity 2 | severity 3 | mean drop |"
    assert lines[2] == "| clean | 0.900 | | | |"
    assert lines[3] == "| blur | 0.950 | 0.950 | 0.950 | -0.050 |"
    assert lines[4] == "| motion_blur | 0.710 | 0.610 | 0.510 | +0.290 |"
    assert lines[-2] == "| overexposure | 0.780 | 0.680 | 0.580 | +0.220 |"
    assert lines[-1] == "| all | mean 0.612 | | | +0.288 |"
    assert [line.split(" | ")[0].lstrip("| ") for line in lines[3:-1]] == list(CONDITIONS)
    assert {line.count("|") for line in lines} == {6}  # every row has the header's five columns
