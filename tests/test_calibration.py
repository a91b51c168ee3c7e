import numpy as np
import pytest

from facegender.runtime.calibration import apply_temperature, brier, expected_calibration_error, fit_temperature


def test_temperature_recovers_overconfidence():
    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.05, 0.95, 5000)
    y = (rng.random(5000) < true_p).astype(int)
    logits = np.log(true_p / (1 - true_p))
    overconfident = 1 / (1 + np.exp(-logits * 3.0))  # as if T = 1/3 had been applied
    t = fit_temperature(y, overconfident)
    assert t == pytest.approx(3.0, rel=0.15)
    calibrated = apply_temperature(overconfident, t)
    assert expected_calibration_error(y, calibrated) < expected_calibration_error(y, overconfident) / 2
    assert brier(y, calibrated) < brier(y, overconfident)


def test_temperature_keeps_order_and_identity():
    p = np.array([0.1, 0.3, 0.5, 0.9])
    np.testing.assert_allclose(apply_temperature(p, 1.0), p, atol=1e-9)
    assert np.all(np.diff(apply_temperature(p, 2.5)) > 0)
    assert apply_temperature(np.array([0.5]), 7.0)[0] == pytest.approx(0.5)


def test_ece_by_hand():
    y = np.array([0, 1, 1, 1])
    p = np.array([0.05, 0.95, 0.95, 0.55])  # bins: [0.0-0.1]: |0-0.05|; [0.9-1.0]: |1-0.95| x2; [0.5-0.6]: |1-0.55|
    assert expected_calibration_error(y, p) == pytest.approx((0.05 + 0.05 * 2 + 0.45) / 4)
    assert fit_temperature(np.array([1, 1]), np.array([0.6, 0.7])) == 1.0  # one class: nothing to fit


def test_certain_probabilities_stay_finite_and_float32_keeps_its_precision():
    # p = 0 and 1 are clipped to 1e-7 and 1 - 1e-7: at T = 2, sigmoid(logit(p) / 2) = sqrt(p) / (sqrt(p) + sqrt(1 - p))
    soft = np.sqrt(1e-7) / (np.sqrt(1e-7) + np.sqrt(1 - 1e-7))
    np.testing.assert_allclose(apply_temperature(np.array([0.0, 1.0]), 2.0), [soft, 1 - soft], rtol=1e-9)
    out = apply_temperature(np.float32([0.9, 0.3]), 1.0)  # a network's float32 output, scored in float64
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, np.float32([0.9, 0.3]).astype(np.float64), rtol=0, atol=1e-12)


def test_fit_temperature_sharpens_underconfidence_and_stops_at_its_bound():
    rng = np.random.default_rng(1)
    true_p = rng.uniform(0.02, 0.98, 5000)
    y = (rng.random(5000) < true_p).astype(int)
    underconfident = apply_temperature(true_p, 2.0)
    assert fit_temperature(y, underconfident) == pytest.approx(0.5, rel=0.15)
    # predictions that say nothing about the label: the flattest temperature allowed, 20
    assert fit_temperature(np.array([0, 1, 0, 1]), np.array([0.8, 0.8, 0.2, 0.2])) == pytest.approx(20.0, rel=1e-3)
    assert fit_temperature(np.array([]), np.array([])) == 1.0


def test_ece_bins_by_hand():
    # ten predictions, one per default bin, each wrong the other way from its neighbour: merging any two bins
    # (other edges, other bin counts) would lower the ECE
    p = np.arange(10) / 10 + 0.05
    y = np.array([1, 0] * 5)
    assert expected_calibration_error(y, p) == pytest.approx(np.mean(np.abs(y - p)))
    assert expected_calibration_error(y, p) == pytest.approx(0.55)
    # 0.15 and 0.19 share the bin (0.1, 0.2]: one group, |0.5 - 0.17|; with 4 bins as well
    assert expected_calibration_error(np.array([0, 1]), np.array([0.15, 0.19])) == pytest.approx(0.33)
    # bins are closed on the right: 0.1 is in (0, 0.1], apart from 0.15
    assert expected_calibration_error(np.array([0, 1]), np.array([0.1, 0.15])) == pytest.approx((0.1 + 0.85) / 2)
    assert expected_calibration_error(np.array([0, 1]), np.array([0.1, 0.15]), bins=4) == pytest.approx(0.375)
    assert expected_calibration_error(np.array([1]), np.array([0.7])) == pytest.approx(0.3)
    assert expected_calibration_error(np.array([]), np.array([])) == 0.0
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0  # the end points fall in the end bins


def test_brier_by_hand():
    assert brier(np.array([0, 1, 1]), np.array([0.1, 0.8, 0.4])) == pytest.approx((0.01 + 0.04 + 0.36) / 3)
    assert brier([1, 1], [0.5, 1.0]) == pytest.approx(0.125)
