"""Predicted duration of relief after cryoneurolysis: Wallerian delay + regrowth distance / rate.

Model::

    t_return = delay_d + distance_mm / rate_mm_per_day

``rate`` is lognormal (median ``rate_mm_per_day``, geometric SD ``rate_gsd``) and ``delay`` normal
(truncated at 0); the interval is by seeded Monte Carlo. Defaults and sources:

* Regrowth about 1–3 mm/day, 1 mm/day the usual planning value (Seddon; Sunderland; clinical
  reviews quote 1–2 mm/day for cryoneurolysis, e.g. StatPearls "Cryoanalgesia"). Median 1 mm/day
  with a geometric SD of 1.5 puts the 90 % range at about 0.5–2 mm/day.
* Delay: the severed axon fragments within about a day and debris is cleared in 3–5 days
  (Wallerian degeneration; Open Biol 2019 9:190118, fig. 1); regrowth begins after an initial
  delay of days — default 7 ± 3 days.
* Rat sciatic nerve frozen at −55 °C recovered function by 8 weeks (Hsu & Stevenson 2015).

Repeat-treatment date: the **lower bound** of the interval (pain may return from then on; the
planner may choose the median instead — both dates are returned).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np

from cryoneuro.errors import InputError

RATE_MM_PER_DAY = 1.0
RATE_GSD = 1.5
DELAY_DAYS = 7.0
DELAY_SD_DAYS = 3.0


@dataclass(frozen=True)
class ReliefPrediction:
    """Median and interval (days after the procedure) for the return of pain, and dates."""

    distance_mm: float
    median_days: float
    interval_days: tuple[float, float]
    level: float
    procedure_date: _dt.date | None = None

    def _date(self, days: float) -> _dt.date | None:
        return None if self.procedure_date is None else self.procedure_date + _dt.timedelta(days=round(days))

    @property
    def median_date(self) -> _dt.date | None:
        return self._date(self.median_days)

    @property
    def interval_dates(self) -> tuple[_dt.date | None, _dt.date | None]:
        return self._date(self.interval_days[0]), self._date(self.interval_days[1])

    @property
    def repeat_treatment_date(self) -> _dt.date | None:
        """Review/repeat date: the interval's lower bound."""
        return self._date(self.interval_days[0])

    def as_dict(self) -> dict:
        f = lambda d: None if d is None else d.isoformat()
        return {"distance_mm": self.distance_mm, "median_days": self.median_days,
                "interval_days": list(self.interval_days), "level": self.level,
                "median_date": f(self.median_date), "repeat_treatment_date": f(self.repeat_treatment_date)}


def predict_relief(distance_mm: float, rate: float = RATE_MM_PER_DAY, delay: float = DELAY_DAYS,
                   procedure_date: _dt.date | None = None, rate_gsd: float = RATE_GSD,
                   delay_sd: float = DELAY_SD_DAYS, level: float = 0.90, n: int = 20000,
                   seed: int = 0) -> ReliefPrediction:
    """Time to return of pain for a lesion ``distance_mm`` from the end organ (along the nerve).

    ``rate`` mm/day (median), ``rate_gsd`` ≥ 1 its geometric SD (1 = no uncertainty), ``delay``
    days (mean) with SD ``delay_sd``; ``level`` the central interval probability.
    """
    for nm, val in (("distance_mm", distance_mm), ("rate", rate)):
        if not (np.isfinite(val) and val > 0):
            raise InputError(f"{nm} must be a positive number (got {val})")
    if not (np.isfinite(delay) and delay >= 0):
        raise InputError(f"delay must be ≥ 0 days (got {delay})")
    if not rate_gsd >= 1.0 or not delay_sd >= 0 or not 0 < level < 1:
        raise InputError(f"rate_gsd must be ≥ 1, delay_sd ≥ 0 and 0 < level < 1 (got {rate_gsd}, {delay_sd}, {level})")
    rng = np.random.default_rng(seed)
    r = rate * np.exp(np.log(rate_gsd) * rng.standard_normal(n))
    d = np.maximum(0.0, delay + delay_sd * rng.standard_normal(n))
    t = d + distance_mm / r
    q = (1 - level) / 2
    lo, med, hi = np.quantile(t, [q, 0.5, 1 - q])
    return ReliefPrediction(float(distance_mm), float(med), (float(lo), float(hi)), level, procedure_date)


def distance_along_centreline(centreline_mm: np.ndarray, from_arc_mm: float, end_organ_mm: np.ndarray) -> float:
    """Arc length from ``from_arc_mm`` to the centreline point nearest the end organ (+ the gap to it)."""
    p = np.asarray(centreline_mm, float)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
    dense = np.linspace(0, s[-1], max(2, int(s[-1] / 0.1) + 1))
    pts = np.stack([np.interp(dense, s, p[:, a]) for a in range(3)], 1)
    d = np.linalg.norm(pts - np.asarray(end_organ_mm, float), axis=1)
    k = int(np.argmin(d))
    return float(dense[k] - from_arc_mm + d[k])
