"""Pain intensity (NRS 0–10, VAS 0–100) and clinically important change (MCID, IMMPACT).

Sources
-------
- Farrar JT, Young JP Jr, LaMoreaux L, Werth JL, Poole RM. Clinical importance of changes in
  chronic pain intensity measured on an 11-point numerical pain rating scale. Pain
  2001;94(2):149-158. doi:10.1016/S0304-3959(01)00349-9 — a reduction of about 2 points or
  about 30 % on the 0–10 NRS matched "much improved".
- Dworkin RH, Turk DC, Wyrwich KW, et al. Interpreting the clinical importance of treatment
  outcomes in chronic pain clinical trials: IMMPACT recommendations. J Pain 2008;9(2):105-121.
  doi:10.1016/j.jpain.2007.09.005 — reductions of ≥ 10 % minimally, ≥ 30 % moderately and
  ≥ 50 % substantially important.
"""

from __future__ import annotations

import math
from typing import Literal

from cryoneuro.errors import InputError
from cryoneuro.instruments.base import Instrument, Item, Measure, Scores, register

#: IMMPACT thresholds on the fractional reduction from baseline (Dworkin 2008).
IMMPACT_THRESHOLDS: dict[str, float] = {"minimal": 0.10, "moderate": 0.30, "substantial": 0.50}

Category = Literal["substantial", "moderate", "minimal", "none", "worse"]


def _score_single(answers: dict[str, int]) -> Scores:
    return {"pain": float(answers["pain"])}


def score_nrs(answers: dict[str, object]) -> Scores:
    """Pain NRS 0–10 (0 no pain, 10 worst imaginable): the rating itself, validated."""
    return NRS.score(answers)


def score_vas(answers: dict[str, object]) -> Scores:
    """Pain VAS 0–100 mm (0 no pain): the rating itself, validated (whole millimetres)."""
    return VAS.score(answers)


NRS = register(
    Instrument(
        code="nrs",
        label="Pain NRS (0–10)",
        items=(Item("pain", 0, 10, label="pain intensity, 0 = no pain, 10 = worst imaginable"),),
        measures=(Measure("pain", "Pain intensity 0–10; higher is worse."),),
        citation=(
            "Farrar JT, et al. Clinical importance of changes in chronic pain intensity "
            "measured on an 11-point numerical pain rating scale. Pain 2001;94(2):149-158."
        ),
        doi="10.1016/S0304-3959(01)00349-9",
        scorer=_score_single,
    )
)

VAS = register(
    Instrument(
        code="vas",
        label="Pain VAS (0–100)",
        items=(Item("pain", 0, 100, label="pain intensity in mm on a 100 mm line"),),
        measures=(Measure("pain", "Pain intensity 0–100 mm; higher is worse."),),
        citation=("Huskisson EC. Measurement of pain. Lancet 1974;2(7889):1127-1131."),
        doi="10.1016/S0140-6736(74)90884-8",
        scorer=_score_single,
    )
)


# --------------------------------------------------------------------------- MCID helpers
def _rating(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"pain: {name} must be a finite number ≥ 0 (got {value!r})")
    if value < 0:
        raise InputError(f"pain: {name} must be a finite number ≥ 0 (got {value!r})")
    return float(value)


def percent_change(baseline: float, follow_up: float) -> float | None:
    """Change from baseline in percent of baseline: negative means less pain.

    A baseline of 0 leaves the percentage undefined (no pain to reduce), so the answer is
    ``None`` rather than an infinity that would poison a mean.
    """
    b, f = _rating("baseline", baseline), _rating("follow_up", follow_up)
    if b == 0:
        return None
    return 100.0 * (f - b) / b


def is_responder(
    baseline: float, follow_up: float, threshold: float = 0.3, *, points: float | None = None
) -> bool:
    """Whether pain fell by at least ``threshold`` of baseline (default 30 %, Farrar 2001).

    With ``points`` (e.g. 2 on the NRS, Farrar 2001) an absolute fall of at least that many
    points also counts. A baseline of 0 is never a responder (nothing to improve).
    """
    if isinstance(threshold, bool) or not 0 < float(threshold) <= 1:
        raise InputError(f"pain: threshold must be a fraction in (0, 1] (got {threshold!r})")
    change = percent_change(baseline, follow_up)
    if change is None:
        return False
    if -change >= 100.0 * threshold - 1e-9:
        return True
    return points is not None and (float(baseline) - float(follow_up)) >= points - 1e-9


def improvement_category(baseline: float, follow_up: float) -> Category | None:
    """IMMPACT category of the reduction (Dworkin 2008): substantial ≥ 50 %, moderate ≥ 30 %,
    minimal ≥ 10 %, otherwise "none"; "worse" for any increase (not an IMMPACT category,
    kept apart because NICE counts worsening as a safety outcome). ``None`` if baseline is 0.
    """
    change = percent_change(baseline, follow_up)
    if change is None:
        return None
    if change > 0:
        return "worse"
    reduction = -change / 100.0
    for name in ("substantial", "moderate", "minimal"):
        if reduction >= IMMPACT_THRESHOLDS[name] - 1e-9:
            return name
    return "none"
