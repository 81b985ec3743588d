"""Evidence synthesis, the computation: effect sizes, random-effects pooling, meta-regression.

NICE HTG652 allows percutaneous cryoablation of peripheral neuromas only in research because the
evidence is a handful of small case series. This module pools what there is — transparently,
with every assumption exposed as a sensitivity analysis — so that a trial team can see how
little is known and size a study accordingly.

Effect sizes
    * single-arm mean change (pre/post), ``y = mean_followup − mean_baseline`` (negative = less
      pain). When the SD of the change is not reported it is imputed from the two SDs and an
      assumed pre/post correlation r (Cochrane Handbook §6.5.2.8):
      ``SD_change = √(SD₁² + SD₂² − 2·r·SD₁·SD₂)``, ``var = SD_change² / n``. r defaults to 0.5
      and is varied over {0.2, 0.5, 0.8}. When a CI of the change is reported it is used
      instead: ``SE = (upper − lower) / (2·q)``, q = z₀.₉₇₅ = 1.959964 or t₀.₉₇₅,ₙ₋₁ (§6.5.2.3).
    * single-arm proportions on the logit scale (default) or Freeman–Tukey double arcsine.
    * two-arm mean differences (RCTs) given as difference + 95 % CI, SE back-calculated as above.

Pooling (:func:`pool`, metafor's ``rma.uni`` definitions, checked against metafor 3.8-1 in
tests/analysis/test_meta_metafor.py)
    fixed effect (inverse variance), random effects with DerSimonian–Laird (1986), Paule–Mandel
    (1982; the generalised Q equation solved with a bracketing root finder) or REML τ², a
    Q-profile 95 % CI of τ² (Viechtbauer 2007), Hartung–Knapp(–Sidik–Jonkman) CIs, Cochran's Q
    with its χ² p-value, I² (Higgins & Thompson 2002) and the prediction interval
    ``μ̂ ± t₀.₉₇₅,ₖ₋₂ · √(τ² + SE(μ̂)²)`` (Higgins, Thompson & Spiegelhalter 2009; k ≥ 3).
    Generic ``yi, vi`` files and 2×2 counts (log RR, log OR, RD as metafor ``escalc``) are pooled
    by :func:`analyse_effects`.

The synthesis is split by role: this module computes; :mod:`~cryoneuro.analysis.meta_spec`
holds the outcomes, methods and defaults; :mod:`~cryoneuro.analysis.meta_run` loads the evidence
and runs the analyses (:func:`run_meta`, :func:`analyse_effects`);
:mod:`~cryoneuro.analysis.meta_plots` draws (:func:`forest_plot`, :func:`sensitivity_plot`);
:mod:`~cryoneuro.analysis.meta_io` reads generic effect files and writes the report. The names
that moved are still importable from here (loaded on first use), for callers of the old path.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from cryoneuro.analysis.meta_spec import (
    CONTINUITY as CONTINUITY,
)
from cryoneuro.analysis.meta_spec import (
    DEFAULT_OUTCOMES as DEFAULT_OUTCOMES,
)
from cryoneuro.analysis.meta_spec import (
    MEASURES as MEASURES,
)
from cryoneuro.analysis.meta_spec import (
    METHOD_LABEL as METHOD_LABEL,
)
from cryoneuro.analysis.meta_spec import (
    METHODS as METHODS,
)
from cryoneuro.analysis.meta_spec import (
    OUTCOMES as OUTCOMES,
)
from cryoneuro.analysis.meta_spec import (
    R_DEFAULT as R_DEFAULT,
)
from cryoneuro.analysis.meta_spec import (
    R_SENSITIVITY as R_SENSITIVITY,
)
from cryoneuro.analysis.meta_spec import (
    Z975 as Z975,
)
from cryoneuro.analysis.meta_spec import (
    natural as natural,
)
from cryoneuro.errors import InputError

# --------------------------------------------------------------------------- effect sizes


def sd_change(sd_baseline: float, sd_followup: float, r: float = R_DEFAULT) -> float:
    """SD of a within-person change from the two time-point SDs and their correlation r.

    ``SD_change = √(SD₁² + SD₂² − 2·r·SD₁·SD₂)`` (Cochrane Handbook §6.5.2.8). Case series rarely
    report it, and r is almost never reported, hence the sensitivity analysis over r.
    """
    if not -1.0 <= r <= 1.0:
        raise InputError(f"r = {r:g} is not a correlation; use a value in [-1, 1] (e.g. 0.5)")
    if sd_baseline < 0 or sd_followup < 0:
        raise InputError("an SD is negative; SDs are ≥ 0")
    value = sd_baseline**2 + sd_followup**2 - 2.0 * r * sd_baseline * sd_followup
    return math.sqrt(max(value, 0.0))


def se_from_ci(lower: float, upper: float, df: int | None = None, level: float = 0.95) -> float:
    """Standard error from a symmetric confidence interval: ``(upper − lower) / (2·q)``.

    q is the normal quantile (1.959964 for 95 %) or, for a small-sample CI of a mean, the t
    quantile with ``df`` degrees of freedom (Cochrane Handbook §6.5.2.2–6.5.2.3).
    """
    if not upper > lower:
        raise InputError(f"CI ({lower:g}, {upper:g}): the upper limit must exceed the lower")
    p = 0.5 + level / 2.0
    q = stats.norm.ppf(p) if df is None else stats.t.ppf(p, df)
    return (upper - lower) / (2.0 * q)


def mean_change(
    baseline_mean: float,
    followup_mean: float,
    n: int,
    *,
    baseline_sd: float = math.nan,
    followup_sd: float = math.nan,
    r: float = R_DEFAULT,
    change: float = math.nan,
) -> tuple[float, float]:
    """Single-arm mean change and its variance ``SD_change²/n`` with SD_change imputed from r.

    ``change`` overrides ``followup − baseline`` when the paper reports the mean change itself
    (paired patients only). Returns ``(y, var)``.
    """
    y = change if not math.isnan(change) else followup_mean - baseline_mean
    sd = sd_change(baseline_sd, followup_sd, r)
    return y, sd**2 / n


def logit_proportion(events: int, total: int, cc: float = CONTINUITY) -> tuple[float, float, bool]:
    """Logit proportion ``log(x/(n−x))`` and variance ``1/x + 1/(n−x)``.

    When x = 0 or x = n the logit is infinite, so ``cc`` (0.5) is added to events and
    non-events of that study only (metafor's ``escalc`` default, ``add=1/2, to="only0"``).
    Returns ``(y, var, corrected)``.
    """
    x, nx = float(events), float(total - events)
    corrected = x == 0 or nx == 0
    if corrected:
        x, nx = x + cc, nx + cc
    return math.log(x / nx), 1.0 / x + 1.0 / nx, corrected


def ft_proportion(events: float, total: float) -> tuple[float, float]:
    """Freeman–Tukey double arcsine (metafor ``PFT`` scale) and its variance ``1/(4n+2)``.

    ``y = ½[asin√(x/(n+1)) + asin√((x+1)/(n+1))]``; defined at 0 and n without correction.
    """
    n = float(total)
    y = 0.5 * (
        math.asin(math.sqrt(events / (n + 1))) + math.asin(math.sqrt((events + 1) / (n + 1)))
    )
    return y, 1.0 / (4.0 * n + 2.0)


def inv_logit(y: float) -> float:
    return 1.0 / (1.0 + math.exp(-y))


def inv_ft(y: float, n: float) -> float:
    """Miller (1978) inverse of the double arcsine at sample size n (harmonic mean when pooled).

    ``p = ½[1 − sgn(cos 2y)·√(1 − (sin 2y + (sin 2y − 1/sin 2y)/n)²)]``, clamped to 0 and 1
    outside the range the transform can take at this n (as metafor's ``transf.ipft``).
    """
    if y <= ft_proportion(0, n)[0]:
        return 0.0
    if y >= ft_proportion(n, n)[0]:
        return 1.0
    s = math.sin(2.0 * y)
    inner = max(0.0, 1.0 - (s + (s - 1.0 / s) / n) ** 2)
    p = 0.5 * (1.0 - math.copysign(1.0, math.cos(2.0 * y)) * math.sqrt(inner))
    return min(max(p, 0.0), 1.0)


# --------------------------------------------------------------------------- pooling


@dataclass
class Pooled:
    """One pooled estimate (fixed effect or one random-effects τ² estimator)."""

    method: str
    k: int
    estimate: float
    se: float
    ci_lower: float
    ci_upper: float
    z: float
    p: float
    tau2: float
    i2: float
    q: float
    q_df: int
    q_p: float
    pi_lower: float = math.nan
    pi_upper: float = math.nan
    hk_ci_lower: float = math.nan
    hk_ci_upper: float = math.nan
    tau2_ci_lower: float = math.nan
    tau2_ci_upper: float = math.nan
    converged: bool = True
    note: str = ""
    weights: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("weights")
        return out


class NotConverged(ArithmeticError):
    """A τ² equation has no root in the searched range (reported, never replaced by 0)."""


def _q_generalised(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    """Generalised Q: ``Σ wᵢ(yᵢ − μ̂)²`` with ``wᵢ = 1/(vᵢ + τ²)`` (DerSimonian & Kacker 2007)."""
    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    return float(np.sum(w * (y - mu) ** 2))


def _reml_score(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    """Twice the derivative of the restricted log-likelihood in τ² (Viechtbauer 2005, eq. 12).

    ``ℓ_R(τ²) = −½[Σ log(vᵢ+τ²) + log Σ wᵢ + Σ wᵢ(yᵢ − μ̂)²]``, so
    ``2 ∂ℓ_R/∂τ² = Σ wᵢ²(yᵢ − μ̂)² − Σ wᵢ + Σ wᵢ² / Σ wᵢ``.
    """
    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    return float(np.sum(w**2 * (y - mu) ** 2) - np.sum(w) + np.sum(w**2) / np.sum(w))


def _decreasing_root(f: Any, what: str) -> float:
    """Root in τ² > 0 of f with f(0) > 0: bracket by doubling, then Brent's method.

    scipy.optimize.brentq (bracketing, guaranteed convergence on a sign change) solves to
    1e-15 absolute; the bracket grows from 1 to 1e12 and a missing sign change is reported.
    """
    from scipy.optimize import brentq

    hi = 1.0
    while f(hi) > 0:
        hi *= 4.0
        if hi > 1e12:
            raise NotConverged(f"{what}: no root below τ² = 1e12")
    return float(brentq(f, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def tau2_estimate(y: np.ndarray, v: np.ndarray, method: str) -> float:
    """τ² by DerSimonian–Laird, Paule–Mandel or REML (metafor's definitions, truncated at 0).

    * DL (DerSimonian & Laird 1986): ``max(0, (Q − (k−1)) / (Σw − Σw²/Σw))``, w = 1/v.
    * PM (Paule & Mandel 1982): the root of ``Q_gen(τ²) = k − 1``; 0 only when
      ``Q_gen(0) = Q ≤ k − 1`` (then no positive root exists because Q_gen decreases).
    * REML: the root of the restricted-likelihood score; 0 when the score at 0 is ≤ 0.
    """
    k = len(y)
    if method == "fe":
        return 0.0
    if method == "dl":
        w = 1.0 / v
        c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
        return max(0.0, (_q_generalised(0.0, y, v) - (k - 1)) / c)
    if method == "pm":
        if _q_generalised(0.0, y, v) <= k - 1:
            return 0.0
        return _decreasing_root(lambda t: _q_generalised(t, y, v) - (k - 1), "Paule–Mandel")
    if method == "reml":
        if _reml_score(0.0, y, v) <= 0:
            return 0.0
        return _decreasing_root(lambda t: _reml_score(t, y, v), "REML")
    raise InputError(f"method '{method}': use dl, pm or reml")


def tau2_q_profile(y: np.ndarray, v: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Q-profile CI of τ² (Viechtbauer 2007): ``Q_gen(τ²)`` equal to the χ²ₖ₋₁ quantiles.

    Lower limit: ``Q_gen(τ²_L) = χ²₀.₉₇₅`` (0 when Q < that quantile); upper limit:
    ``Q_gen(τ²_U) = χ²₀.₀₂₅`` (0 when Q < that quantile). As metafor ``confint.rma.uni``.
    """
    df = len(y) - 1
    bounds = []
    for quantile in (0.5 + level / 2, 0.5 - level / 2):
        target = float(stats.chi2.ppf(quantile, df))
        if _q_generalised(0.0, y, v) < target:
            bounds.append(0.0)
        else:
            bounds.append(
                _decreasing_root(lambda t, c=target: _q_generalised(t, y, v) - c, "Q-profile")
            )
    return bounds[0], bounds[1]


def pool(
    effect: Sequence[float],
    variance: Sequence[float],
    method: str = "dl",
    labels: Sequence[str] | None = None,
) -> Pooled:
    """Inverse-variance pooling with τ² from :func:`tau2_estimate` (``method`` fe/dl/pm/reml).

    Written here rather than with statsmodels' ``combine_effects`` because that has no REML
    and its iterative Paule–Mandel stopped at τ² = 0 on heterogeneous data (38 of 200 random
    sets; dat.bcg through a CSV). Given τ²: ``wᵢ = 1/(vᵢ+τ²)``, ``μ̂ = Σwᵢyᵢ/Σwᵢ``,
    ``SE = 1/√Σwᵢ``, Wald CI; Hartung–Knapp SE ``√(Σwᵢ(yᵢ−μ̂)²/((k−1)Σwᵢ))`` with t₍ₖ₋₁₎;
    I² = τ²/(τ² + s²) with the typical within-study variance
    ``s² = (k−1)Σw/((Σw)² − Σw²)`` (Higgins & Thompson 2002; equals (Q−df)/Q for DL; the
    fixed-effect row reports (Q−df)/Q) — all as metafor ``rma.uni``. A τ² equation without a
    root is reported (``converged = False``, estimate NaN), never replaced by 0.
    """
    y = np.asarray(effect, dtype=float)
    v = np.asarray(variance, dtype=float)
    k = len(y)
    if k < 2:
        raise InputError(f"{k} study: pooling needs at least 2 studies for an outcome")
    if np.any(~np.isfinite(y)) or np.any(~np.isfinite(v)) or np.any(v <= 0):
        raise InputError("every study needs a finite effect and a positive variance")
    if method not in ("fe", *METHODS):
        raise InputError(f"method '{method}': use {', '.join(METHODS)}")
    del labels  # kept for callers that name the studies; weights are returned in input order
    q, df = _q_generalised(0.0, y, v), k - 1
    q_p = float(stats.chi2.sf(q, df))
    try:
        tau2 = tau2_estimate(y, v, method)
    except NotConverged as exc:
        nan = math.nan
        return Pooled(
            method=method,
            k=k,
            estimate=nan,
            se=nan,
            ci_lower=nan,
            ci_upper=nan,
            z=nan,
            p=nan,
            tau2=nan,
            i2=nan,
            q=q,
            q_df=df,
            q_p=q_p,
            converged=False,
            note=str(exc),
        )
    w = 1.0 / (v + tau2)
    mean = float(np.sum(w * y) / np.sum(w))
    se = float(1.0 / math.sqrt(np.sum(w)))
    z = mean / se
    w0 = 1.0 / v
    if method == "fe":
        i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    else:
        s2 = df * float(np.sum(w0)) / (float(np.sum(w0)) ** 2 - float(np.sum(w0**2)))
        i2 = tau2 / (tau2 + s2)
    out = Pooled(
        method=method,
        k=k,
        estimate=mean,
        se=se,
        ci_lower=mean - Z975 * se,
        ci_upper=mean + Z975 * se,
        z=z,
        p=float(2 * stats.norm.sf(abs(z))),
        tau2=tau2,
        i2=i2,
        q=q,
        q_df=df,
        q_p=q_p,
        weights=(w / np.sum(w)).tolist(),
    )
    if method != "fe":
        tq = stats.t.ppf(0.975, df)
        hk_se = math.sqrt(float(np.sum(w * (y - mean) ** 2)) / (df * float(np.sum(w))))
        out.hk_ci_lower, out.hk_ci_upper = mean - tq * hk_se, mean + tq * hk_se
        if k >= 3:
            half = stats.t.ppf(0.975, k - 2) * math.sqrt(tau2 + se**2)
            out.pi_lower, out.pi_upper = mean - half, mean + half
        try:
            out.tau2_ci_lower, out.tau2_ci_upper = tau2_q_profile(y, v)
        except NotConverged as exc:
            out.note = str(exc)
    return out


@dataclass
class MetaRegression:
    """Mixed-effects meta-regression y = Xβ + u + e, u ~ N(0, τ²), e ~ N(0, vᵢ), REML τ²."""

    names: list[str]
    beta: np.ndarray
    se: np.ndarray
    tau2: float
    qe: float
    qe_df: int
    qe_p: float
    qm: float
    qm_df: int
    qm_p: float
    r2: float

    def table(self) -> pd.DataFrame:
        z = self.beta / self.se
        return pd.DataFrame(
            {
                "term": self.names,
                "estimate": self.beta,
                "se": self.se,
                "z": z,
                "p": 2 * stats.norm.sf(np.abs(z)),
                "ci_lower": self.beta - Z975 * self.se,
                "ci_upper": self.beta + Z975 * self.se,
            }
        )


def _projection(
    tau2: float, y: np.ndarray, v: np.ndarray, X: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P = W − WX(XᵀWX)⁻¹XᵀW with W = diag(1/(v + τ²)); also β̂ and (XᵀWX)⁻¹."""
    w = 1.0 / (v + tau2)
    xtwx_inv = np.linalg.inv(X.T @ (w[:, None] * X))
    beta = xtwx_inv @ X.T @ (w * y)
    WX = w[:, None] * X
    P = np.diag(w) - WX @ xtwx_inv @ WX.T
    return P, beta, xtwx_inv


def meta_regression(
    effect: Sequence[float], variance: Sequence[float], moderators: pd.DataFrame
) -> MetaRegression:
    """REML mixed-effects meta-regression (as metafor ``rma(yi, vi, mods = ~ …)``).

    τ² is the root of the REML score ``yᵀP²y − tr(P) = 0`` (Viechtbauer 2005; bracketing root
    finder as for the intercept-only model; 0 when the score at 0 is ≤ 0). Wald z tests of
    β; QE = residual heterogeneity yᵀP(0)y on k − p df; QM = β̂ᵀcov⁻¹β̂ over the moderators on
    p − 1 df; pseudo-R² = (τ²_RE − τ²_ME)/τ²_RE, truncated at 0 (metafor's definition).
    """
    y = np.asarray(effect, dtype=float)
    v = np.asarray(variance, dtype=float)
    mods = moderators.apply(pd.to_numeric, errors="coerce")
    if mods.isna().any().any():
        bad = mods.columns[mods.isna().any()][0]
        raise InputError(
            f"moderator '{bad}' has a missing or non-numeric value; every study needs a number"
        )
    X = np.column_stack([np.ones(len(y)), mods.to_numpy(float)])
    k, p = X.shape
    if k <= p + 1:
        raise InputError(f"{k} studies cannot support {p - 1} moderator(s) (need k > p + 1)")

    def score(t: float) -> float:
        P = _projection(t, y, v, X)[0]
        Py = P @ y
        return float(Py @ Py - np.trace(P))

    tau2 = 0.0 if score(0.0) <= 0 else _decreasing_root(score, "meta-regression REML")
    P0 = _projection(0.0, y, v, X)[0]
    _, beta, cov = _projection(tau2, y, v, X)
    se = np.sqrt(np.diag(cov))
    qe = float(y @ P0 @ y)
    b = beta[1:]
    qm = float(b @ np.linalg.solve(cov[1:, 1:], b))
    tau2_re = tau2_estimate(y, v, "reml")
    r2 = max(0.0, (tau2_re - tau2) / tau2_re) if tau2_re > 0 else 0.0
    return MetaRegression(
        ["intercept", *map(str, moderators.columns)],
        beta,
        se,
        tau2,
        qe,
        k - p,
        float(stats.chi2.sf(qe, k - p)),
        qm,
        p - 1,
        float(stats.chi2.sf(qm, p - 1)),
        r2,
    )


# --------------------------------------------------------------------------- analysis


@dataclass
class OutcomeResult:
    """Everything about one analysis outcome: study table, pooled results, sensitivity."""

    outcome: str
    label: str
    kind: str
    studies: pd.DataFrame  # rows in the pooling, with y, v, CI, weights
    excluded: pd.DataFrame  # rows listed but not pooled, with the reason
    pooled: dict[str, Pooled] = field(default_factory=dict)
    display: dict[str, dict[str, float]] = field(default_factory=dict)  # natural-scale values
    sensitivity: pd.DataFrame | None = None
    transform: str = ""
    reason: str = ""  # why nothing was pooled (k < 2)
    axis_label: str = ""  # forest-plot axis (generic effects name their measure)
    regression: Any = None  # MetaRegression when moderators were given

    @property
    def k(self) -> int:
        return len(self.studies)


@dataclass
class MetaResult:
    """The whole synthesis: per-outcome results plus the settings that produced them."""

    data: str
    r: float
    r_grid: tuple[float, ...]
    methods: tuple[str, ...]
    include_unverified: bool
    transform: str
    outcomes: dict[str, OutcomeResult]
    counts: dict[str, int]

    def summary(self) -> pd.DataFrame:
        """The pooled estimates as a table, one row per outcome and τ² method.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``outcome`` and ``method`` (``fe``, ``dl``, ``pm``, ``reml``), with
            ``k`` (studies), ``estimate``, ``ci_lower``, ``ci_upper`` (95 %), ``pi_lower``,
            ``pi_upper`` (95 % prediction interval, k ≥ 3), ``tau2`` and ``i2`` (0–1) on the
            analysis scale (mean change in points on 0–10; logit or Freeman–Tukey for
            proportions; log ratios), ``scale`` naming it, and ``estimate_natural``,
            ``ci_lower_natural``, ``ci_upper_natural`` back on the natural scale (a proportion,
            a ratio) where the outcome has one (NaN otherwise). Outcomes with nothing pooled
            are left out (``outcomes[name].reason`` says why).
        """
        rows = []
        for name, res in self.outcomes.items():
            for method, p in res.pooled.items():
                disp = res.display.get(method, {})
                rows.append(
                    {
                        "outcome": name,
                        "method": method,
                        "k": p.k,
                        "estimate": p.estimate,
                        "ci_lower": p.ci_lower,
                        "ci_upper": p.ci_upper,
                        "pi_lower": p.pi_lower,
                        "pi_upper": p.pi_upper,
                        "tau2": p.tau2,
                        "i2": p.i2,
                        "scale": res.transform or res.kind,
                        **{
                            f"{key}_natural": natural(disp, key, math.nan)
                            for key in ("estimate", "ci_lower", "ci_upper")
                        },
                    }
                )
        columns = ["outcome", "method", "k", "estimate", "ci_lower", "ci_upper", "pi_lower"]
        columns += ["pi_upper", "tau2", "i2", "scale"]
        columns += ["estimate_natural", "ci_lower_natural", "ci_upper_natural"]
        return pd.DataFrame(rows, columns=columns).set_index(["outcome", "method"])

    def plot(self, outcome: str | None = None, ax: Any = None) -> Any:
        """Forest plot of one outcome (:func:`cryoneuro.analysis.meta_plots.forest_plot`).

        Parameters
        ----------
        outcome : str, optional
            An outcome of this result (default: the first with a pooled estimate).
        ax : matplotlib.axes.Axes, optional
            Where to draw; default a new pyplot-free Figure.

        Returns
        -------
        matplotlib.axes.Axes
            The forest plot: each study's estimate and 95 % CI (squares sized by weight), the
            pooled diamonds and the prediction interval.
        """
        from cryoneuro.analysis.meta_plots import forest_plot

        pooled = [name for name, res in self.outcomes.items() if res.pooled]
        if outcome is None:
            if not pooled:
                raise InputError("nothing was pooled: no outcome to plot")
            outcome = pooled[0]
        if outcome not in pooled:
            raise InputError(
                f"outcome '{outcome}' has no pooled estimate here; plot one of {pooled}"
            )
        fig = forest_plot(self.outcomes[outcome], ax=ax)
        return ax if ax is not None else fig.axes[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON payload (docs/contracts.md): pooled results per outcome and method."""
        payload: dict[str, Any] = {
            "data": self.data,
            "r": self.r,
            "r_sensitivity": list(self.r_grid),
            "methods": list(self.methods),
            "include_unverified": self.include_unverified,
            "proportion_scale": self.transform,
            "counts": self.counts,
            "outcomes": {},
        }
        for name, res in self.outcomes.items():
            entry: dict[str, Any] = {
                "label": res.label,
                "kind": res.kind,
                "k": res.k,
                "pooled": bool(res.pooled),
            }
            if res.kind == "proportion":
                entry["scale"] = f"{res.transform} (estimates back-transformed to proportions)"
            for method, p in res.pooled.items():
                entry[method] = {**p.to_dict(), **res.display.get(method, {})}
            if res.reason:
                entry["reason"] = res.reason
            if res.regression is not None:
                reg = res.regression
                entry["meta_regression"] = {
                    "coefficients": reg.table().to_dict(orient="records"),
                    "tau2": reg.tau2,
                    "QE": reg.qe,
                    "QE_df": reg.qe_df,
                    "QE_p": reg.qe_p,
                    "QM": reg.qm,
                    "QM_df": reg.qm_df,
                    "QM_p": reg.qm_p,
                    "R2": reg.r2,
                }
            entry["studies"] = (
                []
                if res.studies.empty
                else [
                    {"study": s, "n": int(n), "effect": float(yv), "variance": float(vv)}
                    for s, n, yv, vv in zip(
                        res.studies["study"],
                        res.studies["n"],
                        res.studies["y"],
                        res.studies["v"],
                        strict=True,
                    )
                ]
            )
            entry["excluded"] = [
                {"study": s, "reason": why}
                for s, why in zip(res.excluded["study"], res.excluded["reason"], strict=True)
            ]
            if res.sensitivity is not None:
                entry["r_sensitivity"] = res.sensitivity.to_dict(orient="records")
            payload["outcomes"][name] = entry
        return payload


def _eligible(
    frame: pd.DataFrame, codes: Iterable[str], include_unverified: bool
) -> tuple[pd.DataFrame, list[tuple[pd.Series, str]]]:
    """Split rows of one outcome into candidates (primary time point) and excluded with reason."""
    rows = frame[frame["outcome"].isin(tuple(codes))]
    counts = rows.groupby(["study", "outcome"])["line"].transform("count")
    keep, excluded = [], []
    for (_, row), count in zip(rows.iterrows(), counts, strict=True):
        primary = row["primary"] == "yes" or (row["primary"] == "" and count == 1)
        if not primary:
            continue  # other time points are listed in the data table, not in the analysis
        if row["verified"] != "yes" and not include_unverified:
            excluded.append((row, "not verified against the abstract (use --include-unverified)"))
        elif row["exclude_reason"]:
            excluded.append((row, row["exclude_reason"]))
        else:
            keep.append(row)
    return pd.DataFrame(keep), excluded


def _change_effect(row: pd.Series, r: float) -> tuple[float, float, str] | str:
    """(y, v, how) for a single-arm change row, or the reason it has no variance."""
    y = row["effect"]
    if math.isnan(y):
        y = row["followup_mean"] - row["baseline_mean"]
    if math.isnan(y):
        return "no mean change and no baseline + follow-up means"
    if not math.isnan(row["ci_lower"]):
        df = int(row["n"]) - 1 if row["ci_dist"] == "t" else None
        se = se_from_ci(row["ci_lower"], row["ci_upper"], df)
        return y, se**2, f"SE from the reported 95 % CI ({'t' if df else 'z'})"
    if not (math.isnan(row["baseline_sd"]) or math.isnan(row["followup_sd"])):
        sd = sd_change(row["baseline_sd"], row["followup_sd"], r)
        if sd == 0:
            raise InputError(
                f"line {int(row['line'])} (study '{row['study']}'): the imputed SD "
                f"of the change is 0 at r = {r:g}; choose r < 1"
            )
        return y, sd**2 / row["n"], "imputed"
    return "no SD, SE or CI reported: no variance can be derived (SDs are never invented)"


def _study_rows(
    cands: pd.DataFrame, kind: str, r: float, transform: str
) -> tuple[list[dict[str, Any]], list[tuple[pd.Series, str]]]:
    rows, excluded = [], []
    for _, row in cands.iterrows():
        base = {
            "study": row["study"],
            "year": int(row["year"]),
            "n": int(row["n"]),
            "population": row["population"],
            "guidance": row["guidance"],
            "timepoint_months": row["timepoint_months"],
            "verified": row["verified"],
            "line": int(row["line"]),
        }
        if kind == "change":
            got = _change_effect(row, r)
            if isinstance(got, str):
                excluded.append((row, got))
                continue
            y, v, how = got
            rows.append(
                {
                    **base,
                    "y": y,
                    "v": v,
                    "variance_from": how,
                    "imputed": how == "imputed",
                    "row": row,
                }
            )
        elif kind == "difference":
            if math.isnan(row["effect"]) or math.isnan(row["ci_lower"]):
                excluded.append((row, "needs the difference and its 95 % CI"))
                continue
            df = int(row["n"]) - 2 if row["ci_dist"] == "t" else None
            se = se_from_ci(row["ci_lower"], row["ci_upper"], df)
            rows.append(
                {
                    **base,
                    "y": row["effect"],
                    "v": se**2,
                    "variance_from": "SE from the reported 95 % CI",
                    "imputed": False,
                    "row": row,
                }
            )
        else:
            if math.isnan(row["events"]):
                excluded.append((row, "needs events and total"))
                continue
            x, n = int(row["events"]), int(row["total"])
            if transform == "ft":
                y, v = ft_proportion(x, n)
                how = "Freeman–Tukey"
            else:
                y, v, cc = logit_proportion(x, n)
                how = "logit" + (" + 0.5 continuity correction" if cc else "")
            rows.append(
                {
                    **base,
                    "events": x,
                    "total": n,
                    "y": y,
                    "v": v,
                    "variance_from": how,
                    "imputed": False,
                    "row": row,
                }
            )
    return rows, excluded


def _to_natural(kind: str, transform: str, y: float, n: float) -> float:
    if kind != "proportion" or math.isnan(y):
        return y
    return inv_ft(y, n) if transform == "ft" else inv_logit(y)


def analyse_outcome(
    frame: pd.DataFrame,
    outcome: str,
    *,
    methods: Sequence[str] = METHODS,
    r: float = R_DEFAULT,
    r_grid: Sequence[float] = R_SENSITIVITY,
    include_unverified: bool = False,
    transform: str = "logit",
) -> OutcomeResult:
    """Select, compute effects and pool one outcome; k < 2 leaves ``pooled`` empty with a reason."""
    spec = OUTCOMES[outcome]
    kind = spec["kind"]
    cands, excluded = _eligible(frame, spec["codes"], include_unverified)
    rows, more = _study_rows(cands, kind, r, transform) if len(cands) else ([], [])
    excluded += more
    ex = pd.DataFrame(
        [
            {
                "study": row["study"],
                "outcome": row["outcome"],
                "timepoint_months": row["timepoint_months"],
                "verified": row["verified"],
                "reason": why,
            }
            for row, why in excluded
        ],
        columns=["study", "outcome", "timepoint_months", "verified", "reason"],
    )
    studies = pd.DataFrame(rows)
    result = OutcomeResult(
        outcome=outcome,
        label=spec["label"],
        kind=kind,
        studies=studies.drop(columns=["row"], errors="ignore"),
        excluded=ex,
        transform=transform if kind == "proportion" else "",
    )
    if len(rows) < 2:
        result.reason = (
            f"{len(rows)} poolable stud{'y' if len(rows) == 1 else 'ies'}: pooling needs at least 2"
        )
        if len(rows):
            result.studies = _add_study_ci(result.studies, kind, transform)
        return result
    labels = list(studies["study"])
    n_harm = math.nan
    if kind == "proportion":
        n_harm = len(studies) / float(np.sum(1.0 / studies["total"].to_numpy()))
    for method in ("fe", *methods):
        p = pool(studies["y"], studies["v"], method, labels)
        result.pooled[method] = p
        if kind == "proportion":
            result.display[method] = {
                f"{key}_proportion": _to_natural(kind, transform, getattr(p, key), n_harm)
                for key in (
                    "estimate",
                    "ci_lower",
                    "ci_upper",
                    "pi_lower",
                    "pi_upper",
                    "hk_ci_lower",
                    "hk_ci_upper",
                )
            }
    result.studies = _add_study_ci(result.studies, kind, transform)
    for method, p in result.pooled.items():
        result.studies[f"weight_{method}"] = p.weights
    if kind == "change" and bool(studies["imputed"].any()):
        result.sensitivity = r_sensitivity(cands, r_grid, methods)
    return result


def _add_study_ci(studies: pd.DataFrame, kind: str, transform: str) -> pd.DataFrame:
    out = studies.copy()
    se = np.sqrt(out["v"].to_numpy(dtype=float))
    lo, hi = out["y"] - Z975 * se, out["y"] + Z975 * se
    if kind == "proportion":
        n = out["total"].to_numpy(dtype=float)
        out["estimate"] = [
            _to_natural(kind, transform, a, b) for a, b in zip(out["y"], n, strict=True)
        ]
        out["ci_lower"] = [_to_natural(kind, transform, a, b) for a, b in zip(lo, n, strict=True)]
        out["ci_upper"] = [_to_natural(kind, transform, a, b) for a, b in zip(hi, n, strict=True)]
    else:
        out["estimate"], out["ci_lower"], out["ci_upper"] = out["y"], lo, hi
    out["se"] = se
    return out


def r_sensitivity(
    cands: pd.DataFrame, r_grid: Sequence[float], methods: Sequence[str]
) -> pd.DataFrame:
    """Pooled mean change for each assumed pre/post correlation r (only imputed SDs change)."""
    records = []
    for r in r_grid:
        rows, _ = _study_rows(cands, "change", r, "")
        if len(rows) < 2:
            continue
        y = [row["y"] for row in rows]
        v = [row["v"] for row in rows]
        rec: dict[str, Any] = {"r": float(r)}
        for method in methods:
            p = pool(y, v, method)
            rec.update(
                {
                    f"{method}_estimate": p.estimate,
                    f"{method}_ci_lower": p.ci_lower,
                    f"{method}_ci_upper": p.ci_upper,
                    f"{method}_tau2": p.tau2,
                    f"{method}_i2": p.i2,
                }
            )
        records.append(rec)
    return pd.DataFrame(records)


def check_r(r: float, name: str = "--r") -> None:
    if not (math.isfinite(r) and -1.0 <= r <= 1.0):
        raise InputError(
            f"{name} {r:g} is not a correlation; use a value in [-1, 1] (0.5 is the default)"
        )


def effect_2x2(
    ai: Sequence[float], bi: Sequence[float], ci: Sequence[float], di: Sequence[float], measure: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log RR, log OR or RD and their variances from 2×2 counts (as metafor ``escalc``).

    ai/bi: events/non-events in group 1, ci/di in group 2. A study with a zero cell gets 0.5
    added to all four cells (``add = 1/2, to = "only0"``, metafor's default, for all three).
    log RR = log[(a/n₁)/(c/n₂)], v = 1/a − 1/n₁ + 1/c − 1/n₂; log OR = log(ad/bc),
    v = 1/a + 1/b + 1/c + 1/d; RD = a/n₁ − c/n₂, v = p₁(1−p₁)/n₁ + p₂(1−p₂)/n₂.
    Returns (y, v, corrected).
    """
    a, b, c, d = (np.asarray(x, dtype=float).copy() for x in (ai, bi, ci, di))
    zero = (a == 0) | (b == 0) | (c == 0) | (d == 0)
    for x in (a, b, c, d):
        x[zero] += CONTINUITY
    n1, n2 = a + b, c + d
    if measure == "RR":
        y, v = np.log((a / n1) / (c / n2)), 1 / a - 1 / n1 + 1 / c - 1 / n2
    elif measure == "OR":
        y, v = np.log(a * d / (b * c)), 1 / a + 1 / b + 1 / c + 1 / d
    elif measure == "RD":
        p1, p2 = a / n1, c / n2
        y, v = p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
    else:
        raise InputError(f"--measure '{measure}': 2×2 counts give RR, OR or RD")
    return y, v, zero


#: Names that moved to the orchestration, plotting and I/O modules → their module (PEP 562
#: lazy re-exports: ``from cryoneuro.analysis.meta import run_meta`` keeps working).
_MOVED = {
    **dict.fromkeys(("run_meta", "parse_r_grid", "analyse_effects"), "meta_run"),
    **dict.fromkeys(("forest_plot", "sensitivity_plot", "_fmt"), "meta_plots"),
    **dict.fromkeys(
        (
            "is_generic",
            "load_effects",
            "_GENERIC_LAYOUTS",
            "build_sections",
            "write_meta_report",
            "_pooled_frame",
            "_study_frame",
            "_candidates_for",
        ),
        "meta_io",
    ),
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        module = importlib.import_module(f"cryoneuro.analysis.{_MOVED[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
