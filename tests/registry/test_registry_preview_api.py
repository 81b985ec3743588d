"""The placement preview endpoint (issue 18 item 3): its JSON equals a direct call of
PlacementPreview.readout for the phantom of the procedure's plan, the build is cached per
process, and bad input is a 4xx naming the field."""

from __future__ import annotations

import json

import numpy as np
import pytest
from registry_helpers import enrolment, login, procedure

from cryoneuro.web import preview_api


@pytest.fixture(scope="module")
def morton_preview():
    """The direct computation the endpoint must match (built independently of its cache)."""
    from cryoneuro.anatomy.phantoms import morton_forefoot
    from cryoneuro.planning.preview import PlacementPreview

    return PlacementPreview(morton_forefoot(), gas="argon", freeze_s=120.0)


def _procedure(client, plan: dict | None, nhs: str = "9434765919") -> tuple[dict, int]:
    headers = login(client, "nurse")
    pid = client.post("/api/participants", json=enrolment(nhs), headers=headers).json()["id"]
    body = procedure()
    body["plan"] = plan
    proc = client.post(f"/api/participants/{pid}/procedures", json=body, headers=headers)
    assert proc.status_code == 201, proc.text
    return headers, proc.json()["id"]


def _morton_plan() -> dict:
    """A plan of the Morton phantom (the shape the planner writes: case, probe gas, protocol)."""
    plan = procedure()["plan"]
    plan["case"] = "morton_forefoot"
    plan["inputs"] = {"phantom": "morton_forefoot"}
    plan["probes"][0]["gas"] = "argon"
    plan["protocol"] = [
        {"kind": "freeze", "duration_s": 120.0},
        {"kind": "thaw-passive", "duration_s": 30.0},
        {"kind": "freeze", "duration_s": 120.0},
    ]
    return plan


def test_readout_matches_placement_preview(client, morton_preview) -> None:
    headers, proc_id = _procedure(client, _morton_plan())
    target = [float(v) for v in morton_preview.target_mm]
    poses = [(target, [0.0, 0.0, 1.0]), ([target[0] + 3.0, target[1], target[2]], [0.0, 0.3, 1.0])]
    answers = []
    for tip, direction in poses:
        got = client.post(
            f"/procedures/{proc_id}/plan/preview",
            json={"tip": tip, "direction": direction},
            headers=headers,
        )
        assert got.status_code == 200, got.text
        body = got.json()
        want = morton_preview.readout(tip, direction)
        assert body["phantom"] == "morton"  # taken from the procedure's plan
        assert body["gas"] == "argon"
        assert body["freeze_s"] == 120.0
        assert body["complete_block"] == want.complete_block
        assert body["neurotmesis_risk"] == want.neurotmesis_risk
        assert body["blocked_length_mm"] == pytest.approx(want.blocked_length_mm)
        assert body["skin_margin_c"] == pytest.approx(want.skin_margin_c)
        for key in ("skin_min_c", "skin_distance_mm"):
            value = getattr(want, key)
            assert body[key] == (pytest.approx(value) if np.isfinite(value) else None)
        assert body["volumes_ml"] == pytest.approx(want.volumes_ml)
        assert body["warnings"] == want.warnings
        assert body["elapsed_s"] > 0
        answers.append(body)
    # moving the tip 3 mm changes the iceball's place, so the readout is not a constant
    assert answers[0]["volumes_ml"]["0"] > 0
    assert answers[0] != answers[1]
    # GET with comma-separated vectors gives the same readout
    tip, direction = poses[0]
    got = client.get(
        f"/procedures/{proc_id}/plan/preview",
        params={"tip": ",".join(map(str, tip)), "direction": "0,0,1"},
    ).json()
    assert {k: v for k, v in got.items() if k != "elapsed_s"} == {
        k: v for k, v in answers[0].items() if k != "elapsed_s"
    }
    # one build per (phantom, gas, freeze) in this process
    info = preview_api._cached.cache_info()
    assert info.currsize >= 1
    assert info.hits >= 2


def test_preview_input_errors_name_the_field(client, morton_preview) -> None:
    headers, proc_id = _procedure(client, _morton_plan())
    target = [float(v) for v in morton_preview.target_mm]
    url = f"/procedures/{proc_id}/plan/preview"

    def post(body):
        return client.post(
            url, content=json.dumps(body), headers={**headers, "Content-Type": "application/json"}
        )

    cases = [
        ({"tip": target[:2], "direction": [0, 0, 1]}, "tip"),
        ({"tip": [target[0], "x", target[2]], "direction": [0, 0, 1]}, "tip"),
        ({"tip": target, "direction": [0, 0, 0]}, "direction"),
        ({"tip": target, "direction": [0, 0, True]}, "direction"),
        ({"tip": [1e6, 0, 0], "direction": [0, 0, 1]}, "tip"),
        ({"tip": target, "direction": [0, 0, 1], "phantom": "knee"}, "phantom"),
        ({"tip": target, "direction": [0, 0, 1], "gas": "helium"}, "gas"),
        ({"tip": target, "direction": [0, 0, 1], "freeze_s": 1e9}, "freeze_s"),
    ]
    for body, field in cases:
        response = post(body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["field"] == field, (body, response.json())
        assert response.json()["detail"].startswith(field + ":")
    # NaN is not JSON, but Python's json module writes it: refused by name
    response = client.post(
        url,
        content='{"tip": [NaN, 0, 0], "direction": [0, 0, 1]}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["field"] == "tip"
    assert post([1, 2]).json()["field"] == "body"
    # no CSRF header on the POST
    assert client.post(url, json={"tip": target, "direction": [0, 0, 1]}).status_code == 403
    # a procedure without a phantom plan needs the phantom named
    _, bare = _procedure(client, None, nhs="9990000018")
    response = client.get(
        f"/procedures/{bare}/plan/preview", params={"tip": "0,0,0", "direction": "0,0,1"}
    )
    assert response.status_code == 422
    assert response.json()["field"] == "phantom"
    # another site's user cannot find the procedure
    login(client, "leedsnurse")
    response = client.get(url, params={"tip": ",".join(map(str, target)), "direction": "0,0,1"})
    assert response.status_code == 404
