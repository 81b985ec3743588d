"""The study analysis NICE HTG652 asks for, from tidy tables to a report.

One call, :func:`analyse`, runs every analysis the data support and writes ``analysis.html``,
``analysis.pdf``, ``tables/*.csv``, ``figures/*.png`` and ``results.json``:

1. participant flow (CONSORT diagram for an RCT, PROCESS-style for a case series) and the
   characteristics of participants, neuromas and procedures;
2. pain, quality of life and mobility: change from baseline with 95 % CIs at every visit,
   short and long term; responder rates at 30 % and 50 % with exact CIs;
3. for an RCT, the intention-to-treat treatment effect (MMRM with unstructured covariance and
   Satterthwaite df, :mod:`cryoneuro.analysis.mmrm`, with ANCOVA beside it);
4. Kaplan–Meier time to pain recurrence and to re-intervention;
5. safety outcomes by NICE category with exact CIs;
6. calibration of the plans' predicted relief against observed recurrence.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoneuro._json import json_safe
from cryoneuro.analysis import effects, rct, safety, survival
from cryoneuro.analysis import outcomes as oc
from cryoneuro.analysis.report import Figure, Section, Table, atomic_write, write_report
from cryoneuro.analysis.tidy import TidyData
from cryoneuro.errors import InputError


def characteristics(data: TidyData, scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """Baseline characteristics per arm (PROCESS 2023 items: patient, lesion, procedure), and
    the baseline value of every outcome (mean (SD), n) — CONSORT item 15."""
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
    for column, label in (
        ("imaging_modality", "guidance"),
        ("gas", "gas"),
        ("anaesthesia", "anaesthesia"),
    ):
        values = procedures[column].dropna()
        for value in sorted(values.unique()):
            add(
                f"{label}: {value}",
                lambda g, c=column, v=value: _count(g["participant_id"].map(procedures[c]) == v),
            )
    add(
        "procedure planned with cryoneuro",
        lambda g: _count(
            g["participant_id"].map(procedures["has_plan"]).fillna(False).astype(bool)
        ),
    )
    if scores is not None:
        base = scores[scores["visit_code"] == "baseline"]
        for outcome in oc.OUTCOMES.values():
            rows_o = base[
                (base["instrument"] == outcome.instrument) & (base["measure"] == outcome.measure)
            ]
            if rows_o.empty:
                continue
            value = pd.to_numeric(rows_o["value"], errors="coerce")
            by_pid = pd.Series(value.to_numpy(), index=rows_o["participant_id"])
            add(
                f"baseline {outcome.label}: mean (SD), n",
                lambda g, v=by_pid: _mean_sd(v.reindex(g["participant_id"])),
            )
    return pd.DataFrame(rows)


def _absence_tables(data: TidyData, results: dict[str, Any]) -> list[Table]:
    """Visits not done, items coded missing and protocol deviations (analysis/missing.py)."""
    from cryoneuro.analysis import missing

    tables = []
    for name, title, table, note in (
        (
            "visits_not_done",
            "Visits not done, by reason",
            missing.not_done_table(data),
            "participants per visit, reason and arm (CONSORT: reasons for loss to follow-up)",
        ),
        (
            "missing_items",
            "Items without a value, by missing code",
            missing.missing_items_table(data),
            "HL7 FHIR DataAbsentReason codes; a coded item is never scored as a value",
        ),
        (
            "deviations",
            "Protocol deviations, by category",
            missing.deviations_table(data),
            "number of deviations and of participants with one, per arm",
        ),
    ):
        results[name] = table.to_dict(orient="records")
        if len(table):
            tables.append(Table(name, title, table, note))
    return tables


def _mean_sd(values: pd.Series) -> str:
    x = pd.to_numeric(values, errors="coerce").dropna()
    if x.empty:
        return "–"
    sd = f"{x.std(ddof=1):.2f}" if len(x) > 1 else "–"
    return f"{x.mean():.2f} ({sd}), {len(x)}"


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


def analyse(
    data: TidyData | Any,
    out_dir: str | Path,
    *,
    primary_visit: str | None = None,
    control: str | None = None,
    progress: Callable[[str], None] | None = None,
    duplicates: str = "refuse",
    covariance: str = "us",
    report: bool = True,
    df_method: str = "satterthwaite",
    unit_costs: dict[str, float] | None = None,
    bootstrap: int = 2000,
    seed: int = 1,
) -> dict[str, Any]:
    """Check the data (:func:`cryoneuro.analysis.validate.check`), run every analysis the data
    support, write the report and return the headline results."""
    from cryoneuro.analysis.validate import Checked, check

    step = progress or (lambda _msg: None)
    checked = data if isinstance(data, Checked) else check(data, duplicates=duplicates)
    data = checked.data
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    design = data.design
    is_rct = design == "rct"
    step("scoring")
    scores = oc.scored(data)
    present = {(i, m) for i, m in zip(scores["instrument"], scores["measure"], strict=True)}
    available = [code for code, o in oc.OUTCOMES.items() if (o.instrument, o.measure) in present]
    if "pain" not in available and "pain_vas" not in available:
        raise InputError(
            f"{data.source}: no pain scores (instrument nrs or vas, measure pain) "
            "in the scores table; the analysis needs pain at baseline and follow-up"
        )
    pain = "pain" if "pain" in available else "pain_vas"
    primary = rct.primary_visit(data, primary_visit)
    results: dict[str, Any] = {
        "design": design,
        "source": data.source,
        "primary_visit": primary,
        "pain_outcome": pain,
    }
    sections: list[Section] = []

    exclusions = checked.table()
    results["exclusions"] = exclusions.to_dict(orient="records")
    sections.append(
        Section(
            "Data checks and exclusions",
            "Every table passed the checks of cryoneuro.analysis.validate (instrument ranges, "
            "one row "
            "per participant and visit, one baseline on or before day 0, follow-up after day 0, "
            "arms and sites given, days present). "
            + (
                f"{len(exclusions)} row(s) below are left out of, or derived for, an analysis by "
                f"the stated rule."
                if len(exclusions)
                else "Nothing was excluded or derived."
            ),
            [Table("exclusions", "Exclusions and derivations", exclusions)]
            if len(exclusions)
            else [],
        )
    )

    step("participant flow")
    counts = rct.flow(data, primary, pain, scores)
    results["flow"] = counts
    flow_name = "CONSORT 2025 flow diagram" if is_rct else "Participant flow (PROCESS 2023)"
    sections.append(
        Section(
            "Participants",
            (
                f"{'Randomised controlled trial' if is_rct else 'Case series'}; "
                f"{counts['enrolled']} enrolled of {counts['assessed']} assessed. Primary visit: "
                f"{primary}."
            ),
            [
                Figure(
                    "flow",
                    flow_name,
                    rct.flow_figure(counts, is_rct),
                    "reasons for a missing primary value: visit not done (recorded reason), "
                    "outcome item coded missing (HL7 DataAbsentReason), or no reason recorded",
                ),
                Table("characteristics", "Baseline characteristics", characteristics(data, scores)),
                *_absence_tables(data, results),
            ],
        )
    )

    step("change from baseline")
    efficacy: list[Table | Figure] = []
    results["change"] = {}
    for code in available:
        table = oc.change_from_baseline(data, code, scores)
        if table.empty:
            continue
        label = oc.OUTCOMES[code].label
        efficacy += [
            Table(
                f"change_{code}",
                f"{label}: change from baseline",
                table,
                "complete cases at each visit; mean and t-based 95 % CI",
            ),
            Figure(
                f"change_{code}", f"{label}: change from baseline", oc.change_figure(table, label)
            ),
        ]
        results["change"][code] = table.to_dict(orient="records")
    responders = oc.responder_rates(data, pain, score_rows=scores)
    efficacy.append(
        Table(
            "responders",
            "Pain responders (≥ 30 % and ≥ 50 % reduction)",
            responders,
            "exact Clopper–Pearson 95 % CI; Farrar 2001, IMMPACT 2008",
        )
    )
    results["responders"] = responders.to_dict(orient="records")
    sections.append(
        Section(
            "Pain, quality of life and mobility",
            "Short term: up to 3 months; long term: 6 months or later.",
            efficacy,
        )
    )

    if is_rct:
        step("mixed model (ITT)")
        from cryoneuro.analysis.mmrm import STRUCTURES

        mmrm_label = STRUCTURES[covariance]
        mm = rct.mmrm(data, pain, control, scores, covariance=covariance, df_method=df_method)
        an = rct.ancova(data, pain, control, scores)
        both = pd.concat([mm, an], ignore_index=True)
        results["treatment_effect"] = both.to_dict(orient="records")
        sections.append(
            Section(
                "Randomised comparison (intention to treat)",
                "Difference between arms in the change from baseline; negative favours the treated "
                "arm for pain. MMRM: visit, visit × arm, baseline and site as fixed effects, "
                f"{mmrm_label} covariance across visits, REML, 95 % CI on "
                f"{'Kenward–Roger' if df_method == 'kenward-roger' else 'Satterthwaite'} degrees "
                f"of freedom; ANCOVA at each visit as a second method.",
                [
                    Table("treatment_effect", "Treatment effect on pain", both),
                    Figure(
                        "treatment_effect",
                        "Treatment effect on pain (95 % CI)",
                        rct.effect_figure([mm, an], oc.OUTCOMES[pain].label),
                    ),
                ],
            )
        )
        step("estimands and sensitivity")
        from cryoneuro.analysis import estimands

        est_items: list[Table | Figure] = []
        if primary is not None:
            try:
                tipping = estimands.tipping_point(data, scores, control, primary, pain, seed=seed)
            except InputError as exc:
                results["tipping_point_note"] = str(exc)
            else:
                results["multiple_imputation"] = tipping.to_dict(orient="records")
                point = tipping["tipping_point"].iloc[0]
                est_items.append(
                    Table(
                        "tipping_point",
                        f"Multiple imputation at {primary} with delta adjustment",
                        tipping,
                        "50 imputations within arm (Bayesian regression on baseline, "
                        f"seed {seed}), ANCOVA, Rubin's rules with Barnard–Rubin df; δ worsens the "
                        "treated arm's imputed values; tipping point = first δ whose CI reaches 0"
                        + (
                            f": {point:.2f} points"
                            if math.isfinite(point)
                            else ": none (the CI includes 0 at δ = 0, or never within the δ range)"
                        ),
                    )
                )
        composite = estimands.composite_responders(data, scores, control, pain)
        results["composite_responders"] = composite.to_dict(orient="records")
        est_items.append(
            Table(
                "composite_responders",
                "Responders (≥ 30 %), composite strategy",
                composite,
                "re-intervention on or before the visit = failure; "
                "missing = non-responder; denominators: all randomised",
            )
        )
        sections.append(
            Section(
                "Estimands and sensitivity (ICH E9(R1))",
                "Primary estimand: treatment-policy for re-intervention (values after it used as "
                "observed), hypothetical for withdrawal and loss to follow-up (MMRM under missing "
                "at random). Sensitivity: multiple imputation with a tipping-point delta "
                "adjustment (missing not at random); responders with a composite strategy.",
                est_items,
            )
        )

        if primary is not None:
            sub_table, sub_tests = effects.subgroups(data, scores, control, primary, pain)
            if len(sub_tests):
                results["subgroups"] = sub_table.to_dict(orient="records")
                results["subgroup_interactions"] = sub_tests.to_dict(orient="records")
                overall = (
                    float(mm.loc[mm["visit"] == primary, "effect"].iloc[0])
                    if (mm["visit"] == primary).any()
                    else 0.0
                )
                est_items += [
                    Table(
                        "subgroup_interactions",
                        f"Treatment × subgroup interaction at {primary} (exploratory)",
                        sub_tests,
                        "F test of the interaction terms in an ANCOVA",
                    ),
                    Table(
                        "subgroups",
                        "Effect within subgroups",
                        sub_table,
                        "ANCOVA within each level; levels with ≥ 3 participants per arm",
                    ),
                    Figure(
                        "subgroups",
                        "Subgroup forest plot",
                        effects.subgroup_figure(
                            sub_table, sub_tests, overall, oc.OUTCOMES[pain].label
                        ),
                    ),
                ]

        step("between-arm effects, every outcome")
        others = [code for code in available if code != pain]
        secondary = effects.continuous(data, scores, control, covariance, others)
        resp = effects.responders(data, scores, control, pain)
        results["secondary_effects"] = secondary.to_dict(orient="records")
        results["responder_effects"] = resp.to_dict(orient="records")
        sections.append(
            Section(
                "Between-arm effects for every outcome",
                "Continuous outcomes: the same MMRM as the primary analysis (see each row for "
                "which direction favours the treated arm). Responders: risk difference with "
                "Newcombe's hybrid score 95 % CI and the conditional odds ratio with its exact "
                "95 % CI (Fisher).",
                [
                    Table(
                        "secondary_effects",
                        "Quality of life, foot function and mobility: treated − control",
                        secondary,
                    ),
                    Table("responder_effects", "Pain responders: treated − control", resp),
                ],
            )
        )

    step("time to recurrence and re-intervention")
    recurrence = survival.recurrence_times(data, pain, score_rows=scores)
    km_items: list[Table | Figure] = []
    results["survival"] = {}
    hazard_rows: list[dict[str, Any]] = []
    for name, times, title in (
        ("recurrence", recurrence, "pain recurrence"),
        ("reintervention", survival.reintervention_times(data), "re-intervention"),
    ):
        if times.empty:
            continue
        table, fig = survival.kaplan_meier(times, title)
        km_items += [
            Table(
                f"km_{name}",
                f"Time to {title}",
                table,
                "Kaplan–Meier (lifelines); median with 95 % CI; free-of-event "
                "probability at 3, 6 and 12 months",
            ),
            Table(f"at_risk_{name}", f"Numbers at risk: {title}", survival.at_risk(times)),
            Figure(f"km_{name}", f"Time to {title}", fig, "numbers at risk below the axis"),
        ]
        results["survival"][name] = table.to_dict(orient="records")
        if is_rct:
            hr = effects.hazard_ratio(times, *rct.arms(data, control), title)
            hazard_rows.append(hr)
    if hazard_rows:
        hazards = pd.DataFrame(hazard_rows)
        results["hazard_ratios"] = hazards.to_dict(orient="records")
        km_items.append(
            Table(
                "hazard_ratios",
                "Hazard ratios (Cox, treated / control)",
                hazards,
                "lifelines CoxPHFitter, Efron ties, Wald 95 % CI",
            )
        )
    sections.append(
        Section(
            "Duration of relief",
            "Recurrence: relief ends between the last visit with a 30 % pain "
            "reduction and the first without; times are the midpoints of those intervals.",
            km_items,
        )
    )

    step("safety")
    safety_rows = safety.safety_table(data)
    results["safety"] = safety_rows.to_dict(orient="records")
    safety_items = [
        Table(
            "safety",
            "Participants with at least one event",
            safety_rows,
            "exact Clopper–Pearson 95 % CI; further interventions include re-interventions",
        )
    ]
    if is_rct:
        safety_diff = effects.safety(safety_rows, *rct.arms(data, control))
        results["safety_effects"] = safety_diff.to_dict(orient="records")
        safety_items.append(
            Table(
                "safety_effects",
                "Safety: treated − control",
                safety_diff,
                "risk difference with Newcombe hybrid score 95 % CI; risk "
                "ratio with Koopman score 95 % CI; Fisher's exact p",
            )
        )
    if len(data.adverse_events):
        arm_of = data.participants.set_index("participant_id")["arm"].fillna("")
        listing = data.adverse_events.assign(arm=data.adverse_events["participant_id"].map(arm_of))
        listing = listing[
            [
                "participant_id",
                "arm",
                "days_since_procedure",
                "category",
                "severity",
                "serious",
                "relatedness",
                "outcome",
                "device_incident",
                "description",
            ]
        ].sort_values(["arm", "participant_id", "days_since_procedure"])
        safety_items.append(
            Table(
                "adverse_event_listing",
                "Adverse event listing",
                listing,
                "every adverse event, by arm, participant and onset day",
            )
        )
    sections.append(Section("Safety (NICE HTG652 categories)", "", safety_items))

    if unit_costs is not None:
        step("cost-utility")
        if not is_rct:
            raise InputError("--economics compares two arms; the data are a case series")
        from cryoneuro.analysis import economics

        cu = economics.cost_utility(
            data, scores, unit_costs, *rct.arms(data, control), n_bootstrap=bootstrap, seed=seed
        )
        results["cost_utility"] = cu.summary
        plane, curve = economics.figures(cu)
        summary = pd.DataFrame([{"quantity": k, "value": v} for k, v in cu.summary.items()])
        items: list[Table | Figure] = [
            Table(
                "cost_utility",
                "Cost-utility (NHS perspective)",
                summary,
                "QALYs by AUC of the EQ-5D-5L index, baseline-adjusted by OLS; costs from "
                "the unit-cost table; NMB at £20,000 and £30,000 per QALY; percentile 95 % "
                f"intervals from {bootstrap} bootstrap replicates (seed {seed})",
            ),
            Figure("ce_plane", "Cost-effectiveness plane", plane),
            Figure("ceac", "Cost-effectiveness acceptability curve", curve),
            Table("qaly_costs", "QALYs and costs per participant", cu.per_participant),
        ]
        if cu.excluded:
            items.append(
                Table(
                    "cost_utility_excluded",
                    "Left out of the cost-utility analysis",
                    pd.DataFrame(cu.excluded),
                )
            )
        results["cost_utility_excluded"] = cu.excluded
        sections.append(
            Section(
                "Cost-utility (NICE reference case, within trial)",
                economics.__doc__.split("\n\n")[1].replace("\n", " "),
                items,
            )
        )

    step("calibration of predicted relief")
    treated_arm = rct.arms(data, control)[0] if is_rct else None
    cal_times = recurrence if treated_arm is None else recurrence[recurrence["arm"] == treated_arm]
    cal_table, cal_summary, cal_fig = survival.calibration(cal_times)
    results["calibration"] = cal_summary
    cal_items: list[Table | Figure] = []
    if cal_fig is not None:
        cal_items = [
            Figure(
                "calibration",
                "Predicted relief against observed recurrence",
                cal_fig,
                f"Harrell's C = {cal_summary['concordance_index']:.2f}; "
                "median observed/predicted = "
                f"{cal_summary['median_observed_over_predicted']:.2f}",
            ),
            Table("calibration", "Observed relief by tertile of predicted relief", cal_table),
        ]
        if cal_summary.get("published_series"):
            cal_items.append(
                Table(
                    "calibration_published",
                    "Predicted (regrowth-limited) and observed relief "
                    "against relief observed in published series",
                    pd.DataFrame(cal_summary["published_series"]),
                    "published interval: shortest–longest follow-up (days) at which a verified "
                    "series still reported relief (cryoneuro.regrowth)",
                )
            )
    sections.append(
        Section(
            "Calibration of the plans' predicted relief", cal_summary.get("note", ""), cal_items
        )
    )

    step("writing the report")
    if not report:  # results only (programmatic use: simulation, power checks)
        return results
    paths = write_report(
        out,
        "Study analysis — cryoablation of neuromas",
        sections,
        subtitle=f"{data.source} · {design.replace('_', ' ')}",
        stem="analysis",
    )
    results["files"] = {k: str(v) for k, v in paths.items()}
    atomic_write(out / "results.json", json.dumps(json_safe(results), indent=2).encode("utf-8"))
    return results
