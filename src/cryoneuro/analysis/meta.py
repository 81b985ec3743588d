"""Evidence synthesis: effect sizes, random-effects pooling, forest plots and the meta report.

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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from cryoneuro.analysis.evidence import load_evidence, summary_counts
from cryoneuro.errors import InputError

Z975 = 1.959963984540054
R_DEFAULT = 0.5
R_SENSITIVITY = (0.2, 0.5, 0.8)
CONTINUITY = 0.5
METHODS = ("dl", "pm", "reml")
METHOD_LABEL = {
    "fe": "fixed effect",
    "dl": "DerSimonian–Laird",
    "pm": "Paule–Mandel",
    "reml": "REML",
}

#: Analysis outcomes: which CSV outcome codes each pools and on which scale.
OUTCOMES: dict[str, dict[str, Any]] = {
    "pain": {
        "codes": ("pain_nrs", "pain_vas"),
        "kind": "change",
        "label": "Pain (0–10 NRS or VAS), mean change from baseline",
    },
    "pain_nrs": {
        "codes": ("pain_nrs",),
        "kind": "change",
        "label": "Pain NRS (0–10), mean change from baseline",
    },
    "pain_vas": {
        "codes": ("pain_vas",),
        "kind": "change",
        "label": "Pain VAS (0–10), mean change from baseline",
    },
    "pain_md": {
        "codes": ("pain_md",),
        "kind": "difference",
        "label": "Pain (0–10), difference in change, cryoablation − control (RCT)",
    },
    "responder": {
        "codes": ("responder",),
        "kind": "proportion",
        "label": "Responders (pain relief as defined by each study), proportion",
    },
    "complication": {
        "codes": ("complication",),
        "kind": "proportion",
        "label": "Procedure-related complications, proportion",
    },
}
#: Outcomes analysed when none is asked for ("pain" already holds the NRS and VAS rows).
DEFAULT_OUTCOMES = ("pain", "pain_md", "responder", "complication")


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


def parse_r_grid(text: str) -> tuple[float, ...]:
    """Parse ``"0.2,0.5,0.8"``; every value must be a correlation in [−1, 1]."""
    values = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise InputError(
                f"--r-sensitivity: '{part}' is not a number; give comma-separated "
                "correlations such as 0.2,0.5,0.8"
            ) from None
        check_r(value, "--r-sensitivity")
        values.append(value)
    if not values:
        raise InputError("--r-sensitivity: give at least one correlation, e.g. 0.2,0.5,0.8")
    return tuple(values)


def check_r(r: float, name: str = "--r") -> None:
    if not (math.isfinite(r) and -1.0 <= r <= 1.0):
        raise InputError(
            f"{name} {r:g} is not a correlation; use a value in [-1, 1] (0.5 is the default)"
        )


def run_meta(
    data: str | Path | None = None,
    *,
    outcomes: Sequence[str] | None = None,
    methods: Sequence[str] = METHODS,
    r: float = R_DEFAULT,
    r_grid: Sequence[float] = R_SENSITIVITY,
    include_unverified: bool = False,
    transform: str = "logit",
) -> MetaResult:
    """Load the evidence (bundled when ``data`` is None) and analyse each outcome.

    An outcome asked for explicitly with fewer than 2 poolable studies is an
    :class:`InputError`; in the default run such outcomes are listed with the reason.
    """
    check_r(r)
    r_grid = tuple(r_grid)
    for value in r_grid:
        check_r(value, "--r-sensitivity")
    if transform not in ("logit", "ft"):
        raise InputError(f"--proportion-scale '{transform}': use logit or ft")
    for m in methods:
        if m not in METHODS:
            raise InputError(f"--method '{m}': use dl, pm or both")
    frame = load_evidence(data)
    explicit = outcomes is not None and len(outcomes) > 0
    wanted = (
        list(outcomes)
        if explicit
        else [o for o in DEFAULT_OUTCOMES if frame["outcome"].isin(OUTCOMES[o]["codes"]).any()]
    )
    for name in wanted:
        if name not in OUTCOMES:
            raise InputError(f"--outcome '{name}': use one of {', '.join(OUTCOMES)}")
    results = {}
    for name in wanted:
        res = analyse_outcome(
            frame,
            name,
            methods=methods,
            r=r,
            r_grid=r_grid,
            include_unverified=include_unverified,
            transform=transform,
        )
        if explicit and not res.pooled:
            hint = "" if include_unverified else " (--include-unverified adds unverified rows)"
            raise InputError(
                f"outcome '{name}': {res.reason}{hint}; see the excluded studies with a default run"
            )
        results[name] = res
    if not any(res.pooled for res in results.values()):
        raise InputError(
            "no outcome has at least 2 poolable studies; check the verified, "
            "primary and SD/CI columns of the evidence file"
        )
    return MetaResult(
        data=str(data) if data is not None else "bundled:neuroma_cryoablation.csv",
        r=r,
        r_grid=r_grid,
        methods=tuple(methods),
        include_unverified=include_unverified,
        transform=transform,
        outcomes=results,
        counts=summary_counts(frame),
    )


# --------------------------------------------------------------------------- generic input

#: Effect measures of a generic file: analysis-scale label, natural-scale label, exp back-transform.
MEASURES: dict[str, tuple[str, str, bool]] = {
    "RR": ("log risk ratio", "risk ratio", True),
    "OR": ("log odds ratio", "odds ratio", True),
    "RD": ("risk difference", "risk difference", False),
    "GEN": ("effect", "effect", False),
}


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


_GENERIC_LAYOUTS = (
    ("yi", "vi"),
    ("yi", "sei"),
    ("ai", "bi", "ci", "di"),
    ("ai", "n1i", "ci", "n2i"),
)


def is_generic(path: str | Path) -> bool:
    """True when a CSV's header holds yi/vi, yi/sei or 2×2 columns instead of the evidence
    layout."""
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return False
    cols = {str(c).strip() for c in header}
    return any(set(layout) <= cols for layout in _GENERIC_LAYOUTS)


def load_effects(path: str | Path, measure: str | None) -> tuple[pd.DataFrame, str]:
    """A generic effects CSV → (study, n, y, v, variance_from), and the measure.

    Columns: ``study`` and one of ``yi, vi`` | ``yi, sei`` (already on the analysis scale;
    ``--measure RR|OR`` says yi is a log ratio, otherwise GEN) | ``ai, bi, ci, di`` |
    ``ai, n1i, ci, n2i`` (2×2 counts, ``--measure RR|OR|RD`` required). Each bad cell is named
    by line and column.
    """
    source = Path(path)
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{source}: not a readable CSV ({str(exc).splitlines()[0][:80]})"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    layout = next((lay for lay in _GENERIC_LAYOUTS if set(lay) <= set(frame.columns)), None)
    if layout is None or "study" not in frame.columns:
        raise InputError(
            f"{source}: a generic effects file needs a 'study' column and yi+vi, "
            "yi+sei, ai+bi+ci+di or ai+n1i+ci+n2i"
        )
    numbers = {}
    for col in layout:
        values = pd.to_numeric(frame[col].str.strip(), errors="coerce")
        bad = values.isna() | ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{source}: line {i + 2}, column '{col}': '{frame[col].iloc[i]}' is not a number"
            )
        numbers[col] = values.to_numpy(float)
    counts = layout[0] == "ai"
    measure = (measure or ("" if counts else "GEN")).upper()
    if counts and measure not in ("RR", "OR", "RD"):
        raise InputError(f"{source}: 2×2 counts need --measure RR, OR or RD")
    if measure not in MEASURES:
        raise InputError(f"--measure '{measure}': use RR, OR, RD or GEN")
    if counts:
        a, c = numbers["ai"], numbers["ci"]
        b = numbers["bi"] if "bi" in numbers else numbers["n1i"] - a
        d = numbers["di"] if "di" in numbers else numbers["n2i"] - c
        cells = np.vstack([a, b, c, d])
        if (cells < 0).any() or (cells % 1 != 0).any():
            i = int(np.flatnonzero(((cells < 0) | (cells % 1 != 0)).any(axis=0))[0])
            raise InputError(
                f"{source}: line {i + 2}: counts must be whole numbers ≥ 0 (events ≤ total)"
            )
        y, v, zero = effect_2x2(a, b, c, d, measure)
        how = ["2×2 + 0.5 continuity correction" if z else "2×2" for z in zero]
        n = (a + b + c + d).astype(int)
    else:
        y = numbers["yi"]
        v = numbers["vi"] if "vi" in numbers else numbers["sei"] ** 2
        if (v <= 0).any():
            i = int(np.flatnonzero(v <= 0)[0])
            raise InputError(f"{source}: line {i + 2}, column '{layout[1]}': must be > 0")
        how = ["given (variance)" if "vi" in numbers else "given (SE²)"] * len(y)
        n = pd.to_numeric(frame.get("n", pd.Series([""] * len(y))), errors="coerce").fillna(0)
        n = n.astype(int).to_numpy()
    out = pd.DataFrame(
        {
            "study": frame["study"].str.strip(),
            "n": n,
            "y": y,
            "v": v,
            "variance_from": how,
            "verified": "yes",
        }
    )
    return out, measure


def analyse_effects(
    path: str | Path,
    measure: str | None = None,
    methods: Sequence[str] = METHODS,
    moderators: Sequence[str] = (),
) -> MetaResult:
    """Pool a generic effects file (yi/vi or 2×2 counts); ratios are shown back on exp scale.

    ``moderators`` names numeric columns of the same file for a REML meta-regression.
    """
    studies, measure = load_effects(path, measure)
    scale, nat_label, exp = MEASURES[measure]
    kind = "ratio" if exp else "generic"
    res = OutcomeResult(
        outcome="effects",
        label=f"{nat_label} ({Path(path).name})",
        kind=kind,
        studies=studies,
        excluded=pd.DataFrame(
            columns=["study", "outcome", "timepoint_months", "verified", "reason"]
        ),
        axis_label=f"{nat_label}{' (log scale)' if exp else ''}",
    )
    if len(studies) < 2:
        raise InputError(f"{path}: {len(studies)} study: pooling needs at least 2")
    back = np.exp if exp else (lambda x: x)
    for method in ("fe", *methods):
        p = pool(studies["y"], studies["v"], method)
        res.pooled[method] = p
        if exp:
            res.display[method] = {
                f"{key}_natural": float(back(getattr(p, key)))
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
    se = np.sqrt(studies["v"].to_numpy(float))
    res.studies = studies.assign(
        se=se,
        estimate=back(studies["y"]),
        ci_lower=back(studies["y"] - Z975 * se),
        ci_upper=back(studies["y"] + Z975 * se),
        **{f"weight_{m}": p.weights for m, p in res.pooled.items()},
    )
    if moderators:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        raw.columns = [str(c).strip() for c in raw.columns]
        missing = [m for m in moderators if m not in raw.columns]
        if missing:
            raise InputError(f"--moderator '{missing[0]}' is not a column of {path}")
        res.regression = meta_regression(studies["y"], studies["v"], raw[list(moderators)])
    return MetaResult(
        data=str(path),
        r=math.nan,
        r_grid=(),
        methods=tuple(methods),
        include_unverified=True,
        transform=f"{scale}",
        outcomes={"effects": res},
        counts={"studies": len(studies), "rows": len(studies), "verified_rows": len(studies)},
    )


# --------------------------------------------------------------------------- figures


def _fmt(value: float, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f} %" if kind == "proportion" else f"{value:.2f}"


def natural(disp: dict[str, float], key: str, default: float) -> float:
    """A pooled value on the natural scale (proportion or ratio) when there is one."""
    return disp.get(f"{key}_proportion", disp.get(f"{key}_natural", default))


def forest_plot(res: OutcomeResult) -> Any:
    """Forest plot: squares sized by random-effects weight, DL/PM diamonds, prediction interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon

    st = res.studies
    methods = [m for m in METHODS if m in res.pooled]
    n_rows = len(st) + len(methods) + 2
    fig, ax = plt.subplots(figsize=(9.5, 0.45 * n_rows + 1.6))
    wcol = f"weight_{methods[0]}" if methods else None
    wmax = float(st[wcol].max()) if wcol else 1.0
    nat = res.kind == "proportion"
    for i, (_, row) in enumerate(st.iterrows()):
        yy = n_rows - 1 - i
        ax.plot([row["ci_lower"], row["ci_upper"]], [yy, yy], color="#333", lw=1.2)
        size = 40 + 260 * (row[wcol] / wmax if wcol else 0.5)
        ax.scatter([row["estimate"]], [yy], marker="s", s=size, color="#0057b8", zorder=3)
        mark = " †" if row["verified"] != "yes" else ""
        ax.text(
            -0.02,
            yy,
            f"{row['study']}{mark}  (n={row['n']})",
            transform=ax.get_yaxis_transform(),
            ha="right",
            va="center",
            fontsize=8.5,
        )
        ax.text(
            1.02,
            yy,
            f"{_fmt(row['estimate'], res.kind)} [{_fmt(row['ci_lower'], res.kind)}, "
            f"{_fmt(row['ci_upper'], res.kind)}]",
            transform=ax.get_yaxis_transform(),
            ha="left",
            va="center",
            fontsize=8,
        )
    colours = {"dl": "#c0392b", "pm": "#8e44ad", "reml": "#16a085"}
    for j, method in enumerate(methods):
        p, disp = res.pooled[method], res.display.get(method, {})
        est = natural(disp, "estimate", p.estimate)
        lo = natural(disp, "ci_lower", p.ci_lower)
        hi = natural(disp, "ci_upper", p.ci_upper)
        yy = len(methods) - j
        ax.add_patch(
            Polygon(
                [[lo, yy], [est, yy + 0.3], [hi, yy], [est, yy - 0.3]],
                closed=True,
                color=colours[method],
                zorder=3,
            )
        )
        pil = natural(disp, "pi_lower", p.pi_lower)
        piu = natural(disp, "pi_upper", p.pi_upper)
        if not math.isnan(pil):
            ax.plot([pil, piu], [yy - 0.42, yy - 0.42], color=colours[method], lw=2.2, alpha=0.5)
        ax.text(
            -0.02,
            yy,
            f"{METHOD_LABEL[method]} (k={p.k})",
            transform=ax.get_yaxis_transform(),
            ha="right",
            va="center",
            fontsize=8.5,
            weight="bold",
        )
        ax.text(
            1.02,
            yy,
            f"{_fmt(est, res.kind)} [{_fmt(lo, res.kind)}, {_fmt(hi, res.kind)}]",
            transform=ax.get_yaxis_transform(),
            ha="left",
            va="center",
            fontsize=8,
            weight="bold",
        )
    if res.kind in ("change", "difference"):
        ax.axvline(0, color="#888", lw=0.8, ls="--")
    ax.set_ylim(0.2, n_rows - 0.3)
    ax.set_yticks([])
    if res.axis_label:
        ax.set_xlabel(res.axis_label)
    else:
        ax.set_xlabel(
            "proportion"
            if nat
            else "mean change, points (negative = less pain)"
            if res.kind == "change"
            else "difference, points (negative favours cryoablation)"
        )
    if res.kind == "ratio":
        ax.set_xscale("log")
        ax.axvline(1.0, color="#888", lw=0.8, ls="--")
    if nat:
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_title(res.label, fontsize=10)
    het = "; ".join(
        f"{METHOD_LABEL[m]}: τ² = {res.pooled[m].tau2:.3g}, I² = {100 * res.pooled[m].i2:.0f} %"
        for m in methods
    )
    if methods:
        q = res.pooled[methods[0]]
        pi = (
            "bar under a diamond = 95 % prediction interval"
            if q.k >= 3
            else "no prediction interval (k < 3)"
        )
        dagger = (
            "; † = not verified against the abstract" if (st["verified"] != "yes").any() else ""
        )
        fig.text(
            0.02,
            0.01,
            f"{het}; Q = {q.q:.2f} (df {q.q_df}, p = {q.q_p:.2g}); {pi}{dagger}",
            fontsize=7.5,
            color="#444",
        )
    fig.subplots_adjust(left=0.3, right=0.78, bottom=0.12 + 0.6 / n_rows)
    return fig


def sensitivity_plot(sweep: pd.DataFrame, label: str, r_marks: Sequence[float]) -> Any:
    """Pooled mean change (with 95 % CI band) against the assumed pre/post correlation r."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    colours = {"dl": "#c0392b", "pm": "#8e44ad", "reml": "#16a085"}
    for method in [m for m in METHODS if f"{m}_estimate" in sweep.columns]:
        ax.plot(
            sweep["r"],
            sweep[f"{method}_estimate"],
            color=colours[method],
            label=METHOD_LABEL[method],
        )
        ax.fill_between(
            sweep["r"],
            sweep[f"{method}_ci_lower"],
            sweep[f"{method}_ci_upper"],
            color=colours[method],
            alpha=0.12,
        )
    for r in r_marks:
        ax.axvline(r, color="#999", lw=0.6, ls=":")
    ax.set_xlabel("assumed pre/post correlation r")
    ax.set_ylabel("pooled mean change, points")
    ax.legend(fontsize=8)
    ax.set_title(f"{label}: sensitivity to r", fontsize=10)
    return fig


# --------------------------------------------------------------------------- report


def _pooled_frame(res: OutcomeResult) -> pd.DataFrame:
    records = []
    for method, p in res.pooled.items():
        disp = res.display.get(method, {})
        rec = {"method": METHOD_LABEL[method], "k": p.k}
        for key in (
            "estimate",
            "ci_lower",
            "ci_upper",
            "hk_ci_lower",
            "hk_ci_upper",
            "pi_lower",
            "pi_upper",
        ):
            rec[key] = natural(disp, key, getattr(p, key))
        rec.update(
            {
                "tau2": p.tau2,
                "tau2_ci_lower": p.tau2_ci_lower,
                "tau2_ci_upper": p.tau2_ci_upper,
                "I2_percent": 100 * p.i2,
                "Q": p.q,
                "Q_df": p.q_df,
                "Q_p": p.q_p,
            }
        )
        if res.kind in ("proportion", "ratio"):
            rec["estimate_transformed"] = p.estimate
        records.append(rec)
    return pd.DataFrame(records)


def _study_frame(res: OutcomeResult) -> pd.DataFrame:
    cols = [
        "study",
        "year",
        "n",
        "population",
        "guidance",
        "timepoint_months",
        "verified",
        "events",
        "total",
        "y",
        "se",
        "estimate",
        "ci_lower",
        "ci_upper",
        "variance_from",
        "weight_fe",
        "weight_dl",
        "weight_pm",
    ]
    return res.studies[[c for c in cols if c in res.studies.columns]]


def build_sections(result: MetaResult) -> list[Any]:
    """Report sections (tables and figures) for :func:`cryoneuro.analysis.report.write_report`."""
    from cryoneuro.analysis.report import Figure, Section, Table

    c = result.counts
    generic = "effects" in result.outcomes
    overview = (
        (
            f"Data: {result.data} — {c['studies']} studies, effects on the "
            f"{result.transform} scale "
            f"(generic input). Random effects: {', '.join(METHOD_LABEL[m] for m in result.methods)}"
            "; fixed effect shown for reference. τ² CI by Q-profile (Viechtbauer 2007)."
        )
        if generic
        else (
            f"Data: {result.data} — {c['studies']} studies, {c['rows']} rows, {c['verified_rows']} "
            f"verified against the abstract. Pooled rows: "
            f"{'all' if result.include_unverified else 'verified only'}; one row per study "
            f"(the primary = last reported follow-up). Random effects: "
            f"{', '.join(METHOD_LABEL[m] for m in result.methods)} (τ² solved exactly, as "
            f"metafor); fixed effect "
            f"shown for reference. Missing SDs of a change imputed with r = {result.r:g} "
            f"(sensitivity r ∈ {{{', '.join(f'{v:g}' for v in result.r_grid)}}}). Proportions on "
            f"the {'logit' if result.transform == 'logit' else 'Freeman–Tukey'} scale. These "
            f"are small, "
            "uncontrolled case series: the pooled figures describe the published evidence, they do "
            "not establish efficacy (NICE HTG652: research only)."
        )
    )
    sections = [Section("Overview", overview)]
    all_excluded = []
    for name, res in result.outcomes.items():
        items: list[Any] = []
        if res.pooled:
            dl = res.pooled.get("dl") or next(iter(res.pooled.values()))
            text = (
                f"k = {res.k}; τ² (DL) = {dl.tau2:.3g} (95 % Q-profile CI "
                f"{dl.tau2_ci_lower:.3g} to {dl.tau2_ci_upper:.3g}), I² = {100 * dl.i2:.0f} %, "
                f"Q = {dl.q:.2f} (df {dl.q_df}, p = {dl.q_p:.3g})."
            )
            failed = [
                f"{METHOD_LABEL[m]}: {p.note}" for m, p in res.pooled.items() if not p.converged
            ]
            if failed:
                text += " Not converged (no estimate shown): " + "; ".join(failed) + "."
            items.append(
                Table(
                    f"{name}_pooled",
                    "Pooled estimates",
                    _pooled_frame(res),
                    "95 % CI (normal); HK = Hartung–Knapp CI; PI = 95 % prediction "
                    "interval (k ≥ 3)",
                )
            )
            items.append(
                Table(
                    f"{name}_studies",
                    "Studies in the analysis",
                    _study_frame(res),
                    "y and se on the analysis scale; estimate and CI on the natural scale",
                )
            )
            methods = [m for m in METHODS if m in res.pooled]
            cap = "; ".join(
                f"{METHOD_LABEL[m]}: τ² = {res.pooled[m].tau2:.3g}, "
                f"I² = {100 * res.pooled[m].i2:.0f} %"
                for m in methods
            )
            pi = (
                " Prediction interval shown as a bar under the diamond."
                if res.k >= 3
                else " No prediction interval (needs k ≥ 3)."
            )
            items.append(
                Figure(
                    f"forest_{name}",
                    f"Forest plot — {res.label}",
                    forest_plot(res),
                    f"Squares: study estimates sized by random-effects weight; "
                    f"diamonds: pooled estimates. {cap}.{pi}",
                )
            )
            if res.regression is not None:
                reg = res.regression
                items.append(
                    Table(
                        f"{name}_meta_regression",
                        "Meta-regression (REML)",
                        reg.table(),
                        f"residual τ² = {reg.tau2:.3g}; QE = {reg.qe:.2f} (df "
                        f"{reg.qe_df}, p = {reg.qe_p:.2g}); QM = {reg.qm:.2f} (df "
                        f"{reg.qm_df}, p = {reg.qm_p:.2g}); pseudo-R² = "
                        f"{100 * reg.r2:.0f} %",
                    )
                )
            if res.sensitivity is not None and not res.sensitivity.empty:
                items.append(
                    Table(
                        f"{name}_r_sensitivity",
                        "Sensitivity to the pre/post correlation r",
                        res.sensitivity,
                        "only studies whose SD of the change was imputed move",
                    )
                )
                sweep = r_sensitivity(
                    _candidates_for(result, name),
                    np.round(np.linspace(-0.2, 0.95, 24), 3).tolist(),
                    list(result.methods),
                )
                items.append(
                    Figure(
                        f"r_sensitivity_{name}",
                        "Pooled mean change against r",
                        sensitivity_plot(sweep, res.label, result.r_grid),
                        "Shaded: 95 % CI. Dotted lines: the configured r values.",
                    )
                )
        else:
            text = f"Not pooled: {res.reason}."
            if len(res.studies):
                items.append(Table(f"{name}_studies", "Studies (not pooled)", _study_frame(res)))
        sections.append(Section(res.label, text, items))
        for _, row in res.excluded.iterrows():
            all_excluded.append({"analysis": name, **row.to_dict()})
    if all_excluded:
        sections.append(
            Section(
                "Studies listed but not pooled",
                "Each with the reason.",
                [Table("excluded", "Excluded rows", pd.DataFrame(all_excluded))],
            )
        )
    if generic:
        return sections
    frame = load_evidence(None if result.data.startswith("bundled:") else result.data)
    data_cols = [
        "study",
        "year",
        "outcome",
        "timepoint_months",
        "primary",
        "n",
        "baseline_mean",
        "baseline_sd",
        "followup_mean",
        "followup_sd",
        "events",
        "total",
        "effect",
        "ci_lower",
        "ci_upper",
        "verified",
    ]
    sections.append(
        Section(
            "Data set",
            "Every row of the evidence file (source sentences and notes are in the CSV).",
            [Table("evidence", "Evidence rows", frame[data_cols])],
        )
    )
    return sections


def _candidates_for(result: MetaResult, outcome: str) -> pd.DataFrame:
    frame = load_evidence(None if result.data.startswith("bundled:") else result.data)
    cands, _ = _eligible(frame, OUTCOMES[outcome]["codes"], result.include_unverified)
    return cands


def write_meta_report(result: MetaResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``meta.html``, ``meta.pdf``, ``tables/*.csv`` and ``figures/*.png`` into out_dir."""
    from cryoneuro.analysis.report import write_report

    sections = build_sections(result)
    return write_report(
        out_dir,
        "Evidence synthesis: percutaneous cryoablation of peripheral neuromas",
        sections,
        subtitle=f"data: {result.data}",
        stem="meta",
    )
