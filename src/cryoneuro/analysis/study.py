"""The study analysis NICE HTG652 asks for, from tidy tables to a report.

One call, :func:`analyse`, runs every analysis the data support and writes ``analysis.html``,
``analysis.pdf``, ``tables/*.csv``, ``figures/*.png`` and ``results.json``:

1. participant flow (CONSORT diagram for an RCT, PROCESS-style for a case series) and the
   characteristics of participants, neuromas and procedures;
2. pain, quality of life and mobility: change from baseline with 95 % CIs at every visit,
   short and long term; responder rates at 30 % and 50 % with exact CIs;
3. for an RCT, the intention-to-treat treatment effect (MMRM, with ANCOVA beside it);
4. Kaplan–Meier time to pain recurrence and to re-intervention;
5. safety outcomes by NICE category with exact CIs;
6. calibration of the plans' predicted relief against observed recurrence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoneuro._json import json_safe
from cryoneuro.analysis import outcomes as oc
from cryoneuro.analysis import rct, safety, survival
from cryoneuro.analysis.report import Figure, Section, Table, atomic_write, write_report
from cryoneuro.analysis.tidy import TidyData
from cryoneuro.errors import InputError


def characteristics(data: TidyData) -> pd.DataFrame:
    """Baseline characteristics per arm (PROCESS 2023 items: patient, lesion, procedure)."""
    people = data.participants[data.participants["status"].fillna("") != "screen_failed"].copy()
    people["arm"] = people["arm"].fillna("").replace("", "all")
    procedures = data.procedures.drop_duplicates("participant_id").set_index("participant_id")
    rows: list[dict[str, Any]] = []

    def add(label: str, fn: Callable[[pd.DataFrame], str]) -> None:
        row = {"characteristic": label}
        for arm, group in people.groupby("arm"):
            row[arm] = fn(group)
        rows.append(row)

    add("participants", lambda g: str(len(g)))
    add("age, years: median (IQR)", lambda g: _median_iqr(g["age_at_enrolment_years"]))
    add("female", lambda g: _count(g["sex"] == "female"))
    for column, label in (("neuroma_type", "neuroma type"), ("laterality", "side")):
        for value in sorted(people[column].dropna().unique()):
            add(f"{label}: {value}", lambda g, c=column, v=value: _count(g[c] == v))
    add("neuroma size, mm: median (IQR)", lambda g: _median_iqr(g["neuroma_size_mm"]))
    add("prior treatment recorded", lambda g: _count(g["prior_treatments"].fillna("") != ""))
    for column, label in (("imaging_modality", "guidance"), ("gas", "gas"),
                          ("anaesthesia", "anaesthesia")):
        values = procedures[column].dropna()
        for value in sorted(values.unique()):
            add(f"{label}: {value}", lambda g, c=column, v=value: _count(
                g["participant_id"].map(procedures[c]) == v))
    add("procedure planned with cryoneuro", lambda g: _count(
        g["participant_id"].map(procedures["has_plan"]).fillna(False).astype(bool)))
    return pd.DataFrame(rows)


def _count(mask: pd.Series) -> str:
    mask = mask.fillna(False).astype(bool)
    n = len(mask)
    return f"{int(mask.sum())} ({100 * mask.mean():.0f} %)" if n else "–"


def _median_iqr(values: pd.Series) -> str:
    x = pd.to_numeric(values, errors="coerce").dropna()
    if x.empty:
        return "–"
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return f"{med:.1f} ({q1:.1f}–{q3:.1f})"


def analyse(data: TidyData, out_dir: str | Path, *, primary_visit: str | None = None,
            control: str | None = None, progress: Callable[[str], None] | None = None
            ) -> dict[str, Any]:
    """Run every analysis the data support; write the report; return the headline results."""
    step = progress or (lambda _msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    design = data.design
    is_rct = design == "rct"
    step("scoring")
    scores = oc.scored(data)
    present = {(i, m) for i, m in zip(scores["instrument"], scores["measure"])}
    available = [code for code, o in oc.OUTCOMES.items() if (o.instrument, o.measure) in present]
    if "pain" not in available and "pain_vas" not in available:
        raise InputError(f"{data.source}: no pain scores (instrument nrs or vas, measure pain) "
                         "in the scores table; the analysis needs pain at baseline and follow-up")
    pain = "pain" if "pain" in available else "pain_vas"
    primary = rct.primary_visit(data, primary_visit)
    results: dict[str, Any] = {"design": design, "source": data.source, "primary_visit": primary,
                               "pain_outcome": pain}
    sections: list[Section] = []

    step("participant flow")
    counts = rct.flow(data, primary, pain, scores)
    results["flow"] = counts
    flow_name = "CONSORT 2025 flow diagram" if is_rct else "Participant flow (PROCESS 2023)"
    sections.append(Section("Participants", (
        f"{'Randomised controlled trial' if is_rct else 'Case series'}; "
        f"{counts['enrolled']} enrolled of {counts['assessed']} assessed. Primary visit: "
        f"{primary}."), [Figure("flow", flow_name, rct.flow_figure(counts, is_rct)),
                         Table("characteristics", "Baseline characteristics",
                               characteristics(data))]))

    step("change from baseline")
    efficacy: list[Table | Figure] = []
    results["change"] = {}
    for code in available:
        table = oc.change_from_baseline(data, code, scores)
        if table.empty:
            continue
        label = oc.OUTCOMES[code].label
        efficacy += [Table(f"change_{code}", f"{label}: change from baseline", table,
                           "complete cases at each visit; mean and t-based 95 % CI"),
                     Figure(f"change_{code}", f"{label}: change from baseline",
                            oc.change_figure(table, label))]
        results["change"][code] = table.to_dict(orient="records")
    responders = oc.responder_rates(data, pain, score_rows=scores)
    efficacy.append(Table("responders", "Pain responders (≥ 30 % and ≥ 50 % reduction)",
                          responders, "exact Clopper–Pearson 95 % CI; Farrar 2001, IMMPACT 2008"))
    results["responders"] = responders.to_dict(orient="records")
    sections.append(Section("Pain, quality of life and mobility",
                            "Short term: up to 3 months; long term: 6 months or later.", efficacy))

    if is_rct:
        step("mixed model (ITT)")
        mm = rct.mmrm(data, pain, control, scores)
        an = rct.ancova(data, pain, control, scores)
        both = pd.concat([mm, an], ignore_index=True)
        results["treatment_effect"] = both.to_dict(orient="records")
        sections.append(Section(
            "Randomised comparison (intention to treat)",
            "Difference between arms in the change from baseline; negative favours the treated "
            "arm for pain. MMRM: REML mixed model with visit, visit × arm and baseline, "
            "participant random intercept; ANCOVA at each visit as a second method.",
            [Table("treatment_effect", "Treatment effect on pain", both),
             Figure("treatment_effect", "Treatment effect on pain (95 % CI)",
                    rct.effect_figure([mm, an], oc.OUTCOMES[pain].label))]))

    step("time to recurrence and re-intervention")
    recurrence = survival.recurrence_times(data, pain, score_rows=scores)
    km_items: list[Table | Figure] = []
    results["survival"] = {}
    for name, times, title in (("recurrence", recurrence, "pain recurrence"),
                               ("reintervention", survival.reintervention_times(data),
                                "re-intervention")):
        if times.empty:
            continue
        table, fig = survival.kaplan_meier(times, title)
        km_items += [Table(f"km_{name}", f"Time to {title}", table,
                           "Kaplan–Meier (lifelines); median with 95 % CI; free-of-event "
                           "probability at 3, 6 and 12 months"),
                     Figure(f"km_{name}", f"Time to {title}", fig)]
        results["survival"][name] = table.to_dict(orient="records")
    sections.append(Section(
        "Duration of relief", "Recurrence: relief ends between the last visit with a 30 % pain "
        "reduction and the first without; times are the midpoints of those intervals.",
        km_items))

    step("safety")
    safety_rows = safety.safety_table(data)
    results["safety"] = safety_rows.to_dict(orient="records")
    sections.append(Section("Safety (NICE HTG652 categories)", "", [
        Table("safety", "Participants with at least one event", safety_rows,
              "exact Clopper–Pearson 95 % CI; further interventions include re-interventions")]))

    step("calibration of predicted relief")
    treated_arm = rct.arms(data, control)[0] if is_rct else None
    cal_times = recurrence if treated_arm is None else recurrence[recurrence["arm"] == treated_arm]
    cal_table, cal_summary, cal_fig = survival.calibration(cal_times)
    results["calibration"] = cal_summary
    cal_items: list[Table | Figure] = []
    if cal_fig is not None:
        cal_items = [Figure("calibration", "Predicted relief against observed recurrence",
                            cal_fig, f"Harrell's C = {cal_summary['concordance_index']:.2f}; "
                            "median observed/predicted = "
                            f"{cal_summary['median_observed_over_predicted']:.2f}"),
                     Table("calibration", "Observed relief by tertile of predicted relief",
                           cal_table)]
        if cal_summary.get("published_series"):
            cal_items.append(Table("calibration_published", "Predicted (regrowth-limited) and observed relief "
                                   "against relief observed in published series",
                                   pd.DataFrame(cal_summary["published_series"]),
                                   "published interval: shortest–longest follow-up (days) at which a verified "
                                   "series still reported relief (cryoneuro.regrowth)"))
    sections.append(Section("Calibration of the plans' predicted relief",
                            cal_summary.get("note", ""), cal_items))

    step("writing the report")
    paths = write_report(out, "Study analysis — cryoablation of neuromas", sections,
                         subtitle=f"{data.source} · {design.replace('_', ' ')}", stem="analysis")
    results["files"] = {k: str(v) for k, v in paths.items()}
    atomic_write(out / "results.json", json.dumps(json_safe(results), indent=2).encode("utf-8"))
    return results
