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
from cryoneuro.errors import InputError


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
    return (
        float(res.statistic),
        float(ci.low),
        float(ci.high),
        float(stats.fisher_exact(table).pvalue),
    )


def continuous(
    data: TidyData, scores: pd.DataFrame, control: str | None, covariance: str, outcomes: list[str]
) -> pd.DataFrame:
    """The MMRM treatment effect at every visit for each continuous outcome given."""
    tables = []
    for code in outcomes:
        try:
            table = rct.mmrm(data, code, control, scores, covariance=covariance)
        except InputError as exc:  # a secondary outcome too sparse to model: said, not hidden
            tables.append(pd.DataFrame([{"outcome": code, "note": str(exc)}]))
            continue
        table.insert(1, "label", oc.OUTCOMES[code].label)
        table["favours_treated_when"] = (
            "positive" if oc.OUTCOMES[code].higher_is_better else "negative"
        )
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def responders(
    data: TidyData, scores: pd.DataFrame, control: str | None, outcome: str = "pain"
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
        rows.append(
            {
                "outcome": outcome,
                "threshold_percent": int(threshold),
                "visit": visit,
                "months": float(t["months"]),
                "comparison": f"{treated_arm} − {control_arm}",
                "responders_treated": f"{k1}/{n1}",
                "responders_control": f"{k2}/{n2}",
                "risk_difference": rd,
                "rd_ci_lower": rd_lo,
                "rd_ci_upper": rd_hi,
                "odds_ratio": or_,
                "or_ci_lower": or_lo,
                "or_ci_upper": or_hi,
                "fisher_p": p,
            }
        )
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
        rows.append(
            {
                "category": category,
                "comparison": f"{treated_arm} − {control_arm}",
                "events_treated": f"{k1}/{n1}",
                "events_control": f"{k2}/{n2}",
                "risk_difference": rd,
                "rd_ci_lower": rd_lo,
                "rd_ci_upper": rd_hi,
                "risk_ratio": rr,
                "rr_ci_lower": rr_lo,
                "rr_ci_upper": rr_hi,
                "fisher_p": float(stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue),
            }
        )
    return pd.DataFrame(rows)


def hazard_ratio(
    times: pd.DataFrame, treated_arm: str, control_arm: str, endpoint: str
) -> dict[str, float | str]:
    """Cox hazard ratio treated/control (lifelines, Efron ties), Wald 95 % CI and p."""
    from lifelines import CoxPHFitter

    frame = times[times["arm"].isin([treated_arm, control_arm])]
    frame = pd.DataFrame(
        {
            "duration": frame["duration"].astype(float),
            "event": frame["event"].astype(int),
            "treated": (frame["arm"] == treated_arm).astype(float),
        }
    )
    out: dict[str, float | str] = {
        "endpoint": endpoint,
        "comparison": f"{treated_arm} / {control_arm}",
        "n": len(frame),
        "events": int(frame["event"].sum()),
    }
    events_by_arm = frame.groupby("treated")["event"].sum()
    if frame["treated"].nunique() < 2 or (events_by_arm == 0).any():
        # with no events in an arm the partial likelihood has no maximum (HR → 0 or ∞)
        out["note"] = "no events in an arm: the hazard ratio is not estimable"
        return out
    fit = CoxPHFitter().fit(frame, "duration", "event")
    summary = fit.summary.loc["treated"]
    out.update(
        {
            "hazard_ratio": float(summary["exp(coef)"]),
            "ci_lower": float(summary["exp(coef) lower 95%"]),
            "ci_upper": float(summary["exp(coef) upper 95%"]),
            "p": float(summary["p"]),
        }
    )
    return out


SUBGROUP_FACTORS = {"site": "site", "sex": "sex", "neuroma_type": "neuroma type"}


def subgroups(
    data: TidyData,
    scores: pd.DataFrame,
    control: str | None,
    visit: str,
    outcome: str = "pain",
    min_per_arm: int = 3,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Treatment effect at one visit within subgroups, and the treatment × subgroup test.

    Within each level: ANCOVA change ~ baseline + treated. Interaction: the F test comparing
    change ~ baseline + treated + level with change ~ baseline + treated × level (OLS,
    statsmodels ``compare_f_test``); a factor is examined when at least two of its levels have
    ``min_per_arm`` participants per arm. Subgroups are exploratory: the interaction p, not
    the within-level CIs, says whether the effect differs.
    """
    import statsmodels.formula.api as smf

    treated_arm, control_arm = rct.arms(data, control)
    values = oc.outcome_values(data, outcome, scores).dropna(subset=["baseline", "change"])
    frame = values[
        (values["visit_code"] == visit) & values["arm"].isin([treated_arm, control_arm])
    ].copy()
    frame["treated"] = (frame["arm"] == treated_arm).astype(float)
    people = data.participants.set_index("participant_id")
    effects_rows, tests = [], []
    for column, label in SUBGROUP_FACTORS.items():
        frame["level"] = frame["participant_id"].map(people[column]).fillna("")
        counts = (
            frame[frame["level"] != ""].groupby(["level", "treated"]).size().unstack(fill_value=0)
        )
        levels = [
            lvl
            for lvl in counts.index
            if counts.shape[1] == 2 and counts.loc[lvl].min() >= min_per_arm
        ]
        if len(levels) < 2:
            continue
        sub = frame[frame["level"].isin(levels)]
        for level in levels:
            group = sub[sub["level"] == level]
            fit = smf.ols("change ~ baseline + treated", group).fit()
            lo, hi = fit.conf_int().loc["treated"]
            effects_rows.append(
                {
                    "factor": label,
                    "level": level,
                    "visit": visit,
                    "n_treated": int(group["treated"].sum()),
                    "n_control": int((1 - group["treated"]).sum()),
                    "effect": float(fit.params["treated"]),
                    "ci_lower": float(lo),
                    "ci_upper": float(hi),
                }
            )
        full = smf.ols("change ~ baseline + treated * C(level)", sub).fit()
        reduced = smf.ols("change ~ baseline + treated + C(level)", sub).fit()
        f, p, df = full.compare_f_test(reduced)
        tests.append(
            {
                "factor": label,
                "levels": len(levels),
                "visit": visit,
                "interaction_F": float(f),
                "df_num": int(df),
                "df_den": int(full.df_resid),
                "interaction_p": float(p),
            }
        )
    return pd.DataFrame(effects_rows), pd.DataFrame(tests)


def subgroup_figure(table: pd.DataFrame, tests: pd.DataFrame, overall: float, label: str, ax=None):
    """Forest plot of the within-subgroup effects, with each factor's interaction p; on ``ax``
    (default a new pyplot-free Figure). Returns the figure."""
    from cryoneuro.plotting import figure_and_axes

    fig, ax = figure_and_axes(ax, (7.0, 0.4 * (len(table) + 2 * len(tests)) + 1.4), layout="tight")
    y, ticks, names = 0.0, [], []
    p_of = dict(zip(tests["factor"], tests["interaction_p"], strict=True))
    for factor, group in table.groupby("factor", sort=False):
        ticks.append(y)
        names.append(f"{factor} (interaction p = {p_of[factor]:.2g})")
        y -= 1
        for _, row in group.iterrows():
            ax.plot([row["ci_lower"], row["ci_upper"]], [y, y], color="#333")
            ax.plot([row["effect"]], [y], "s", color="#0057b8")
            ticks.append(y)
            names.append(f"   {row['level']} ({row['n_treated']}/{row['n_control']})")
            y -= 1
        y -= 0.5
    ax.axvline(0, color="0.5", lw=0.8)
    ax.axvline(overall, color="#c62828", ls="--", lw=0.8, label="overall (MMRM)")
    ax.set_yticks(ticks, names, fontsize=8)
    ax.set_xlabel(f"treatment effect, {label} (95 % CI)")
    ax.legend(frameon=False, fontsize=8)
    return fig
