"""The planning pipeline end to end on the Morton's forefoot phantom (issue 4 bar): the chosen
probe freezes the whole nerve cross-section and keeps the skin above 0 C — or the plan says
clearly that it cannot and why."""

from __future__ import annotations

import json

from cryoneuro.anatomy.phantoms import morton_forefoot
from cryoneuro.planning.pipeline import plan_phantom
from cryoneuro.planning.plan import Plan


def test_nitrous_oxide_probe_beside_the_web_blocks_the_nerve_and_spares_the_skin(tmp_path):
    plan = plan_phantom(morton_forefoot(), tmp_path, gases=("nitrous-oxide",), offsets_mm=(0.0,),
                        shifts_mm=(2.0,), freezes_s=(60.0,))
    assert plan.feasible, plan.reasons
    assert plan.nerve["complete_block"] and plan.nerve["warmest_min_c"] <= -20.0
    assert not plan.nerve["neurotmesis_risk"]  # an N2O tip (-88.5 C) cannot reach -100 C
    skin = next(s for s in plan.safety if s["structure"] == "skin")
    assert skin["min_temperature_c"] > 0.0
    assert plan.coverage["fraction_at_or_below_-20_c"] > 0.9
    assert plan.relief["median_days"] > 7.0  # at least the Wallerian delay
    assert Plan.load(tmp_path / "plan.json") == plan
    page = (tmp_path / "report.html").read_text()
    assert "Feasible" in page and "data:image/png;base64" in page
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    json.loads((tmp_path / "plan.json").read_text())


def test_a_plan_that_freezes_the_skin_says_so(tmp_path):
    """Argon (-185.8 C) centred on the neuroma with a 120 s double freeze freezes the thin
    plantar skin: the plan must be marked not feasible, naming the skin."""
    plan = plan_phantom(morton_forefoot(), tmp_path, gases=("argon",), offsets_mm=(0.0,),
                        shifts_mm=(0.0,), freezes_s=(120.0,))
    assert not plan.feasible
    assert any("skin" in r for r in plan.reasons)
    assert "Not feasible" in (tmp_path / "report.html").read_text()
