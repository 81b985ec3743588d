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

Pooling (via :func:`statsmodels.stats.meta_analysis.combine_effects`)
    fixed effect (inverse variance), random effects with DerSimonian–Laird (1986) or
    Paule–Mandel (1982) τ², Hartung–Knapp(–Sidik–Jonkman) CIs, Cochran's Q with its χ² p-value,
    I² = max(0, (Q − df)/Q) (Higgins & Thompson 2002) and the prediction interval
    ``μ̂ ± t₀.₉₇₅,ₖ₋₂ · √(τ² + SE(μ̂)²)`` (Higgins, Thompson & Spiegelhalter 2009; k ≥ 3).
"""

from __future__ import annotations

import math
import warnings
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
METHODS = ("dl", "pm")
METHOD_LABEL = {"fe": "fixed effect", "dl": "DerSimonian–Laird", "pm": "Paule–Mandel"}

#: Analysis outcomes: which CSV outcome codes each pools and on which scale.
OUTCOMES: dict[str, dict[str, Any]] = {
    "pain": {"codes": ("pain_nrs", "pain_vas"), "kind": "change",
             "label": "Pain (0–10 NRS or VAS), mean change from baseline"},
    "pain_nrs": {"codes": ("pain_nrs",), "kind": "change",
                 "label": "Pain NRS (0–10), mean change from baseline"},
    "pain_vas": {"codes": ("pain_vas",), "kind": "change",
                 "label": "Pain VAS (0–10), mean change from baseline"},
    "pain_md": {"codes": ("pain_md",), "kind": "difference",
                "label": "Pain (0–10), difference in change, cryoablation − control (RCT)"},
    "responder": {"codes": ("responder",), "kind": "proportion",
                  "label": "Responders (pain relief as defined by each study), proportion"},
    "complication": {"codes": ("complication",), "kind": "proportion",
                     "label": "Procedure-related complications, proportion"},
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
    value = sd_baseline ** 2 + sd_followup ** 2 - 2.0 * r * sd_baseline * sd_followup
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


def mean_change(baseline_mean: float, followup_mean: float, n: int, *,
                baseline_sd: float = math.nan, followup_sd: float = math.nan,
                r: float = R_DEFAULT, change: float = math.nan) -> tuple[float, float]:
    """Single-arm mean change and its variance ``SD_change²/n`` with SD_change imputed from r.

    ``change`` overrides ``followup − baseline`` when the paper reports the mean change itself
    (paired patients only). Returns ``(y, var)``.
    """
    y = change if not math.isnan(change) else followup_mean - baseline_mean
    sd = sd_change(baseline_sd, followup_sd, r)
    return y, sd ** 2 / n


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
    y = 0.5 * (math.asin(math.sqrt(events / (n + 1)))
               + math.asin(math.sqrt((events + 1) / (n + 1))))
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
    weights: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("weights")
        return out


def pool(effect: Sequence[float], variance: Sequence[float], method: str = "dl",
         labels: Sequence[str] | None = None) -> Pooled:
    """Pool effects with statsmodels' ``combine_effects`` (``method`` = "fe", "dl" or "pm").

    statsmodels returns the raw DerSimonian–Laird moment estimate ``(Q − df)/C`` (negative when
    Q < df); DL truncates it at 0, and with τ² = 0 the random-effects model is the fixed-effect
    one, which is what is reported then. Paule–Mandel solves ``Σ wᵢ(τ²)(yᵢ − μ̂(τ²))² = k − 1``
    iteratively; the tolerance is tightened from statsmodels' 1e-5 to 1e-12.
    """
    from statsmodels.stats.meta_analysis import combine_effects

    y = np.asarray(effect, dtype=float)
    v = np.asarray(variance, dtype=float)
    k = len(y)
    if k < 2:
        raise InputError(f"{k} study: pooling needs at least 2 studies for an outcome")
    if np.any(~np.isfinite(y)) or np.any(~np.isfinite(v)) or np.any(v <= 0):
        raise InputError("every study needs a finite effect and a positive variance")
    if method not in ("fe", "dl", "pm"):
        raise InputError(f"method '{method}': use dl, pm or both")
    names = list(labels) if labels is not None else [str(i) for i in range(k)]
    re = "pm" if method == "pm" else "dl"
    kwds = {"atol": 1e-12, "maxiter": 500} if re == "pm" else {}
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # a negative raw DL τ² makes statsmodels take square roots of negatives in rows we
        # do not use (we report the fixed-effect row then)
        warnings.simplefilter("ignore", RuntimeWarning)
        res = combine_effects(y, v, method_re=re, row_names=names, **kwds)
        frame = res.summary_frame()
    q, df = float(res.q), k - 1
    q_p = float(stats.chi2.sf(q, df))
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    fixed = method == "fe" or (method == "dl" and res.tau2 < 0) or \
        (method == "pm" and res.tau2 <= 0)
    tau2 = 0.0 if method == "fe" else max(0.0, float(res.tau2))
    if fixed:
        row, weights = frame.loc["fixed effect"], np.asarray(res.weights_rel_fe, dtype=float)
        wls_sd, mean = float(res.sd_eff_w_fe_hksj), float(res.mean_effect_fe)
    else:
        row, weights = frame.loc["random effect"], np.asarray(res.weights_rel_re, dtype=float)
        wls_sd, mean = float(res.sd_eff_w_re_hksj), float(res.mean_effect_re)
    se = float(row["sd_eff"])
    z = mean / se
    out = Pooled(method=method, k=k, estimate=mean, se=se, ci_lower=float(row["ci_low"]),
                 ci_upper=float(row["ci_upp"]), z=z, p=float(2 * stats.norm.sf(abs(z))),
                 tau2=tau2, i2=i2, q=q, q_df=df, q_p=q_p, weights=weights.tolist())
    if method != "fe":
        tq = stats.t.ppf(0.975, df)
        out.hk_ci_lower, out.hk_ci_upper = mean - tq * wls_sd, mean + tq * wls_sd
        if k >= 3:
            half = stats.t.ppf(0.975, k - 2) * math.sqrt(tau2 + se ** 2)
            out.pi_lower, out.pi_upper = mean - half, mean + half
    return out


# --------------------------------------------------------------------------- analysis


@dataclass
class OutcomeResult:
    """Everything about one analysis outcome: study table, pooled results, sensitivity."""

    outcome: str
    label: str
    kind: str
    studies: pd.DataFrame            # rows in the pooling, with y, v, CI, weights
    excluded: pd.DataFrame           # rows listed but not pooled, with the reason
    pooled: dict[str, Pooled] = field(default_factory=dict)
    display: dict[str, dict[str, float]] = field(default_factory=dict)  # natural-scale values
    sensitivity: pd.DataFrame | None = None
    transform: str = ""
    reason: str = ""                 # why nothing was pooled (k < 2)

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
        """JSON payload (design.md §3): pooled results per outcome and method."""
        payload: dict[str, Any] = {
            "data": self.data, "r": self.r, "r_sensitivity": list(self.r_grid),
            "methods": list(self.methods), "include_unverified": self.include_unverified,
            "proportion_scale": self.transform, "counts": self.counts, "outcomes": {},
        }
        for name, res in self.outcomes.items():
            entry: dict[str, Any] = {"label": res.label, "kind": res.kind, "k": res.k,
                                     "pooled": bool(res.pooled)}
            if res.kind == "proportion":
                entry["scale"] = f"{res.transform} (estimates back-transformed to proportions)"
            for method, p in res.pooled.items():
                entry[method] = {**p.to_dict(), **res.display.get(method, {})}
            if res.reason:
                entry["reason"] = res.reason
            entry["studies"] = [] if res.studies.empty else [
                {"study": s, "n": int(n), "effect": float(yv), "variance": float(vv)}
                for s, n, yv, vv in zip(res.studies["study"], res.studies["n"],
                                        res.studies["y"], res.studies["v"])]
            entry["excluded"] = [{"study": s, "reason": why} for s, why in
                                 zip(res.excluded["study"], res.excluded["reason"])]
            if res.sensitivity is not None:
                entry["r_sensitivity"] = res.sensitivity.to_dict(orient="records")
            payload["outcomes"][name] = entry
        return payload


def _eligible(frame: pd.DataFrame, codes: Iterable[str], include_unverified: bool
              ) -> tuple[pd.DataFrame, list[tuple[pd.Series, str]]]:
    """Split rows of one outcome into candidates (primary time point) and excluded with reason."""
    rows = frame[frame["outcome"].isin(tuple(codes))]
    counts = rows.groupby(["study", "outcome"])["line"].transform("count")
    keep, excluded = [], []
    for (_, row), count in zip(rows.iterrows(), counts):
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
        return y, se ** 2, f"SE from the reported 95 % CI ({'t' if df else 'z'})"
    if not (math.isnan(row["baseline_sd"]) or math.isnan(row["followup_sd"])):
        sd = sd_change(row["baseline_sd"], row["followup_sd"], r)
        if sd == 0:
            raise InputError(f"line {int(row['line'])} (study '{row['study']}'): the imputed SD "
                             f"of the change is 0 at r = {r:g}; choose r < 1")
        return y, sd ** 2 / row["n"], "imputed"
    return "no SD, SE or CI reported: no variance can be derived (SDs are never invented)"


def _study_rows(cands: pd.DataFrame, kind: str, r: float, transform: str
                ) -> tuple[list[dict[str, Any]], list[tuple[pd.Series, str]]]:
    rows, excluded = [], []
    for _, row in cands.iterrows():
        base = {"study": row["study"], "year": int(row["year"]), "n": int(row["n"]),
                "population": row["population"], "guidance": row["guidance"],
                "timepoint_months": row["timepoint_months"], "verified": row["verified"],
                "line": int(row["line"])}
        if kind == "change":
            got = _change_effect(row, r)
            if isinstance(got, str):
                excluded.append((row, got))
                continue
            y, v, how = got
            rows.append({**base, "y": y, "v": v, "variance_from": how, "imputed": how == "imputed",
                         "row": row})
        elif kind == "difference":
            if math.isnan(row["effect"]) or math.isnan(row["ci_lower"]):
                excluded.append((row, "needs the difference and its 95 % CI"))
                continue
            df = int(row["n"]) - 2 if row["ci_dist"] == "t" else None
            se = se_from_ci(row["ci_lower"], row["ci_upper"], df)
            rows.append({**base, "y": row["effect"], "v": se ** 2,
                         "variance_from": "SE from the reported 95 % CI", "imputed": False,
                         "row": row})
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
            rows.append({**base, "events": x, "total": n, "y": y, "v": v, "variance_from": how,
                         "imputed": False, "row": row})
    return rows, excluded


def _to_natural(kind: str, transform: str, y: float, n: float) -> float:
    if kind != "proportion" or math.isnan(y):
        return y
    return inv_ft(y, n) if transform == "ft" else inv_logit(y)


def analyse_outcome(frame: pd.DataFrame, outcome: str, *, methods: Sequence[str] = METHODS,
                    r: float = R_DEFAULT, r_grid: Sequence[float] = R_SENSITIVITY,
                    include_unverified: bool = False, transform: str = "logit") -> OutcomeResult:
    """Select, compute effects and pool one outcome; k < 2 leaves ``pooled`` empty with a reason."""
    spec = OUTCOMES[outcome]
    kind = spec["kind"]
    cands, excluded = _eligible(frame, spec["codes"], include_unverified)
    rows, more = _study_rows(cands, kind, r, transform) if len(cands) else ([], [])
    excluded += more
    ex = pd.DataFrame([{"study": row["study"], "outcome": row["outcome"],
                        "timepoint_months": row["timepoint_months"], "verified": row["verified"],
                        "reason": why} for row, why in excluded],
                      columns=["study", "outcome", "timepoint_months", "verified", "reason"])
    studies = pd.DataFrame(rows)
    result = OutcomeResult(outcome=outcome, label=spec["label"], kind=kind,
                           studies=studies.drop(columns=["row"], errors="ignore"), excluded=ex,
                           transform=transform if kind == "proportion" else "")
    if len(rows) < 2:
        result.reason = (f"{len(rows)} poolable stud{'y' if len(rows) == 1 else 'ies'}: pooling "
                         "needs at least 2")
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
                for key in ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper",
                            "hk_ci_lower", "hk_ci_upper")}
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
        out["estimate"] = [_to_natural(kind, transform, a, b) for a, b in zip(out["y"], n)]
        out["ci_lower"] = [_to_natural(kind, transform, a, b) for a, b in zip(lo, n)]
        out["ci_upper"] = [_to_natural(kind, transform, a, b) for a, b in zip(hi, n)]
    else:
        out["estimate"], out["ci_lower"], out["ci_upper"] = out["y"], lo, hi
    out["se"] = se
    return out


def r_sensitivity(cands: pd.DataFrame, r_grid: Sequence[float], methods: Sequence[str]
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
            rec.update({f"{method}_estimate": p.estimate, f"{method}_ci_lower": p.ci_lower,
                        f"{method}_ci_upper": p.ci_upper, f"{method}_tau2": p.tau2,
                        f"{method}_i2": p.i2})
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
            raise InputError(f"--r-sensitivity: '{part}' is not a number; give comma-separated "
                             "correlations such as 0.2,0.5,0.8") from None
        check_r(value, "--r-sensitivity")
        values.append(value)
    if not values:
        raise InputError("--r-sensitivity: give at least one correlation, e.g. 0.2,0.5,0.8")
    return tuple(values)


def check_r(r: float, name: str = "--r") -> None:
    if not (math.isfinite(r) and -1.0 <= r <= 1.0):
        raise InputError(f"{name} {r:g} is not a correlation; use a value in [-1, 1] (0.5 is "
                         "the default)")


def run_meta(data: str | Path | None = None, *, outcomes: Sequence[str] | None = None,
             methods: Sequence[str] = METHODS, r: float = R_DEFAULT,
             r_grid: Sequence[float] = R_SENSITIVITY, include_unverified: bool = False,
             transform: str = "logit") -> MetaResult:
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
    wanted = list(outcomes) if explicit else [o for o in DEFAULT_OUTCOMES if frame["outcome"].isin(
        OUTCOMES[o]["codes"]).any()]
    for name in wanted:
        if name not in OUTCOMES:
            raise InputError(f"--outcome '{name}': use one of {', '.join(OUTCOMES)}")
    results = {}
    for name in wanted:
        res = analyse_outcome(frame, name, methods=methods, r=r, r_grid=r_grid,
                              include_unverified=include_unverified, transform=transform)
        if explicit and not res.pooled:
            hint = "" if include_unverified else " (--include-unverified adds unverified rows)"
            raise InputError(f"outcome '{name}': {res.reason}{hint}; see the excluded studies "
                             "with a default run")
        results[name] = res
    if not any(res.pooled for res in results.values()):
        raise InputError("no outcome has at least 2 poolable studies; check the verified, "
                         "primary and SD/CI columns of the evidence file")
    return MetaResult(data=str(data) if data is not None else "bundled:neuroma_cryoablation.csv",
                      r=r, r_grid=r_grid, methods=tuple(methods),
                      include_unverified=include_unverified, transform=transform,
                      outcomes=results, counts=summary_counts(frame))


# --------------------------------------------------------------------------- figures


def _fmt(value: float, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f} %" if kind == "proportion" else f"{value:.2f}"


def forest_plot(res: OutcomeResult) -> Any:
    """Forest plot: squares sized by random-effects weight, DL/PM diamonds, prediction interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon

    st = res.studies
    methods = [m for m in ("dl", "pm") if m in res.pooled]
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
        ax.text(-0.02, yy, f"{row['study']}{mark}  (n={row['n']})",
                transform=ax.get_yaxis_transform(),
                ha="right", va="center", fontsize=8.5)
        ax.text(1.02, yy, f"{_fmt(row['estimate'], res.kind)} [{_fmt(row['ci_lower'], res.kind)}, "
                          f"{_fmt(row['ci_upper'], res.kind)}]",
                transform=ax.get_yaxis_transform(), ha="left", va="center", fontsize=8)
    colours = {"dl": "#c0392b", "pm": "#8e44ad"}
    for j, method in enumerate(methods):
        p, disp = res.pooled[method], res.display.get(method, {})
        est = disp.get("estimate_proportion", p.estimate)
        lo = disp.get("ci_lower_proportion", p.ci_lower)
        hi = disp.get("ci_upper_proportion", p.ci_upper)
        yy = len(methods) - j
        ax.add_patch(Polygon([[lo, yy], [est, yy + 0.3], [hi, yy], [est, yy - 0.3]],
                             closed=True, color=colours[method], zorder=3))
        pil = disp.get("pi_lower_proportion", p.pi_lower)
        piu = disp.get("pi_upper_proportion", p.pi_upper)
        if not math.isnan(pil):
            ax.plot([pil, piu], [yy - 0.42, yy - 0.42], color=colours[method], lw=2.2, alpha=0.5)
        ax.text(-0.02, yy, f"{METHOD_LABEL[method]} (k={p.k})", transform=ax.get_yaxis_transform(),
                ha="right", va="center", fontsize=8.5, weight="bold")
        ax.text(1.02, yy, f"{_fmt(est, res.kind)} [{_fmt(lo, res.kind)}, {_fmt(hi, res.kind)}]",
                transform=ax.get_yaxis_transform(), ha="left", va="center", fontsize=8,
                weight="bold")
    if res.kind in ("change", "difference"):
        ax.axvline(0, color="#888", lw=0.8, ls="--")
    ax.set_ylim(0.2, n_rows - 0.3)
    ax.set_yticks([])
    ax.set_xlabel("proportion" if nat else "mean change, points (negative = less pain)"
                  if res.kind == "change" else "difference, points (negative favours cryoablation)")
    if nat:
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_title(res.label, fontsize=10)
    het = "; ".join(f"{METHOD_LABEL[m]}: τ² = {res.pooled[m].tau2:.3g}, "
                    f"I² = {100 * res.pooled[m].i2:.0f} %" for m in methods)
    if methods:
        q = res.pooled[methods[0]]
        pi = "bar under a diamond = 95 % prediction interval" if q.k >= 3 else \
            "no prediction interval (k < 3)"
        dagger = "; † = not verified against the abstract" if (st["verified"] != "yes").any() \
            else ""
        fig.text(0.02, 0.01, f"{het}; Q = {q.q:.2f} (df {q.q_df}, p = {q.q_p:.2g}); {pi}{dagger}",
                 fontsize=7.5, color="#444")
    fig.subplots_adjust(left=0.3, right=0.78, bottom=0.12 + 0.6 / n_rows)
    return fig


def sensitivity_plot(sweep: pd.DataFrame, label: str, r_marks: Sequence[float]) -> Any:
    """Pooled mean change (with 95 % CI band) against the assumed pre/post correlation r."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    colours = {"dl": "#c0392b", "pm": "#8e44ad"}
    for method in [m for m in ("dl", "pm") if f"{m}_estimate" in sweep.columns]:
        ax.plot(sweep["r"], sweep[f"{method}_estimate"], color=colours[method],
                label=METHOD_LABEL[method])
        ax.fill_between(sweep["r"], sweep[f"{method}_ci_lower"], sweep[f"{method}_ci_upper"],
                        color=colours[method], alpha=0.12)
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
        for key in ("estimate", "ci_lower", "ci_upper", "hk_ci_lower", "hk_ci_upper", "pi_lower",
                    "pi_upper"):
            rec[key] = disp.get(f"{key}_proportion", getattr(p, key))
        rec.update({"tau2": p.tau2, "I2_percent": 100 * p.i2, "Q": p.q, "Q_df": p.q_df,
                    "Q_p": p.q_p})
        if res.kind == "proportion":
            rec["estimate_transformed"] = p.estimate
        records.append(rec)
    return pd.DataFrame(records)


def _study_frame(res: OutcomeResult) -> pd.DataFrame:
    cols = ["study", "year", "n", "population", "guidance", "timepoint_months", "verified",
            "events", "total", "y", "se", "estimate", "ci_lower", "ci_upper", "variance_from",
            "weight_fe", "weight_dl", "weight_pm"]
    return res.studies[[c for c in cols if c in res.studies.columns]]


def build_sections(result: MetaResult) -> list[Any]:
    """Report sections (tables and figures) for :func:`cryoneuro.analysis.report.write_report`."""
    from cryoneuro.analysis.report import Figure, Section, Table

    c = result.counts
    overview = (
        f"Data: {result.data} — {c['studies']} studies, {c['rows']} rows, {c['verified_rows']} "
        f"verified against the abstract. Pooled rows: "
        f"{'all' if result.include_unverified else 'verified only'}; one row per study "
        f"(the primary = last reported follow-up). Random effects: "
        f"{', '.join(METHOD_LABEL[m] for m in result.methods)} via statsmodels; fixed effect "
        f"shown for reference. Missing SDs of a change imputed with r = {result.r:g} "
        f"(sensitivity r ∈ {{{', '.join(f'{v:g}' for v in result.r_grid)}}}). Proportions on the "
        f"{'logit' if result.transform == 'logit' else 'Freeman–Tukey'} scale. These are small, "
        "uncontrolled case series: the pooled figures describe the published evidence, they do "
        "not establish efficacy (NICE HTG652: research only)."
    )
    sections = [Section("Overview", overview)]
    all_excluded = []
    for name, res in result.outcomes.items():
        items: list[Any] = []
        if res.pooled:
            dl = res.pooled.get("dl") or next(iter(res.pooled.values()))
            text = (f"k = {res.k}; τ² (DL) = {dl.tau2:.3g}, I² = {100 * dl.i2:.0f} %, "
                    f"Q = {dl.q:.2f} (df {dl.q_df}, p = {dl.q_p:.3g}).")
            items.append(Table(f"{name}_pooled", "Pooled estimates", _pooled_frame(res),
                               "95 % CI (normal); HK = Hartung–Knapp CI; PI = 95 % prediction "
                               "interval (k ≥ 3)"))
            items.append(Table(f"{name}_studies", "Studies in the analysis", _study_frame(res),
                               "y and se on the analysis scale; estimate and CI on the natural "
                               "scale"))
            methods = [m for m in ("dl", "pm") if m in res.pooled]
            cap = "; ".join(f"{METHOD_LABEL[m]}: τ² = {res.pooled[m].tau2:.3g}, "
                            f"I² = {100 * res.pooled[m].i2:.0f} %" for m in methods)
            pi = " Prediction interval shown as a bar under the diamond." if res.k >= 3 else \
                " No prediction interval (needs k ≥ 3)."
            items.append(Figure(f"forest_{name}", f"Forest plot — {res.label}", forest_plot(res),
                                f"Squares: study estimates sized by random-effects weight; "
                                f"diamonds: pooled estimates. {cap}.{pi}"))
            if res.sensitivity is not None and not res.sensitivity.empty:
                items.append(Table(f"{name}_r_sensitivity", "Sensitivity to the pre/post "
                                   "correlation r", res.sensitivity,
                                   "only studies whose SD of the change was imputed move"))
                sweep = r_sensitivity(_candidates_for(result, name),
                                      np.round(np.linspace(-0.2, 0.95, 24), 3).tolist(),
                                      list(result.methods))
                items.append(Figure(f"r_sensitivity_{name}", "Pooled mean change against r",
                                    sensitivity_plot(sweep, res.label, result.r_grid),
                                    "Shaded: 95 % CI. Dotted lines: the configured r values."))
        else:
            text = f"Not pooled: {res.reason}."
            if len(res.studies):
                items.append(Table(f"{name}_studies", "Studies (not pooled)", _study_frame(res)))
        sections.append(Section(res.label, text, items))
        for _, row in res.excluded.iterrows():
            all_excluded.append({"analysis": name, **row.to_dict()})
    if all_excluded:
        sections.append(Section("Studies listed but not pooled", "Each with the reason.", [
            Table("excluded", "Excluded rows", pd.DataFrame(all_excluded))]))
    frame = load_evidence(None if result.data.startswith("bundled:") else result.data)
    data_cols = ["study", "year", "outcome", "timepoint_months", "primary", "n", "baseline_mean",
                 "baseline_sd", "followup_mean", "followup_sd", "events", "total", "effect",
                 "ci_lower", "ci_upper", "verified"]
    sections.append(Section("Data set", "Every row of the evidence file (source sentences and "
                            "notes are in the CSV).", [Table("evidence", "Evidence rows",
                                                             frame[data_cols])]))
    return sections


def _candidates_for(result: MetaResult, outcome: str) -> pd.DataFrame:
    frame = load_evidence(None if result.data.startswith("bundled:") else result.data)
    cands, _ = _eligible(frame, OUTCOMES[outcome]["codes"], result.include_unverified)
    return cands


def write_meta_report(result: MetaResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``meta.html``, ``meta.pdf``, ``tables/*.csv`` and ``figures/*.png`` into out_dir."""
    from cryoneuro.analysis.report import write_report

    sections = build_sections(result)
    return write_report(out_dir, "Evidence synthesis: percutaneous cryoablation of peripheral "
                        "neuromas", sections, subtitle=f"data: {result.data}", stem="meta")
