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
