"""Probability calibration: temperature scaling, expected calibration error, Brier score. Pure functions.

apply_temperature needs NumPy only (it runs at inference); fitting and scoring import SciPy/scikit-learn.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(p: np.ndarray, temperature: float) -> np.ndarray:
    """sigmoid(logit(p) / T): T > 1 softens over-confident probabilities, T < 1 sharpens them."""
    return 1.0 / (1.0 + np.exp(-logit(p) / temperature))


def _nll(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit_temperature(y_true: np.ndarray, p: np.ndarray) -> float:
    """The temperature in [0.05, 20] that minimises the negative log-likelihood of y_true (1 = male)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y_true, dtype=np.float64)
    if len(y) == 0 or len(np.unique(y)) < 2:
        return 1.0
    z = logit(p)
    result = minimize_scalar(
        lambda log_t: _nll(y, 1.0 / (1.0 + np.exp(-z / np.exp(log_t)))),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
    )
    return float(np.exp(result.x))


def expected_calibration_error(y_true: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over `bins` equal-width bins of p(male): the bin-size-weighted mean |observed rate - mean p|."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / len(y))


def brier(y_true: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import brier_score_loss

    return float(brier_score_loss(np.asarray(y_true), np.asarray(p), pos_label=1))
