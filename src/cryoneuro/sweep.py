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
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from cryoneuro.errors import InputError

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


@dataclass(frozen=True)
class Variation:
    """One varied field: a dotted path into the case and a closed range."""

    path: str
    low: float
    high: float

    @classmethod
    def parse(cls, text: str) -> "Variation":
        """``PATH=LO:HI`` (e.g. ``domain.tissue.perfusion=1000:8000``)."""
        if "=" not in text or ":" not in text.split("=", 1)[1]:
            raise InputError(f"--vary '{text}': write PATH=LO:HI, e.g. probes[0].tip_temperature_c=-185:-120")
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
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
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


def run_sample(case_data: dict, paths: list[str], values: list[float], overrides: dict[str, Any]) -> dict[str, float]:
    """One sweep sample: mutate a copy of the case, simulate, return flat metrics."""
    import numba

    from cryoneuro.case import parse_case
    from cryoneuro.thermal import simulate
    from cryoneuro.thermal.summary import summarise

    numba.set_num_threads(1)  # one simulation per worker process, one core each
    data = copy.deepcopy(case_data)
    for path, value in zip(paths, values):
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


def run_sweep(case_data: dict, variations: Sequence[Variation], *, samples: int, seed: int = 0,
              scheduler: str | None = None, workers: int = 2, out_dir: Path | None = None,
              overrides: dict[str, Any] | None = None,
              progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Run the sweep and return one row per sample (sorted by sample), inputs then outputs."""
    from dask.distributed import Client, LocalCluster, as_completed

    values = latin_hypercube(variations, samples, seed)
    paths = [v.path for v in variations]
    overrides = overrides or {}
    # Validate one mutated case before sending work out (a bad path fails here, once).
    probe = copy.deepcopy(case_data)
    for path, value in zip(paths, values[0]):
        set_path(probe, path, float(value))
    for path, value in overrides.items():
        set_path(probe, path, value)
    from cryoneuro.case import parse_case

    parse_case(probe, "sweep").model()

    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="10s")
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1")
        client = Client(cluster)
    rows: dict[int, dict[str, float]] = {}
    partial = out_dir / "partial.csv" if out_dir else None
    try:
        futures = {client.submit(run_sample, case_data, paths, list(values[i]), overrides,
                                 key=f"sample-{seed}-{i}", retries=2, pure=False): i for i in range(samples)}
        for done, fut in enumerate(as_completed(futures), start=1):
            i = futures[fut]
            rows[i] = {"sample": i, **dict(zip(paths, values[i])), **fut.result()}
            if partial is not None:
                pd.DataFrame([rows[i]]).to_csv(partial, mode="a", header=not partial.exists(), index=False)
            if progress:
                progress(done, samples)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return pd.DataFrame([rows[i] for i in sorted(rows)])


def plot_sweep(table: pd.DataFrame, variations: Sequence[Variation], path: Path) -> Path:
    """Histograms of the isotherm diameters and their scatter against each varied input."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outputs = [c for c in table.columns if c.endswith("_diameter_mm")]
    fig, axes = plt.subplots(len(outputs), 1 + len(variations),
                             figsize=(3.2 * (1 + len(variations)), 2.6 * len(outputs)),
                             squeeze=False, constrained_layout=True)
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
