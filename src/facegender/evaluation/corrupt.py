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

from facegender.data import Dataset
from facegender.errors import FaceGenderError, ImageError
from facegender.evaluation import metrics
from facegender.faces.images import load_image
from facegender.progress import bar
from facegender.runtime.inference import Classifier

SEVERITIES = (1, 2, 3)


def corruption(name: str, severity: int) -> Any:
    """The albumentations transform for one condition at severity 1 (mild) to 3 (severe), always applied."""
    import albumentations as A

    s = severity - 1
    table = {
        "blur": lambda: A.GaussianBlur(blur_limit=0, sigma_limit=((1.0, 2.0, 3.5)[s],) * 2, p=1),
        "motion_blur": lambda: A.MotionBlur(blur_limit=((7, 7), (13, 13), (21, 21))[s], p=1),
        "fog": lambda: A.RandomFog(fog_coef_range=((0.3, 0.3), (0.5, 0.5), (0.8, 0.8))[s], alpha_coef=0.1, p=1),
        "rain": lambda: A.RandomRain(rain_type=("drizzle", "heavy", "torrential")[s], p=1),
        "low_light": lambda: A.RandomGamma(gamma_limit=((180, 180), (260, 260), (380, 380))[s], p=1),
        "noise": lambda: A.GaussNoise(std_range=((0.08, 0.08), (0.16, 0.16), (0.3, 0.3))[s], p=1),
        "jpeg": lambda: A.ImageCompression(quality_range=((30, 30), (15, 15), (6, 6))[s], p=1),
        "downscale": lambda: A.Downscale(scale_range=((0.5, 0.5), (0.3, 0.3), (0.15, 0.15))[s], p=1),
        "overexposure": lambda: A.RandomBrightnessContrast(
            brightness_limit=((0.3, 0.3), (0.5, 0.5), (0.7, 0.7))[s], contrast_limit=(-0.3, -0.3), p=1
        ),
    }
    return table[name]()


CONDITIONS = ("blur", "motion_blur", "fog", "rain", "low_light", "noise", "jpeg", "downscale", "overexposure")


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
