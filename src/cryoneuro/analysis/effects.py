"""Between-arm effects for every outcome of a randomised trial (treated − control).

Why: a trial report gives each outcome's comparison, not only the primary one, each with the
interval appropriate to its kind:

* continuous outcomes (pain, EQ-5D-5L index and VAS, MOXFQ, walking distance, BPI, stump
  pains): the MMRM of :func:`cryoneuro.analysis.rct.mmrm` (same covariance as the primary);
* responders (≥ 30 % / ≥ 50 % pain reduction) and safety events (participants with ≥ 1 event
  per NICE category): risk difference with Newcombe's hybrid score interval (Newcombe 1998,
  Stat Med 17:873, method 10; statsmodels ``confint_proportions_2indep(method="newcomb")``),
  the odds ratio (responders) as the conditional maximum-likelihood estimate with its exact
  interval and Fisher's exact test (scipy ``contingency.odds_ratio(kind="conditional")``,
  ``fisher_exact``), and the risk ratio (safety) with the Koopman score interval
  (statsmodels ``method="score"``, defined when one arm has no events);
* time to recurrence and to re-intervention: the Cox proportional-hazards ratio (lifelines
  ``CoxPHFitter``, Efron ties, Wald 95 % CI) — numbers at risk are printed under every
  Kaplan–Meier plot by :func:`cryoneuro.analysis.survival.kaplan_meier`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep

from cryoneuro.analysis import outcomes as oc
from cryoneuro.analysis import rct
from cryoneuro.analysis.tidy import TidyData


def risk_difference(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    """k1/n1 − k2/n2 with Newcombe's hybrid score 95 % CI."""
    lo, hi = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff")
    return k1 / n1 - k2 / n2, float(lo), float(hi)


def risk_ratio(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    """(k1/n1)/(k2/n2) with the Koopman score 95 % CI (NaN where both arms have no events)."""
    if k1 == 0 and k2 == 0:
        return math.nan, math.nan, math.nan
    lo, hi = confint_proportions_2indep(k1, n1, k2, n2, method="score", compare="ratio")
    ratio = (k1 / n1) / (k2 / n2) if k2 else math.inf
    return ratio, float(lo), float(hi)


def odds_ratio(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float, float]:
    """Conditional MLE odds ratio, exact 95 % CI and Fisher's exact two-sided p."""
    from scipy.stats.contingency import odds_ratio as scipy_or

    table = np.array([[k1, n1 - k1], [k2, n2 - k2]])
    res = scipy_or(table, kind="conditional")
    ci = res.confidence_interval(0.95)
    return float(res.statistic), float(ci.low), float(ci.high), \
        float(stats.fisher_exact(table).pvalue)


def continuous(data: TidyData, scores: pd.DataFrame, control: str | None, covariance: str,
               outcomes: list[str]) -> pd.DataFrame:
    """The MMRM treatment effect at every visit for each continuous outcome given."""
    tables = []
    for code in outcomes:
        try:
            table = rct.mmrm(data, code, control, scores, covariance=covariance)
        except Exception as exc:  # noqa: BLE001 - a secondary outcome that cannot be modelled
            from cryoneuro.errors import InputError

            if not isinstance(exc, InputError):
                raise
            tables.append(pd.DataFrame([{"outcome": code, "note": str(exc)}]))
            continue
        table.insert(1, "label", oc.OUTCOMES[code].label)
        table["favours_treated_when"] = ("positive" if oc.OUTCOMES[code].higher_is_better
                                         else "negative")
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def responders(data: TidyData, scores: pd.DataFrame, control: str | None, outcome: str = "pain"
               ) -> pd.DataFrame:
    """Responder risk difference (Newcombe) and odds ratio (exact) per threshold and visit."""
    treated_arm, control_arm = rct.arms(data, control)
    rates = oc.responder_rates(data, outcome, score_rows=scores)
    rows = []
    for (threshold, visit), group in rates.groupby(["threshold_percent", "visit"], sort=False):
        by_arm = group.set_index("arm")
        if treated_arm not in by_arm.index or control_arm not in by_arm.index:
            continue
        t, c = by_arm.loc[treated_arm], by_arm.loc[control_arm]
        k1, n1, k2, n2 = int(t["responders"]), int(t["n"]), int(c["responders"]), int(c["n"])
        rd, rd_lo, rd_hi = risk_difference(k1, n1, k2, n2)
        or_, or_lo, or_hi, p = odds_ratio(k1, n1, k2, n2)
        rows.append({"outcome": outcome, "threshold_percent": int(threshold), "visit": visit,
                     "months": float(t["months"]), "comparison": f"{treated_arm} − {control_arm}",
                     "responders_treated": f"{k1}/{n1}", "responders_control": f"{k2}/{n2}",
                     "risk_difference": rd, "rd_ci_lower": rd_lo, "rd_ci_upper": rd_hi,
                     "odds_ratio": or_, "or_ci_lower": or_lo, "or_ci_upper": or_hi,
                     "fisher_p": p})
    return pd.DataFrame(rows)


def safety(table: pd.DataFrame, treated_arm: str, control_arm: str) -> pd.DataFrame:
    """Per NICE category: risk difference (Newcombe) and risk ratio (score CI), Fisher p."""
    rows = []
    for category, group in table.groupby("category", sort=False):
        by_arm = group.set_index("arm")
        if treated_arm not in by_arm.index or control_arm not in by_arm.index:
            continue
        t, c = by_arm.loc[treated_arm], by_arm.loc[control_arm]
        k1, n1 = int(t["participants_with_event"]), int(t["exposed"])
        k2, n2 = int(c["participants_with_event"]), int(c["exposed"])
        rd, rd_lo, rd_hi = risk_difference(k1, n1, k2, n2)
        rr, rr_lo, rr_hi = risk_ratio(k1, n1, k2, n2)
        rows.append({"category": category, "comparison": f"{treated_arm} − {control_arm}",
                     "events_treated": f"{k1}/{n1}", "events_control": f"{k2}/{n2}",
                     "risk_difference": rd, "rd_ci_lower": rd_lo, "rd_ci_upper": rd_hi,
                     "risk_ratio": rr, "rr_ci_lower": rr_lo, "rr_ci_upper": rr_hi,
                     "fisher_p": float(stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)})
    return pd.DataFrame(rows)


def hazard_ratio(times: pd.DataFrame, treated_arm: str, control_arm: str, endpoint: str
                 ) -> dict[str, float | str]:
    """Cox hazard ratio treated/control (lifelines, Efron ties), Wald 95 % CI and p."""
    from lifelines import CoxPHFitter

    frame = times[times["arm"].isin([treated_arm, control_arm])]
    frame = pd.DataFrame({"duration": frame["duration"].astype(float),
                          "event": frame["event"].astype(int),
                          "treated": (frame["arm"] == treated_arm).astype(float)})
    out: dict[str, float | str] = {"endpoint": endpoint,
                                   "comparison": f"{treated_arm} / {control_arm}",
                                   "n": len(frame), "events": int(frame["event"].sum())}
    events_by_arm = frame.groupby("treated")["event"].sum()
    if frame["treated"].nunique() < 2 or (events_by_arm == 0).any():
        # with no events in an arm the partial likelihood has no maximum (HR → 0 or ∞)
        out["note"] = "no events in an arm: the hazard ratio is not estimable"
        return out
    fit = CoxPHFitter().fit(frame, "duration", "event")
    summary = fit.summary.loc["treated"]
    out.update({"hazard_ratio": float(summary["exp(coef)"]),
                "ci_lower": float(summary["exp(coef) lower 95%"]),
                "ci_upper": float(summary["exp(coef) upper 95%"]), "p": float(summary["p"])})
    return out
