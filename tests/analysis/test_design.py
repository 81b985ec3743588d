"""Sample size against published figures and the normal-approximation formulas by hand."""

from __future__ import annotations

import json
import math

from scipy.stats import norm
from typer.testing import CliRunner

from cryoneuro.analysis import design
from cryoneuro.cli import app


def test_continuous_matches_cohens_table():
    # Cohen 1988, Table 2.4.1: d = 0.5, two-sided α = 0.05, power 0.80 → n = 64 per group
    assert design.continuous(0.5, 1.0, power=0.8).n_per_arm_analysed == 64
    # normal approximation by hand, 2(z₀.₉₇₅ + z₀.₈)²/d² = 62.8; the t test needs a bit more
    by_hand = 2 * (norm.ppf(0.975) + norm.ppf(0.8)) ** 2 / 0.25
    assert 63 <= design.continuous(0.5, 1.0, power=0.8).n_per_arm_analysed <= by_hand + 2


def test_ancova_shrinks_the_variance_by_one_minus_rho_squared():
    plain = design.continuous(1.0, 2.0, power=0.9)
    ancova = design.continuous(1.0, 2.0, power=0.9, correlation=0.6)
    # same as an unadjusted design with SD 2·√(1 − 0.36) = 1.6
    assert ancova.n_per_arm_analysed == design.continuous(1.0, 1.6, power=0.9).n_per_arm_analysed
    assert ancova.n_per_arm_analysed < plain.n_per_arm_analysed


def test_binary_matches_fleiss_formula_by_hand():
    p1, p2 = 0.7, 0.5
    pbar = (p1 + p2) / 2
    n = (
        norm.ppf(0.975) * math.sqrt(2 * pbar * (1 - pbar))
        + norm.ppf(0.8) * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2 / (p1 - p2) ** 2
    got = design.binary(p1, p2, power=0.8)
    assert got.n_per_arm_analysed == math.ceil(n) == 93


def test_non_inferiority_matches_julious():
    # Julious 2004 (Stat Med 23:1921), Table: margin 0.5 SD, one-sided α 0.025, 90 % power:
    # 85 per arm by the normal formula 2(z + z)²/(M/σ)², 86 with the t distribution
    res = design.non_inferiority(0.5, 1.0, power=0.9)
    by_hand = 2 * (norm.ppf(0.975) + norm.ppf(0.9)) ** 2 / 0.25
    assert math.ceil(by_hand) == 85
    assert res.n_per_arm_analysed == 86
    assert res.sidedness == "one-sided"
    assert res.alpha == 0.025


def test_dropout_inflates_after_rounding():
    res = design.continuous(0.5, 1.0, power=0.8, dropout=0.2)
    assert res.n_per_arm_recruited == math.ceil(64 / 0.8) == 80
    assert res.n_total_recruited == 160


def test_cli_json_and_errors():
    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "design",
            "binary",
            "--p-treated",
            "0.7",
            "--p-control",
            "0.5",
            "--power",
            "0.8",
            "--json",
        ],
    )
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["n_per_arm_analysed"] == 93
    bad = runner.invoke(app, ["design", "binary", "--p-treated", "0.7"])
    assert bad.exit_code == 2
    assert "--p-control" in bad.stderr
    bad = runner.invoke(
        app, ["design", "continuous", "--difference", "1", "--sd", "1", "--power", "1.5"]
    )
    assert bad.exit_code == 2
    assert "--power" in bad.stderr
