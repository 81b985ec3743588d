"""Efficacy outcomes: change from baseline with CIs, and responder rates with exact CIs.

NICE HTG652 asks for pain, quality of life and mobility in the short and long term. Each
outcome is one measure of the tidy ``scores`` table (pain: ``nrs/pain``; quality of life:
``eq5d5l/index_england`` and the EQ VAS; foot function: ``moxfq/walking_standing``; mobility:
``mobility/walking_distance_m``; stump: residual-limb and phantom pain separately).

* Change from baseline: complete cases per visit (participants with both a baseline and that
  visit), mean change with a t-based 95 % CI, mean ± SD (the CI of a mean, any textbook).
* Responders: relative pain reduction (baseline − visit)/baseline ≥ 30 % (moderate, clinically
  important: Farrar et al. 2001, Pain 94:149) and ≥ 50 % (substantial; IMMPACT, Dworkin et al.
  2008, J Pain 9:105); baseline 0 cannot improve and is excluded. 95 % CIs are exact
  (Clopper–Pearson, via statsmodels ``proportion_confint(method="beta")``).
* Short term = visits up to 3 months; long term = 6 months or later.
Baseline is the visit coded ``baseline`` (for data that did not pass
:func:`cryoneuro.analysis.validate.check`, failing that, the last visit on or before day 0;
the check refuses such data before ``cryoneuro analyse`` gets here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from cryoneuro.analysis.tidy import TidyData


@dataclass(frozen=True)
class Outcome:
    code: str
    label: str
    instrument: str
    measure: str
    higher_is_better: bool


OUTCOMES: dict[str, Outcome] = {
    o.code: o
    for o in (
        Outcome("pain", "Pain NRS (0–10)", "nrs", "pain", False),
        Outcome("pain_vas", "Pain VAS (0–100)", "vas", "pain", False),
        Outcome("qol", "EQ-5D-5L index (England value set)", "eq5d5l", "index_england", True),
        Outcome("qol_vas", "EQ VAS (0–100)", "eq5d5l", "vas", True),
        Outcome(
            "foot_walking", "MOXFQ walking/standing (0–100)", "moxfq", "walking_standing", False
        ),
        Outcome("foot_pain", "MOXFQ pain (0–100)", "moxfq", "pain", False),
        Outcome("mobility", "Walking distance (m)", "mobility", "walking_distance_m", True),
        Outcome("bpi_severity", "BPI pain severity (0–10)", "bpi", "severity", False),
        Outcome(
            "residual_limb_pain", "Residual-limb pain (0–10)", "stump", "residual_limb_pain", False
        ),
        Outcome("phantom_pain", "Phantom pain (0–10)", "stump", "phantom_pain", False),
    )
}


def scored(data: TidyData) -> pd.DataFrame:
    """Score rows, with visits that have only raw items re-scored by cryoneuro.instruments."""
    scores = data.scores
    kind = scores["kind"].str.lower()
    out = scores[kind == "score"]
    items = scores[kind == "item"]
    if len(items):
        have = set(zip(out["participant_id"], out["visit_code"], out["instrument"], strict=True))
        missing = items[
            [
                k not in have
                for k in zip(
                    items["participant_id"], items["visit_code"], items["instrument"], strict=True
                )
            ]
        ]
        if len(missing):
            from cryoneuro.analysis.missing import coded_instruments
            from cryoneuro.errors import InputError
            from cryoneuro.instruments import score

            coded = coded_instruments(data)
            rows = []
            keys = ["participant_id", "visit_code", "instrument"]
            for (pid, code, instrument), group in missing.groupby(keys, sort=False):
                answers = dict(zip(group["measure"], group["value"], strict=True))
                first = group.iloc[0]
                try:
                    measures = score(instrument, answers)
                except InputError:
                    if (pid, code, instrument) in coded:
                        continue  # an item is coded missing: no score (analysis/missing.py)
                    raise
                for measure, value in measures.items():
                    rows.append(
                        {
                            "participant_id": pid,
                            "visit_code": code,
                            "visit_date": first["visit_date"],
                            "days_since_procedure": first["days_since_procedure"],
                            "instrument": instrument,
                            "kind": "score",
                            "measure": measure,
                            "value": value,
                        }
                    )
            out = pd.concat([out, pd.DataFrame(rows)], ignore_index=True)
    return out


def visit_order(data: TidyData) -> pd.DataFrame:
    """Visit codes with their median day and months, in time order, with the horizon."""
    frame = pd.concat(
        [
            data.visits[["visit_code", "days_since_procedure"]],
            data.scores[["visit_code", "days_since_procedure"]],
        ]
    )
    days = frame.groupby("visit_code")["days_since_procedure"].median()
    table = days.rename("median_day").reset_index()
    table["median_day"] = table["median_day"].astype(float)
    table.loc[table["visit_code"] == "baseline", "median_day"] = (
        table.loc[table["visit_code"] == "baseline", "median_day"].fillna(0.0).clip(upper=0.0)
    )
    table = table.sort_values("median_day", na_position="last").reset_index(drop=True)
    table["months"] = (table["median_day"] / 30.4375).round(1)
    table["horizon"] = np.select(
        [table["median_day"] <= 0, table["months"] <= 3.5, table["months"] >= 5.5],
        ["baseline", "short-term", "long-term"],
        "medium-term",
    )
    return table


def outcome_values(
    data: TidyData, outcome: str | Outcome, score_rows: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per participant and follow-up visit with ``baseline``, ``value``, ``change``.

    Columns: participant_id, arm, visit_code, day, baseline, value, change, percent_change.
    """
    spec = OUTCOMES[outcome] if isinstance(outcome, str) else outcome
    rows = score_rows if score_rows is not None else scored(data)
    rows = rows[(rows["instrument"] == spec.instrument) & (rows["measure"] == spec.measure)]
    values = rows.assign(value=pd.to_numeric(rows["value"], errors="coerce"))
    values = values.dropna(subset=["value"])
    is_base = (values["visit_code"] == "baseline") | (values["days_since_procedure"].fillna(1) <= 0)
    base = (
        values[is_base]
        .sort_values("days_since_procedure", na_position="first")
        .groupby("participant_id")["value"]
        .last()
        .rename("baseline")
    )
    follow = values[~is_base][["participant_id", "visit_code", "days_since_procedure", "value"]]
    follow = follow.rename(columns={"days_since_procedure": "day"})
    merged = follow.merge(base, left_on="participant_id", right_index=True, how="left")
    arms = data.participants.set_index("participant_id")["arm"].fillna("").replace("", "all")
    merged["arm"] = merged["participant_id"].map(arms).fillna("all")
    merged["change"] = merged["value"] - merged["baseline"]
    with np.errstate(divide="ignore", invalid="ignore"):
        merged["percent_change"] = np.where(
            merged["baseline"] > 0, 100.0 * merged["change"] / merged["baseline"], np.nan
        )
    return merged.reset_index(drop=True)


def _mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    n = len(x)
    if n == 0:
        return (np.nan,) * 4
    mean = float(np.mean(x))
    if n == 1:
        return mean, np.nan, np.nan, np.nan
    sd = float(np.std(x, ddof=1))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n)
    return mean, sd, mean - half, mean + half


def change_from_baseline(
    data: TidyData, outcome: str, score_rows: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per arm and visit: n, baseline and visit means, mean change with 95 % CI."""
    values = outcome_values(data, outcome, score_rows).dropna(subset=["baseline"])
    order = visit_order(data).set_index("visit_code")
    rows = []
    for (arm, code), group in values.groupby(["arm", "visit_code"]):
        mean, sd, lo, hi = _mean_ci(group["change"].to_numpy(float))
        rows.append(
            {
                "outcome": outcome,
                "arm": arm,
                "visit": code,
                "months": order["months"].get(code, np.nan),
                "horizon": order["horizon"].get(code, ""),
                "n": len(group),
                "baseline_mean": group["baseline"].mean(),
                "visit_mean": group["value"].mean(),
                "mean_change": mean,
                "sd_change": sd,
                "ci_lower": lo,
                "ci_upper": hi,
                "percent_change_of_mean": 100 * mean / group["baseline"].mean()
                if group["baseline"].mean()
                else np.nan,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values(["months", "arm"]).reset_index(drop=True)


def responder_rates(
    data: TidyData,
    outcome: str = "pain",
    thresholds: tuple[float, ...] = (0.3, 0.5),
    score_rows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per arm, visit and threshold: responders / n with an exact (Clopper–Pearson) 95 % CI."""
    values = outcome_values(data, outcome, score_rows).dropna(subset=["baseline"])
    values = values[values["baseline"] > 0]
    order = visit_order(data).set_index("visit_code")
    sign = 1.0 if OUTCOMES[outcome].higher_is_better else -1.0
    improvement = sign * values["change"] / values["baseline"]
    rows = []
    for threshold in thresholds:
        # a small tolerance so that an exact 30 % (e.g. 10 → 7) counts as a responder
        responder = improvement >= threshold - 1e-9
        for (arm, code), group in values.assign(r=responder).groupby(["arm", "visit_code"]):
            k, n = int(group["r"].sum()), len(group)
            lo, hi = proportion_confint(k, n, alpha=0.05, method="beta")
            rows.append(
                {
                    "outcome": outcome,
                    "threshold_percent": round(threshold * 100),
                    "arm": arm,
                    "visit": code,
                    "months": order["months"].get(code, np.nan),
                    "horizon": order["horizon"].get(code, ""),
                    "responders": k,
                    "n": n,
                    "rate": k / n,
                    "ci_lower": lo,
                    "ci_upper": hi,
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values(["threshold_percent", "months", "arm"]).reset_index(drop=True)


def change_figure(table: pd.DataFrame, label: str, ax=None):
    """Mean change from baseline (95 % CI) against months, one line per arm; on ``ax`` (default
    a new pyplot-free Figure). Returns the figure."""
    from cryoneuro.plotting import figure_and_axes

    fig, ax = figure_and_axes(ax, (6.4, 3.8), layout="tight")
    for arm, group in table.groupby("arm"):
        group = group.sort_values("months")
        ax.errorbar(
            group["months"],
            group["mean_change"],
            yerr=[
                group["mean_change"] - group["ci_lower"],
                group["ci_upper"] - group["mean_change"],
            ],
            marker="o",
            capsize=3,
            label=f"{arm}",
        )
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("months after cryoablation")
    ax.set_ylabel(f"change in {label}")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return fig
