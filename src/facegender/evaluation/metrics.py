"""Metrics and threshold tuning: pure functions over arrays (labels 0 = female, 1 = male; p = p(male))."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from facegender import CLASS_NAMES

THRESHOLD_GRID = np.round(np.arange(0.01, 0.9901, 0.005), 3)


def predict_labels(p_male: np.ndarray, threshold: float) -> np.ndarray:
    """1 (male) where p_male >= threshold, else 0 (female)."""
    return (np.asarray(p_male) >= threshold).astype(np.int64)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(f1_score(y_true, y_pred, labels=[0, 1], average="macro", zero_division=0))


def tune_threshold(y_true: np.ndarray, p_male: np.ndarray, grid: np.ndarray = THRESHOLD_GRID) -> float:
    """The threshold on p(male) that maximises macro-F1; ties go to the threshold nearest 0.5."""
    y_true = np.asarray(y_true)
    p_male = np.asarray(p_male, dtype=np.float64)
    if len(y_true) == 0:
        return 0.5
    scores = np.array([macro_f1(y_true, predict_labels(p_male, t)) for t in grid])
    best = scores.max()
    candidates = grid[np.isclose(scores, best, rtol=0, atol=1e-12)]
    return float(candidates[np.argmin(np.abs(candidates - 0.5))])


def classification_metrics(y_true: np.ndarray, p_male: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    y_true = np.asarray(y_true)
    y_pred = predict_labels(p_male, threshold)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=[0, 1], zero_division=0)
    matrix = confusion_matrix(y_true, y_pred, labels=[0, 1])
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": macro_f1(y_true, y_pred),
        "threshold": float(threshold),
        "n": len(y_true),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(CLASS_NAMES)
        },
        "confusion_matrix": matrix.tolist(),
        "labels": list(CLASS_NAMES),
    }


def slice_metrics(
    y_true: np.ndarray, p_male: np.ndarray, threshold: float, columns: dict[str, list[str]]
) -> dict[str, dict[str, dict[str, Any]]]:
    """For each column (e.g. condition) and each of its values: accuracy, macro-F1, per-class recall and n."""
    y_true = np.asarray(y_true)
    y_pred = predict_labels(p_male, threshold)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for column, values in columns.items():
        values_arr = np.asarray(values)
        distinct = sorted(set(values))
        if column == "identity" or len(distinct) > 50:  # not a categorical slice
            continue
        if set(distinct) <= {*CLASS_NAMES, "unknown"}:  # the label itself (e.g. `gender`): per_class says it
            continue
        out[column] = {}
        for value in distinct:
            mask = values_arr == value
            out[column][value] = {
                "accuracy": float(np.mean(y_true[mask] == y_pred[mask])),
                "macro_f1": macro_f1(y_true[mask], y_pred[mask]),
                "recall": {
                    name: float(np.mean(y_pred[mask & (y_true == i)] == i)) if np.any(mask & (y_true == i)) else None
                    for i, name in enumerate(CLASS_NAMES)
                },
                "n": int(mask.sum()),
            }
    return out


def report_text(y_true: np.ndarray, p_male: np.ndarray, threshold: float) -> str:
    """scikit-learn's classification report, headed by the threshold used."""
    y_pred = predict_labels(p_male, threshold)
    body = classification_report(
        y_true, y_pred, labels=[0, 1], target_names=list(CLASS_NAMES), digits=4, zero_division=0
    )
    return f"threshold on p(male): {threshold:.3f}\n\n{body}"


def slice_gaps(slices: dict[str, dict[str, dict[str, Any]]], min_n: int = 5) -> dict[str, float]:
    """Per column, the accuracy of its best slice minus its worst (values with at least min_n images, 'unknown'
    left out): 0 means every group is served equally well (e.g. the race gap)."""
    gaps = {}
    for column, values in slices.items():
        accuracies = [s["accuracy"] for value, s in values.items() if s["n"] >= min_n and value != "unknown"]
        if len(accuracies) >= 2:
            gaps[column] = float(max(accuracies) - min(accuracies))
    return gaps


def worst_slice(slices: dict[str, dict[str, dict[str, Any]]], min_n: int = 5) -> dict[str, Any] | None:
    """The slice (column, value) with the lowest accuracy among those with at least min_n images."""
    candidates = [
        {"column": column, "value": value, **stats}
        for column, values in slices.items()
        for value, stats in values.items()
        if stats["n"] >= min_n
    ]
    return min(candidates, key=lambda s: s["accuracy"]) if candidates else None


def threshold_sweep(y_true: np.ndarray, p_male: np.ndarray, grid: np.ndarray = THRESHOLD_GRID) -> dict[str, list]:
    """Per threshold: macro-F1 and female/male precision and recall (for the sweep plot)."""
    out: dict[str, list] = {"threshold": [float(t) for t in grid], "macro_f1": []}
    for name in CLASS_NAMES:
        out[f"{name}_precision"], out[f"{name}_recall"] = [], []
    for t in grid:
        pred = predict_labels(p_male, t)
        precision, recall, _, _ = precision_recall_fscore_support(y_true, pred, labels=[0, 1], zero_division=0)
        out["macro_f1"].append(macro_f1(y_true, pred))
        for i, name in enumerate(CLASS_NAMES):
            out[f"{name}_precision"].append(float(precision[i]))
            out[f"{name}_recall"].append(float(recall[i]))
    return out
