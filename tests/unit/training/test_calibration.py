"""Temperature scaling: the fitted T undoes a known over- or under-confidence, and ECE measures the gap."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibration import expected_calibration_error, fit_temperature, nll, softmax


def _calibrated(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is exactly calibrated: labels are drawn from it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, 3))
    probabilities = softmax(logits)
    labels = np.array([rng.choice(3, p=row) for row in probabilities])
    return logits, labels


@pytest.mark.parametrize("distortion", [0.5, 1.0, 2.5])
def test_the_fitted_temperature_undoes_a_known_distortion(distortion: float) -> None:
    logits, labels = _calibrated()
    distorted = logits * distortion  # > 1: over-confident; < 1: under-confident
    temperature = fit_temperature(distorted, labels)
    assert temperature == pytest.approx(distortion, rel=0.08)
    assert nll(distorted, labels, temperature) <= nll(distorted, labels, 1.0) + 1e-9


def test_ece_is_small_when_calibrated_and_large_when_over_confident() -> None:
    logits, labels = _calibrated()
    assert expected_calibration_error(softmax(logits), labels) < 0.02
    assert expected_calibration_error(softmax(logits * 3), labels) > 0.1
