"""Planning pieces: the Plan model round-trips; the trajectory check finds what the needle
crosses, measured against a hand-built anatomy whose distances are known."""

from __future__ import annotations

import numpy as np
import pytest

from cryoneuro.errors import GeometryError, InputError
from cryoneuro.planning.plan import Plan, ProbePlacement, ProtocolPhase
from cryoneuro.planning.trajectory import assess_trajectory, tip_for_target
from cryoneuro.thermal import Grid

NAMES = {1: "skin", 2: "fat", 3: "metatarsal", 4: "digital_artery", 5: "neuroma"}
AVOID = {"bone": ["metatarsal"], "artery": ["digital_artery"]}


@pytest.fixture(scope="module")
def block():
    """A 40 mm cube: a body (z < 30 mm) with 1 mm of skin on top, fat below, a bone slab at
    x < 10 mm, an artery (radius 1 mm) along y at x = 26, z = 15, and a neuroma at the centre."""
    grid = Grid.from_size((40, 40, 40), 0.5)
    x, y, z = grid.centres_mm()
    lab = np.zeros(grid.shape, np.int16)
    body = np.broadcast_to(z < 30, grid.shape)
    lab[body] = 2
    lab[np.broadcast_to((z >= 29) & (z < 30), grid.shape)] = 1
    lab[np.broadcast_to((x < 10) & (z < 29), grid.shape)] = 3
    lab[np.broadcast_to((x - 26) ** 2 + (z - 15) ** 2 < 1.0, grid.shape)] = 4
    lab[(x - 20) ** 2 + (y - 20) ** 2 + (z - 15) ** 2 < 9.0] = 5
    return grid, lab


def test_vertical_path_through_skin_is_clean_and_measures_clearance(block):
    grid, lab = block
    rep = assess_trajectory((20, 20, 38), (20, 20, 15), lab, grid, NAMES, avoid=AVOID)
    assert rep.ok, rep.violations
    assert [p[0] for p in rep.path][:3] == ["air", "skin", "fat"]
    assert rep.depth_mm == pytest.approx(30 - 15, abs=0.3)  # skin surface at z = 30
    # the artery axis is 6 mm away at the tip depth: clearance = 6 - 1 (radius), +- a voxel
    assert rep.clearance_mm["artery"] == pytest.approx(5.0, abs=0.5)
    assert rep.clearance_mm["bone"] == pytest.approx(10.0, abs=0.5)
    assert rep.angle_to_skin_normal_deg == pytest.approx(0.0, abs=5.0)
    assert rep.warnings == []


def test_path_through_bone_or_artery_is_a_violation(block):
    grid, lab = block
    rep = assess_trajectory((2, 20, 38), (8, 20, 15), lab, grid, NAMES, avoid=AVOID)
    assert not rep.ok
    assert any("bone" in v for v in rep.violations)
    rep = assess_trajectory((32, 20, 38), (26, 20, 12), lab, grid, NAMES, avoid=AVOID)
    assert any("artery" in v for v in rep.violations)


def test_entry_inside_the_body_and_close_passes(block):
    grid, lab = block
    rep = assess_trajectory((20, 20, 25), (20, 20, 15), lab, grid, NAMES, avoid=AVOID)
    assert any("not 'skin'" in v for v in rep.violations)
    rep = assess_trajectory((23.5, 20, 38), (23.5, 20, 15), lab, grid, NAMES, avoid=AVOID)
    assert rep.ok
    assert any("artery" in w for w in rep.warnings)
    with pytest.raises(GeometryError):
        assess_trajectory((20, 20, 15.1), (20, 20, 15), lab, grid, NAMES)


def test_tip_for_target_centres_the_active_length():
    tip = tip_for_target((0, 0, 30), (0, 0, 10), 10.0)
    assert np.allclose(tip, (0, 0, 5))


def test_plan_round_trips_through_json_and_rejects_garbage(tmp_path):
    plan = Plan(
        case="t",
        probes=[
            ProbePlacement(
                name="A",
                tip_mm=(1, 2, 3),
                direction=(0, 0, 1),
                diameter_mm=1.47,
                active_length_mm=10,
            )
        ],
        protocol=[ProtocolPhase(kind="freeze", duration_s=150)],
        nerve={"complete_block": True},
        relief={"median_days": 95.0},
    )
    path = plan.save(tmp_path / "plan.json")
    assert Plan.load(path) == plan
    with pytest.raises(InputError):
        Plan.from_json('{"case": 3}')
    with pytest.raises(InputError):
        Plan.load(tmp_path / "missing.json")


def test_report_renders_every_section_and_escapes_input(tmp_path):
    """The HTML names the verdict, isotherms, nerve, safety and relief, embeds the images, and
    escapes text that came from a user (a case name with markup); the PDF is a real PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cryoneuro.planning.plan import Isotherm
    from cryoneuro.planning.report import write_report

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    img = tmp_path / "overlay.png"
    fig.savefig(img)
    plt.close(fig)
    plan = Plan(
        case="<script>alert(1)</script>",
        probes=[
            ProbePlacement(
                name="A",
                tip_mm=(1, 2, 3),
                direction=(0, 0, 1),
                diameter_mm=1.47,
                active_length_mm=10,
            )
        ],
        protocol=[ProtocolPhase(kind="freeze", duration_s=150)],
        isotherms={"-20": Isotherm(volume_ml=1.2, diameter_mm=12.3, length_mm=17.0)},
        nerve={"complete_block": True, "blocked_length_mm": 6.5},
        coverage={"fraction_below_-20": 0.97},
        safety=[{"structure": "skin", "min_temperature_c": 12.0, "ok": True}],
        relief={"median_days": 94.0},
        feasible=False,
        reasons=["skin reaches -3 C"],
    )
    files = write_report(plan, tmp_path, {"overlay": img})
    page = files["html"].read_text(encoding="utf-8")
    for text in (
        "Not feasible",
        "skin reaches -3 C",
        "12.3",
        "blocked length",
        "median days",
        "data:image/png;base64",
    ):
        assert text in page
    assert "<script>alert(1)</script>" not in page
    assert files["pdf"].read_bytes().startswith(b"%PDF")


def _profile_blocked_between(
    a_mm: float, b_mm: float, length_mm: float = 100.0, step: float = 0.25
):
    from cryoneuro.injury import NerveInjuryProfile

    s = np.arange(0.0, length_mm + 1e-9, step)
    warm = np.where((s >= a_mm) & (s <= b_mm), -40.0, 5.0)
    return NerveInjuryProfile(s, warm, warm - 10.0, np.ones(len(s), np.int8), -20.0, -100.0, step)


def test_relief_regrows_from_the_lesions_proximal_edge():
    """A straight nerve 0 → 100 mm (proximal → distal), end organ at 100 mm, lesion 40–50 mm:
    the axons regrow 100 − 40 = 60 mm (the lesion's own 10 mm too), not 50 (hand-computed);
    with 1 mm/day and a 7-day delay the median is ≈ 67 days."""
    from types import SimpleNamespace

    from cryoneuro.planning.pipeline import relief_for

    ph = SimpleNamespace(
        centreline_mm=np.array([[0, 0, 0.0], [0, 0, 100.0]]),
        end_organ_mm=np.array([0, 0, 100.0]),
        neuroma_type="morton",
    )
    r = relief_for(ph, _profile_blocked_between(40.0, 50.0))
    assert r["distance_mm"] == pytest.approx(60.0, abs=0.1)
    assert r["distance_from"] == "lesion proximal edge"
    assert r["mechanism"] == "end_organ"
    assert r["median_days"] == pytest.approx(67.0, abs=3.0)
    assert "repeat_treatment_date" not in r
    assert relief_for(ph, _profile_blocked_between(200.0, 201.0)) == {}  # no block, no estimate


def test_stump_relief_uses_the_no_end_organ_mechanism_and_states_the_contradiction():
    """A stump: lesion 20–26 mm on a nerve ending at 30 mm: regrowth 10 mm + the re-formed
    neuroma's firing (≤ 9 days): median ≈ 7 + 10 + 4.5 ≈ 22 days, against relief still present
    at 180 days (Prologo 2017) to 27 months = 822 days (von Falck 2022, VAS 8.3 → 3)."""
    from types import SimpleNamespace

    from cryoneuro.planning.pipeline import relief_for

    ph = SimpleNamespace(
        centreline_mm=np.array([[0, 0, 0.0], [0, 0, 30.0]]),
        end_organ_mm=np.array([0, 0, 30.0]),
        neuroma_type="stump",
    )
    r = relief_for(ph, _profile_blocked_between(20.0, 26.0, length_mm=30.0))
    assert r["distance_mm"] == pytest.approx(10.0, abs=0.1)
    assert r["mechanism"] == "neuroma_reformation"
    assert r["median_days"] == pytest.approx(22.0, abs=3.0)
    assert r["observed_in_published_series"]["interval_days"] == [180, 822]
    assert r["agreement"] == "contradiction"
    assert "180–822 days" in r["statement"]
    assert f"median {r['median_days']:.0f} days" in r["statement"]


def test_report_shows_both_relief_estimates_and_the_contradiction(tmp_path):
    from cryoneuro.planning.report import write_report
    from cryoneuro.planning.report_tables import relief_table
    from cryoneuro.regrowth import relief_summary

    relief = relief_summary(45.0, "morton")
    plan = Plan(
        case="m",
        probes=[
            ProbePlacement(
                name="A",
                tip_mm=(1, 2, 3),
                direction=(0, 0, 1),
                diameter_mm=1.47,
                active_length_mm=10,
            )
        ],
        protocol=[ProtocolPhase(kind="freeze", duration_s=150)],
        nerve={"complete_block": True},
        relief=relief,
    )
    page = write_report(plan, tmp_path, {})["html"].read_text(encoding="utf-8")
    for text in (
        "regrowth-limited estimate",
        "observed in published series",
        "183–600",
        "Cazzato 2016",
        "CVIR 2024 MN (PMID 38438685)",
        "Contradiction",
        "7.1 → 2.7",
    ):
        assert text in page, text
    table = relief_table(plan)  # the PDF's relief table
    assert table.rows[1][:3] == ["observed in published series", "–", "183–600 days"]
    assert table.note.startswith("Contradiction")
    assert Plan.load(plan.save(tmp_path / "plan.json")) == plan
