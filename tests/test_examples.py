"""Every case in ``examples/`` run as a user runs it (``cryoneuro simulate CASE --out DIR``), in
the manner of FEniCSx's demos-as-tests: an example that stops running, or runs to unphysical
numbers, fails CI.

Kept short: each case is run on the coarsest grid up to 1 mm that is a whole multiple of its
own voxel and divides its domain (0.5 → 1 mm, 0.2 → 0.4 mm), and every freeze is cut to at most
60 s (except ``homogeneous_muscle.toml``, run as written but for the voxel, to be compared with
the README); everything else as written. Checks, independent of the code under test:

* the maximum principle: no tissue colder than the coldest probe wall, and a probe driven by
  its device no colder than its gas (the Joule–Thomson outlet temperature);
* isotherms nest: the 0 °C region holds the −20 °C region, which holds the −40 °C region;
* energy: the heat the probes drew equals their mean cooling power during the freezes times the
  freeze time (two records the solver keeps separately);
* for ``homogeneous_muscle.toml``, the README's published 0.5 mm result (0 °C: 4.02 mL,
  18.54 mm across) within the 1 mm grid's error (measured: 3.70 mL, 17.99 mm; one voxel on a
  diameter, 15 % on a volume).

Measured on one core: homogeneous muscle 5–15 s; the device examples 5–25 s each (slow tier).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cryoneuro.cli import app

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))
FAST = {"homogeneous_muscle.toml"}
COARSE_LIMIT_MM = 1.0
FREEZE_LIMIT_S = 60


def _coarse_voxel(case: dict) -> float:
    """The largest multiple of the case's voxel, at most 1 mm, that divides every side."""
    voxel = float(case["domain"]["voxel_mm"])
    sizes = [float(v) for v in case["domain"]["size_mm"]]
    for n in range(int(COARSE_LIMIT_MM / voxel + 1e-9), 0, -1):
        if all(math.isclose(s / (n * voxel), round(s / (n * voxel))) for s in sizes):
            return round(n * voxel, 6)
    return voxel


def _coarse_copy(path: Path, folder: Path) -> tuple[Path, dict]:
    """The example with the coarse voxel and (but for homogeneous muscle) freezes ≤ 60 s;
    returns the file and the case it holds."""
    text = path.read_text(encoding="utf-8")
    voxel_line = re.compile(r"^voxel_mm = .*$", re.MULTILINE)
    assert len(voxel_line.findall(text)) == 1, "the example states its voxel once"
    text = voxel_line.sub(f"voxel_mm = {_coarse_voxel(tomllib.loads(text))}", text)
    if path.name not in FAST:
        text = re.sub(
            r"freeze_s = (\d+(?:\.\d+)?)",
            lambda m: f"freeze_s = {min(float(m.group(1)), FREEZE_LIMIT_S):g}",
            text,
        )
    out = folder / path.name
    out.write_text(text, encoding="utf-8")
    return out, tomllib.loads(text)


def test_every_example_is_collected():
    assert len(EXAMPLES) >= 2
    assert {p.name for p in EXAMPLES} >= FAST


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, id=p.stem, marks=[] if p.name in FAST else [pytest.mark.slow])
        for p in EXAMPLES
    ],
)
def test_example_runs_to_physical_numbers(path: Path, tmp_path: Path):
    case_file, case = _coarse_copy(path, tmp_path)
    out_dir = tmp_path / "out"
    run = CliRunner().invoke(app, ["simulate", str(case_file), "--out", str(out_dir), "--json"])
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)
    written = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    assert written["isotherms"] == summary["isotherms"]
    assert (out_dir / "isotherms_min.png").stat().st_size > 0

    coldest_wall = min(p["wall_temperature_min_c"] for p in summary["probes"])
    assert coldest_wall <= summary["min_temperature_c"] < 0.0  # maximum principle; it froze
    for p in summary["probes"]:
        if p["drive"] == "device":
            assert p["gas_temperature_c"] <= p["wall_temperature_min_c"]
        assert p["heat_drawn_j"] > 0
    phases = case["protocol"]["phases"]
    if all("freeze_s" in ph for ph in phases):  # freezes only: all the heat is drawn in them
        freeze_s = sum(ph["freeze_s"] for ph in phases)
        for p in summary["probes"]:
            drawn = p["mean_cooling_during_freezes_w"] * freeze_s
            assert p["heat_drawn_j"] == pytest.approx(drawn, rel=1e-6)

    iso = summary["isotherms"]
    volumes = [iso[level]["volume_ml"] for level in ("0", "-20", "-40") if level in iso]
    assert volumes == sorted(volumes, reverse=True)
    assert volumes[0] > 0

    if path.name == "homogeneous_muscle.toml":
        assert iso["0"]["volume_ml"] == pytest.approx(4.02, rel=0.15)
        assert iso["0"]["diameter_mm"] == pytest.approx(18.54, abs=1.0)
