"""Sample size for the trials NICE HTG652 asks for: continuous, binary and non-inferiority.

Why: the guidance recommends research, and the first question of a trial team is how many
participants. Each calculation is the textbook one, solved with statsmodels' power classes
(well kept; no hand-written root finding):

* continuous superiority (e.g. pain NRS change): two-sample t test,
  ``TTestIndPower().solve_power(effect_size = δ/σ, alpha, power, ratio, 'two-sided')``;
  with a baseline measurement analysed by ANCOVA the variance shrinks by (1 − ρ²) for a
  baseline–follow-up correlation ρ (Borm, Fransen & Lemmens 2007, J Clin Epidemiol 60:1234),
  so δ/σ becomes δ/(σ√(1 − ρ²));
* binary superiority (e.g. responders): the normal approximation with pooled variance under
  H0 (Fleiss 1981 §3.2, no continuity correction), statsmodels
  ``samplesize_proportions_2indep_onetail``;
* non-inferiority against surgery (continuous): one-sided t test at α (default 0.025) of
  H0: difference ≤ −M, effect size (M + d)/σ for a true difference d (Julious 2004, Stat Med
  23:1921);
* every n is rounded up and then inflated for an expected dropout fraction: n / (1 − dropout).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from cryoneuro.errors import InputError


@dataclass
class SampleSize:
    design: str
    n_per_arm_analysed: int
    n_per_arm_recruited: int
    n_total_recruited: int
    alpha: float
    sidedness: str
    power: float
    dropout: float
    assumptions: str

    def to_dict(self) -> dict:
        return asdict(self)


def _check(name: str, value: float, lo: float, hi: float) -> None:
    if not (math.isfinite(value) and lo < value < hi):
        raise InputError(
            f"--{name.replace('_', '-')} {value:g} must lie between {lo:g} and {hi:g} (exclusive)"
        )


def _finish(
    design: str, n: float, alpha: float, sided: str, power: float, dropout: float, assumptions: str
) -> SampleSize:
    analysed = math.ceil(n - 1e-9)
    recruited = math.ceil(analysed / (1.0 - dropout) - 1e-9)
    return SampleSize(
        design, analysed, recruited, 2 * recruited, alpha, sided, power, dropout, assumptions
    )


def continuous(
    difference: float,
    sd: float,
    *,
    alpha: float = 0.05,
    power: float = 0.9,
    correlation: float = 0.0,
    dropout: float = 0.0,
) -> SampleSize:
    """Superiority on a continuous outcome (two-sided t test; ANCOVA when correlation > 0)."""
    from statsmodels.stats.power import TTestIndPower

    _check("alpha", alpha, 0, 1)
    _check("power", power, 0, 1)
    _check("dropout", dropout, -1e-12, 1)
    _check("correlation", correlation, -1, 1)
    if not (sd > 0 and difference != 0 and math.isfinite(difference)):
        raise InputError("--difference must be non-zero and --sd > 0")
    sd_eff = sd * math.sqrt(1.0 - correlation**2)
    n = TTestIndPower().solve_power(
        effect_size=abs(difference) / sd_eff,
        alpha=alpha,
        power=power,
        ratio=1.0,
        alternative="two-sided",
    )
    how = f"difference {difference:g}, SD {sd:g}" + (
        f", baseline correlation {correlation:g} (ANCOVA, SD × √(1 − ρ²))" if correlation else ""
    )
    return _finish("continuous superiority", float(n), alpha, "two-sided", power, dropout, how)


def binary(
    p_treated: float,
    p_control: float,
    *,
    alpha: float = 0.05,
    power: float = 0.9,
    dropout: float = 0.0,
) -> SampleSize:
    """Superiority on a proportion (normal approximation, pooled variance under H0)."""
    from statsmodels.stats.proportion import samplesize_proportions_2indep_onetail

    for name, value in (("p_treated", p_treated), ("p_control", p_control)):
        _check(name, value, 0, 1)
    _check("alpha", alpha, 0, 1)
    _check("power", power, 0, 1)
    _check("dropout", dropout, -1e-12, 1)
    if p_treated == p_control:
        raise InputError("--p-treated and --p-control must differ")
    n = samplesize_proportions_2indep_onetail(
        p_treated - p_control, p_control, power, ratio=1, alpha=alpha, alternative="two-sided"
    )
    return _finish(
        "binary superiority",
        float(n),
        alpha,
        "two-sided",
        power,
        dropout,
        f"proportions {p_treated:g} vs {p_control:g}",
    )


def non_inferiority(
    margin: float,
    sd: float,
    *,
    true_difference: float = 0.0,
    alpha: float = 0.025,
    power: float = 0.9,
    dropout: float = 0.0,
) -> SampleSize:
    """Non-inferiority on a continuous outcome: one-sided t test of difference > −margin."""
    from statsmodels.stats.power import TTestIndPower

    _check("alpha", alpha, 0, 0.5)
    _check("power", power, 0, 1)
    _check("dropout", dropout, -1e-12, 1)
    if not (margin > 0 and sd > 0):
        raise InputError(
            "--margin and --sd must be > 0 (the margin is the largest loss "
            "accepted, in outcome units, better direction positive)"
        )
    if margin + true_difference <= 0:
        raise InputError(
            "the true difference is at or beyond the margin: non-inferiority cannot be shown"
        )
    n = TTestIndPower().solve_power(
        effect_size=(margin + true_difference) / sd,
        alpha=alpha,
        power=power,
        ratio=1.0,
        alternative="larger",
    )
    return _finish(
        "continuous non-inferiority",
        float(n),
        alpha,
        "one-sided",
        power,
        dropout,
        f"margin {margin:g}, SD {sd:g}, true difference {true_difference:g}",
    )
