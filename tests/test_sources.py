"""Training on several datasets: the source column, per-source sampling weights, several validation folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import cli, make_dataset

from facegender.config import resolve
from facegender.data import SOURCE_COLUMN, concat, scan_dataset
from facegender.errors import FaceGenderError
from facegender.training.inputs import source_indices


def _two_sources(tmp_path):
    first = scan_dataset(make_dataset(tmp_path / "lfw" / "train", n_female=3, n_male=5, seed=1))
    second = scan_dataset(make_dataset(tmp_path / "celeba" / "train", n_female=4, n_male=4, seed=2))
    return concat([first, second])


def test_concat_names_each_photo_s_source_folder(tmp_path):
    both = _two_sources(tmp_path)
    assert both.columns[SOURCE_COLUMN] == ["lfw/train"] * 8 + ["celeba/train"] * 8
    assert both.columns["condition"][:2] == ["clean", "foggy"]  # the labels.csv columns still line up


def test_two_folders_of_one_name_stay_two_sources(tmp_path):
    a = scan_dataset(make_dataset(tmp_path / "x" / "val", seed=1))
    b = scan_dataset(make_dataset(tmp_path / "y" / "z" / "x" / "val", seed=2))
    assert len(set(concat([a, b]).columns[SOURCE_COLUMN])) == 2


def test_source_weights_repeat_and_thin_each_source(tmp_path):
    both = _two_sources(tmp_path)
    picked = source_indices(both, (2.0, 0.5), np.random.default_rng(0))
    sources = np.asarray(both.columns[SOURCE_COLUMN])[picked]
    assert (sources == "lfw/train").sum() == 16 and (sources == "celeba/train").sum() == 4
    assert np.bincount(picked[:16]).max() == 2  # every lfw photo exactly twice
    assert len(set(picked[16:])) == 4  # half of celeba, no photo twice
    assert list(source_indices(both, (), np.random.default_rng(0))) == list(range(16))  # no weights: each once


def test_source_weights_must_match_the_folders(tmp_path):
    with pytest.raises(FaceGenderError, match=r"source_weights has 3 weight\(s\) but training reads 2 folder"):
        source_indices(_two_sources(tmp_path), (1.0, 1.0, 1.0), np.random.default_rng(0))


@pytest.mark.parametrize(
    ("value", "expected"), [("2,1,0.5", (2.0, 1.0, 0.5)), ([3, 1], (3.0, 1.0)), ((), ()), ("", ())]
)
def test_source_weights_config_values(value, expected):
    assert resolve("default", {"source_weights": value}).source_weights == expected


@pytest.mark.parametrize("value", ["a,b", 3, [0], [-1], [True], [float("nan")]])
def test_bad_source_weights_are_refused(value):
    with pytest.raises(FaceGenderError, match="source_weights"):
        resolve("default", {"source_weights": value})


@pytest.mark.slow
def test_train_on_two_sources_reports_each_validation_folder(tmp_path):
    """Several --data and --val folders through the real CLI: one combined validation chooses the threshold,
    and each folder gets its own evaluation and line in model.json."""
    for name, seed in (("a", 1), ("b", 2)):
        make_dataset(tmp_path / name / "train", n_female=6, n_male=8, seed=seed)
        make_dataset(tmp_path / name / "val", n_female=4, n_male=4, seed=seed + 10)
    run = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text(
        "preset: default\nimage_size: 48\ncached_views: 1\nhead_epochs: 1\nepochs: 1\nbackbone_weights: none\n"
        "source_weights: [2, 1]\n"
    )
    data = [str(tmp_path / n / "train") for n in ("a", "b")]
    val = [str(tmp_path / n / "val") for n in ("a", "b")]
    result = cli("train", "--config", str(config), "--data", *data, "--val", *val, "--out", str(run))
    assert result.returncode == 0, result.stderr
    assert "per epoch: 48 training images" in result.stderr  # a twice (12 + 16) and b once (6 + 8): 24 + 24
    meta = json.loads((run / "model.json").read_text())
    sources = meta["val_metrics"]["sources"]
    assert set(sources) == {"a/val", "b/val"} and all(row["n"] == 8 for row in sources.values())
    assert meta["val_metrics"]["n"] == 16
    assert meta["val_metrics"]["sources_worst_macro_f1"] == min(row["macro_f1"] for row in sources.values())
    assert meta["face_scale"] == 1.5 and meta["face_crops"] is True
    for name in ("a-val", "b-val"):
        report = json.loads((run / "val_evaluation" / "sources" / name / "metrics.json").read_text())
        assert report["n"] == 8 and report["threshold"] == meta["threshold"]
    args = json.loads((run / "train_args.json").read_text())
    assert [p.endswith(s) for p, s in zip(args["val"], ("a/val", "b/val"), strict=True)] == [True, True]
