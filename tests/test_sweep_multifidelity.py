"""Multi-fidelity (control-variate) estimate of a plan sweep's 0.5 mm probabilities.

Independent expectations: synthetic paired data with a known high-fidelity mean (the estimator
must be unbiased, its interval must cover at about the nominal rate, and its variance must
match the analytic two-model formula of Peherstorfer, Willcox & Gunzburger 2016), and the exact
identity that a perfectly correlated low-fidelity model returns the low-fidelity mean of all N.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryoneuro.errors import InputError
from cryoneuro.sweep_multifidelity import estimate, summarise


def _draw(rng, p, flip, n_all):
    """h ~ Bernoulli(p); l = h with each value flipped with probability ``flip`` (a biased,
    correlated cheap model, like the 1 mm grid against 0.5 mm: ~6 % of verdicts differ)."""
    h = (rng.random(n_all) < p).astype(float)
    flips = rng.random(n_all) < flip
    lo = np.where(flips, 1.0 - h, h)
    return h, lo


def test_identical_models_give_the_low_fidelity_mean_of_all_samples():
    rng = np.random.default_rng(0)
    h, _ = _draw(rng, 0.7, 0.0, 200)
    est = estimate(h[:20], h[:20], h[20:], probability=True)
    assert est.alpha == pytest.approx(1.0)
    assert est.estimate == pytest.approx(h.mean(), abs=1e-12)


def test_unbiased_with_nominal_coverage_and_the_analytic_variance():
    rng = np.random.default_rng(42)
    p, flip, n, n_all, reps = 0.85, 0.06, 24, 200, 300
    est, covered, se = [], 0, []
    for r in range(reps):
        h, lo = _draw(rng, p, flip, n_all)
        e = estimate(h[:n], lo[:n], lo[n:], probability=True, bootstrap=1000, seed=r)
        est.append(e.estimate)
        se.append(e.standard_error)
        covered += e.ci95[0] <= p <= e.ci95[1]
    est = np.asarray(est)
    # unbiased: the mean of 300 estimates is within 3 standard errors of p
    assert abs(est.mean() - p) < 3 * est.std(ddof=1) / np.sqrt(reps)
    # the spread matches the analytic variance sigma^2 [1/n - (1/n - 1/N) rho^2] (+-25 %)
    sigma2 = p * (1 - p)
    cov = p * (1 - p) * (1 - 2 * flip)  # cov(h, l) for symmetric flips
    var_l = (p * (1 - flip) + (1 - p) * flip) * (1 - (p * (1 - flip) + (1 - p) * flip))
    rho2 = cov**2 / (sigma2 * var_l)
    analytic = sigma2 * (1 / n - (1 / n - 1 / n_all) * rho2)
    assert est.var(ddof=1) == pytest.approx(analytic, rel=0.25)
    # well below a plain mean of the n high-fidelity samples (analytically 0.44 of it here)
    assert est.var(ddof=1) < 0.7 * sigma2 / n
    # the percentile-bootstrap interval covers p at about the nominal 95 %
    assert 0.88 <= covered / reps <= 0.99


def test_summarise_pairs_by_sample_number_and_refuses_bad_tables():
    rng = np.random.default_rng(3)
    h, lo = _draw(rng, 0.6, 0.05, 60)
    low = pd.DataFrame({"sample": np.arange(60), "complete_block": lo, "skin_min_c": lo * 3})
    pick = rng.choice(60, 12, replace=False)
    high = pd.DataFrame({"sample": pick, "complete_block": h[pick], "skin_min_c": h[pick] * 3})
    out = summarise(low, high)
    want = estimate(h[pick], lo[pick], np.delete(lo, pick), probability=True)
    assert out["complete_block"].estimate == pytest.approx(want.estimate)
    assert out["skin_min_c"].estimate == pytest.approx(3 * want.estimate, rel=1e-9)
    with pytest.raises(InputError, match="duplicated"):
        summarise(low, pd.concat([high, high.iloc[:1]]))
    with pytest.raises(InputError, match="not in the 1 mm table"):
        summarise(low.iloc[:5], high)
    with pytest.raises(InputError, match="at least 3"):
        estimate([1.0, 0.0], [1.0, 0.0], [1.0])
