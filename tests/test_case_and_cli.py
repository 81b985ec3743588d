"""Case files and the `simulate` command: bad input gets one line naming the field; good input
gets the JSON contract of design.md §3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cryoneuro.case import load_case
from cryoneuro.cli import app
from cryoneuro.errors import CaseFileError

GOOD = """
[domain]
size_mm = [16, 16, 20]
voxel_mm = 0.5
tissue = "muscle"
body_temperature_c = 37

[[probes]]
tip_mm = [8, 8, 5]
direction = [0, 0, 1]
diameter_mm = 1.5
active_length_mm = 8
tip_temperature_c = -150

[protocol]
phases = [{ freeze_s = 20 }, { thaw_s = 5, mode = "passive" }, { freeze_s = 10 }]

[output]
points = { near = [9.5, 8, 9] }
"""

runner = CliRunner()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "case.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('tissue = "muscle"', 'tissue = "muscle"\nvoxel_size = 1', "domain.voxel_size: unknown key"),
        ("tip_mm = [8, 8, 5]", "tip_mm = [8, 8, 50]", "probes[0].tip_mm"),
        ("{ freeze_s = 20 }", "{ freeze_s = -20 }", "protocol.phases[0].freeze_s"),
        ("tip_temperature_c = -150", "tip_temperature_c = nan", "probes[0].tip_temperature_c"),
        ("voxel_mm = 0.5", "voxel_mm = 2", "domain.voxel_mm"),
        ('tissue = "muscle"', 'tissue = "unobtainium"', "unknown tissue 'unobtainium'"),
        ("active_length_mm = 8", "active_length_mm = 30", "probes[0].active_length_mm"),
        ("tip_temperature_c = -150", 'tip_temperature_c = "cold"', "probes[0].tip_temperature_c"),
        ("size_mm = [16, 16, 20]", "size_mm = [16, 16]", "domain.size_mm"),
        ("tip_temperature_c = -150", "tip_temperature_c = -400", "probes[0]"),
        ("{ freeze_s = 20 }", "{ freeze_s = 20, thaw_s = 3 }", "protocol.phases[0]"),
    ],
)
def test_bad_case_files_name_the_field(tmp_path, old, new, expected):
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(CaseFileError) as err:
        load_case(path).model()
    message = str(err.value)
    assert expected in message
    assert "\n" not in message
    result = runner.invoke(app, ["simulate", str(path), "--json", "--quiet"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_toml_and_missing_file(tmp_path):
    path = _write(tmp_path, "[domain\nsize_mm = 3")
    result = runner.invoke(app, ["simulate", str(path), "--json"])
    assert result.exit_code == 2 and "not valid TOML" in result.stderr
    result = runner.invoke(app, ["simulate", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2 and "no such case file" in result.stderr


def test_simulate_json_contract_and_outputs(tmp_path):
    path = _write(tmp_path, GOOD)
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", str(path), "--json", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)  # exactly one JSON object, nothing else
    assert set(data["isotherms"]) == {"0", "-20", "-40"}
    for metrics in data["isotherms"].values():
        assert set(metrics) >= {"volume_ml", "diameter_mm", "length_mm"}
    iso = data["isotherms"]
    # nested isotherms: colder regions are smaller
    assert iso["0"]["volume_ml"] > iso["-20"]["volume_ml"] > iso["-40"]["volume_ml"] > 0
    assert iso["0"]["diameter_mm"] > iso["-20"]["diameter_mm"] > iso["-40"]["diameter_mm"]
    assert -150.0 < data["min_temperature_c"] < -40.0
    assert data["points"]["near"]["min_temperature_c"] < 0
    for key in ("slices_min", "slices_final", "point_histories", "fields", "summary"):
        assert Path(data["files"][key]).is_file()
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["isotherms"] == data["isotherms"]


def test_gas_driven_probe_takes_the_gas_model_tip_temperature(tmp_path):
    """A probe given as `gas = "argon"` (recuperated) is held at argon's exhaust saturation
    temperature at 1 atm, -185.8 C (design.md §1, CoolProp), within 0.2 K; helium, which warms
    on expansion, is refused with a message naming the field."""
    text = GOOD.replace("tip_temperature_c = -150", 'gas = "argon"')
    case = load_case(_write(tmp_path, text))
    assert case.probe_schedules()[0](10.0) == pytest.approx(-185.8, abs=0.2)
    bad = _write(tmp_path, GOOD.replace("tip_temperature_c = -150", 'gas = "helium"'))
    result = runner.invoke(app, ["simulate", str(bad), "--json"])
    assert result.exit_code == 2 and "probes[0].gas" in result.stderr and "warms" in result.stderr
