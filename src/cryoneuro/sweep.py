"""Parameter sweeps on Dask: how uncertain tissue properties, probe placement and probe
temperature spread the predicted iceball.

A sweep varies fields of a case file, addressed by dotted paths (``domain.tissue.perfusion``,
``probes[0].tip_temperature_c``, ``probes[0].tip_mm[0]``, ``protocol.phases[0].freeze_s``),
each over a range ``LO:HI``. Samples are a scrambled Latin hypercube (McKay, Beckman & Conover
1979; ``scipy.stats.qmc``) drawn from a seed, so a sweep is reproducible; each sample is one
independent simulation, so results do not depend on how many workers run them. Runs go to a
local ``dask.distributed`` cluster by default or to an existing scheduler; a lost worker's tasks
are recomputed by Dask, and finished rows are written to ``partial.csv`` as they arrive so an
interrupted sweep keeps what it has.

A *plan* sweep (:func:`run_plan_sweep`) replays a saved Plan (:mod:`cryoneuro.planning.replay`)
under sampled probe-position error, tip-temperature offset and tissue-property and freeze-time
multipliers, and turns the plan's verdict into probabilities: P(complete nerve block) and
P(skin safe) with Wilson 95 % intervals, distributions of target coverage and skin minimum, and
P(block) against the position-error magnitude. The Dask machinery (:func:`run_tasks`,
:func:`dask_client`) lives in :mod:`cryoneuro.parallel`, shared with the planner's screening and
cohort re-simulation.

Split by role: this module samples and runs; the statistics of a plan sweep are in
:mod:`cryoneuro.sweep_stats`, the figures in :mod:`cryoneuro.sweep_plots` and the files in
:mod:`cryoneuro.sweep_io` (their names are re-exported here for callers of the old home).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoneuro.errors import InputError

# dask_client is re-exported for callers of its old home
from cryoneuro.parallel import dask_client as dask_client
from cryoneuro.parallel import run_tasks

# statistics, figures and files live in their own modules (split by role); re-exported here for
# callers of their old home
from cryoneuro.sweep_io import write_plan_sweep as write_plan_sweep
from cryoneuro.sweep_io import write_results as write_results
from cryoneuro.sweep_plots import draw_plan_sweep as draw_plan_sweep
from cryoneuro.sweep_plots import draw_sweep as draw_sweep
from cryoneuro.sweep_plots import plot_plan_sweep as plot_plan_sweep
from cryoneuro.sweep_plots import plot_sweep as plot_sweep
from cryoneuro.sweep_stats import ERROR_BINS_MM as ERROR_BINS_MM
from cryoneuro.sweep_stats import _distribution as _distribution
from cryoneuro.sweep_stats import _wilson as _wilson
from cryoneuro.sweep_stats import block_by_error as block_by_error
from cryoneuro.sweep_stats import summarise_plan_sweep as summarise_plan_sweep

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


@dataclass(frozen=True)
class Variation:
    """One varied field: a dotted path into the case and a closed range."""

    path: str
    low: float
    high: float

    @classmethod
    def parse(cls, text: str) -> Variation:
        """``PATH=LO:HI`` (e.g. ``domain.tissue.perfusion=1000:8000``)."""
        if "=" not in text or ":" not in text.split("=", 1)[1]:
            raise InputError(
                f"--vary '{text}': write PATH=LO:HI, e.g. probes[0].tip_temperature_c=-185:-120"
            )
        path, rng = text.split("=", 1)
        lo_s, hi_s = rng.split(":", 1)
        try:
            lo, hi = float(lo_s), float(hi_s)
        except ValueError:
            raise InputError(f"--vary '{text}': LO and HI must be numbers") from None
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
            raise InputError(f"--vary '{text}': need finite LO < HI")
        return cls(path.strip(), lo, hi)


def _steps(path: str) -> list[str | int]:
    steps: list[str | int] = []
    for part in path.split("."):
        m = _PART.fullmatch(part)
        if not m:
            raise InputError(f"--vary path '{path}': cannot read '{part}'")
        steps.append(m.group(1))
        steps += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    return steps


def set_path(data: dict, path: str, value: float) -> None:
    """Set a field of a case dictionary by dotted path; the field must exist (or sit in an
    existing table), so a typo is an error rather than a silently ignored key."""
    steps = _steps(path)
    node: Any = data
    for step in steps[:-1]:
        try:
            child = node[step]
        except (KeyError, IndexError, TypeError):
            raise InputError(f"--vary path '{path}': the case has no '{step}'") from None
        if isinstance(child, str):
            # a library tissue named by string: vary one of its properties through a base table
            child = node[step] = {"base": child}
        node = child
    last = steps[-1]
    if isinstance(node, dict) or (
        isinstance(node, list) and isinstance(last, int) and last < len(node)
    ):
        node[last] = value
    else:
        raise InputError(f"--vary path '{path}': cannot set '{last}'")


def latin_hypercube(variations: Sequence[Variation], samples: int, seed: int) -> np.ndarray:
    from scipy.stats import qmc

    if samples < 1:
        raise InputError("--samples must be at least 1")
    unit = qmc.LatinHypercube(d=len(variations), seed=seed).random(samples)
    lo = np.array([v.low for v in variations])
    hi = np.array([v.high for v in variations])
    return lo + unit * (hi - lo)


def run_sample(
    case_data: dict, paths: list[str], values: list[float], overrides: dict[str, Any]
) -> dict[str, float]:
    """One sweep sample: mutate a copy of the case, simulate, return flat metrics."""
    import numba

    from cryoneuro.case import parse_case
    from cryoneuro.thermal import simulate
    from cryoneuro.thermal.summary import summarise

    numba.set_num_threads(1)  # one simulation per worker process, one core each
    data = copy.deepcopy(case_data)
    for path, value in zip(paths, values, strict=True):
        set_path(data, path, float(value))
    for path, value in overrides.items():
        set_path(data, path, value)
    case = parse_case(data, "sweep")
    res = simulate(case.model(), case.phases(), **case.simulate_options())
    summary = summarise(res, case.output.isotherms_c)
    row: dict[str, float] = {"min_temperature_c": summary["min_temperature_c"]}
    for level, m in summary["isotherms"].items():
        for key, val in m.items():
            row[f"iso{level}_{key}"] = val
    for name, p in summary["points"].items():
        row[f"{name}_min_c"] = p["min_temperature_c"]
    return row


def run_sweep(
    case_data: dict,
    variations: Sequence[Variation],
    *,
    samples: int,
    seed: int = 0,
    scheduler: str | None = None,
    workers: int = 2,
    out_dir: Path | None = None,
    overrides: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Run the sweep and return one row per sample (sorted by sample), inputs then outputs."""
    values = latin_hypercube(variations, samples, seed)
    paths = [v.path for v in variations]
    overrides = overrides or {}
    # Validate one mutated case before sending work out (a bad path fails here, once).
    probe = copy.deepcopy(case_data)
    for path, value in zip(paths, values[0], strict=True):
        set_path(probe, path, float(value))
    for path, value in overrides.items():
        set_path(probe, path, value)
    from cryoneuro.case import parse_case

    parse_case(probe, "sweep").model()

    def row(i: int, result: dict[str, float]) -> dict[str, float]:
        return {"sample": i, **dict(zip(paths, values[i], strict=True)), **result}

    results = run_tasks(
        run_sample,
        [(case_data, paths, list(values[i]), overrides) for i in range(samples)],
        name=f"sample-{seed}",
        scheduler=scheduler,
        workers=workers,
        row=row,
        partial=out_dir / "partial.csv" if out_dir else None,
        progress=progress,
    )
    return pd.DataFrame([row(i, r) for i, r in enumerate(results)])


# --- uncertainty of a plan ----------------------------------------------------------------------
#: Order of the Latin-hypercube dimensions of a plan sweep (fixed, so a seed means the same
#: samples whatever is varied: a dimension with zero spread is simply constant).
PLAN_DIMENSIONS = (
    "dx_mm",
    "dy_mm",
    "dz_mm",
    "tip_temperature_offset_c",
    "perfusion_scale",
    "conductivity_scale",
    "frozen_conductivity_scale",
    "freeze_scale",
)


def parse_scale(text: str | float | None, option: str) -> tuple[float, float]:
    """``LO:HI`` (a log-uniform range of a multiplier) or a single fixed value ``X``."""
    if text is None:
        return (1.0, 1.0)
    parts = str(text).split(":")
    try:
        lo, hi = (
            (float(parts[0]), float(parts[-1])) if len(parts) in (1, 2) else (math.nan, math.nan)
        )
    except ValueError:
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise InputError(
            f"{option} '{text}': write LO:HI with 0 < LO <= HI (or one positive number)"
        )
    return (lo, hi)


@dataclass(frozen=True)
class PlanUncertainty:
    """The spread a plan is replayed under.

    * position: each axis of the probe-tip error ~ N(0, ``position_sd_mm``²), the whole probe
      translated (targeting error; CT/MR-guided placement is of the order of 1 mm);
    * tip temperature: offset ~ N(0, ``tip_temperature_sd_c``²); the replay clips colder-than-plan
      values to the plan's tip (the boiling cryogen is the coldest a J–T tip gets), so in effect
      half the samples run warmer (heat load) and half at the nominal tip;
    * multipliers (perfusion, unfrozen and frozen conductivity, freeze duration): log-uniform on
      ``[lo, hi]`` (symmetric in ratio: 0.5:2 halves as often as it doubles); ``(1, 1)`` fixed.

    The defaults are illustrative scenario values, not measured distributions: set them from
    the placement accuracy and tissue variability of your own setting.
    """

    position_sd_mm: float = 1.0
    tip_temperature_sd_c: float = 5.0
    perfusion_scale: tuple[float, float] = (0.5, 2.0)
    conductivity_scale: tuple[float, float] = (1.0, 1.0)
    frozen_conductivity_scale: tuple[float, float] = (1.0, 1.0)
    freeze_scale: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        for key, opt in (
            ("position_sd_mm", "--position-sd-mm"),
            ("tip_temperature_sd_c", "--tip-temperature-sd-c"),
        ):
            v = getattr(self, key)
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"{opt} must be a non-negative number (got {v})")
        for key in (
            "perfusion_scale",
            "conductivity_scale",
            "frozen_conductivity_scale",
            "freeze_scale",
        ):
            lo, hi = getattr(self, key)
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
                raise InputError(f"{key} must be LO:HI with 0 < LO <= HI (got {lo}:{hi})")


def plan_samples(spec: PlanUncertainty, samples: int, seed: int) -> pd.DataFrame:
    """Perturbations, one row per sample: scrambled Latin hypercube on (0, 1)^8 from ``seed``,
    mapped to normals by the inverse CDF (``scipy.stats.norm.ppf``) and to log-uniform
    multipliers by ``lo · (hi/lo)^u``."""
    from scipy.stats import norm, qmc

    if samples < 1:
        raise InputError("--samples must be at least 1")
    u = qmc.LatinHypercube(d=len(PLAN_DIMENSIONS), seed=seed).random(samples)
    u = np.clip(u, 1e-12, 1 - 1e-12)  # the inverse normal CDF is infinite at 0 and 1
    cols: dict[str, np.ndarray] = {}
    for a, axis in enumerate(("dx_mm", "dy_mm", "dz_mm")):
        cols[axis] = spec.position_sd_mm * norm.ppf(u[:, a])
    cols["tip_temperature_offset_c"] = spec.tip_temperature_sd_c * norm.ppf(u[:, 3])
    for j, key in enumerate(PLAN_DIMENSIONS[4:], start=4):
        lo, hi = getattr(spec, key)
        cols[key] = lo * (hi / lo) ** u[:, j]
    table = pd.DataFrame({"sample": np.arange(samples), **cols})
    table.insert(4, "position_error_mm", np.sqrt(table.dx_mm**2 + table.dy_mm**2 + table.dz_mm**2))
    return table


def _perturbation(values: dict[str, float]):
    from cryoneuro.planning.replay import Perturbation

    return Perturbation(
        tip_offset_mm=(values["dx_mm"], values["dy_mm"], values["dz_mm"]),
        tip_temperature_offset_c=values["tip_temperature_offset_c"],
        perfusion_scale=values["perfusion_scale"],
        conductivity_scale=values["conductivity_scale"],
        frozen_conductivity_scale=values["frozen_conductivity_scale"],
        freeze_scale=values["freeze_scale"],
    )


def run_plan_sample(
    plan_json: str, voxel_mm: float, values: dict[str, float], front_target: float | None = None
) -> dict[str, Any]:
    """One plan-uncertainty sample on a worker: one Numba thread (one core per worker); the
    phantom and grid are cached per worker process
    (:func:`cryoneuro.planning.replay.context_for`). ``front_target``: see
    :func:`cryoneuro.planning.replay.replay` (None: the solver's accurate default)."""
    import numba

    from cryoneuro.planning.replay import replay

    numba.set_num_threads(1)
    return replay(
        plan_json, _perturbation(values), voxel_mm=voxel_mm, front_target=front_target
    ).as_dict()


def run_plan_sweep(
    plan: Any,
    spec: PlanUncertainty,
    *,
    samples: int,
    seed: int = 0,
    voxel_mm: float = 1.0,
    scheduler: str | None = None,
    workers: int = 2,
    client: Any = None,
    out_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Replay ``plan`` (a :class:`~cryoneuro.planning.plan.Plan`) under ``samples`` sampled
    perturbations on Dask; one row per sample (sorted), perturbation columns then metrics."""
    from cryoneuro.planning.replay import check_voxel, context_for

    check_voxel(voxel_mm)
    inputs = plan_samples(spec, samples, seed)
    text = plan.to_json()
    context_for(text, voxel_mm)  # fails here, once, for a plan that cannot be replayed
    records = inputs.to_dict("records")

    def row(i: int, result: dict[str, Any]) -> dict[str, Any]:
        return {**records[i], **result}

    results = run_tasks(
        run_plan_sample,
        [(text, float(voxel_mm), {k: float(v) for k, v in r.items()}) for r in records],
        name=f"plan-{seed}",
        scheduler=scheduler,
        workers=workers,
        client=client,
        row=row,
        partial=out_dir / "partial.csv" if out_dir else None,
        progress=progress,
    )
    return pd.DataFrame([row(i, r) for i, r in enumerate(results)])
