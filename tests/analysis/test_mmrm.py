"""The MMRM against R: nlme::gls (corSymm + varIdent = unstructured; corCompSymm; corAR1), with
Satterthwaite df computed in R by numDeriv at nlme's optimum (tests/data/r_reference/mmrm_nlme.R;
R 4.2.2, nlme 3.1-162, numDeriv 2016.8-1.1; outputs committed, R is not needed here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryoneuro.analysis.mmrm import fit_mmrm

REF = Path(__file__).resolve().parents[1] / "data" / "r_reference"
VISITS = ["w2", "m1", "m3", "m6"]
REL = 1e-4


def _design(frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    # R's model.matrix(change ~ baseline + site + visit + visit:arm), same column names
    cols = {"(Intercept)": np.ones(len(frame)), "baseline": frame["baseline"].to_numpy(float)}
    for site in ("S2", "S3"):
        cols[f"site{site}"] = (frame["site"] == site).to_numpy(float)
    for visit in VISITS[1:]:
        cols[f"visit{visit}"] = (frame["visit"] == visit).to_numpy(float)
    for visit in VISITS:
        cols[f"visit{visit}:armcryo"] = (
            (frame["visit"] == visit) & (frame["arm"] == "cryo")
        ).to_numpy(float)
    return np.column_stack(list(cols.values())), list(cols)


@pytest.fixture(scope="module")
def reference():
    return pd.read_csv(REF / "mmrm_coef.csv")


def test_reference_versions_are_recorded():
    versions = json.loads((REF / "mmrm_versions.json").read_text())
    assert versions["nlme"].startswith("3.1")
    assert versions["R"].startswith("4.")


@pytest.mark.parametrize("structure", ["us", "cs", "ar1"])
@pytest.mark.parametrize("data", ["mmrm_data_complete.csv", "mmrm_data_dropout.csv"])
def test_estimates_ses_and_satterthwaite_df_equal_r(reference, data, structure):
    frame = pd.read_csv(REF / data)
    if data.endswith("dropout.csv"):
        # the dropout set really has dropouts: fewer rows at later visits
        per_visit = frame.groupby("visit").size()
        assert per_visit["m6"] < per_visit["w2"] == 90
    X, names = _design(frame)
    fit = fit_mmrm(
        frame["change"].to_numpy(),
        X,
        frame["id"].to_numpy(),
        frame["vnum"].to_numpy() - 1,
        4,
        names,
        structure,
    )
    assert fit.converged, fit.message
    ref = reference[(reference["data"] == data) & (reference["structure"] == structure)]
    assert list(ref["term"]) == names
    for _, row in ref.iterrows():
        c = fit.contrast(row["term"])
        scale = max(abs(row["estimate"]), row["se"])  # relative, floored at the SE
        assert abs(c.estimate - row["estimate"]) <= REL * scale, row["term"]
        assert c.se == pytest.approx(row["se"], rel=REL), row["term"]
        assert c.df == pytest.approx(row["df"], rel=REL), row["term"]
        # nlme's own (unpolished) optimum agrees too
        assert abs(c.estimate - row["nlme_estimate"]) <= REL * scale
        assert c.se == pytest.approx(row["nlme_se"], rel=REL)
    sigma = pd.read_csv(REF / "mmrm_sigma.csv").query("data == @data and structure == @structure")
    expected = np.zeros((4, 4))
    expected[sigma["row"] - 1, sigma["col"] - 1] = sigma["sigma"]
    np.testing.assert_allclose(fit.sigma, expected, rtol=REL)
    reml = pd.read_csv(REF / "mmrm_reml.csv").query("data == @data and structure == @structure")
    assert fit.minus2_reml == pytest.approx(float(reml["minus2_reml_covparam"].iloc[0]), abs=1e-6)


def test_compound_symmetry_equals_a_random_intercept_model():
    # with complete data and a positive correlation, CS is the random-intercept model:
    # statsmodels MixedLM (REML) is a second, independent fit of the same likelihood
    import statsmodels.formula.api as smf

    frame = pd.read_csv(REF / "mmrm_data_complete.csv")
    X, names = _design(frame)
    fit = fit_mmrm(
        frame["change"].to_numpy(),
        X,
        frame["id"].to_numpy(),
        frame["vnum"].to_numpy() - 1,
        4,
        names,
        "cs",
    )
    frame = frame.assign(
        v=pd.Categorical(frame["visit"], categories=VISITS),
        cryo=(frame["arm"] == "cryo").astype(float),
    )
    mixed = smf.mixedlm(
        "change ~ baseline + C(site) + C(v) + C(v):cryo", frame, groups=frame["id"]
    ).fit(reml=True, method="lbfgs")
    total = float(mixed.cov_re.iloc[0, 0] + mixed.scale)
    assert fit.sigma[0, 0] == pytest.approx(total, rel=1e-4)
    assert fit.sigma[0, 1] == pytest.approx(float(mixed.cov_re.iloc[0, 0]), rel=1e-4)
    assert fit.contrast("visitm3:armcryo").estimate == pytest.approx(
        mixed.params["C(v)[m3]:cryo"], abs=1e-4
    )


def test_a_non_converged_unstructured_fit_falls_back_and_says_so(monkeypatch):
    from cryoneuro.analysis import mmrm as mmrm_module
    from cryoneuro.analysis import rct
    from cryoneuro.analysis.synthetic import SyntheticStudy, generate

    real = mmrm_module.fit_mmrm

    def us_fails(*args, **kwargs):
        fit = real(*args, **kwargs)
        if args[-1] == "us":
            fit.converged, fit.message = False, "forced for the test"
        return fit

    monkeypatch.setattr(mmrm_module, "fit_mmrm", us_fails)
    data = generate(
        SyntheticStudy(n_per_arm=15, seed=2, visits={"baseline": -7, "m1": 30, "m3": 91})
    )
    table = rct.mmrm(data, "pain")
    assert table["method"].eq("MMRM (first-order autoregressive)").all()
    assert table["converged"].all()
    assert "unstructured did not converge (forced for the test)" in table["note"].iloc[0]
    assert "fallback: first-order autoregressive" in table["note"].iloc[0]


@pytest.mark.parametrize("data", ["mmrm_data_complete.csv", "mmrm_data_dropout.csv"])
def test_kenward_roger_equals_pbkrtest_for_compound_symmetry(data):
    # R pbkrtest (vcovAdj, get_Lb_ddf) on lmer(... + (1 | id)): the same covariance as cs
    ref = pd.read_csv(REF / "mmrm_kr.csv").query("data == @data")
    frame = pd.read_csv(REF / data)
    X, names = _design(frame)
    fit = fit_mmrm(
        frame["change"].to_numpy(),
        X,
        frame["id"].to_numpy(),
        frame["vnum"].to_numpy() - 1,
        4,
        names,
        "cs",
    )
    for _, row in ref.iterrows():
        c = fit.contrast(row["term"], df_method="kenward-roger")
        assert c.se == pytest.approx(row["se_kr"], rel=1e-6), row["term"]
        assert c.df == pytest.approx(row["df_kr"], rel=1e-6), row["term"]
    # with dropouts KR inflates the SE and lowers the df relative to Satterthwaite
    if data.endswith("dropout.csv"):
        kr = fit.contrast("visitm3:armcryo", df_method="kenward-roger")
        sw = fit.contrast("visitm3:armcryo")
        assert kr.se > sw.se
        assert kr.df < sw.df
