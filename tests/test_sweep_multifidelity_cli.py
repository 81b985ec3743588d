"""`cryoneuro sweep --plan … --multifidelity` (issue 17 item 5): the control-variate estimate of
the 0.5 mm answer from the CLI.

Independent expectation: the plain 0.5 mm sweep of the same samples and seed, run through the
same command. The multi-fidelity estimate must agree with it within the error the estimator
states; and a sample run at 0.5 mm inside the multi-fidelity sweep must give exactly the row the
plain 0.5 mm sweep gives for that sample (the same perturbation, the same deterministic replay).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cryoneuro.anatomy.phantoms import morton_forefoot
from cryoneuro.cli import app
from cryoneuro.planning.pipeline import LEGACY_BOUNDARIES, plan_phantom
from cryoneuro.sweep_multifidelity import METRICS

#: The demo's chosen candidate planned alone (as tests/test_sweep_plan.py): seconds, not the
#: demo's full search.
DEMO_CHOICE = {
    "gases": ("nitrous-oxide",),
    "offsets_mm": (0.0,),
    "shifts_mm": (2.0,),
    "freezes_s": (60.0,),
    "boundaries": LEGACY_BOUNDARIES,
}


def _sweep(args: list[str]) -> dict:
    result = CliRunner().invoke(app, ["sweep", *args, "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_multifidelity_agrees_with_the_plain_half_millimetre_sweep(tmp_path):
    """Small size: 10 samples at 1 mm, 4 of them also at 0.5 mm, against all 10 at 0.5 mm."""
    plan_phantom(morton_forefoot(), tmp_path / "plan", **DEMO_CHOICE)
    plan = str(tmp_path / "plan" / "plan.json")
    common = ["--plan", plan, "--samples", "10", "--seed", "5", "--workers", "2"]
    mf_out, plain_out = tmp_path / "mf", tmp_path / "plain"
    mf = _sweep([*common, "--multifidelity", "--hifi-samples", "4", "--out", str(mf_out)])
    _sweep([*common, "--voxel-mm", "0.5", "--out", str(plain_out)])

    # the plain sweep's files, of the 1 mm table, plus the 0.5 mm runs
    for name in ("sweep.parquet", "sweep.csv", "summary.json", "uncertainty.png"):
        assert (mf_out / name).exists(), name
    low = pd.read_parquet(mf_out / "sweep.parquet")
    high = pd.read_parquet(mf_out / "sweep_hifi.parquet")
    plain = pd.read_parquet(plain_out / "sweep.parquet")
    assert len(low) == 10
    assert len(high) == 4
    assert len(plain) == 10
    assert mf["voxel_mm"] == 1.0
    assert mf["p_complete_block"]["n"] == 10
    block = mf["multifidelity"]
    assert block["hifi_sample_numbers"] == sorted(high["sample"].tolist())

    # a 0.5 mm run inside the multi-fidelity sweep is the plain sweep's row for that sample
    same = plain.set_index("sample").loc[high["sample"]].reset_index()
    for name, _ in METRICS:
        np.testing.assert_allclose(
            high[name].astype(float), same[name].astype(float), rtol=0, atol=1e-9
        )

    # agreement with the plain 0.5 mm mean within the stated error: 3 standard errors (the
    # difference of the two estimates has a smaller variance than the estimator's own, since
    # both share the n 0.5 mm runs); when the n runs all agree (degenerate), the stated 95 %
    # interval (the runs' own binomial one) and a non-zero standard error
    for name, _ in METRICS:
        e = block["estimates"][name]
        ref = float(plain[name].astype(float).mean())
        assert abs(e["estimate"] - ref) <= 3 * e["standard_error"] + 1e-9, (name, e, ref)
        if not e["degenerate"]:
            # the stated plain-MC comparison is the textbook sigma/sqrt(n) of the 0.5 mm runs
            sd = float(high[name].astype(float).std(ddof=1))
            assert e["plain_mc_standard_error_same_hifi"] == pytest.approx(sd / 2.0)
            assert e["standard_error"] <= e["plain_mc_standard_error_same_hifi"] + 1e-12
        else:
            assert e["standard_error"] > 0, (name, e)
            assert e["ci95"][0] - 1e-9 <= ref <= e["ci95"][1] + 1e-9, (name, e, ref)
    on_disk = json.loads((mf_out / "summary.json").read_text(encoding="utf-8"))
    assert on_disk["multifidelity"]["estimates"]["complete_block"]["n_high"] == 4


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--plan", "p.json", "--hifi-samples", "5"], "--hifi-samples needs --multifidelity"),
        (["--plan", "p.json", "--multifidelity", "--voxel-mm", "0.5"], "leave out --voxel-mm"),
        (["--plan", "p.json", "--multifidelity", "--hifi-samples", "2"], "between 3"),
        (["--plan", "p.json", "--multifidelity", "--samples", "8", "--hifi-samples", "9"], "(8)"),
        (["--multifidelity"], "give --plan"),
    ],
)
def test_bad_multifidelity_options_are_one_line_errors(tmp_path, args, needle):
    result = CliRunner().invoke(app, ["sweep", *args, "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_agreeing_half_millimetre_runs_do_not_claim_zero_error():
    """When every 0.5 mm run gives the same verdict the control variate has nothing to work
    with; the stated error must then still cover the truth (it was 0 before: the CLI test above
    found P(skin safe) stated as 1.0 ± 0 from 4 safe runs while 10 plain runs gave 0.8).
    Truth p = 0.8, n = 4 paired runs with a 1 mm model that flips 10 % of verdicts, N = 10."""
    from cryoneuro.sweep_multifidelity import estimate

    rng = np.random.default_rng(11)
    covered = degenerate = 0
    for r in range(400):
        h = (rng.random(10) < 0.8).astype(float)
        lo = np.where(rng.random(10) < 0.1, 1.0 - h, h)
        if h[:4].std() > 0:
            continue
        e = estimate(h[:4], lo[:4], lo[4:], probability=True, bootstrap=200, seed=r)
        degenerate += 1
        assert e.degenerate
        assert e.standard_error > 0
        covered += e.ci95[0] <= 0.8 <= e.ci95[1]
    assert degenerate > 100  # P(all 4 agree) = 0.8^4 + 0.2^4 = 0.41
    assert covered / degenerate >= 0.95


def test_only_the_one_millimetre_samples_loosen_the_step_control(tmp_path, monkeypatch):
    """The low-fidelity model is the 1 mm grid with ``LOW_FRONT_TARGET``; the 0.5 mm samples,
    whose mean is the estimate, must run with the solver's default (None), so that they equal
    the plain 0.5 mm sweep row for row (the slow test above). Read off the tasks submitted."""
    from cryoneuro import sweep
    from cryoneuro.sweep import PlanUncertainty
    from cryoneuro.sweep_multifidelity import (
        HIGH_VOXEL_MM,
        LOW_FRONT_TARGET,
        LOW_VOXEL_MM,
        run_plan_sweep_multifidelity,
    )
    from cryoneuro.thermal.solver import FRONT_TARGET

    plan = plan_phantom(morton_forefoot(), tmp_path / "plan", **DEMO_CHOICE)
    seen: list[tuple] = []

    class Submitted(Exception):
        pass

    def capture(fn, args, **_kw):
        seen.extend(args)
        raise Submitted

    monkeypatch.setattr(sweep, "run_tasks", capture)
    with pytest.raises(Submitted):
        run_plan_sweep_multifidelity(
            plan, PlanUncertainty(), samples=6, high_samples=3, client=object()
        )
    by_voxel = {(a[1], a[3]) for a in seen}
    assert by_voxel == {(HIGH_VOXEL_MM, None), (LOW_VOXEL_MM, LOW_FRONT_TARGET)}
    assert sum(a[1] == LOW_VOXEL_MM for a in seen) == 6
    assert LOW_FRONT_TARGET > FRONT_TARGET
