"""Safety outcomes by NICE HTG652 category with exact confidence intervals.

The guidance names pain, worsening of symptoms, infection, damage to adjacent structures and
further interventions. For each category and arm: participants with at least one event over
participants exposed (every enrolled participant of an arm, less those of an arm whose
procedures are recorded who have no ``procedures`` row; a control arm without any ``procedures``
rows is kept whole, so a surgical control keeps its denominator), with an exact Clopper–Pearson 95
% CI (statsmodels
``proportion_confint(method="beta")``; exact because events are rare and series small, where
Wald intervals undercover), the number of events and of serious events. "Further
interventions" counts a participant with an adverse event in that category *or* a row in
``reinterventions``.
"""

from __future__ import annotations

import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from cryoneuro.analysis.tidy import SAFETY_CATEGORIES, TidyData


def exposed(data: TidyData) -> pd.DataFrame:
    """participant_id and arm of everyone exposed (rule 6 of :mod:`cryoneuro.analysis.validate`).

    Every enrolled participant of an arm, except — in an arm whose procedures are recorded —
    those without a ``procedures`` row (they did not receive it; the report lists them). An arm
    with no ``procedures`` rows at all (a surgical or conservative control) is kept whole.
    """
    from cryoneuro.analysis.validate import exposed_population

    return exposed_population(data)[0]


def safety_table(data: TidyData) -> pd.DataFrame:
    """One row per category and arm: participants with events, rate, exact CI, events, serious."""
    people = exposed(data)
    arm_of = people.set_index("participant_id")["arm"]
    events = data.adverse_events[data.adverse_events["participant_id"].isin(arm_of.index)].copy()
    events["arm"] = events["participant_id"].map(arm_of)
    reint = data.reinterventions[data.reinterventions["participant_id"].isin(arm_of.index)]
    rows = []
    for arm, group in people.groupby("arm"):
        n = len(group)
        for category in SAFETY_CATEGORIES:
            these = events[(events["arm"] == arm) & (events["category"] == category)]
            ids = set(these["participant_id"])
            if category == "further_intervention":
                ids |= set(reint["participant_id"]) & set(group["participant_id"])
            k = len(ids)
            if category == "other" and k == 0:
                continue
            lo, hi = proportion_confint(k, n, alpha=0.05, method="beta")
            rows.append(
                {
                    "category": category,
                    "arm": arm,
                    "participants_with_event": k,
                    "exposed": n,
                    "rate": k / n if n else float("nan"),
                    "ci_lower": lo,
                    "ci_upper": hi,
                    "events": len(these),
                    "serious": int(these["serious"].fillna(False).astype(bool).sum()),
                }
            )
    return pd.DataFrame(rows)
