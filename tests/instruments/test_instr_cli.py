"""`cryoneuro score`: the docs/contracts.md contract (index) and one-line errors with exit 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cryoneuro.cli import app

runner = CliRunner()


def test_eq5d5l_index_contract() -> None:
    result = runner.invoke(app, ["score", "eq5d5l", "11111", "--value-set", "england", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["instrument"] == "eq5d5l"
    assert payload["profile"] == "11111"
    assert payload["value_set"] == "england"
    assert payload["index"] == 1.0


def test_eq5d5l_other_value_sets() -> None:
    for name, expected in (("uk-2026", -0.567), ("uk-crosswalk", -0.594), ("england", -0.285)):
        result = runner.invoke(app, ["score", "eq5d5l", "55555", "--value-set", name, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["index"] == expected


def test_eq5d5l_all_value_sets_without_option() -> None:
    result = runner.invoke(app, ["score", "eq5d5l", "12345", "vas=70", "--json"])
    payload = json.loads(result.stdout)
    assert set(payload["indices"]) == {"england", "uk-2026", "uk-crosswalk"}
    assert payload["indices"]["england"] == 0.322
    assert payload["vas"] == 70.0
    human = runner.invoke(app, ["score", "eq5d5l", "12345"])
    assert human.exit_code == 0
    assert "index_uk_crosswalk" in human.stdout


def test_bad_profile_exits_2_with_one_line() -> None:
    result = runner.invoke(app, ["score", "eq5d5l", "1234", "--value-set", "england", "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("cryoneuro: error: eq5d5l: profile '1234'")


def test_item_value_pairs_and_errors() -> None:
    args = ["score", "moxfq", *[f"q{i}=4" for i in range(1, 17)], "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["scores"]["index"] == 100.0
    bad = runner.invoke(app, ["score", "nrs", "pain=12"])
    assert bad.exit_code == 2
    assert "item 'pain' must be an integer 0–10" in bad.stderr
    bare = runner.invoke(app, ["score", "nrs", "7"])
    assert bare.exit_code == 2
    assert "item=value" in bare.stderr
    wrong = runner.invoke(app, ["score", "nrs", "pain=3", "--value-set", "england"])
    assert wrong.exit_code == 2
    assert "eq5d5l only" in wrong.stderr
    unknown_vs = runner.invoke(app, ["score", "eq5d5l", "11111", "--value-set", "usa"])
    assert unknown_vs.exit_code == 2
    assert "uk-crosswalk" in unknown_vs.stderr


def test_list() -> None:
    result = runner.invoke(app, ["score", "--list", "--json"])
    assert result.exit_code == 0
    codes = {i["code"] for i in json.loads(result.stdout)["instruments"]}
    assert {"nrs", "vas", "eq5d5l", "moxfq", "bpi", "stump", "mobility"} <= codes
    human = runner.invoke(app, ["score", "--list"])
    assert human.exit_code == 0
    assert "moxfq" in human.stdout
    none = runner.invoke(app, ["score"])
    assert none.exit_code == 2
    assert "--list" in none.stderr
