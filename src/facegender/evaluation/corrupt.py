"""Robustness suite: evaluate a model on clean photos made adverse (9 conditions x 3 severities), seeded.

Each corruption is applied to the original photo, before the model's own crop and resize, as a real
degraded photo would be. Uses albumentations (OpenCV underneath).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from facegender.conditions import CONDITIONS, SEVERITIES, corruption
from facegender.data import Dataset
from facegender.errors import FaceGenderError, ImageError
from facegender.evaluation import metrics
from facegender.faces.images import load_image
from facegender.progress import bar
from facegender.runtime.inference import Classifier


def clean_subset(dataset: Dataset) -> Dataset:
    """The clean photos: rows whose labels.csv `condition` is 'clean' where that column exists, else all."""
    conditions = dataset.columns.get("condition")
    if not conditions:
        return dataset
    clean = [i for i, c in enumerate(conditions) if c.lower() == "clean"]
    if not clean:
        raise FaceGenderError("labels.csv has a condition column but no 'clean' rows to corrupt")
    return dataset.subset(clean)


def robustness_suite(classifier: Classifier, dataset: Dataset, out: Path, seed: int = 0) -> dict[str, Any]:
    """Accuracy and macro-F1 per condition and severity, and the drop from clean; writes robustness.json/.csv."""
    import albumentations as A

    dataset = clean_subset(dataset)
    originals, labels = [], []
    for path, label in zip(dataset.files, dataset.labels, strict=True):
        try:
            originals.append(load_image(path))
            labels.append(int(label))
        except ImageError:
            continue
    if len(set(labels)) < 2:
        raise FaceGenderError("the robustness suite needs readable clean photos of both classes")
    y = np.asarray(labels)
    threshold = classifier.info.threshold

    def score(images: list[np.ndarray]) -> dict[str, float]:
        batch = np.stack([classifier.photo_input(image) for image in images])
        p = np.concatenate([classifier.predict(batch[i : i + 64]) for i in range(0, len(batch), 64)])
        pred = metrics.predict_labels(p, threshold)
        return {"accuracy": float(np.mean(pred == y)), "macro_f1": metrics.macro_f1(y, pred)}

    clean = score(originals)
    rows = [{"condition": "clean", "severity": 0, **clean, "accuracy_drop": 0.0}]
    with bar(len(CONDITIONS) * len(SEVERITIES), "robustness") as progress:
        for index, name in enumerate(CONDITIONS):
            for severity in SEVERITIES:
                transform = A.Compose([corruption(name, severity)], seed=seed * 1000 + index * 10 + severity)
                result = score([transform(image=image)["image"] for image in originals])
                rows.append({"condition": name, "severity": severity, **result,
                             "accuracy_drop": clean["accuracy"] - result["accuracy"]})  # fmt: skip
                progress.update(1)
    corrupted = [r for r in rows if r["severity"]]
    summary = {
        "n": len(y),
        "seed": seed,
        "threshold": threshold,
        "clean": clean,
        "mean_corrupted_accuracy": float(np.mean([r["accuracy"] for r in corrupted])),
        "mean_accuracy_drop": float(np.mean([r["accuracy_drop"] for r in corrupted])),
        "rows": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    with (out / "robustness.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return summary


def robustness_table(summary: dict[str, Any]) -> str:
    """Markdown: accuracy per condition (rows) and severity (columns), with the mean drop from clean."""
    lines = ["| condition | severity 1 | severity 2 | severity 3 | mean drop |", "|---|---|---|---|---|"]
    lines.append(f"| clean | {summary['clean']['accuracy']:.3f} | | | |")
    for name in CONDITIONS:
        rs = [r for r in summary["rows"] if r["condition"] == name]
        cells = " | ".join(f"{r['accuracy']:.3f}" for r in rs)
        lines.append(f"| {name} | {cells} | {np.mean([r['accuracy_drop'] for r in rs]):+.3f} |")
    lines.append(f"| all | mean {summary['mean_corrupted_accuracy']:.3f} | | | {summary['mean_accuracy_drop']:+.3f} |")
    return "\n".join(lines)
