"""`plan()` computes, `write_plan()` writes (`plan_phantom()`, both, is run end to end by
test_plan_pipeline.py, test_sweep_plan.py and test_cohort.py); `Plan.summary()` and
`Plan.plot()`; `PatientAnatomy` with `Phantom` as its deprecated alias (issue 16)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from cryoneuro.anatomy.phantoms import morton_forefoot
from cryoneuro.errors import InputError
from cryoneuro.planning.pipeline import LEGACY_BOUNDARIES, plan, write_plan
from cryoneuro.planning.plan import Isotherm, Plan, PlanArtifacts, ProbePlacement, ProtocolPhase

#: one grid candidate (the demo's): a full plan in about a minute on one core
ONE_CANDIDATE = {
    "gases": ("nitrous-oxide",),
    "offsets_mm": (0.0,),
    "shifts_mm": (2.0,),
    "freezes_s": (60.0,),
    "boundaries": LEGACY_BOUNDARIES,
}


def _hand_made_plan() -> Plan:
    return Plan(
        case="hand",
        probes=[
            ProbePlacement(
                name="p1",
                tip_mm=(1, 2, 3),
                direction=(0, 0, 1),
                diameter_mm=1.47,
                active_length_mm=10,
                gas="argon",
            )
        ],
        protocol=[
            ProtocolPhase(kind="freeze", duration_s=60),
            ProtocolPhase(kind="thaw-passive", duration_s=30),
            ProtocolPhase(kind="freeze", duration_s=90),
        ],
        isotherms={"0": Isotherm(volume_ml=1.25, diameter_mm=13.5, length_mm=21.0)},
        min_tissue_temperature_c=-120.5,
        nerve={"complete_block": True, "blocked_length_mm": 7.5},
        safety=[{"structure": "skin", "margin_c": 4.25}],
        relief={"median_days": 64.2},
        feasible=False,
    )


def test_summary_tabulates_the_plans_own_numbers():
    table = _hand_made_plan().summary()
    assert list(table.columns) == ["value", "unit"]
    v = table["value"]
    assert v["feasible"] is False
    assert v["gas"] == "argon"
    assert v["freeze time"] == 150.0  # 60 + 90 s: the two freezes, not the thaw
    assert (v["0 °C isotherm volume"], table["unit"]["0 °C isotherm volume"]) == (1.25, "mL")
    assert v["0 °C isotherm diameter"] == 13.5
    assert v["0 °C isotherm length"] == 21.0
    assert v["nerve blocked length"] == 7.5
    assert v["coldest tissue"] == -120.5
    assert (v["skin margin to limit"], table["unit"]["skin margin to limit"]) == (4.25, "°C")
    assert v["median relief (regrowth-limited)"] == 64.2


def test_a_plan_equals_itself_read_back_whatever_is_attached():
    plan = _hand_made_plan()
    plan._artifacts = PlanArtifacts(result=object(), image=None)  # what plan() attaches
    again = Plan.from_json(plan.to_json())
    assert again._artifacts is None
    assert again == plan
    again.feasible = True
    assert again != plan


def test_a_plan_read_from_json_cannot_be_drawn_or_written(tmp_path):
    again = Plan.from_json(_hand_made_plan().to_json())
    with pytest.raises(InputError, match="no simulation attached"):
        again.plot()
    with pytest.raises(InputError, match="no simulation attached"):
        write_plan(again, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_phantom_is_a_deprecated_alias_of_patient_anatomy():
    from cryoneuro import anatomy
    from cryoneuro.anatomy import PatientAnatomy, phantoms

    with pytest.warns(DeprecationWarning, match="PatientAnatomy"):
        alias = anatomy.Phantom
    with pytest.warns(DeprecationWarning, match="PatientAnatomy"):
        alias_too = phantoms.Phantom
    assert alias is PatientAnatomy
    assert alias_too is PatientAnatomy
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the phantom makers use the new name: no warning
        assert isinstance(morton_forefoot(), PatientAnatomy)
    with pytest.raises(AttributeError):
        _ = anatomy.Phantomm


@pytest.mark.slow
def test_plan_computes_without_writing_and_write_plan_writes_what_plan_phantom_did(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    computed = plan(morton_forefoot(), **ONE_CANDIDATE)
    assert computed.files == {}
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere (the cwd is empty)

    fig = Figure()
    ax = fig.add_subplot()
    assert computed.plot(ax=ax) is ax
    assert len(ax.collections) >= 2  # the isotherm and structure contours
    assert len(ax.images) == 1  # the CT-like image under them

    written = write_plan(computed, tmp_path / "a")
    assert written is computed
    # the files plan_phantom wrote before the split (names the registry's upload expects)
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert names >= {
        "plan.json",
        "report.html",
        "report.pdf",
        "plan_overlay.png",
        "nerve_profile.png",
        "image.nii.gz",
        "min_temperature.nii.gz",
        "iceball_labels.nii.gz",
        "plan_bundle.zip",
    }
    assert all(Path(path).is_file() for path in written.files.values())
    assert Plan.load(tmp_path / "a" / "plan.json") == computed
    saved = json.loads((tmp_path / "a" / "plan.json").read_text(encoding="utf-8"))
    assert saved["files"] == written.files
    assert saved["isotherms"] == json.loads(computed.to_json())["isotherms"]
