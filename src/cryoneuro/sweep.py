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
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryoneuro._json import json_safe
from cryoneuro.errors import InputError

# dask_client is re-exported for callers of its old home
from cryoneuro.parallel import dask_client as dask_client
from cryoneuro.parallel import run_tasks

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


def plot_sweep(table: pd.DataFrame, variations: Sequence[Variation], path: Path) -> Path:
    """Histograms of the isotherm diameters and their scatter against each varied input."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outputs = [c for c in table.columns if c.endswith("_diameter_mm")]
    fig, axes = plt.subplots(
        len(outputs),
        1 + len(variations),
        figsize=(3.2 * (1 + len(variations)), 2.6 * len(outputs)),
        squeeze=False,
        constrained_layout=True,
    )
    for r, out in enumerate(outputs):
        axes[r, 0].hist(table[out], bins=20, color="#4c72b0")
        axes[r, 0].set_xlabel(out)
        for c, v in enumerate(variations, start=1):
            axes[r, c].scatter(table[v.path], table[out], s=8, alpha=0.7)
            axes[r, c].set_xlabel(v.path)
            axes[r, c].set_ylabel(out)
    fig.suptitle(f"{len(table)} samples")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
#: Bins of the position-error magnitude (mm) for P(block) against error.
ERROR_BINS_MM = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, math.inf)


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


def run_plan_sample(plan_json: str, voxel_mm: float, values: dict[str, float]) -> dict[str, Any]:
    """One plan-uncertainty sample on a worker: one Numba thread (one core per worker); the
    phantom and grid are cached per worker process
    (:func:`cryoneuro.planning.replay.context_for`)."""
    import numba

    from cryoneuro.planning.replay import replay

    numba.set_num_threads(1)
    return replay(plan_json, _perturbation(values), voxel_mm=voxel_mm).as_dict()


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


def _wilson(k: int, n: int) -> list[float]:
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    # the Wilson interval always contains k/n; at k = n (or 0) its bound equals p up to rounding
    # (0.9999999999999998 < 1.0), which made error bars negative: clamp the round-off only
    p = k / n
    return [float(min(lo, p)), float(max(hi, p))]


def _distribution(x: pd.Series) -> dict[str, float | None]:
    x = pd.to_numeric(x, errors="coerce").dropna()
    if x.empty:
        return {"n": 0, "mean": None, "p05": None, "p50": None, "p95": None}
    return {
        "n": len(x),
        "mean": float(x.mean()),
        "p05": float(x.quantile(0.05)),
        "p50": float(x.quantile(0.5)),
        "p95": float(x.quantile(0.95)),
    }


def block_by_error(table: pd.DataFrame) -> list[dict[str, Any]]:
    """P(complete block) per bin of position-error magnitude, with Wilson 95 % intervals."""
    out = []
    bins = pd.cut(table["position_error_mm"], ERROR_BINS_MM, right=False)
    for interval, grp in table.groupby(bins, observed=True):
        k, n = int(grp["complete_block"].sum()), len(grp)
        out.append(
            {
                "error_mm_from": float(interval.left),
                "error_mm_to": float(interval.right),
                "n": n,
                "p_block": k / n,
                "ci95": _wilson(k, n),
            }
        )
    return out


def summarise_plan_sweep(
    table: pd.DataFrame,
    *,
    spec: PlanUncertainty,
    seed: int,
    voxel_mm: float,
    nominal: dict[str, Any] | None = None,
    plan_name: str = "",
) -> dict[str, Any]:
    """Probabilities (Wilson 95 % CI, statsmodels ``proportion_confint(method="wilson")``) and
    distributions (mean, 5th/50th/95th percentiles) of a plan sweep."""
    n = len(table)
    probs = {}
    for key, col in (
        ("complete_block", "complete_block"),
        ("skin_safe", "skin_safe"),
        ("neurotmesis_risk", "neurotmesis_risk"),
    ):
        k = int(table[col].astype(bool).sum())
        probs[key] = {
            "p": k / n if n else None,
            "k": k,
            "n": n,
            "ci95": _wilson(k, n) if n else None,
        }
    return {
        "plan": plan_name,
        "samples": n,
        "seed": seed,
        "voxel_mm": voxel_mm,
        "model": "1 mm: the planner's screening grid (fast reduced model)"
        if voxel_mm >= 1.0
        else "0.5 mm: the planner's confirmation grid",
        "uncertainty": asdict(spec),
        "p_complete_block": probs["complete_block"],
        "p_skin_safe": probs["skin_safe"],
        "p_neurotmesis_risk": probs["neurotmesis_risk"],
        "distributions": {
            c: _distribution(table[c])
            for c in (
                "coverage_20",
                "coverage_40",
                "skin_min_c",
                "warmest_min_c",
                "blocked_length_mm",
                "artery_min_c",
                "relief_median_days",
                "position_error_mm",
            )
        },
        "block_by_position_error": block_by_error(table),
        "nominal": nominal,
    }


def plot_plan_sweep(table: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Histograms (target coverage, skin minimum, warmest nerve section) and P(block) against
    the position-error magnitude (binned, Wilson 95 % error bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7.2), constrained_layout=True)
    ax = axes[0, 0]
    ax.hist(table["coverage_20"], bins=20, range=(0, 1), alpha=0.7, label="≤ −20 °C")
    ax.hist(table["coverage_40"], bins=20, range=(0, 1), alpha=0.7, label="≤ −40 °C")
    ax.set(xlabel="fraction of the target", ylabel="samples", title="target coverage")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.hist(table["skin_min_c"], bins=20, color="#c44e52", alpha=0.8)
    ax.axvline(0.0, color="k", ls="--", lw=1, label="limit 0 °C")
    ax.set(xlabel="skin minimum temperature (°C)", ylabel="samples", title="skin safety")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    ax.hist(table["warmest_min_c"], bins=20, color="#55a868", alpha=0.8)
    ax.axvline(-20.0, color="k", ls="--", lw=1, label="axonotmesis −20 °C")
    ax.set(xlabel="warmest nerve section, minimum (°C)", ylabel="samples", title="nerve block")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    rows = block_by_error(table)
    if rows:
        mid = [
            (r["error_mm_from"] + min(r["error_mm_to"], r["error_mm_from"] + 1.0)) / 2 for r in rows
        ]
        p = np.array([r["p_block"] for r in rows])
        ci = np.array([r["ci95"] for r in rows])
        ax.errorbar(
            mid,
            p,
            yerr=[p - ci[:, 0], ci[:, 1] - p],
            fmt="o-",
            capsize=3,
            label="binned, Wilson 95 %",
        )
    jitter = (np.random.default_rng(0).random(len(table)) - 0.5) * 0.06
    ax.scatter(
        table["position_error_mm"],
        table["complete_block"].astype(float) + jitter,
        s=6,
        alpha=0.4,
        color="grey",
        label="samples (1 = block)",
    )
    ax.set(
        xlabel="probe position error |Δ| (mm)",
        ylabel="P(complete block)",
        ylim=(-0.1, 1.1),
        title="block against position error",
    )
    ax.legend(fontsize=8)
    fig.suptitle(title or f"{len(table)} samples")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_results(
    table: pd.DataFrame,
    summary: dict[str, Any],
    out_dir: Path,
    stem: str,
    plot_name: str,
    plot: Callable[[Path], Any],
) -> dict[str, str]:
    """``<stem>.parquet``, ``<stem>.csv``, the plot and ``summary.json`` (which lists them all)."""
    files = {
        "parquet": out_dir / f"{stem}.parquet",
        "csv": out_dir / f"{stem}.csv",
        "summary": out_dir / "summary.json",
        "plot": out_dir / plot_name,
    }
    table.to_parquet(files["parquet"], index=False)
    table.to_csv(files["csv"], index=False)
    names = {k: str(v) for k, v in files.items()}
    summary["files"] = names
    # the results are on disk before any plot is drawn: a plotting failure loses no numbers
    files["summary"].write_text(json.dumps(json_safe(summary), indent=2), encoding="utf-8")
    plot(files["plot"])
    return names


def write_plan_sweep(table: pd.DataFrame, summary: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """``sweep.parquet``, ``sweep.csv``, ``summary.json``, ``uncertainty.png`` in ``out_dir``."""
    title = f"{summary.get('plan', '')}: {len(table)} samples at {summary.get('voxel_mm')} mm"
    return write_results(
        table,
        summary,
        out_dir,
        "sweep",
        "uncertainty.png",
        lambda path: plot_plan_sweep(table, path, title=title),
    )
