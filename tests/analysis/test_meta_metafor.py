"""Random-effects meta-analysis equal to R's metafor (stored outputs of
tests/data/r_reference/meta_metafor.R; R 4.2.2, metafor 3.8-1, versions in meta_versions.json).

R is not needed to run these tests: the script's outputs are committed beside it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cryoneuro.analysis.meta import analyse_effects, effect_2x2, pool, tau2_estimate
from cryoneuro.cli import app
from cryoneuro.errors import InputError

REF = Path(__file__).resolve().parents[1] / "data" / "r_reference"
TOL = 1e-6


@pytest.fixture(scope="module")
def effects():
    return pd.read_csv(REF / "meta_effects.csv")


def test_reference_was_written_by_metafor():
    versions = json.loads((REF / "meta_versions.json").read_text())
    assert versions["metafor"].startswith("3.")
    assert versions["R"].startswith("4.")


@pytest.mark.parametrize(
    "row",
    pd.read_csv(REF / "meta_results.csv").to_dict("records"),
    ids=lambda r: f"{r['dataset']}-{r['method']}",
)
def test_dl_pm_reml_equal_metafor(effects, row):
    d = effects[effects["dataset"] == row["dataset"]]
    p = pool(d["yi"], d["vi"], row["method"].lower())
    assert p.converged
    scale = max(1.0, abs(row["tau2"]))  # Normand 1999 has τ² ≈ 700 (days²): relative there
    assert p.tau2 == pytest.approx(row["tau2"], abs=TOL * scale)
    for mine, theirs in (
        ("estimate", "mu"),
        ("se", "se"),
        ("ci_lower", "ci_lb"),
        ("ci_upper", "ci_ub"),
        ("hk_ci_lower", "hk_ci_lb"),
        ("hk_ci_upper", "hk_ci_ub"),
        ("q", "QE"),
    ):
        assert getattr(p, mine) == pytest.approx(row[theirs], abs=TOL * max(1, abs(row[theirs]))), (
            mine
        )
    assert 100 * p.i2 == pytest.approx(row["I2"], abs=TOL * 100)
    # Q-profile CI of τ² (metafor confint.rma.uni)
    assert p.tau2_ci_lower == pytest.approx(row["tau2_lb"], abs=TOL * scale)
    assert p.tau2_ci_upper == pytest.approx(row["tau2_ub"], rel=TOL)


def test_two_by_two_effects_equal_escalc(effects):
    counts = pd.read_csv(REF / "meta_bcg_counts.csv")
    for measure in ("RR", "OR", "RD"):
        ref = effects[effects["dataset"] == f"bcg_{measure}"]
        y, v, _ = effect_2x2(counts["ai"], counts["bi"], counts["ci"], counts["di"], measure)
        np.testing.assert_allclose(y, ref["yi"], atol=1e-12)
        np.testing.assert_allclose(v, ref["vi"], atol=1e-12)


def test_zero_cells_get_metafors_continuity_correction():
    # escalc(measure=, ai=0, bi=10, ci=3, di=7) printed by R 4.2.2 / metafor 3.8-1:
    # RR −1.9459 (v 2.1039), OR −2.2824 (v 2.5143), RD −0.2727 (v 0.0237)
    for measure, y_ref, v_ref in (
        ("RR", -1.9459, 2.1039),
        ("OR", -2.2824, 2.5143),
        ("RD", -0.2727, 0.0237),
    ):
        y, v, corrected = effect_2x2([0], [10], [3], [7], measure)
        assert corrected[0]
        assert y[0] == pytest.approx(y_ref, abs=5e-5)
        assert v[0] == pytest.approx(v_ref, abs=5e-5)


def test_no_random_heterogeneous_set_collapses_to_zero():
    sets = pd.read_csv(REF / "meta_random.csv")
    ref = pd.read_csv(REF / "meta_random_results.csv").set_index("set")
    assert len(ref) == 200
    collapsed = 0
    for number, d in sets.groupby("set"):
        y, v = d["yi"].to_numpy(), d["vi"].to_numpy()
        for method in ("dl", "pm", "reml"):
            expected = ref.loc[number, f"{method}_tau2"]
            tau2 = tau2_estimate(y, v, method)
            assert tau2 == pytest.approx(expected, abs=TOL), (number, method)
            # metafor's Fisher scoring stops at ~1e-13 on the boundary: that is τ² = 0
            collapsed += tau2 == 0 and expected > 1e-9
        p = pool(y, v, "pm")
        assert p.estimate == pytest.approx(ref.loc[number, "pm_mu"], abs=TOL)
        assert p.se == pytest.approx(ref.loc[number, "pm_se"], abs=TOL)
    assert collapsed == 0
    # and the sets are heterogeneous: metafor's PM τ² > 0 in most of them
    assert (ref["pm_tau2"] > 1e-9).sum() > 150


def test_pm_is_zero_only_when_q_is_below_its_degrees_of_freedom():
    y, v = np.array([0.10, 0.12, 0.09, 0.11]), np.array([0.05, 0.04, 0.06, 0.05])
    p = pool(y, v, "pm")
    assert p.q <= p.q_df
    assert p.tau2 == 0.0
    y2 = np.array([-1.0, 0.5, 1.4, -0.3])
    p2 = pool(y2, v, "pm")
    assert p2.q > p2.q_df
    assert p2.tau2 > 0


def test_generic_file_cli_pools_bcg_like_metafor(tmp_path, effects):
    counts = pd.read_csv(REF / "meta_bcg_counts.csv")
    path = tmp_path / "bcg.csv"
    counts.to_csv(path, index=False)
    res = analyse_effects(path, "RR")
    ref = pd.read_csv(REF / "meta_results.csv").query("dataset == 'bcg_RR' and method == 'REML'")
    reml = res.outcomes["effects"].pooled["reml"]
    assert reml.tau2 == pytest.approx(float(ref["tau2"].iloc[0]), abs=TOL)
    # displayed on the ratio scale: exp of the pooled log RR
    shown = res.outcomes["effects"].display["reml"]["estimate_natural"]
    assert shown == pytest.approx(math.exp(float(ref["mu"].iloc[0])), rel=1e-9)
    assert res.outcomes["effects"].axis_label == "risk ratio (log scale)"
    out = tmp_path / "o"
    result = CliRunner().invoke(
        app, ["meta", str(path), "--measure", "RR", "--json", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)["outcomes"]["effects"]
    assert payload["pm"]["tau2"] == pytest.approx(0.318068452205024, abs=TOL)
    assert (out / "figures" / "forest_effects.png").exists()
    # 2×2 counts without a measure are refused, in one line
    bad = CliRunner().invoke(app, ["meta", str(path)])
    assert bad.exit_code == 2
    assert "--measure RR, OR or RD" in bad.stderr


def test_yi_vi_file_with_a_bad_cell_names_line_and_column(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("study,yi,vi\nA,0.1,0.02\nB,0.3,zero\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["meta", str(path)])
    assert result.exit_code == 2
    assert "line 3, column 'vi'" in result.stderr


@pytest.mark.parametrize("mods", ["ablat", "ablat + year"])
def test_meta_regression_equals_metafor(effects, mods):
    from cryoneuro.analysis.meta import meta_regression

    ref = pd.read_csv(REF / "meta_regression.csv").query("mods == @mods")
    moderators = pd.read_csv(REF / "meta_bcg_moderators.csv")[[m.strip() for m in mods.split("+")]]
    d = effects[effects["dataset"] == "bcg_RR"]
    fit = meta_regression(d["yi"], d["vi"], moderators)
    assert fit.tau2 == pytest.approx(ref["tau2"].iloc[0], abs=TOL)
    np.testing.assert_allclose(fit.beta, ref["estimate"], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fit.se, ref["se"], rtol=1e-6)
    assert fit.qe == pytest.approx(ref["QE"].iloc[0], rel=1e-9)
    assert fit.qm == pytest.approx(ref["QM"].iloc[0], rel=1e-6)
    assert 100 * fit.r2 == pytest.approx(ref["R2"].iloc[0], rel=1e-6)


def test_generic_file_with_a_moderator_column(tmp_path):
    counts = pd.read_csv(REF / "meta_bcg_counts.csv")
    counts["ablat"] = pd.read_csv(REF / "meta_bcg_moderators.csv")["ablat"]
    path = tmp_path / "bcg.csv"
    counts.to_csv(path, index=False)
    reg = analyse_effects(path, "RR", moderators=["ablat"]).outcomes["effects"].regression
    ref = pd.read_csv(REF / "meta_regression.csv").query("mods == 'ablat'")
    assert reg.beta[1] == pytest.approx(ref["estimate"].iloc[1], rel=1e-6)
    with pytest.raises(InputError, match="not a column"):
        analyse_effects(path, "RR", moderators=["latitude"])
