"""Case files and the `simulate` command: bad input gets one line naming the field; good input
gets the JSON contract of docs/contracts.md."""

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
        (
            'tissue = "muscle"',
            'tissue = "muscle"\nvoxel_size = 1',
            "domain.voxel_size: unknown key",
        ),
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
    assert result.exit_code == 2
    assert "not valid TOML" in result.stderr
    result = runner.invoke(app, ["simulate", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "no such case file" in result.stderr


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
    assert (
        json.loads((out / "summary.json").read_text(encoding="utf-8"))["isotherms"]
        == data["isotherms"]
    )


def test_gas_driven_probe_takes_the_gas_model_tip_temperature(tmp_path):
    """A probe given as `gas = "argon"` (recuperated) is held at argon's exhaust saturation
    temperature at 1 atm, -185.8 C (docs/domain-facts.md, CoolProp), within 0.2 K; helium, which
    warms on expansion, is refused with a message naming the field."""
    text = GOOD.replace("tip_temperature_c = -150", 'gas = "argon"')
    case = load_case(_write(tmp_path, text))
    assert case.probe_schedules()[0](10.0) == pytest.approx(-185.8, abs=0.2)
    bad = _write(tmp_path, GOOD.replace("tip_temperature_c = -150", 'gas = "helium"'))
    result = runner.invoke(app, ["simulate", str(bad), "--json"])
    assert result.exit_code == 2
    assert "probes[0].gas" in result.stderr
    assert "warms" in result.stderr


# -- input hygiene (issue 11 item 6): limits before allocation, ranges, kinds, clearance --------
def _cli_refuses(path: Path, expected: str) -> str:
    """Run `cryoneuro simulate`; it must exit 2 with exactly one stderr line containing
    ``expected``."""
    result = runner.invoke(app, ["simulate", str(path), "--json", "--quiet"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert expected in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # sizes: numbers alone, before any array
        (
            "size_mm = [16, 16, 20]",
            "size_mm = [1000, 1000, 1000]",
            "8,000,000,000 cells; the limit is 64,000,000",
        ),
        (
            "voxel_mm = 0.5",
            "voxel_mm = 0.002",
            "domain.voxel_mm = 0.002 mm is below the smallest voxel, 0.01 mm",
        ),
        (
            "{ freeze_s = 20 }",
            "{ freeze_s = 1e9 }",
            "protocol.phases: the protocol lasts 1e+09 s; the limit is 86400 s",
        ),
        (
            "[output]",
            "[solver]\nmax_cells = 1000\n[output]",
            "40,960 cells; the limit is 1,000 (solver.max_cells",
        ),
        (
            "[output]",
            "[solver]\ntime_step_s = 0.00001\n[output]",
            "solver.time_step_s = 1e-05 s over 35 s",
        ),
        (
            "points = {",
            "sample_interval_s = 1e-6\npoints = {",
            "output.sample_interval_s = 1e-06 s over 35 s with 1 points records 70000008 values; "
            "the limit is 20000000",
        ),
        # temperatures
        (
            "body_temperature_c = 37",
            "body_temperature_c = 1000",
            "domain.body_temperature_c = 1000 C is outside 0..45 C",
        ),
        (
            "body_temperature_c = 37",
            "body_temperature_c = -50",
            "domain.body_temperature_c = -50 C is outside 0..45 C",
        ),
        (
            'tissue = "muscle"\nbody_temperature_c = 37',
            'tissue = "gel"\nbody_temperature_c = 0',
            "not above the tissue's liquidus (0 C)",
        ),
        (
            '{ thaw_s = 5, mode = "passive" }',
            '{ thaw_s = 5, mode = "active", tip_temperature_c = 2000 }',
            "protocol.phases[1].tip_temperature_c = 2000 C is outside 0..60 C",
        ),
        (
            '{ thaw_s = 5, mode = "passive" }',
            '{ thaw_s = 5, mode = "active", tip_temperature_c = -20 }',
            "protocol.phases[1].tip_temperature_c = -20 C is outside 0..60 C",
        ),
        (
            '{ thaw_s = 5, mode = "passive" }',
            '{ thaw_s = 5, mode = "passive", tip_temperature_c = 20 }',
            'protocol.phases[1].tip_temperature_c applies only to mode = "active"',
        ),
        (
            "tip_temperature_c = -150",
            "tip_temperature_c = 40",
            "probes[0].tip_temperature_c = 40 C is not below",
        ),
        (
            "tip_temperature_c = -150",
            "tip_trace_c = [[0, 37], [5, -300]]",
            "probes[0].tip_trace_c[1]: -300 C is outside",
        ),
        (
            "tip_temperature_c = -150",
            "tip_trace_c = [[0, 37], [5, 500]]",
            "probes[0].tip_trace_c[1]: 500 C is outside",
        ),
        (
            "tip_temperature_c = -150",
            "tip_trace_c = [[0, 37], [5, 38]]",
            "probes[0].tip_trace_c never goes below",
        ),
        (
            "tip_temperature_c = -150",
            "tip_trace_c = [[-5, 37], [5, -150]]",
            "probes[0].tip_trace_c: times must start at 0",
        ),
        ("tip_temperature_c = -150", "tip_trace_c = []", "probes[0].tip_trace_c is empty"),
        (
            "[output]",
            "[output]\nisotherms_c = [0, 0]",
            "output.isotherms_c [0.0, 0.0] lists an isotherm twice",
        ),
        (
            "[output]",
            "[output]\nisotherms_c = [0, 40]",
            "output.isotherms_c[1] = 40 C must be above -273.15 C and below",
        ),
        # geometry: the tip on a face (was a divide-by-zero warning) and a capsule leaving the box
        (
            "tip_mm = [8, 8, 5]",
            "tip_mm = [8, 8, 0]",
            "probes[0].tip_mm: the probe's tip (radius 0.75 mm) comes within one voxel (0.5 mm) of "
            "the domain's z min face",
        ),
        ("tip_mm = [8, 8, 5]", "tip_mm = [15.5, 8, 5]", "of the domain's x max face"),
        (
            "direction = [0, 0, 1]",
            "direction = [1, 0, 0]",
            "probes[0].active_length_mm: the probe's end of the active part",
        ),
        (
            "near = [9.5, 8, 9]",
            "near = [9.5, 8, 90]",
            "output.points.near [9.5, 8.0, 90.0] mm is outside the domain",
        ),
        # kinds: a boolean is not a number, a number is not a boolean, a string is not a number
        (
            "diameter_mm = 1.5",
            "diameter_mm = true",
            "probes[0].diameter_mm: must be a number, not true",
        ),
        (
            "size_mm = [16, 16, 20]",
            "size_mm = [16, 16, true]",
            "domain.size_mm: item [2] must be a number, not true",
        ),
        (
            "diameter_mm = 1.5",
            'diameter_mm = "1.5"',
            'probes[0].diameter_mm: must be a number, not "1.5"',
        ),
        (
            "{ freeze_s = 20 }",
            "{ freeze_s = false }",
            "protocol.phases[0].freeze_s: must be a number, not false",
        ),
        (
            "near = [9.5, 8, 9]",
            "near = [9.5, true, 9]",
            "output.points: item near[1] must be a number, not true",
        ),
        (
            "tip_temperature_c = -150",
            "tip_trace_c = [[0, true], [5, -150]]",
            "tip_trace_c: item [0][1] must be a number",
        ),
        (
            "tip_temperature_c = -150",
            "tip_temperature_c = -150\nprecooled = 1",
            "probes[0].precooled: must be true or false",
        ),
        # a bad inline tissue value names its own field and the allowed range (not "a valid string")
        (
            'tissue = "muscle"',
            'tissue = { base = "muscle", latent = -5 }',
            "domain.tissue.latent: Input should be greater than or equal to 0",
        ),
        (
            'tissue = "muscle"',
            'tissue = { base = "muscle", k_frozen = true }',
            "domain.tissue.k_frozen: must be a number",
        ),
        # nearby holes
        ("voxel_mm = 0.5", "voxel_mm = 0", "domain.voxel_mm: Input should be greater than 0"),
        ("voxel_mm = 0.5", "voxel_mm = inf", "domain.voxel_mm: must be a finite number"),
        (
            "body_temperature_c = 37",
            "body_temperature_c = nan",
            "domain.body_temperature_c: must be a finite number",
        ),
        (
            "tip_temperature_c = -150",
            'name = "a"\ntip_temperature_c = -150',
            "the name 'a' is given to more than one",
        ),
        (
            'phases = [{ freeze_s = 20 }, { thaw_s = 5, mode = "passive" }, { freeze_s = 10 }]',
            'phases = [{ thaw_s = 5, mode = "passive" }]',
            "protocol.phases: no freeze phase",
        ),
    ],
)
def test_input_hygiene_one_line_naming_the_field(tmp_path, old, new, expected):
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    if "is given to more than one" in expected:  # two probes of the same name
        probe = text[text.index("[[probes]]") : text.index("[protocol]")]
        text = text.replace(probe, probe + probe.replace("[8, 8, 5]", "[5, 8, 5]"), 1)
    _cli_refuses(_write(tmp_path, text), expected)


def test_probe_count_is_bounded(tmp_path):
    """33 probes (MAX_PROBES is 32: one distance field per probe while rasterising, int8 probe
    index) are refused naming the section; 32 are read."""
    probe = GOOD[GOOD.index("[[probes]]") : GOOD.index("[protocol]")]
    many = GOOD.replace(probe, probe * 33, 1)
    _cli_refuses(_write(tmp_path, many), "probes: 33 probes; the limit is 32")
    assert len(load_case(_write(tmp_path, GOOD.replace(probe, probe * 32, 1))).probes) == 32


def test_limits_are_checked_before_anything_is_allocated(tmp_path, monkeypatch):
    """The cell, duration and record limits work on numbers alone: with numpy's array
    constructors replaced by a tripwire, the CLI still refuses each case with its message;
    and reading a 8e9-cell case traces well under 1 MB of Python allocations."""
    import tracemalloc

    import numpy as np

    huge = _write(tmp_path, GOOD.replace("size_mm = [16, 16, 20]", "size_mm = [1000, 1000, 1000]"))
    (tmp_path / "good").mkdir()
    load_case(_write(tmp_path / "good", GOOD))  # imports done before measuring
    tracemalloc.start()
    with pytest.raises(CaseFileError, match="cells; the limit is"):
        load_case(huge)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000, peak

    def tripwire(*args, **kwargs):
        raise AssertionError("an array was allocated before the limits were checked")

    for name in (
        "zeros",
        "empty",
        "full",
        "ones",
        "zeros_like",
        "empty_like",
        "full_like",
        "array",
        "asarray",
    ):
        monkeypatch.setattr(np, name, tripwire)
    _cli_refuses(huge, "cells; the limit is")
    _cli_refuses(
        _write(tmp_path, GOOD.replace("voxel_mm = 0.5", "voxel_mm = 0.002")), "domain.voxel_mm"
    )
    _cli_refuses(
        _write(tmp_path, GOOD.replace("{ freeze_s = 20 }", "{ freeze_s = 1e9 }")), "protocol.phases"
    )


def test_limits_are_documented_constants_and_admit_the_defaults():
    """The record bound admits the default sample interval over the longest protocol with the
    number of points the docs promise (56), and refuses one more; the cell count matches the
    grid the engine would build."""
    from cryoneuro import input_checks as lim
    from cryoneuro.thermal.geometry import Grid

    assert lim.check_protocol(lim.MAX_PROTOCOL_S, 0.25, 1, 56) is None
    assert "output.sample_interval_s" in lim.check_protocol(lim.MAX_PROTOCOL_S, 0.25, 1, 57)
    assert "protocol.phases" in lim.check_protocol(lim.MAX_PROTOCOL_S + 1, 0.25, 1, 0)
    assert (
        lim.cells_for((16, 16, 20), 0.5)
        == Grid.from_size((16, 16, 20), 0.5).n_cells
        == 32 * 32 * 40
    )
    # the advice in the message is enough: the suggested interval passes
    msg = lim.check_protocol(80000.0, 0.25, 3, 100)
    least = float(msg.split("sample_interval_s >= ")[1].split()[0])
    assert lim.check_protocol(80000.0, least, 3, 100) is None


def test_probe_clearance_is_one_voxel_from_each_face(tmp_path):
    """The active capsule (radius 0.75 mm, voxel 0.5 mm) may come to 1.25 mm of a face, not
    closer: the tip sphere's centre is tip + a d, so along x the tip may sit at 1.25 mm."""
    ok = GOOD.replace("tip_mm = [8, 8, 5]", "tip_mm = [1.25, 8, 5]").replace(
        "near = [9.5, 8, 9]", "near = [3, 8, 9]"
    )
    load_case(_write(tmp_path, ok)).model()
    with pytest.raises(CaseFileError, match="x min face"):
        load_case(_write(tmp_path, ok.replace("[1.25, 8, 5]", "[1.2, 8, 5]")))
    # along the axis the tip itself is the apex: z = 0.5 mm (one voxel) is the closest allowed
    load_case(_write(tmp_path, GOOD.replace("tip_mm = [8, 8, 5]", "tip_mm = [8, 8, 0.5]")))
    with pytest.raises(CaseFileError, match="z min face"):
        load_case(_write(tmp_path, GOOD.replace("tip_mm = [8, 8, 5]", "tip_mm = [8, 8, 0.45]")))


def test_integers_and_true_booleans_still_accepted(tmp_path):
    """The kind check refuses only cross-kind values: TOML integers for floats and real
    booleans for boolean fields are fine."""
    text = GOOD.replace("tip_temperature_c = -150", 'gas = "argon"\nprecooled = false').replace(
        "[output]", "[solver]\ninsulated_shaft = true\nmax_cells = 100000\n[output]"
    )
    case = load_case(_write(tmp_path, text))
    assert case.probes[0].precooled is False
    assert case.domain.voxel_mm == 0.5
    assert case.solver.max_cells == 100000


def test_euler_step_count_is_bounded_before_the_step_schedule(tmp_path):
    """Forward Euler at the stability limit (0.039 s for 0.5 mm muscle voxels beside this probe)
    would take 2.2 M steps over 86 015 s, more than MAX_SOLVER_STEPS (2 M); refused with the
    scheme named, before the schedule is built."""
    text = GOOD.replace("{ freeze_s = 20 }", "{ freeze_s = 86000 }").replace(
        "[output]", '[solver]\nscheme = "euler"\n[output]\nsample_interval_s = 60'
    )
    _cli_refuses(_write(tmp_path, text), "solver.scheme = 'euler' would take")


def test_simulate_refuses_too_long_a_protocol_as_a_library_call():
    """The same duration limit guards thermal.simulate for callers that bypass the case file
    (the planner), before the probe raster is built."""
    from cryoneuro.errors import InputError
    from cryoneuro.thermal import Phase, simulate

    case = load_case_text(GOOD)
    with pytest.raises(InputError, match="the limit is 86400 s"):
        simulate(case.model(), [Phase("freeze", 1e9)])


def load_case_text(text: str):
    import tomllib

    from cryoneuro.case import parse_case

    return parse_case(tomllib.loads(text))


def test_plan_case_limits_before_reading_images(tmp_path):
    """`cryoneuro plan`: a freeze beyond the protocol limit, or a boolean for a number, is
    refused before the (here missing) images are read."""
    case = """
[anatomy]
labels = "missing.nii.gz"
[structures]
target = "neuroma"
nerve = "nerve"
skin = "skin"
[nerve]
centreline_mm = [[0, 0, 0], [0, 10, 0]]
end_organ_mm = [0, 10, 0]
[plan]
freezes_s = FREEZE
"""
    for freeze, expected in (
        ("[1e9]", "plan.freezes_s[0] = 1e+09 s"),
        ("[true]", "plan.freezes_s: item [0] must be a number"),
    ):
        path = tmp_path / "plan.toml"
        path.write_text(case.replace("FREEZE", freeze), encoding="utf-8")
        result = runner.invoke(app, ["plan", str(path), "--out", str(tmp_path / "o"), "--json"])
        assert result.exit_code == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert expected in result.stderr
        assert "missing.nii.gz" not in result.stderr


def test_out_of_memory_within_the_cell_limit_is_one_line(tmp_path, monkeypatch):
    """A grid under solver.max_cells that still exceeds this machine's memory: the engine's
    MemoryError becomes one line naming the domain fields (simulated here by the allocation
    raising MemoryError)."""
    from cryoneuro import thermal

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(thermal, "simulate", out_of_memory)
    _cli_refuses(_write(tmp_path, GOOD), "domain: not enough memory for 40,960 cells")


def test_empty_probe_list_with_a_freeze_is_refused(tmp_path):
    """A freeze with no probe would simulate nothing: `probes = []` is refused, naming probes."""
    probe = GOOD[GOOD.index("[[probes]]") : GOOD.index("[protocol]")]
    _cli_refuses(
        _write(tmp_path, "probes = []\n" + GOOD.replace(probe, "")),
        "probes: List should have at least 1 item",
    )


def test_plan_case_neuroma_type_is_one_of_three(tmp_path):
    """`[nerve] neuroma_type` chooses the relief mechanism (issue 12): an unknown type is one
    line naming the field, exit 2, before the (missing) images are read."""
    case = """
[anatomy]
labels = "missing.nii.gz"
[structures]
target = "neuroma"
nerve = "nerve"
skin = "skin"
[nerve]
centreline_mm = [[0, 0, 0], [0, 10, 0]]
end_organ_mm = [0, 10, 0]
neuroma_type = "TYPE"
"""
    path = tmp_path / "plan.toml"
    path.write_text(case.replace("TYPE", "phantom"), encoding="utf-8")
    result = runner.invoke(app, ["plan", str(path), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "neuroma_type" in result.stderr
    path.write_text(case.replace("TYPE", "stump"), encoding="utf-8")
    result = runner.invoke(app, ["plan", str(path), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 2
    assert "missing.nii.gz" in result.stderr
