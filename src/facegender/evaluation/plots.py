"""Pictures of a run: training curves, confusion matrix, ROC and precision-recall curves (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from facegender import CLASS_NAMES


def _save(fig: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def training_curves(history: dict[str, list[float]], out_dir: Path) -> list[Path]:
    """accuracy_curve.png and loss_curve.png, train and validation per epoch."""
    written = []
    for metric, name in (("accuracy", "accuracy_curve.png"), ("loss", "loss_curve.png")):
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if history.get(key):
                epochs = np.arange(1, len(history[key]) + 1)
                ax.plot(epochs, history[key], marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"training {metric}")
        ax.grid(alpha=0.3)
        ax.legend()
        _save(fig, out_dir / name)
        written.append(out_dir / name)
    return written


def confusion_matrix_plot(matrix: list[list[int]], path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(CLASS_NAMES)).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format="d"
    )
    ax.set_title(title)
    _save(fig, path)


def roc_pr_plots(y_true: np.ndarray, p_male: np.ndarray, out_dir: Path) -> None:
    """roc_curve.png and pr_curve.png with male as the positive class."""
    if len(np.unique(y_true)) < 2:
        return  # curves need both classes
    fig, ax = plt.subplots(figsize=(5, 4.5))
    RocCurveDisplay.from_predictions(y_true, p_male, pos_label=1, name="p(male)", ax=ax)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_title("ROC curve (positive class: male)")
    _save(fig, out_dir / "roc_curve.png")
    fig, ax = plt.subplots(figsize=(5, 4.5))
    PrecisionRecallDisplay.from_predictions(y_true, p_male, pos_label=1, name="p(male)", ax=ax)
    ax.set_title("Precision-recall curve (positive class: male)")
    _save(fig, out_dir / "pr_curve.png")


def reliability_diagram(y_true: np.ndarray, p_male: np.ndarray, path: Path, ece: float) -> None:
    """Observed male rate against mean predicted p(male), 10 bins, with the diagonal of perfect calibration."""
    from sklearn.calibration import CalibrationDisplay

    fig, ax = plt.subplots(figsize=(5, 4.5))
    CalibrationDisplay.from_predictions(y_true, p_male, n_bins=10, pos_label=1, name="p(male)", ax=ax)
    ax.set_title(f"Reliability diagram (ECE {ece:.3f})")
    _save(fig, path)


def threshold_sweep_plot(sweep: dict[str, list], chosen: float, path: Path) -> None:
    """Precision, recall and macro-F1 against the threshold on p(male), the chosen threshold marked."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    t = sweep["threshold"]
    ax.plot(t, sweep["macro_f1"], color="black", linewidth=2, label="macro-F1")
    for name, style in (("female", "-"), ("male", "--")):
        ax.plot(t, sweep[f"{name}_precision"], linestyle=style, color="tab:blue", label=f"{name} precision")
        ax.plot(t, sweep[f"{name}_recall"], linestyle=style, color="tab:orange", label=f"{name} recall")
    ax.axvline(chosen, color="red", linewidth=1, label=f"threshold {chosen:.3f}")
    ax.set_xlabel("threshold on p(male)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower center", ncol=3)
    ax.set_title("Threshold sweep")
    _save(fig, path)
