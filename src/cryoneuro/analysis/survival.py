"""Time to pain recurrence and to re-intervention (Kaplan–Meier), and relief calibration.

Recurrence is read from the pain scores, since that is what a trial records: relief ends at
the first follow-up visit at which the pain reduction from baseline is below the responder
threshold (30 %, Farrar 2001); a participant who never reaches it recurs at the first
follow-up. Relief then ended somewhere between the last visit with relief (or day 0) and
that visit: the time is interval-censored, and the analysis uses the interval's midpoint
(midpoint imputation; unbiased when the end of relief is uniform within the interval, and
far less biased than the visit day itself, which overstates relief by up to one visit
interval — both bounds are kept as ``interval_lower``/``interval_upper``). Without
recurrence the time is censored at the last visit with a pain score.

Re-intervention: the first row of ``reinterventions``; censored at last contact (the latest
visit, adverse event or procedure day).

Kaplan–Meier estimates (numbers at risk under each plot), median survival with its 95 % CI and
the log-rank test come from lifelines (KaplanMeierFitter, ``median_survival_times``,
``logrank_test``). Midpoint
imputation ties many times and so understates the width of the median's CI; Turnbull's
nonparametric MLE on the intervals themselves (lifelines ``fit_interval_censoring``; Turnbull
1976, JRSS B 38:290) is reported beside it as a sensitivity analysis. Calibration of the
predicted relief (``procedures.predicted_relief_days``, from the plan) against observed time to
recurrence: Harrell's concordance index (lifelines ``concordance_index``, censoring-aware) and
observed KM median per tertile of predicted relief against the tertile's median prediction.

Same definitions as the plan (:mod:`cryoneuro.regrowth`): the prediction is the plan's
**regrowth-limited estimate** (median days from the procedure to the return of pain, regrowth
from the lesion's proximal edge, mechanism by neuroma type); the observed time runs from the same
day 0 (the procedure) to the end of relief defined above. Per neuroma type the registry's KM
median and the plans' median prediction are also set against the relief **observed in published
series** (``data/evidence/relief_durations.csv``), with the same overlap rule
(:func:`cryoneuro.regrowth.agreement`) the plan report uses.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryoneuro.analysis.outcomes import outcome_values
from cryoneuro.analysis.tidy import TidyData


def recurrence_times(
    data: TidyData,
    outcome: str = "pain",
    threshold: float = 0.3,
    score_rows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """participant_id, arm, duration (days), event (1 = recurrence), predicted_relief_days."""
    values = outcome_values(data, outcome, score_rows).dropna(subset=["baseline", "day"])
    values = values[(values["baseline"] > 0) & (values["day"] > 0)]
    rows = []
    for pid, group in values.sort_values("day").groupby("participant_id", sort=False):
        relieved = (-group["change"] / group["baseline"]) >= threshold - 1e-9
        lost = np.flatnonzero(~relieved.to_numpy())
        days = group["day"].to_numpy(float)
        if len(lost):
            upper = days[lost[0]]
            lower = days[lost[0] - 1] if lost[0] > 0 else 0.0
            rows.append((pid, group["arm"].iloc[0], 0.5 * (lower + upper), 1, lower, upper))
        else:
            rows.append((pid, group["arm"].iloc[0], days[-1], 0, days[-1], np.inf))
    frame = pd.DataFrame(
        rows,
        columns=["participant_id", "arm", "duration", "event", "interval_lower", "interval_upper"],
    )
    predicted = (
        data.procedures.sort_values("procedure_date", na_position="last")
        .groupby("participant_id")["predicted_relief_days"]
        .first()
    )
    frame["predicted_relief_days"] = frame["participant_id"].map(predicted)
    if "neuroma_type" in data.participants:
        frame["neuroma_type"] = frame["participant_id"].map(
            data.participants.set_index("participant_id")["neuroma_type"]
        )
    return frame


def _published_check(data: pd.DataFrame) -> list[dict]:
    """Per neuroma type: the plans' median prediction and the registry's KM median of observed
    relief against the relief observed in published series (same rule as the plan report)."""
    from lifelines import KaplanMeierFitter

    from cryoneuro import regrowth

    out = []
    if "neuroma_type" not in data:
        return out
    for kind, group in data.groupby("neuroma_type"):
        if kind not in regrowth.MECHANISMS:
            continue
        published = regrowth.observed_interval(regrowth.MECHANISMS[kind][1])
        km = float(KaplanMeierFitter().fit(group["duration"], group["event"]).median_survival_time_)
        pred = float(group["predicted_relief_days"].median())
        interval = published.get("interval_days")
        row = {
            "neuroma_type": kind,
            "n": len(group),
            "median_predicted_days": pred,
            "km_median_observed_days": km,
            "published_interval_days": f"{interval[0]}–{interval[1]}" if interval else "none",
            "prediction_vs_published": regrowth.agreement(pred, pred, published),
            "observed_vs_published": regrowth.agreement(km, km, published),
        }
        out.append(row)
    return out


def reintervention_times(data: TidyData) -> pd.DataFrame:
    """participant_id, arm, duration (days), event (1 = re-intervention).

    The population is the safety population (:func:`cryoneuro.analysis.safety.exposed`), so a
    control arm without ``procedures`` rows keeps its participants. Censoring is at the last
    contact after day 0; a participant with no contact after day 0 contributes nothing to a
    Kaplan–Meier estimate and is left out (listed by :func:`cryoneuro.analysis.validate.check`).
    """
    from cryoneuro.analysis.safety import exposed

    people = exposed(data)
    contact = pd.concat(
        [
            data.visits[["participant_id", "days_since_procedure"]],
            data.scores[["participant_id", "days_since_procedure"]],
            data.adverse_events[["participant_id", "days_since_procedure"]],
            data.reinterventions[["participant_id", "days_since_procedure"]],
        ]
    )
    last = contact.groupby("participant_id")["days_since_procedure"].max()
    first_event = data.reinterventions.groupby("participant_id")["days_since_procedure"].min()
    rows = []
    for pid, arm in zip(people["participant_id"], people["arm"], strict=True):
        if pid in first_event.index and pd.notna(first_event[pid]):
            rows.append((pid, arm, float(first_event[pid]), 1))
        elif pid in last.index and pd.notna(last[pid]) and last[pid] > 0:
            rows.append((pid, arm, float(last[pid]), 0))
    return pd.DataFrame(rows, columns=["participant_id", "arm", "duration", "event"])


def kaplan_meier(
    times: pd.DataFrame, label: str, at_days: tuple[int, ...] = (91, 182, 365), ax=None
) -> tuple[pd.DataFrame, object]:
    """Median time with 95 % CI and survival at fixed days per arm; and the KM figure, drawn on
    ``ax`` (default a new pyplot-free Figure)."""
    from lifelines import KaplanMeierFitter
    from lifelines.plotting import add_at_risk_counts
    from lifelines.statistics import logrank_test
    from lifelines.utils import median_survival_times

    groups = list(times.groupby("arm"))
    from cryoneuro.plotting import figure_and_axes

    fig, ax = figure_and_axes(ax, (6.4, 4.2 + 0.35 * len(groups)), layout="tight")
    rows = []
    fitters = []
    for arm, group in groups:
        kmf = KaplanMeierFitter(label=str(arm))
        kmf.fit(group["duration"], group["event"])
        fitters.append(kmf)
        kmf.plot_survival_function(
            ax=ax, ci_show=True, show_censors=True, censor_styles={"ms": 5, "marker": "|"}
        )
        ci = median_survival_times(kmf.confidence_interval_)
        row = {
            "endpoint": label,
            "arm": arm,
            "n": len(group),
            "events": int(group["event"].sum()),
            "median_days": float(kmf.median_survival_time_),
            "median_ci_lower": float(ci.iloc[0, 0]),
            "median_ci_upper": float(ci.iloc[0, 1]),
        }
        for day in at_days:
            row[f"free_at_day_{day}"] = float(kmf.survival_function_at_times(day).iloc[0])
        if "interval_lower" in group:
            # sensitivity: Turnbull's NPMLE on the intervals themselves (no imputation)
            turnbull = KaplanMeierFitter().fit_interval_censoring(
                group["interval_lower"], group["interval_upper"]
            )
            # the NPMLE is set-valued inside Turnbull intervals: report the middle of its bounds
            row["median_turnbull_days"] = float(
                np.mean(np.asarray(turnbull.median_survival_time_, dtype=float))
            )
        rows.append(row)
    table = pd.DataFrame(rows)
    if len(groups) == 2:
        (_, ga), (_, gb) = groups
        test = logrank_test(ga["duration"], gb["duration"], ga["event"], gb["event"])
        table["logrank_p"] = float(test.p_value)
    ax.set_xlabel("days after cryoablation")
    ax.set_ylabel(f"free of {label}")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    # numbers at risk (and censored, events) under the plot, at the axis ticks
    add_at_risk_counts(*fitters, ax=ax, rows_to_show=["At risk"], fig=fig)
    return table, fig


def at_risk(times: pd.DataFrame, days: tuple[int, ...] = (0, 91, 182, 365, 730)) -> pd.DataFrame:
    """Numbers at risk per arm at given days: participants whose time is ≥ the day."""
    rows = []
    for arm, group in times.groupby("arm"):
        rows.append({"arm": arm, **{f"day_{d}": int((group["duration"] >= d).sum()) for d in days}})
    return pd.DataFrame(rows)


def calibration(times: pd.DataFrame, ax=None) -> tuple[pd.DataFrame, dict, object | None]:
    """Predicted relief against observed recurrence: tertile table, summary and figure (on
    ``ax``, default a new pyplot-free Figure; None when there are too few data to draw)."""
    from lifelines import KaplanMeierFitter
    from lifelines.utils import concordance_index

    data = times.dropna(subset=["predicted_relief_days"])
    if len(data) < 6 or data["event"].sum() < 3:
        return (
            pd.DataFrame(),
            {
                "n": len(data),
                "note": "too few participants with a plan's prediction and an observed recurrence",
            },
            None,
        )
    summary = {
        "n": len(data),
        "events": int(data["event"].sum()),
        "concordance_index": float(
            concordance_index(data["duration"], data["predicted_relief_days"], data["event"])
        ),
    }
    events = data[data["event"] == 1]
    log_ratio = np.log(events["duration"] / events["predicted_relief_days"])
    summary["median_observed_over_predicted"] = float(np.exp(np.median(log_ratio)))
    tertile = pd.qcut(data["predicted_relief_days"], 3, labels=["short", "middle", "long"])
    rows = []
    for name, group in data.groupby(tertile, observed=True):
        kmf = KaplanMeierFitter().fit(group["duration"], group["event"])
        rows.append(
            {
                "predicted_tertile": str(name),
                "n": len(group),
                "events": int(group["event"].sum()),
                "median_predicted_days": float(group["predicted_relief_days"].median()),
                "km_median_observed_days": float(kmf.median_survival_time_),
            }
        )
    table = pd.DataFrame(rows)
    summary["published_series"] = _published_check(data)
    from cryoneuro.plotting import figure_and_axes

    fig, ax = figure_and_axes(ax, (5.2, 4.6), layout="tight")
    ax.scatter(
        events["predicted_relief_days"],
        events["duration"],
        s=18,
        label="recurrence",
        color="#c62828",
    )
    censored = data[data["event"] == 0]
    ax.scatter(
        censored["predicted_relief_days"],
        censored["duration"],
        s=22,
        marker="^",
        facecolors="none",
        edgecolors="#0057b8",
        label="no recurrence yet (censored)",
    )
    finite = table["km_median_observed_days"].replace(np.inf, np.nan)
    ax.plot(table["median_predicted_days"], finite, "ks-", ms=6, label="tertile: KM median")
    top = float(max(data["duration"].max(), data["predicted_relief_days"].max())) * 1.05
    ax.plot([0, top], [0, top], color="0.5", lw=1, ls="--", label="perfect calibration")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("regrowth-limited estimate of relief (days, from the plan)")
    ax.set_ylabel("observed time to recurrence (days)")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return table, summary, fig
