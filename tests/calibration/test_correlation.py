"""Correlation: DCC recovery, the DCC likelihood against a plain loop, EWMA against its
definition, PSD checks and the nearest-correlation repair (Higham 2002's example)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calibration.correlation import (
    ccc_correlation,
    dcc_loglik,
    ensure_psd,
    ewma_correlation,
    ewma_correlation_path,
    fit_dcc,
    is_psd,
    simulate_dcc,
    stressed_correlations,
)
from calibration.stress import StressWindow

QBAR = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]])


@pytest.mark.parametrize(("a", "b", "seed"), [(0.05, 0.90, 1), (0.03, 0.95, 2), (0.08, 0.85, 3)])
def test_dcc_recovers_known_parameters(a: float, b: float, seed: int) -> None:
    z = simulate_dcc(a, b, QBAR, 3000, np.random.default_rng(seed))
    fit = fit_dcc(z)
    assert fit.converged and fit.a + fit.b < 1
    assert abs(fit.a - a) < 3 * fit.se_a, (fit.a, fit.se_a)
    assert abs(fit.b - b) < 3 * fit.se_b, (fit.b, fit.se_b)
    # the estimate is at least as likely as the truth (it is the maximum)
    assert fit.loglik >= dcc_loglik((a, b), z) - 1e-8


def naive_dcc_loglik(a: float, b: float, z: np.ndarray) -> float:
    """Engle (2002)'s correlation log-likelihood, one day at a time."""
    t_obs = len(z)
    qbar = z.T @ z / t_obs
    q = qbar.copy()
    total = 0.0
    for t in range(t_obs):
        d = np.sqrt(np.diag(q))
        r = q / np.outer(d, d)
        total += -0.5 * (np.log(np.linalg.det(r)) + z[t] @ np.linalg.solve(r, z[t]) - z[t] @ z[t])
        q = (1 - a - b) * qbar + a * np.outer(z[t], z[t]) + b * q
    return total


def test_vectorised_dcc_likelihood_equals_the_plain_loop() -> None:
    z = simulate_dcc(0.04, 0.93, QBAR, 800, np.random.default_rng(9))
    for a, b in [(0.04, 0.93), (0.1, 0.5), (0.0, 0.0)]:
        assert dcc_loglik((a, b), z) == pytest.approx(
            naive_dcc_loglik(a, b, z), rel=1e-12, abs=1e-9
        )


def test_ewma_correlation_follows_its_recursion() -> None:
    rng = np.random.default_rng(4)
    z = rng.standard_normal((300, 2))
    path = ewma_correlation_path(z, 0.94)
    q = z.T @ z / len(z)
    for t in range(len(z)):
        q = 0.94 * q + 0.06 * np.outer(z[t], z[t])
    d = np.sqrt(np.diag(q))
    np.testing.assert_allclose(path[-1], q / np.outer(d, d), rtol=1e-10)
    assert ewma_correlation(pd.DataFrame(z, columns=["A", "B"])).assets == ("A", "B")


def test_nearest_correlation_matches_higham_2002() -> None:
    """Higham (2002), IMA J. Numer. Anal. 22, 329-343, section 4: the nearest correlation
    matrix to [[1,1,0],[1,1,1],[0,1,1]] has off-diagonals 0.7607 and 0.1573."""
    repaired, report = ensure_psd(np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]]))
    assert repaired[0, 1] == pytest.approx(0.7607, abs=1e-4)
    assert repaired[1, 2] == pytest.approx(0.7607, abs=1e-4)
    assert repaired[0, 2] == pytest.approx(0.1573, abs=1e-4)
    assert report.repaired and not report.psd_before
    assert report.min_eigenvalue_before == pytest.approx(1 - np.sqrt(2))
    assert report.min_eigenvalue_after >= -1e-10
    assert report.frobenius_change == pytest.approx(0.5278, abs=1e-4)


def test_a_psd_matrix_is_left_alone() -> None:
    matrix, report = ensure_psd(QBAR)
    np.testing.assert_array_equal(matrix, QBAR)
    assert not report.repaired and report.psd_before and report.frobenius_change == 0


def test_ccc_and_stressed_correlations() -> None:
    rng = np.random.default_rng(5)
    index = pd.date_range("2022-01-01", periods=400, freq="D")
    common = rng.standard_normal(400)
    frame = pd.DataFrame(
        {
            "A": common + 0.5 * rng.standard_normal(400),
            "B": common + 0.5 * rng.standard_normal(400),
            "C": rng.standard_normal(400),
        },
        index=index,
    )
    frame.loc["2022-05-01":"2022-05-20", "C"] = frame.loc[
        "2022-05-01":"2022-05-20", "A"
    ]  # contagion
    frame.loc[:"2022-04-30", "B"] = np.nan  # B starts later
    ccc = ccc_correlation(frame.dropna())
    assert is_psd(ccc.matrix)
    windows = (
        StressWindow(
            "spring", pd.Timestamp("2022-05-01").date(), pd.Timestamp("2022-05-20").date(), "test"
        ),
        StressWindow(
            "winter", pd.Timestamp("2021-01-01").date(), pd.Timestamp("2021-01-31").date(), "none"
        ),
    )
    stressed = stressed_correlations(frame, windows)
    assert set(stressed) == {"spring"}  # no data in the winter window
    spring = stressed["spring"].as_frame()
    assert spring.loc["A", "C"] == pytest.approx(1.0)
    assert is_psd(stressed["spring"].matrix)


def test_dcc_input_validation() -> None:
    with pytest.raises(ValueError, match="two series"):
        fit_dcc(np.zeros((500, 1)))
    with pytest.raises(ValueError, match="at least 100"):
        fit_dcc(np.ones((50, 2)))
    with pytest.raises(ValueError, match="a \\+ b < 1"):
        simulate_dcc(0.5, 0.6, QBAR, 10, np.random.default_rng(0))
