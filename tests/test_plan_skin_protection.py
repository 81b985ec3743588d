"""Skin protection on demand (issue 12 item 3): when the best blocking plan freezes the
convective skin, the planner re-confirms it with warm saline on the skin and keeps the
protected plan only when it is feasible, saying so in the plan, its warnings and its report.

One grid candidate on 1 mm grids (argon centred on the neuroma, 120 s double freeze: it
freezes the thin plantar skin of the forefoot phantom) keeps each plan to a few simulations.
The protected figures are checked against a second path: the same candidate planned with warm
saline given directly.
"""

from __future__ import annotations

import pytest

from cryoneuro.anatomy.phantoms import morton_forefoot
from cryoneuro.errors import GeometryError
from cryoneuro.planning.pipeline import Boundaries, plan_phantom

pytestmark = pytest.mark.slow

ONE_CANDIDATE = {
    "gases": ("argon",),
    "offsets_mm": (0.0,),
    "shifts_mm": (0.0,),
    "freezes_s": (120.0,),
    "search_method": "grid",
    "screen_voxel_mm": 1.0,
    "confirm_voxel_mm": 1.0,
    "confirm_top": 1,
}


def _skin_min(plan) -> float:
    return next(s["min_temperature_c"] for s in plan.safety if s["structure"] == "skin")


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    ph = morton_forefoot()
    root = tmp_path_factory.mktemp("skin")
    never = plan_phantom(ph, root / "never", skin_protection="never", **ONE_CANDIDATE)
    needed = plan_phantom(ph, root / "needed", **ONE_CANDIDATE)  # default: if-needed
    saline = plan_phantom(
        ph, root / "saline", boundaries=Boundaries(skin="warm-saline"), **ONE_CANDIDATE
    )
    return never, needed, saline, root


def test_without_protection_the_plan_is_refused_for_the_skin(plans):
    never, *_ = plans
    assert never.nerve["complete_block"]
    assert _skin_min(never) <= 0.0
    assert not never.feasible
    assert any("skin" in r and "warm saline" in r for r in never.reasons)
    assert never.inputs["boundaries"]["skin"] == "convective"
    assert never.inputs["skin_protection"] == {"rule": "never", "applied": False}


def test_protection_is_tried_and_recorded_with_both_skin_minima(plans):
    never, needed, saline, _ = plans
    rec = needed.inputs["skin_protection"]
    assert rec["tried"] == "warm-saline"
    # the unprotected figure is the refused plan's own skin minimum ...
    assert rec["unprotected_skin_min_c"] == pytest.approx(_skin_min(never), abs=0.01)
    # ... and the protected one is what planning with warm saline directly gives
    assert rec["protected_skin_min_c"] == pytest.approx(_skin_min(saline), abs=0.01)


def test_the_protected_plan_is_kept_only_when_feasible_and_is_said(plans):
    _, needed, saline, root = plans
    rec = needed.inputs["skin_protection"]
    assert rec["applied"] == saline.feasible
    if rec["applied"]:
        assert needed.feasible
        assert needed.inputs["boundaries"]["skin"] == "warm-saline"  # sweeps/replays use it
        assert _skin_min(needed) > 0.0
        assert any("[skin-protection; source:" in w for w in needed.warnings)
        html = (root / "needed" / "report.html").read_text(encoding="utf-8")
        assert "Thermal boundaries" in html
        assert "applied" in html
    else:
        assert not needed.feasible
        assert any("with warm saline on the skin" in r for r in needed.reasons)


def test_an_unknown_skin_protection_is_refused(tmp_path):
    with pytest.raises(GeometryError, match="skin_protection must be one of"):
        plan_phantom(morton_forefoot(), tmp_path, skin_protection="sometimes", **ONE_CANDIDATE)
