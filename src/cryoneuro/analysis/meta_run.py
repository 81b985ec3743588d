"""Evidence synthesis, the orchestration: load the evidence, check the settings, analyse each
outcome (:func:`run_meta`), or pool a generic effects file (:func:`analyse_effects`).

Why apart from :mod:`cryoneuro.analysis.meta`: the computation there takes data in memory and
is tested against metafor; what is read, which outcomes are run and how a user's settings are
refused is decided here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cryoneuro.analysis.evidence import load_evidence, summary_counts
from cryoneuro.analysis.meta import (
    MetaResult,
    OutcomeResult,
    analyse_outcome,
    check_r,
    meta_regression,
    pool,
)
from cryoneuro.analysis.meta_io import load_effects
from cryoneuro.analysis.meta_spec import (
    DEFAULT_OUTCOMES,
    MEASURES,
    METHODS,
    OUTCOMES,
    R_DEFAULT,
    R_SENSITIVITY,
    Z975,
)
from cryoneuro.errors import InputError


def parse_r_grid(text: str) -> tuple[float, ...]:
    """Parse ``"0.2,0.5,0.8"``; every value must be a correlation in [−1, 1]."""
    values = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise InputError(
                f"--r-sensitivity: '{part}' is not a number; give comma-separated "
                "correlations such as 0.2,0.5,0.8"
            ) from None
        check_r(value, "--r-sensitivity")
        values.append(value)
    if not values:
        raise InputError("--r-sensitivity: give at least one correlation, e.g. 0.2,0.5,0.8")
    return tuple(values)


def run_meta(
    data: str | Path | None = None,
    *,
    outcomes: Sequence[str] | None = None,
    methods: Sequence[str] = METHODS,
    r: float = R_DEFAULT,
    r_grid: Sequence[float] = R_SENSITIVITY,
    include_unverified: bool = False,
    transform: str = "logit",
) -> MetaResult:
    """Load the evidence (bundled when ``data`` is None) and analyse each outcome.

    An outcome asked for explicitly with fewer than 2 poolable studies is an
    :class:`InputError`; in the default run such outcomes are listed with the reason.
    """
    check_r(r)
    r_grid = tuple(r_grid)
    for value in r_grid:
        check_r(value, "--r-sensitivity")
    if transform not in ("logit", "ft"):
        raise InputError(f"--proportion-scale '{transform}': use logit or ft")
    for m in methods:
        if m not in METHODS:
            raise InputError(f"--method '{m}': use dl, pm or both")
    frame = load_evidence(data)
    explicit = outcomes is not None and len(outcomes) > 0
    wanted = (
        list(outcomes)
        if explicit
        else [o for o in DEFAULT_OUTCOMES if frame["outcome"].isin(OUTCOMES[o]["codes"]).any()]
    )
    for name in wanted:
        if name not in OUTCOMES:
            raise InputError(f"--outcome '{name}': use one of {', '.join(OUTCOMES)}")
    results = {}
    for name in wanted:
        res = analyse_outcome(
            frame,
            name,
            methods=methods,
            r=r,
            r_grid=r_grid,
            include_unverified=include_unverified,
            transform=transform,
        )
        if explicit and not res.pooled:
            hint = "" if include_unverified else " (--include-unverified adds unverified rows)"
            raise InputError(
                f"outcome '{name}': {res.reason}{hint}; see the excluded studies with a default run"
            )
        results[name] = res
    if not any(res.pooled for res in results.values()):
        raise InputError(
            "no outcome has at least 2 poolable studies; check the verified, "
            "primary and SD/CI columns of the evidence file"
        )
    return MetaResult(
        data=str(data) if data is not None else "bundled:neuroma_cryoablation.csv",
        r=r,
        r_grid=r_grid,
        methods=tuple(methods),
        include_unverified=include_unverified,
        transform=transform,
        outcomes=results,
        counts=summary_counts(frame),
    )


def analyse_effects(
    path: str | Path,
    measure: str | None = None,
    methods: Sequence[str] = METHODS,
    moderators: Sequence[str] = (),
) -> MetaResult:
    """Pool a generic effects file (yi/vi or 2×2 counts); ratios are shown back on exp scale.

    ``moderators`` names numeric columns of the same file for a REML meta-regression.
    """
    studies, measure = load_effects(path, measure)
    scale, nat_label, exp = MEASURES[measure]
    kind = "ratio" if exp else "generic"
    res = OutcomeResult(
        outcome="effects",
        label=f"{nat_label} ({Path(path).name})",
        kind=kind,
        studies=studies,
        excluded=pd.DataFrame(
            columns=["study", "outcome", "timepoint_months", "verified", "reason"]
        ),
        axis_label=f"{nat_label}{' (log scale)' if exp else ''}",
    )
    if len(studies) < 2:
        raise InputError(f"{path}: {len(studies)} study: pooling needs at least 2")
    back = np.exp if exp else (lambda x: x)
    for method in ("fe", *methods):
        p = pool(studies["y"], studies["v"], method)
        res.pooled[method] = p
        if exp:
            res.display[method] = {
                f"{key}_natural": float(back(getattr(p, key)))
                for key in (
                    "estimate",
                    "ci_lower",
                    "ci_upper",
                    "pi_lower",
                    "pi_upper",
                    "hk_ci_lower",
                    "hk_ci_upper",
                )
            }
    se = np.sqrt(studies["v"].to_numpy(float))
    res.studies = studies.assign(
        se=se,
        estimate=back(studies["y"]),
        ci_lower=back(studies["y"] - Z975 * se),
        ci_upper=back(studies["y"] + Z975 * se),
        **{f"weight_{m}": p.weights for m, p in res.pooled.items()},
    )
    if moderators:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        raw.columns = [str(c).strip() for c in raw.columns]
        missing = [m for m in moderators if m not in raw.columns]
        if missing:
            raise InputError(f"--moderator '{missing[0]}' is not a column of {path}")
        res.regression = meta_regression(studies["y"], studies["v"], raw[list(moderators)])
    return MetaResult(
        data=str(path),
        r=math.nan,
        r_grid=(),
        methods=tuple(methods),
        include_unverified=True,
        transform=f"{scale}",
        outcomes={"effects": res},
        counts={"studies": len(studies), "rows": len(studies), "verified_rows": len(studies)},
    )
