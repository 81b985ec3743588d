"""Meta-analysis: pooling against independent expectations, effect sizes, data set, CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq
from typer.testing import CliRunner

from cryoneuro.analysis.evidence import ALL_COLUMNS, bundled_path, load_evidence
from cryoneuro.analysis.meta import (
    OUTCOMES,
    ft_proportion,
    inv_ft,
    inv_logit,
    logit_proportion,
    mean_change,
    pool,
    run_meta,
    sd_change,
    se_from_ci,
)
from cryoneuro.cli import app
from cryoneuro.errors import InputError

runner = CliRunner()

# BCG vaccine trials (Colditz et al. 1994, JAMA 271:698) as stored in metafor/metadat
# data-raw/dat.colditz1994.txt (== dat.bcg): tpos, tneg, cpos, cneg.
BCG = [
    (4, 119, 11, 128),
    (6, 300, 29, 274),
    (3, 228, 11, 209),
    (62, 13536, 248, 12619),
    (33, 5036, 47, 5761),
    (180, 1361, 372, 1079),
    (8, 2537, 10, 619),
    (505, 87886, 499, 87892),
    (29, 7470, 45, 7232),
    (17, 1699, 65, 1600),
    (186, 50448, 141, 27197),
    (5, 2493, 3, 2338),
    (27, 16886, 29, 17825),
]


def _bcg_log_rr() -> tuple[np.ndarray, np.ndarray]:
    """escalc(measure="RR"): yi = log((a/(a+b))/(c/(c+d))), vi = 1/a − 1/(a+b) + 1/c − 1/(c+d)."""
    a, b, c, d = (np.array(col, dtype=float) for col in zip(*BCG, strict=True))
    y = np.log((a / (a + b)) / (c / (c + d)))
    v = 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)
    return y, v


def _dl_by_hand(y: np.ndarray, v: np.ndarray) -> dict[str, float]:
    """DerSimonian & Laird (1986) closed form, written independently of the module."""
    w = 1 / v
    mu_fe = np.sum(w * y) / np.sum(w)
    q = float(np.sum(w * (y - mu_fe) ** 2))
    df = len(y) - 1
    tau2 = max(0.0, (q - df) / (np.sum(w) - np.sum(w**2) / np.sum(w)))
    ws = 1 / (v + tau2)
    mu = float(np.sum(ws * y) / np.sum(ws))
    se = float(math.sqrt(1 / np.sum(ws)))
    return {
        "estimate": mu,
        "se": se,
        "tau2": tau2,
        "q": q,
        "i2": max(0.0, (q - df) / q),
        "ci_lower": mu - 1.959963984540054 * se,
        "ci_upper": mu + 1.959963984540054 * se,
    }


def _pm_by_brentq(y: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Paule & Mandel (1982): root of Σ wᵢ(τ²)(yᵢ − μ(τ²))² − (k − 1) = 0 (0 if negative at 0)."""

    def f(t2: float) -> float:
        w = 1 / (v + t2)
        mu = np.sum(w * y) / np.sum(w)
        return float(np.sum(w * (y - mu) ** 2) - (len(y) - 1))

    tau2 = 0.0 if f(0.0) <= 0 else brentq(f, 0.0, 100.0, xtol=1e-14, rtol=1e-14)
    w = 1 / (v + tau2)
    return tau2, float(np.sum(w * y) / np.sum(w))


SMALL = (np.array([-4.2, -4.1, -3.2, -2.0, -5.5]), np.array([0.45, 0.07, 0.9, 0.3, 0.6]))


@pytest.mark.parametrize(
    "data", [_bcg_log_rr(), SMALL, (np.array([1.0, 1.1, 0.95]), np.array([0.2, 0.3, 0.25]))]
)
def test_dersimonian_laird_matches_closed_form(data):
    y, v = data
    expected = _dl_by_hand(y, v)
    got = pool(y, v, "dl")
    for key, value in expected.items():
        assert getattr(got, key) == pytest.approx(value, abs=1e-6), key


@pytest.mark.parametrize(
    "data", [_bcg_log_rr(), SMALL, (np.array([1.0, 1.1, 0.95]), np.array([0.2, 0.3, 0.25]))]
)
def test_paule_mandel_matches_brentq_root(data):
    y, v = data
    tau2, mu = _pm_by_brentq(y, v)
    got = pool(y, v, "pm")
    assert got.tau2 == pytest.approx(tau2, abs=1e-6)
    assert got.estimate == pytest.approx(mu, abs=1e-6)


def test_bcg_matches_metafor_published_values():
    # metafor tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r (values cross-checked
    # there against Stata metan): FE -0.4303 [-0.5097, -0.3509], QE 152.2330; DL -0.7141
    # [-1.0644, -0.3638], tau2 0.3088, I2 92.1173 %. Printed to 4 decimals -> tolerance 5e-5.
    y, v = _bcg_log_rr()
    fe, dl = pool(y, v, "fe"), pool(y, v, "dl")
    assert fe.estimate == pytest.approx(-0.4303, abs=5e-5)
    assert fe.ci_lower == pytest.approx(-0.5097, abs=5e-5)
    assert fe.ci_upper == pytest.approx(-0.3509, abs=5e-5)
    assert fe.q == pytest.approx(152.2330, abs=5e-5)
    assert dl.estimate == pytest.approx(-0.7141, abs=5e-5)
    assert dl.ci_lower == pytest.approx(-1.0644, abs=5e-5)
    assert dl.ci_upper == pytest.approx(-0.3638, abs=5e-5)
    assert dl.tau2 == pytest.approx(0.3088, abs=5e-5)
    assert 100 * dl.i2 == pytest.approx(92.1173, abs=5e-5)
    assert dl.z == pytest.approx(-3.9952, abs=5e-5)


def test_i2_definition_and_truncation():
    y, v = SMALL
    p = pool(y, v, "dl")
    assert p.i2 == pytest.approx(max(0.0, (p.q - 4) / p.q), abs=1e-12)
    # homogeneous studies: Q < df -> I2 = 0, DL tau2 truncated at 0, RE = FE
    y0, v0 = np.array([1.0, 1.01, 0.99, 1.0]), np.array([0.5, 0.5, 0.5, 0.5])
    dl, fe = pool(y0, v0, "dl"), pool(y0, v0, "fe")
    assert dl.q < 3
    assert dl.i2 == 0.0
    assert dl.tau2 == 0.0
    assert dl.estimate == pytest.approx(fe.estimate)
    assert dl.se == pytest.approx(fe.se)
    assert pool(y0, v0, "pm").tau2 == 0.0


def test_prediction_interval_and_hartung_knapp():
    from scipy import stats

    y, v = SMALL
    p = pool(y, v, "dl")
    half = stats.t.ppf(0.975, 3) * math.sqrt(p.tau2 + p.se**2)
    assert p.pi_lower == pytest.approx(p.estimate - half, abs=1e-9)
    w = 1 / (v + p.tau2)
    q_hk = np.sum(w * (y - p.estimate) ** 2) / (4 * np.sum(w))
    assert p.hk_ci_upper == pytest.approx(
        p.estimate + stats.t.ppf(0.975, 4) * math.sqrt(q_hk), abs=1e-9
    )
    assert math.isnan(pool(y[:2], v[:2], "dl").pi_lower)  # needs k >= 3


def test_sd_change_imputation_formula():
    assert sd_change(3.0, 4.0, 0.0) == pytest.approx(5.0)  # sqrt(SD1² + SD2²)
    assert sd_change(2.0, 2.0, 1.0) == pytest.approx(0.0)
    assert sd_change(1.1, 2.2, 0.5) == pytest.approx(math.sqrt(1.21 + 4.84 - 2.42))
    y, var = mean_change(7.1, 2.7, 53, baseline_sd=1.1, followup_sd=2.2, r=0.5)
    assert y == pytest.approx(-4.4)
    assert var == pytest.approx((1.21 + 4.84 - 2.42) / 53)
    with pytest.raises(InputError):
        sd_change(1.0, 1.0, 1.5)


def test_se_from_ci():
    assert se_from_ci(-1.0, 0.7) == pytest.approx(1.7 / (2 * 1.959964), rel=1e-6)
    assert se_from_ci(2.8, 5.6, df=20) == pytest.approx(2.8 / (2 * 2.0859634), rel=1e-6)


def test_logit_with_continuity_correction():
    y, v, cc = logit_proportion(6, 21)
    assert not cc
    assert y == pytest.approx(math.log(6 / 15))
    assert v == pytest.approx(1 / 6 + 1 / 15)
    y0, v0, cc0 = logit_proportion(0, 9)
    assert cc0
    assert y0 == pytest.approx(math.log(0.5 / 9.5))
    assert v0 == pytest.approx(2 + 1 / 9.5)
    yn, _, ccn = logit_proportion(9, 9)
    assert ccn
    assert yn == pytest.approx(math.log(9.5 / 0.5))
    assert inv_logit(y) == pytest.approx(6 / 21)


def test_freeman_tukey_round_trip():
    for x, n in [(1, 24), (6, 21), (47, 53), (0, 9)]:
        t, v = ft_proportion(x, n)
        assert v == pytest.approx(1 / (4 * n + 2))
        assert inv_ft(t, n) == pytest.approx(x / n, abs=0.02)


def test_bundled_csv_loads_and_pooled_rows_are_verified():
    frame = load_evidence()
    assert set(ALL_COLUMNS) <= set(frame.columns)
    assert (frame["verified"] == "yes").sum() >= 10
    result = run_meta()
    assert {"pain", "responder", "complication"} <= {
        k for k, r in result.outcomes.items() if r.pooled
    }
    for res in result.outcomes.values():
        for line in res.studies["line"]:
            row = frame[frame["line"] == line].iloc[0]
            assert row["verified"] == "yes"
            assert row["source_text"].strip()
    assert result.outcomes["pain_md"].reason  # one RCT: listed, not pooled


def test_r_sensitivity_moves_only_imputed_studies():
    res = run_meta(outcomes=["pain"], r_grid=(0.2, 0.5, 0.8)).outcomes["pain"]
    sens = res.sensitivity
    assert list(sens["r"]) == [0.2, 0.5, 0.8]
    widths = sens["dl_ci_upper"] - sens["dl_ci_lower"]
    assert widths.is_monotonic_decreasing  # higher r -> smaller imputed SD of change


def test_include_unverified_adds_rows():
    base = run_meta(outcomes=["responder"]).outcomes["responder"].k
    more = run_meta(outcomes=["responder"], include_unverified=True).outcomes["responder"].k
    assert more == base + 1


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "report"
    result = runner.invoke(app, ["meta", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    pain = payload["outcomes"]["pain"]
    for method in ("dl", "pm"):
        for key in ("estimate", "ci_lower", "ci_upper", "tau2", "i2", "q", "k"):
            assert key in pain[method]
    html = (out / "meta.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html
    assert "Forest plot" in html
    assert (out / "meta.pdf").stat().st_size > 1000
    assert (out / "figures" / "forest_pain.png").exists()
    assert (out / "tables" / "pain_pooled.csv").exists()
    human = runner.invoke(app, ["meta", "--method", "dl", "--outcome", "complication"])
    assert human.exit_code == 0
    assert "complication" in human.stdout


def _write(tmp_path: Path, rows: list[dict[str, str]], drop: str | None = None) -> Path:
    cols = [c for c in ALL_COLUMNS if c != drop]
    path = tmp_path / "ev.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def _row(**kw: str) -> dict[str, str]:
    base = {
        "study": "A 2020",
        "year": "2020",
        "design": "case_series",
        "population": "morton",
        "n": "20",
        "outcome": "complication",
        "timepoint_months": "0",
        "events": "2",
        "total": "20",
        "verified": "yes",
        "source_text": "2 complications.",
    }
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("case", "args", "needle"),
    [
        ("missing", [], "missing column"),
        ("nonnumeric", [], "column 'n'"),
        ("negsd", [], "baseline_sd"),
        ("r", ["--r", "1.5"], "--r"),
        ("notfound", [], "not found"),
        ("fewer", ["--outcome", "complication"], "at least 2"),
        ("bundled_md", ["--outcome", "pain_md"], "at least 2"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, case, args, needle):
    good = [_row(), _row(study="B 2021", events="5")]
    if case == "missing":
        data = [str(_write(tmp_path, good, drop="n"))]
    elif case == "nonnumeric":
        data = [str(_write(tmp_path, [_row(n="twenty"), good[1]]))]
    elif case == "negsd":
        data = [str(_write(tmp_path, [_row(outcome="pain_vas", baseline_sd="-1"), good[1]]))]
    elif case == "notfound":
        data = [str(tmp_path / "nope.csv")]
    elif case == "fewer":
        data = [str(_write(tmp_path, good[:1]))]
    elif case == "bundled_md":
        data = []
    else:
        data = [str(_write(tmp_path, good))]
    result = runner.invoke(app, ["meta", *data, *args, "--json"])
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("cryoneuro: error:")
    assert needle in err
    assert result.stdout.strip() == ""


def test_user_file_pools_and_outcome_vocabulary(tmp_path):
    path = _write(tmp_path, [_row(), _row(study="B 2021", events="0", total="15")])
    res = run_meta(path, outcomes=["complication"])
    assert res.outcomes["complication"].k == 2
    assert "continuity" in res.outcomes["complication"].studies["variance_from"].iloc[1]
    assert set(OUTCOMES) >= {"pain", "pain_nrs", "pain_vas", "pain_md", "responder", "complication"}
    assert bundled_path().name == "neuroma_cryoablation.csv"
    # an outcome whose only row is unverified is listed with a reason in the default run
    path = _write(
        tmp_path,
        [
            _row(),
            _row(study="B 2021", events="0", total="15"),
            _row(study="C 2019", outcome="responder", verified="no"),
        ],
    )
    result = runner.invoke(app, ["meta", str(path), "--json", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    responder = json.loads(result.stdout)["outcomes"]["responder"]
    assert not responder["pooled"]
    assert responder["excluded"][0]["study"] == "C 2019"
