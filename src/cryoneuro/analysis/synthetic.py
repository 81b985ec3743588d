"""Synthetic studies with known truth, for tests, demos and power checks.

A generated data set goes through exactly the path real data take (tidy tables → analysis),
so an analysis that recovers the known effect, relief duration and event rates is checked end
to end. The data-generating model, per participant *i* and visit *t* (days after day 0):

    pain_it = clip(round(b_i + u_i + Δ_it + e_it), 0, 10),  b_i ~ N(baseline_mean, baseline_sd)
    Δ_it    = control_change                 (control arm, or after relief ends)
            + effect (treated, while t < D_i)
    D_i     = predicted_i · exp(N(0, calibration_sd)),  predicted_i ~ LogNormal(ln median, spread)

with a participant effect u_i ~ N(0, participant_sd) and noise e_it ~ N(0, residual_sd).
Rounding to the integer NRS adds zero-mean noise; clipping is negligible for the defaults.
After relief ends pain returns to ``control_change`` from baseline, so recurrence is visible
as the loss of a 30 % response. Adverse events occur per participant with the given
probabilities; a recurrence leads to a re-intervention with ``reintervention_probability``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cryoneuro.analysis.tidy import TidyData, from_frames

VISIT_DAYS: dict[str, int] = {
    "baseline": -7,
    "w2": 14,
    "m1": 30,
    "m3": 91,
    "m6": 182,
    "m12": 365,
    "m24": 730,
}


@dataclass
class SyntheticStudy:
    """Parameters of a synthetic study; defaults resemble the Morton's neuroma case series."""

    design: str = "rct"
    n_per_arm: int = 60
    arms: tuple[str, str] = ("cryoablation", "sham")
    sites: tuple[str, ...] = ("S01", "S02", "S03")
    neuroma_type: str = "morton"
    baseline_mean: float = 7.0
    baseline_sd: float = 1.2
    participant_sd: float = 0.8
    residual_sd: float = 1.0
    control_change: float = -1.0
    effect: float = -2.0
    relief_median_days: float = 1.0e6
    prediction_spread: float = 0.35
    calibration_sd: float = 0.25
    visits: dict[str, int] = field(default_factory=lambda: dict(VISIT_DAYS))
    dropout_per_visit: float = 0.04
    screen_failures: int = 10
    ae_probabilities: dict[str, float] = field(
        default_factory=lambda: {
            "pain": 0.10,
            "infection": 0.03,
            "worsening_of_symptoms": 0.05,
            "damage_to_adjacent_structures": 0.02,
        }
    )
    reintervention_probability: float = 0.5
    seed: int = 1


def generate(spec: SyntheticStudy | None = None) -> TidyData:
    """A complete tidy data set drawn from ``spec`` (reproducible for a given seed)."""
    spec = spec or SyntheticStudy()
    rng = np.random.default_rng(spec.seed)
    rct = spec.design == "rct"
    arms = list(spec.arms) if rct else [spec.arms[0]]
    day0 = dt.date(2026, 1, 5)
    participants, procedures, visits, scores, events, reinterventions = [], [], [], [], [], []
    number = 0
    for _ in range(spec.screen_failures):
        number += 1
        participants.append(
            {
                "participant_id": f"P{number:04d}",
                "design": spec.design,
                "status": "screen_failed",
                "site": spec.sites[0],
                "study": "SYN",
                "status_reason": ("not meeting inclusion criteria", "declined to participate")[
                    number % 2
                ],
            }
        )
    for arm in arms:
        treated = arm == spec.arms[0]
        for _ in range(spec.n_per_arm):
            number += 1
            pid = f"P{number:04d}"
            start = day0 + dt.timedelta(days=int(rng.integers(0, 365)))
            site = spec.sites[int(rng.integers(0, len(spec.sites)))]
            baseline = rng.normal(spec.baseline_mean, spec.baseline_sd)
            u = rng.normal(0.0, spec.participant_sd)
            predicted = float(
                np.exp(rng.normal(np.log(spec.relief_median_days), spec.prediction_spread))
            )
            relief = predicted * float(np.exp(rng.normal(0.0, spec.calibration_sd)))
            status = "completed"
            last_day = 0
            recurrence_day = None
            for code, day in spec.visits.items():
                if code != "baseline" and rng.random() < spec.dropout_per_visit:
                    status = "lost_to_follow_up"
                    break
                day = day + int(rng.integers(-3, 4)) if code != "baseline" else day
                change = 0.0 if code == "baseline" else spec.control_change
                if code != "baseline" and treated and day < relief:
                    change += spec.effect
                pain = int(
                    np.clip(np.rint(baseline + u + change + rng.normal(0, spec.residual_sd)), 0, 10)
                )
                date = start + dt.timedelta(days=day)
                visits.append(
                    {
                        "participant_id": pid,
                        "visit_id": f"{pid}-{code}",
                        "visit_code": code,
                        "visit_date": date.isoformat(),
                        "days_since_procedure": day,
                    }
                )
                eq = [
                    int(np.clip(1 + round(pain / 2.5 + rng.normal(0, 0.5)), 1, 5)) for _ in range(5)
                ]
                for instrument, measure, value in (
                    ("nrs", "pain", pain),
                    (
                        "eq5d5l",
                        "index_england",
                        round(
                            float(np.clip(1 - 0.09 * pain + rng.normal(0, 0.05), -0.285, 1.0)), 3
                        ),
                    ),
                    ("eq5d5l", "vas", int(np.clip(90 - 6 * pain + rng.normal(0, 8), 0, 100))),
                    (
                        "moxfq",
                        "walking_standing",
                        round(float(np.clip(10 * pain + rng.normal(0, 8), 0, 100)), 1),
                    ),
                    (
                        "mobility",
                        "walking_distance_m",
                        int(max(0, 2500 - 200 * pain + rng.normal(0, 300))),
                    ),
                ):
                    scores.append(
                        {
                            "participant_id": pid,
                            "visit_code": code,
                            "visit_date": date.isoformat(),
                            "days_since_procedure": day,
                            "instrument": instrument,
                            "kind": "score",
                            "measure": measure,
                            "value": value,
                        }
                    )
                scores.append(
                    {
                        "participant_id": pid,
                        "visit_code": code,
                        "visit_date": date.isoformat(),
                        "days_since_procedure": day,
                        "instrument": "eq5d5l",
                        "kind": "item",
                        "measure": "profile",
                        "value": "".join(map(str, eq)),
                    }
                )
                last_day = max(last_day, day)
                if treated and day >= relief and recurrence_day is None and code != "baseline":
                    recurrence_day = day
            if status == "completed" and rng.random() < 0.03:
                status = "withdrawn"
            participants.append(
                {
                    "participant_id": pid,
                    "study": "SYN",
                    "site": site,
                    "design": spec.design,
                    "arm": arm if rct else "",
                    "sex": str(rng.choice(["female", "male"], p=[0.7, 0.3])),
                    "age_at_enrolment_years": int(rng.integers(30, 76)),
                    "enrolment_date": (start - dt.timedelta(days=14)).isoformat(),
                    "status": status,
                    "status_reason": {
                        "lost_to_follow_up": "no contact after two reminders",
                        "withdrawn": "withdrew consent",
                    }.get(status, ""),
                    "neuroma_type": spec.neuroma_type,
                    "neuroma_site": "third web space",
                    "laterality": str(rng.choice(["left", "right"])),
                    "neuroma_size_mm": round(float(rng.normal(6.5, 1.5)), 1),
                    "prior_treatments": "steroid injection",
                }
            )
            procedures.append(
                {
                    "participant_id": pid,
                    "procedure_id": f"{pid}-C1",
                    "procedure_date": start.isoformat(),
                    "days_since_procedure": 0,
                    "imaging_modality": "ultrasound",
                    "anaesthesia": "local",
                    "device_name": "generic N2O system",
                    "manufacturer": "n/a",
                    "device_lot": "L1",
                    "probe_model": "1.5 mm",
                    "gas": "nitrous-oxide",
                    "protocol": "2x60 s" if treated else "sham (probe not cooled)",
                    "operator": "IR1",
                    "predicted_relief_days": round(predicted, 1) if treated else None,
                    "has_plan": treated,
                }
            )
            for category, p in spec.ae_probabilities.items():
                if rng.random() < p:
                    day = int(rng.integers(1, 60))
                    events.append(
                        {
                            "participant_id": pid,
                            "event_id": f"{pid}-AE{len(events)}",
                            "onset_date": (start + dt.timedelta(days=day)).isoformat(),
                            "days_since_procedure": day,
                            "category": category,
                            "severity": "mild",
                            "serious": False,
                            "relatedness": "possible",
                            "outcome": "recovered",
                            "device_incident": False,
                            "procedure_id": f"{pid}-C1",
                            "description": "synthetic",
                        }
                    )
            if recurrence_day is not None and rng.random() < spec.reintervention_probability:
                day = recurrence_day + int(rng.integers(7, 60))
                if day <= last_day:
                    reinterventions.append(
                        {
                            "participant_id": pid,
                            "reintervention_id": f"{pid}-R1",
                            "reintervention_date": (start + dt.timedelta(days=day)).isoformat(),
                            "days_since_procedure": day,
                            "kind": "repeat cryoablation",
                            "description": "synthetic",
                        }
                    )
    frames = {
        name: pd.DataFrame(rows)
        for name, rows in (
            ("participants", participants),
            ("procedures", procedures),
            ("visits", visits),
            ("scores", scores),
            ("adverse_events", events),
            ("reinterventions", reinterventions),
        )
        if rows
    }
    return from_frames(
        source=f"synthetic {spec.design} (seed {spec.seed})",
        **{k: v.astype(object) for k, v in frames.items()},
    )
