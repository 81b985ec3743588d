"""Plan uncertainty in a minute: multi-fidelity Monte Carlo over the 1 mm and 0.5 mm grids.

Why: a plan-uncertainty sweep (:func:`cryoneuro.sweep.run_plan_sweep`) on the 0.5 mm grid the
plan was confirmed on costs ~1.7 s per sample per core (200 samples: 330 s on 2 cores); on the
1 mm screening grid it costs ~0.3 s, but its probabilities are biased (docs/sweep.md: block
verdict agrees in 94 % of samples, skin safety in 90 %, disagreements both ways). Multi-fidelity
Monte Carlo keeps the 0.5 mm answer and most of the 1 mm speed: all ``N`` samples run at 1 mm,
a random subset of ``n`` of them also at 0.5 mm, and the 1 mm model serves as a control variate
(Peherstorfer, Willcox & Gunzburger 2016, SIAM J Sci Comput 38:A3163, two-model case; the
classical control-variate estimator, e.g. Glasserman 2003, *Monte Carlo Methods in Financial
Engineering*, §4.1):

    μ̂ = h̄ₙ + α (l̄_N − l̄ₙ),     α = cov(h, l) / var(l)   (estimated on the n pairs)

with ``h`` a metric at 0.5 mm and ``l`` the same metric at 1 mm. ``μ̂`` estimates the 0.5 mm
mean (a probability for 0/1 metrics); the 1 mm bias cancels because it enters only through the
difference of two 1 mm means. Its variance is ``σ_h² [1/n − (1/n − 1/N) ρ²]`` (ρ the
correlation of h and l): with ρ² = 0.8 and n = 24, N = 200 it equals a plain 0.5 mm sweep of
about 85 samples. The interval is a 95 % percentile bootstrap (2,000 resamples of the pairs and,
separately, of the 1 mm-only samples), clipped to [0, 1] for probabilities; the plain normal
standard error is reported beside it.

The estimator needs the pairs to vary. If every 0.5 mm value is equal, α is 0, μ̂ is that
value, and both the formula and the bootstrap say "no error" — which is false: 4 safe runs of
4 do not make P(skin safe) = 1 (the CLI test found exactly that against a plain 10-sample
0.5 mm sweep: 0.8). Such an estimate is flagged ``degenerate`` and, for a probability, states
the error of the n 0.5 mm runs alone: the Wilson 95 % interval of k of n
(statsmodels ``proportion_confint``) and the Agresti–Coull standard error
``√(p̃(1 − p̃)/(n + 4))``, ``p̃ = (k + 2)/(n + 4)`` (Agresti & Coull 1998, Am Stat 52:119).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cryoneuro.errors import InputError
from cryoneuro.thermal.solver import LOW_FIDELITY_FRONT_TARGET

#: The two grids (mm): the planner's screening grid and the grid its plans are confirmed on.
LOW_VOXEL_MM = 1.0
HIGH_VOXEL_MM = 0.5
#: The low-fidelity model's step control: the 1 mm samples loosen the solver's front target
#: (``thermal.solver.LOW_FIDELITY_FRONT_TARGET``), ~40 % fewer evaluations; the 0.5 mm samples,
#: whose mean is estimated, keep the accurate default. The control variate needs the two models
#: correlated, not equal: its bias cancels and a looser step only lowers ρ a little
#: (docs/sweep.md, "Multi-fidelity").
LOW_FRONT_TARGET = LOW_FIDELITY_FRONT_TARGET

__all__ = [
    "METRICS",
    "MultiFidelityEstimate",
    "estimate",
    "run_plan_sweep_multifidelity",
    "summarise",
]

#: Replay metrics estimated: 0/1 outcomes (probabilities) and continuous ones (means).
METRICS = (
    ("complete_block", True),
    ("skin_safe", True),
    ("neurotmesis_risk", True),
    ("coverage_20", False),
    ("skin_min_c", False),
)


@dataclass(frozen=True)
class MultiFidelityEstimate:
    """One metric's multi-fidelity estimate of its 0.5 mm mean."""

    metric: str
    estimate: float
    ci95: tuple[float, float]
    standard_error: float
    alpha: float  #: control-variate coefficient cov(h, l) / var(l)
    correlation: float  #: ρ(h, l) on the pairs (nan if either is constant)
    high_mean: float  #: plain mean of the n 0.5 mm samples
    low_mean_all: float  #: mean of the N 1 mm samples
    n_high: int
    n_low: int
    degenerate: bool  #: the pairs carried no variation (see the module docstring)
    high_sd: float = math.nan  #: σ_h, the SD of the n 0.5 mm values (ddof 1)

    def plain_standard_errors(self) -> dict[str, float]:
        """The stated error beside plain Monte Carlo's: ``σ_h/√n`` (a plain 0.5 mm sweep of
        the same n high-fidelity runs), ``σ_h/√N`` (all N samples at 0.5 mm, the cost the
        estimator avoids) and the plain 0.5 mm sample count with the estimator's variance,
        ``σ_h²/SE²`` (nan when SE is 0 or σ_h unknown)."""
        sd = self.high_sd
        se = self.standard_error
        # no variation among the 0.5 mm runs (SE 0): nothing to compare, nan
        equivalent = sd * sd / (se * se) if se > 0 else math.nan
        return {
            "plain_mc_standard_error_same_hifi": sd / math.sqrt(self.n_high),
            "plain_mc_standard_error_all_hifi": sd / math.sqrt(self.n_low),
            "equivalent_plain_hifi_samples": equivalent,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "estimate": self.estimate,
            "ci95": list(self.ci95),
            "standard_error": self.standard_error,
            "alpha": self.alpha,
            "correlation": self.correlation,
            "high_mean": self.high_mean,
            "low_mean_all": self.low_mean_all,
            "n_high": self.n_high,
            "n_low": self.n_low,
            "degenerate": self.degenerate,
            "high_sd": self.high_sd,
            **self.plain_standard_errors(),
        }


def _alpha(h: np.ndarray, lo: np.ndarray) -> float:
    v = float(np.var(lo, ddof=1)) if len(lo) > 1 else 0.0
    if v == 0.0:
        return 0.0
    return float(np.cov(h, lo, ddof=1)[0, 1] / v)


def _mf(h: np.ndarray, l_pair: np.ndarray, l_rest: np.ndarray) -> float:
    l_all = np.concatenate([l_pair, l_rest])
    return float(h.mean() + _alpha(h, l_pair) * (l_all.mean() - l_pair.mean()))


def estimate(
    high: Sequence[float],
    low_paired: Sequence[float],
    low_rest: Sequence[float],
    *,
    metric: str = "metric",
    probability: bool = False,
    bootstrap: int = 2000,
    seed: int = 0,
) -> MultiFidelityEstimate:
    """The control-variate estimate of the high-fidelity mean (see the module docstring).

    ``high[i]`` and ``low_paired[i]`` are the same sample on both grids; ``low_rest`` are the
    samples run on the low-fidelity grid only.
    """
    h = np.asarray(high, dtype=float)
    lp = np.asarray(low_paired, dtype=float)
    lr = np.asarray(low_rest, dtype=float)
    if len(h) != len(lp):
        raise InputError(f"{metric}: {len(h)} high-fidelity values but {len(lp)} paired low ones")
    if len(h) < 3:
        raise InputError(f"{metric}: need at least 3 paired samples (got {len(h)})")
    if not (np.all(np.isfinite(h)) and np.all(np.isfinite(lp)) and np.all(np.isfinite(lr))):
        raise InputError(f"{metric}: non-finite values in the sweep results")
    n, n_all = len(h), len(h) + len(lr)
    mu = _mf(h, lp, lr)
    a = _alpha(h, lp)
    sh, sl = float(np.std(h, ddof=1)), float(np.std(lp, ddof=1))
    rho = float(np.corrcoef(h, lp)[0, 1]) if sh > 0 and sl > 0 else math.nan
    r2 = 0.0 if math.isnan(rho) else rho * rho
    se = math.sqrt(max(sh * sh * (1.0 / n - (1.0 / n - 1.0 / n_all) * r2), 0.0))
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, (bootstrap, n))
    hb, lb = h[i], lp[i]
    hc, lc = hb - hb.mean(axis=1, keepdims=True), lb - lb.mean(axis=1, keepdims=True)
    var_b = (lc * lc).sum(axis=1)
    a_b = np.divide((hc * lc).sum(axis=1), var_b, out=np.zeros(bootstrap), where=var_b > 0)
    if len(lr):
        rest_sum = lr[rng.integers(0, len(lr), (bootstrap, len(lr)))].sum(axis=1)
    else:
        rest_sum = np.zeros(bootstrap)
    l_all_b = (lb.sum(axis=1) + rest_sum) / n_all
    boots = hb.mean(axis=1) + a_b * (l_all_b - lb.mean(axis=1))
    lo, hi = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    if probability:
        mu_c = min(max(mu, 0.0), 1.0)
        lo, hi = max(0.0, min(lo, mu_c)), min(1.0, max(hi, mu_c))
        mu = mu_c
        if sh == 0.0:  # no variation among the 0.5 mm runs: their own binomial error
            from statsmodels.stats.proportion import proportion_confint

            k = round(float(h.sum()))
            w_lo, w_hi = proportion_confint(k, n, alpha=0.05, method="wilson")
            lo, hi = min(lo, float(w_lo), mu), max(hi, float(w_hi), mu)
            p_tilde = (k + 2) / (n + 4)
            se = math.sqrt(p_tilde * (1 - p_tilde) / (n + 4))
    return MultiFidelityEstimate(
        metric=metric,
        estimate=mu,
        ci95=(lo, hi),
        standard_error=se,
        alpha=a,
        correlation=rho,
        high_mean=float(h.mean()),
        low_mean_all=float(np.concatenate([lp, lr]).mean()),
        n_high=n,
        n_low=n_all,
        degenerate=sh == 0.0,
        high_sd=sh,
    )


def summarise(
    low: pd.DataFrame, high: pd.DataFrame, *, seed: int = 0
) -> dict[str, MultiFidelityEstimate]:
    """Estimates for :data:`METRICS` from a 1 mm table (all samples) and a 0.5 mm table (a
    subset, matched on ``sample``)."""
    if "sample" not in low or "sample" not in high:
        raise InputError("both tables need a 'sample' column")
    if high["sample"].duplicated().any() or low["sample"].duplicated().any():
        raise InputError("duplicated sample numbers in the sweep tables")
    missing = set(high["sample"]) - set(low["sample"])
    if missing:
        raise InputError(f"0.5 mm samples {sorted(missing)[:5]} are not in the 1 mm table")
    paired = low.set_index("sample").loc[high["sample"]]
    rest = low[~low["sample"].isin(high["sample"])]
    out = {}
    for name, prob in METRICS:
        if name not in high or name not in low:
            continue
        out[name] = estimate(
            high[name].astype(float).to_numpy(),
            paired[name].astype(float).to_numpy(),
            rest[name].astype(float).to_numpy(),
            metric=name,
            probability=prob,
            seed=seed,
        )
    return out


def run_plan_sweep_multifidelity(
    plan: Any,
    spec: Any,
    *,
    samples: int = 200,
    high_samples: int = 24,
    seed: int = 0,
    workers: int = 2,
    scheduler: str | None = None,
    client: Any = None,
    out_dir: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, MultiFidelityEstimate]]:
    """All ``samples`` at 1 mm (step control ``LOW_FRONT_TARGET``), a random ``high_samples`` of
    them (chosen from ``seed``) also at 0.5 mm (the solver's default), on one Dask client;
    returns (1 mm table, 0.5 mm table, estimates). With ``out_dir``
    every finished row is appended to ``out_dir/partial.csv`` with its ``voxel_mm``."""
    from cryoneuro import sweep

    if not (3 <= high_samples <= samples):
        raise InputError(
            f"--hifi-samples must be between 3 and --samples ({samples}) (got {high_samples})"
        )
    if client is None:
        with sweep.dask_client(scheduler, workers) as own:
            return run_plan_sweep_multifidelity(
                plan,
                spec,
                samples=samples,
                high_samples=high_samples,
                seed=seed,
                client=own,
                out_dir=out_dir,
                progress=progress,
            )
    from cryoneuro.planning.replay import context_for

    inputs = sweep.plan_samples(spec, samples, seed)
    pick = np.sort(np.random.default_rng(seed + 1).choice(samples, high_samples, replace=False))
    low_records = inputs.to_dict("records")
    high_records = inputs.iloc[pick].to_dict("records")
    text = plan.to_json()
    for voxel_mm in (LOW_VOXEL_MM, HIGH_VOXEL_MM):
        context_for(text, voxel_mm)  # a plan that cannot be replayed fails here, once
    # One submission, the 0.5 mm samples first: they cost ~10x a 1 mm sample, so started first
    # (longest-processing-time order) the 1 mm samples fill the workers to the end instead of
    # one worker finishing a 0.5 mm sample alone after a barrier between two batches.
    levels = [(HIGH_VOXEL_MM, r) for r in high_records] + [(LOW_VOXEL_MM, r) for r in low_records]

    def row(i: int, result: dict[str, Any]) -> dict[str, Any]:
        voxel_mm, record = levels[i]
        return {"voxel_mm": voxel_mm, **record, **result}

    results = sweep.run_tasks(
        sweep.run_plan_sample,
        [
            (
                text,
                v,
                {k: float(x) for k, x in r.items()},
                LOW_FRONT_TARGET if v == LOW_VOXEL_MM else None,
            )
            for v, r in levels
        ],
        name=f"plan-mf-{seed}",
        client=client,
        row=row,
        partial=out_dir / "partial.csv" if out_dir else None,
        progress=progress,
    )
    rows = [{**r, **res} for (_v, r), res in zip(levels, results, strict=True)]
    high = pd.DataFrame(rows[:high_samples])
    low = pd.DataFrame(rows[high_samples:])
    return low, high, summarise(low, high, seed=seed)
