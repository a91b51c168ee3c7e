"""labels.csv rows find their photos however the file column spells the path: Windows backslashes, letter case."""

from __future__ import annotations

import csv

from conftest import make_dataset

from facegender.data import scan_dataset


def write_labels(root, rows: list[dict[str, str]]) -> None:
    with (root / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "condition", "age"])
        writer.writeheader()
        writer.writerows(rows)


def test_windows_paths_in_labels_csv_find_their_photos(tmp_path):
    root = make_dataset(tmp_path / "d", n_female=2, n_male=3)
    files = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.*"))
    # each photo its own condition, so that a row matched to the wrong photo (or to none) shows
    rows = [{"file": name.replace("/", "\\"), "condition": f"c{i}", "age": str(20 + i)} for i, name in enumerate(files)]
    rows[0]["file"] = rows[0]["file"].upper()  # written on a file system that ignores case
    write_labels(root, rows)
    dataset = scan_dataset(root)
    by_file = {dataset.relative(i): dataset.columns["condition"][i] for i in range(len(dataset))}
    assert by_file == {name: f"c{i}" for i, name in enumerate(files)}
    assert "unknown" not in dataset.columns["age_band"]


def test_a_photo_without_a_row_is_unknown_and_a_row_without_a_photo_is_ignored(tmp_path):
    root = make_dataset(tmp_path / "d", n_female=2, n_male=2)
    write_labels(root, [{"file": "female\\female_0_0.jpg", "condition": "fog", "age": "70"},
                        {"file": "male\\gone.png", "condition": "rain", "age": "30"}])  # fmt: skip
    dataset = scan_dataset(root)
    conditions = {dataset.relative(i): dataset.columns["condition"][i] for i in range(len(dataset))}
    assert conditions == {"female/female_0_0.jpg": "fog", "female/female_0_1.jpg": "unknown",
                          "male/male_0_0.png": "unknown", "male/male_0_1.png": "unknown"}  # fmt: skip
    bands = {dataset.relative(i): dataset.columns["age_band"][i] for i in range(len(dataset))}
    assert bands["female/female_0_0.jpg"] == "60+" and bands["male/male_0_0.png"] == "unknown"
