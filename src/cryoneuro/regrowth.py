"""Duration of relief after cryoneurolysis: a regrowth-limited estimate, checked against outcomes.

Why two numbers: the mechanism (axons regrow after Wallerian degeneration) gives a time by which
pain *can* return, but published series observe relief far longer than regrowth alone predicts
(docs/domain-facts.md). A plan therefore reports both — the **regrowth-limited estimate** and
what was **observed in published series** — and says so in words when they contradict.

Regrowth-limited estimate (two mechanisms, chosen by the neuroma type)::

    end organ (Morton's; the nerve still supplies its territory):
        t_return = delay_d + distance_mm / rate_mm_per_day
    no end organ (stump or traumatic neuroma; the pain comes from the neuroma itself):
        t_return = delay_d + distance_mm / rate_mm_per_day + reform_d

``distance_mm`` is measured along the nerve from the lesion's **proximal** edge (axons regrow
from the proximal edge of their lesion, so the lesion's own length is regrown too) to the end
organ — or, without one, to the nerve's end (the stump end / the bulb's distal pole), where
regrowing axons sprout and re-form a neuroma. ``reform_d`` is the time for the re-formed
neuroma's sprouts to fire: Wall & Gutnick 1974 (Exp Neurol; "Ongoing activity in peripheral
nerves: the physiology and pharmacology of impulses originating from a neuroma", abstract: rat
sciatic neuromas examined "between 9 days and 4 months after the section" already carried "a
steady ongoing barrage of nerve impulses") — activity within 9 days of the axons' arrival, the
onset itself not measured: ``reform_d`` uniform on [0, 9] days.

``rate`` is lognormal (median ``rate_mm_per_day``, geometric SD ``rate_gsd``) and ``delay`` normal
(truncated at 0); the interval is by seeded Monte Carlo. Defaults and sources:

* Regrowth about 1–3 mm/day, 1 mm/day the usual planning value (Seddon; Sunderland; clinical
  reviews quote 1–2 mm/day for cryoneurolysis, e.g. StatPearls "Cryoanalgesia"). Median 1 mm/day
  with a geometric SD of 1.5 puts the 90 % range at about 0.5–2 mm/day.
* Delay: the severed axon fragments within about a day and debris is cleared in 3–5 days
  (Wallerian degeneration; Open Biol 2019 9:190118, fig. 1); regrowth begins after an initial
  delay of days — default 7 ± 3 days.
* Rat sciatic nerve frozen at −55 °C recovered function by 8 weeks (Hsu & Stevenson 2015).

Observed in published series: ``data/evidence/relief_durations.csv`` (one row per series, with
its abstract sentence; README there). For the plan's population the interval is
[shortest, longest] follow-up (months × 30.4375 days) at which a **verified** series still
reported relief (mean pain well below baseline): relief lasted at least that long in those
groups. Unverified rows are listed, never used.

No repeat-treatment date is derived: the estimate's lower bound is the earliest plausible return
of pain under the regrowth mechanism, not a date at which to treat again (review by symptoms).
"""

from __future__ import annotations

import csv
import datetime as _dt
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from cryoneuro.errors import InputError

RATE_MM_PER_DAY = 1.0
RATE_GSD = 1.5
DELAY_DAYS = 7.0
DELAY_SD_DAYS = 3.0
#: Upper bound (days) of the re-formed neuroma's firing onset (Wall & Gutnick 1974, see above).
REFORM_MAX_DAYS = 9.0
DAYS_PER_MONTH = 30.4375

#: The relief mechanism of each neuroma type and the evidence population it is checked against.
MECHANISMS = {
    "morton": ("end_organ", "morton"),
    "stump": ("neuroma_reformation", "stump_phantom"),
    "traumatic": ("neuroma_reformation", "traumatic"),
}
MECHANISM_TEXT = {
    "end_organ": "axons regrow from the lesion's proximal edge to the end organ "
    "(Wallerian delay + distance / rate)",
    "neuroma_reformation": "no end organ: axons regrow from the lesion's proximal edge to the "
    "nerve's end and re-form a firing neuroma (Wallerian delay + distance / rate + up to 9 days "
    "for the sprouts to fire, Wall & Gutnick 1974)",
}


@dataclass(frozen=True)
class ReliefPrediction:
    """Median and interval (days after the procedure) for the return of pain, and dates."""

    distance_mm: float
    median_days: float
    interval_days: tuple[float, float]
    level: float
    procedure_date: _dt.date | None = None
    mechanism: str = "end_organ"

    def _date(self, days: float) -> _dt.date | None:
        return (
            None
            if self.procedure_date is None
            else self.procedure_date + _dt.timedelta(days=round(days))
        )

    @property
    def median_date(self) -> _dt.date | None:
        return self._date(self.median_days)

    @property
    def interval_dates(self) -> tuple[_dt.date | None, _dt.date | None]:
        return self._date(self.interval_days[0]), self._date(self.interval_days[1])

    def as_dict(self) -> dict:
        def f(d):
            return None if d is None else d.isoformat()

        return {
            "distance_mm": self.distance_mm,
            "distance_from": "lesion proximal edge",
            "mechanism": self.mechanism,
            "mechanism_text": MECHANISM_TEXT[self.mechanism],
            "median_days": self.median_days,
            "interval_days": list(self.interval_days),
            "level": self.level,
            "median_date": f(self.median_date),
        }


def predict_relief(
    distance_mm: float,
    rate: float = RATE_MM_PER_DAY,
    delay: float = DELAY_DAYS,
    procedure_date: _dt.date | None = None,
    rate_gsd: float = RATE_GSD,
    delay_sd: float = DELAY_SD_DAYS,
    level: float = 0.90,
    n: int = 20000,
    seed: int = 0,
    mechanism: str = "end_organ",
    reform_max_days: float = REFORM_MAX_DAYS,
) -> ReliefPrediction:
    """Time to return of pain, regrowth-limited, for regrowth over ``distance_mm`` along the nerve.

    ``rate`` mm/day (median), ``rate_gsd`` ≥ 1 its geometric SD (1 = no uncertainty), ``delay``
    days (mean) with SD ``delay_sd``; ``level`` the central interval probability; ``mechanism``
    "end_organ" or "neuroma_reformation" (adds uniform [0, ``reform_max_days``] days).
    """
    for nm, val in (("distance_mm", distance_mm), ("rate", rate)):
        if not (np.isfinite(val) and val > 0):
            raise InputError(f"{nm} must be a positive number (got {val})")
    if not (np.isfinite(delay) and delay >= 0):
        raise InputError(f"delay must be ≥ 0 days (got {delay})")
    if not rate_gsd >= 1.0 or not delay_sd >= 0 or not 0 < level < 1:
        raise InputError(
            f"rate_gsd must be ≥ 1, delay_sd ≥ 0 and 0 < level < 1 (got {rate_gsd}, "
            f"{delay_sd}, {level})"
        )
    if mechanism not in MECHANISM_TEXT:
        raise InputError(
            f"relief mechanism must be one of {sorted(MECHANISM_TEXT)} (got '{mechanism}')"
        )
    rng = np.random.default_rng(seed)
    r = rate * np.exp(np.log(rate_gsd) * rng.standard_normal(n))
    d = np.maximum(0.0, delay + delay_sd * rng.standard_normal(n))
    t = d + distance_mm / r
    if mechanism == "neuroma_reformation":
        t = t + rng.uniform(0.0, reform_max_days, n)
    q = (1 - level) / 2
    lo, med, hi = np.quantile(t, [q, 0.5, 1 - q])
    return ReliefPrediction(
        float(distance_mm), float(med), (float(lo), float(hi)), level, procedure_date, mechanism
    )


def distance_along_centreline(
    centreline_mm: np.ndarray, from_arc_mm: float, end_organ_mm: np.ndarray
) -> float:
    """Arc length from ``from_arc_mm`` to the centreline point nearest the end organ (+ the gap to
    it)."""
    p = np.asarray(centreline_mm, float)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
    dense = np.linspace(0, s[-1], max(2, int(s[-1] / 0.1) + 1))
    pts = np.stack([np.interp(dense, s, p[:, a]) for a in range(3)], 1)
    d = np.linalg.norm(pts - np.asarray(end_organ_mm, float), axis=1)
    k = int(np.argmin(d))
    return float(dense[k] - from_arc_mm + d[k])


# --- observed in published series ---------------------------------------------------------------
def published_relief(population: str) -> list[dict]:
    """The rows of ``relief_durations.csv`` for one population (all, verified or not)."""
    src = resources.files("cryoneuro.data").joinpath("evidence/relief_durations.csv")
    with resources.as_file(src) as path, open(path, encoding="utf-8", newline="") as fh:
        rows: list[dict[str, Any]] = [
            r for r in csv.DictReader(fh) if r["population"] == population
        ]
    for r in rows:
        r["months"] = float(r["months"])
        r["days"] = r["months"] * DAYS_PER_MONTH
        r["n"] = int(r["n"])
    return rows


def observed_interval(population: str) -> dict:
    """Relief observed in published series of ``population``: the [shortest, longest] follow-up
    (days) at which a verified series still reported relief, with the series behind it."""
    rows = published_relief(population)
    ok = [r for r in rows if r["verified"] == "yes" and r["kind"] == "relief_at_follow_up"]
    out = {
        "population": population,
        "series": [
            {
                "study": r["study"],
                "n": r["n"],
                "months": r["months"],
                "days": round(r["days"]),
                "pain_baseline": r["pain_baseline"] or None,
                "pain_follow_up": r["pain_follow_up"] or None,
                "source_url": r["source_url"],
            }
            for r in ok
        ],
        "unverified": [
            f"{r['study']}: {r['kind'].replace('_', ' ')} {r['months']:g} months (not verified)"
            for r in rows
            if r["verified"] != "yes"
        ],
        "meaning": "follow-up at which mean pain was still well below baseline: relief lasted at "
        "least this long",
    }
    if ok:
        days = [r["days"] for r in ok]
        out["interval_days"] = [round(min(days)), round(max(days))]
        out["interval_months"] = [min(r["months"] for r in ok), max(r["months"] for r in ok)]
    return out


def agreement(low_days: float, high_days: float, observed: dict) -> str:
    """How an interval of relief (days) sits against the published one.

    Published follow-ups are lower bounds (relief still present then), so only an interval that
    ends before the shortest of them is contradicted: "contradiction" (high < shortest),
    "consistent" (overlap), "beyond published follow-up" (low > longest: neither confirmed nor
    contradicted), "no published series".
    """
    if "interval_days" not in observed:
        return "no published series"
    olo, ohi = observed["interval_days"]
    if high_days < olo:
        return "contradiction"
    return "beyond published follow-up" if low_days > ohi else "consistent"


def confront(
    pred: ReliefPrediction, observed: dict, rate: float = RATE_MM_PER_DAY, delay: float = DELAY_DAYS
) -> dict:
    """Compare the regrowth-limited interval with the observed one; a contradiction in words.

    Also the model check the data allow: the median regrowth rate that would make the median
    estimate reach the shortest observed duration, ``distance / (shortest − delay)`` (mm/day).
    """
    lo, hi = pred.interval_days
    verdict = agreement(lo, hi, observed)
    if verdict == "no published series":
        return {
            "agreement": verdict,
            "statement": f"No verified published series for '{observed['population']}' in the "
            "evidence set: the regrowth-limited estimate cannot be checked against outcomes.",
        }
    olo, ohi = observed["interval_days"]
    names = ", ".join(s["study"] for s in observed["series"])
    est = f"median {pred.median_days:.0f} days, {pred.level:.0%} interval {lo:.0f}–{hi:.0f} days"
    obs = f"relief still present at {olo:.0f}–{ohi:.0f} days of follow-up ({names})"
    needed = pred.distance_mm / max(olo - delay, 1.0)
    out = {"agreement": verdict, "rate_needed_mm_per_day": round(needed, 3)}
    if verdict == "consistent":
        out["statement"] = (
            f"Consistent: the regrowth-limited estimate ({est}) overlaps the relief observed in "
            f"published series ({obs})."
        )
    elif verdict == "beyond published follow-up":
        out["statement"] = (
            f"The regrowth-limited estimate ({est}) lies beyond the longest published follow-up "
            f"({obs}): not contradicted, not confirmed by outcome data."
        )
    else:
        out["statement"] = (
            f"Contradiction: the regrowth-limited estimate ({est}) ends before the shortest relief "
            f"observed in published series ({obs}). Regrowth alone does not explain the observed "
            f"duration (it would need a regrowth rate of {needed:.2f} mm/day against the "
            f"{rate:g} mm/day assumed); expect relief to outlast the estimate, which is the "
            f"earliest plausible return of pain, not the expected one."
        )
    return out


def relief_summary(
    distance_mm: float, neuroma_type: str = "morton", procedure_date: _dt.date | None = None
) -> dict:
    """The plan's relief block: the regrowth-limited estimate, what published series observed, and
    their agreement. The top-level ``median_days``/``interval_days`` are the regrowth-limited
    estimate's (what the registry stores as the predicted relief and calibration compares)."""
    if neuroma_type not in MECHANISMS:
        raise InputError(f"neuroma type must be one of {sorted(MECHANISMS)} (got '{neuroma_type}')")
    mechanism, population = MECHANISMS[neuroma_type]
    pred = predict_relief(distance_mm, procedure_date=procedure_date, mechanism=mechanism)
    observed = observed_interval(population)
    return {
        **pred.as_dict(),
        "neuroma_type": neuroma_type,
        "regrowth_limited_estimate": {
            "median_days": pred.median_days,
            "interval_days": list(pred.interval_days),
            "level": pred.level,
            "mechanism": MECHANISM_TEXT[mechanism],
        },
        "observed_in_published_series": observed,
        **confront(pred, observed),
    }
