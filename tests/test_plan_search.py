"""Issue 12 items 3-4: approaches (incl. an ultrasound plane), protocol presets with sources,
the planner's score and search, warnings with their rules, "partially frozen".

The fast tests check geometry and rules against independent expectations; the two planner runs
(the bar of issue 12) are marked slow: each is a few dozen 3D simulations on coarse grids.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryoneuro import probe as probe_physics
from cryoneuro.errors import InputError
from cryoneuro.planning import protocols, search
from cryoneuro.planning import warnings as pw
from cryoneuro.tissue import get_tissue


def test_an_ultrasound_plane_keeps_every_needle_in_the_plane():
    """In-plane constraint: the needle direction is perpendicular to the plane normal and the
    probe centres lie in the plane, for any search point; the tilt stays within the cone."""
    normal = np.array([1.0, 0.2, 0.0]) / np.linalg.norm([1.0, 0.2, 0.0])
    point = np.array([24.0, 27.0, 10.0])
    appr = search.Approach("us", (0.0, 0.0, 1.0), 30.0, tuple(point), tuple(normal))
    target = np.array([24.5, 27.0, 10.0])
    rng = np.random.default_rng(1)
    for n_probes in (1, 2):
        layout = search.Layout(appr, n_probes, 3)
        for x in rng.random((50, layout.dim)):
            dec = layout.decode(x, target)
            d = dec["direction"]
            assert abs(d @ normal) < 1e-9
            assert dec["tilt_deg"] <= 30.0 + 1e-6
            for c in dec["centres"]:
                assert abs((c - point) @ normal) < 1e-9
            assert 0 <= dec["option"] < 3


def test_cone_approach_spans_the_cone_and_its_centre_is_the_axis():
    appr = search.Approach("plantar", (0.0, 0.0, -1.0), 20.0)
    layout = search.Layout(appr, 1, 1)
    target = np.zeros(3)
    centre = layout.decode(np.full(layout.dim, 0.5), target)
    assert np.allclose(centre["direction"], [0, 0, -1])
    assert np.allclose(centre["centres"][0], target)
    tilts = [
        layout.decode(x, target)["tilt_deg"]
        for x in np.random.default_rng(2).random((200, layout.dim))
    ]
    assert max(tilts) <= 20.0 + 1e-9
    assert max(tilts) > 18.0  # the search reaches the edge of the cone


def test_the_depth_range_keeps_the_neuroma_inside_a_long_active_part():
    """The active part's centre moves along the needle by ± the depth range: ± 4 mm for the
    10 mm needles, ± 0.4 × 20 = 8 mm for the 20 mm needle of Cazzato 2016, so the neuroma (at
    the aim point) stays inside the active part at both ends of the range."""
    assert search.shift_range_mm(10.0) == 4.0
    assert search.shift_range_mm(20.0) == pytest.approx(8.0)
    appr = search.Approach("oblique", (0.0, 0.94, 0.342), 0.0)
    target = np.array([1.0, 2.0, 3.0])
    for active in (10.0, 20.0):
        layout = search.Layout(appr, 1, 1, shift_mm=search.shift_range_mm(active))
        assert layout.names == ["offset_a", "offset_b", "shift"]
        for end in (0.0, 1.0):
            dec = layout.decode(np.array([0.5, 0.5, end]), target)
            along = (dec["centres"][0] - target) @ dec["direction"]
            assert along == pytest.approx((2 * end - 1) * search.shift_range_mm(active))
            assert abs(along) < active / 2  # the target is still inside the active part


def test_a_plane_far_from_the_approach_axis_is_refused():
    with pytest.raises(InputError, match="ultrasound plane"):
        search.Approach("us", (0.0, 0.0, 1.0), 10.0, (0.0, 0.0, 0.0), (0.0, 0.5, 1.0))
    with pytest.raises(InputError, match="both"):
        search.Approach("us", (0.0, 0.0, 1.0), 10.0, (0.0, 0.0, 0.0), None)


def test_entry_point_is_where_the_needle_leaves_the_region():
    lo, hi = np.zeros(3), np.array([10.0, 20.0, 30.0])
    e = search.entry_point(np.array([5.0, 5.0, 5.0]), np.array([0.0, 0.0, -1.0]), lo, hi)
    assert np.allclose(e, [5.0, 5.0, 0.25])
    d = np.array([0.0, 1.0, 1.0]) / math.sqrt(2)
    e = search.entry_point(np.array([5.0, 5.0, 5.0]), d, lo, hi)
    assert e[1] == pytest.approx(20.0 - 0.25 / math.sqrt(2))  # leaves through y = 20 first


def test_cazzato_preset_is_the_published_protocol_on_the_20mm_argon_needle():
    p = protocols.get_preset("cazzato-2016")
    assert "A single therapeutic freezing cycle lasting 150 seconds" in p.source_text
    assert "2-cm active tip" in p.source_text
    assert p.options == (("argon", 150.0),)
    phases = p.phases(150.0)
    assert [ph.kind for ph in phases] == ["freeze", "thaw-active"]
    assert phases[0].duration_s == 150.0
    device = probe_physics.get_probe_model(p.device)
    assert device.active_length_mm == 20.0
    assert device.gas == "argon"
    assert device.gauge == "17G"
    with pytest.raises(InputError, match="unknown protocol"):
        protocols.get_preset("nonsense")


def test_every_preset_names_its_source_and_device():
    for p in protocols.PRESETS.values():
        assert p.source
        probe_physics.get_probe_model(p.device)  # in the catalogue
        assert p.options


def test_mushy_range_is_partially_frozen_not_frozen():
    """tissue.py: ice from the liquidus (-1 C), completely frozen at the solidus (-8 C)."""
    bone = get_tissue("bone")
    assert (bone.t_liquidus, bone.t_solidus) == (-1.0, -8.0)
    assert pw.freezing_state(-3.0, bone.t_liquidus, bone.t_solidus) == "partially frozen"
    assert pw.freezing_state(-8.5, bone.t_liquidus, bone.t_solidus) == "frozen"
    assert pw.freezing_state(-0.5, bone.t_liquidus, bone.t_solidus) == "not frozen"


def test_every_warning_rule_has_a_source_or_is_a_user_setting():
    for rule in pw.RULES.values():
        assert rule.basis in ("source", "user setting")
        assert rule.reference
        assert rule.meaning
    assert pw.RULES["artery-clearance"].basis == "user setting"
    assert "3 mm" in pw.RULES["artery-clearance"].reference


def test_score_keeps_the_original_ranking_order():
    """Feasible ≫ no neurotmesis (reversible block) ≫ block ≫ skin margin ≫ shorter freeze;
    under neuroma ablation the neuroma's neurotmesis fraction is rewarded instead."""
    from types import SimpleNamespace

    from cryoneuro.thermal import Phase

    def cand(feasible, neuro, block, margin, freeze=60.0, target_neuro=0.0):
        prof = SimpleNamespace(
            neurotmesis_risk=neuro,
            complete_block=block,
            warmest_c=np.array([-30.0 if block else -5.0]),
            eligible=np.array([True]),
            axonotmesis_c=-20.0,
        )
        spec = SimpleNamespace(phases=[Phase("freeze", freeze), Phase("freeze", freeze)])
        return SimpleNamespace(
            profile=prof,
            feasible=feasible,
            skin_margin_c=margin,
            target_neurotmesis=target_neuro,
            spec=spec,
            freeze_s=freeze,
        )

    ordered = [
        cand(True, False, True, 5.0),
        cand(True, True, True, 40.0),
        cand(False, False, True, -5.0),
        cand(False, False, False, 40.0),
    ]
    scores = [search.score(c) for c in ordered]
    assert scores == sorted(scores, reverse=True)
    assert search.score(cand(True, False, True, 5.0, 60.0)) > search.score(
        cand(True, False, True, 5.0, 120.0)
    )
    # the skin still counts far below 0 °C (a search with a 20 mm needle must be able to move
    # towards a safer skin), and a block with the coldest skin still beats no block at all
    assert search.score(cand(False, False, True, -60.0)) > search.score(
        cand(False, False, True, -120.0)
    )
    assert search.score(cand(False, False, True, -180.0)) > search.score(
        cand(False, False, False, 50.0)
    )
    ablate = search.score(cand(True, True, True, 5.0, target_neuro=0.8), "neuroma-ablation")
    assert ablate > search.score(cand(True, False, True, 5.0), "neuroma-ablation")


def test_continuous_search_finds_the_optimum_of_a_known_function():
    """The search machinery on a cheap objective with a known optimum (0.3, 0.7)."""

    def evaluate(x):
        s = -float(((x - np.array([0.3, 0.7])) ** 2).sum())
        return search.Evaluation(x, s, object(), None, [])

    done = search.continuous_search(evaluate, 2, n_sobol=16, n_local=30, seed=0)
    best = max(done, key=lambda e: e.score)
    assert np.allclose(best.x, [0.3, 0.7], atol=0.03)
    assert len(done) <= 1 + 16 + 30


def test_plan_case_file_refuses_mixed_settings_in_one_line():
    from cryoneuro.cli.plan_cmd import PlanSpec, _check_plan_limits
    from cryoneuro.errors import CaseFileError

    with pytest.raises(CaseFileError, match=r"plan\.offsets_mm is used by search = \"grid\""):
        _check_plan_limits(PlanSpec(offsets_mm=[0.0]), "case.toml")
    with pytest.raises(CaseFileError, match="not both"):
        _check_plan_limits(PlanSpec(approach="plantar", approach_axis=(0, 0, -1)), "case.toml")
    with pytest.raises(CaseFileError, match="ultrasound plane"):
        _check_plan_limits(PlanSpec(plane_point_mm=(0, 0, 0), plane_normal=(1, 0, 0)), "c.toml")
    with pytest.raises(CaseFileError, match="not a preset"):
        _check_plan_limits(PlanSpec(protocol="cazzato"), "case.toml")
    _check_plan_limits(PlanSpec(search="grid", offsets_mm=[0.0], protocol="cazzato-2016"), "c")


def test_plan_phantom_refuses_grid_settings_with_the_continuous_search(tmp_path):
    from cryoneuro.anatomy.phantoms import morton_forefoot
    from cryoneuro.errors import GeometryError
    from cryoneuro.planning.pipeline import plan_phantom

    with pytest.raises(GeometryError, match="grid settings"):
        plan_phantom(morton_forefoot(), tmp_path, offsets_mm=(0.0,), search_method="continuous")
    with pytest.raises(InputError, match="not known"):
        plan_phantom(morton_forefoot(), tmp_path, approach="posterior")
