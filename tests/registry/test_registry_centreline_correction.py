"""Correcting the nerve centreline in the planning workspace (issue 18 item 2: "the nerve
centreline extracted automatically is drawn and can be corrected").

The corrected line is checked against independent expectations: the case the planner and the
preview build afterwards carries exactly the points typed (not the extracted line), the end
organ is its distal point (the case-file rule, anatomy/patient.py), the step is audited with
old and new values, a blank box goes back to the extracted line, and impossible input — one
point, not a number, a point outside the image, a repeated point — is a 422 naming the point
and nothing is stored. Monitors get 403; another site 404.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pytest
from registry_helpers import login
from sqlalchemy import select
from test_registry_case_images import _morton_files, _procedure, _row, _upload

from cryoneuro.anatomy import phantoms
from cryoneuro.anatomy.patient import write_segmentation_case
from cryoneuro.registry.models import AuditEntry
from cryoneuro.registry.services import case_images


@pytest.fixture(scope="module")
def morton_case(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("morton-case-cl")
    write_segmentation_case(phantoms.morton_forefoot(), folder)
    return folder


def _accepted(client, morton_case):
    headers, proc_id = _procedure(client)
    assert _upload(client, headers, proc_id, *_morton_files(morton_case)).status_code == 303
    row = _row(client.registry, proc_id)
    roles = {f"role_{i}": row.proposed_roles[n] for i, n in enumerate(row.segments)}
    accepted = client.post(
        f"/procedures/{proc_id}/plan/structures",
        data={"csrf_token": headers["X-CSRF-Token"], **roles},
        follow_redirects=False,
    )
    assert accepted.status_code == 303, accepted.text
    return headers, proc_id


def _post(client, headers, proc_id, text):
    return client.post(
        f"/procedures/{proc_id}/plan/centreline",
        data={"csrf_token": headers["X-CSRF-Token"], "centreline": text},
        follow_redirects=False,
    )


def test_a_corrected_centreline_is_used_audited_and_can_be_reset(client, morton_case) -> None:
    headers, proc_id = _accepted(client, morton_case)
    extracted = case_images.patient_case(_row(client.registry, proc_id)).phantom.centreline_mm
    # the phantom's own hand-drawn line, shifted 1 mm laterally: a correction a user might make
    typed = phantoms.morton_forefoot().centreline_mm + np.array([1.0, 0.0, 0.0])
    text = "\n".join(", ".join(f"{v:.2f}" for v in p) for p in typed)
    response = _post(client, headers, proc_id, text)
    assert response.status_code == 303, response.text
    row = _row(client.registry, proc_id)
    assert row.centreline_by == "nurse"
    np.testing.assert_allclose(row.centreline_mm, np.round(typed, 2))
    case = case_images.patient_case(row).phantom
    np.testing.assert_allclose(case.centreline_mm, np.round(typed, 2))
    np.testing.assert_allclose(case.end_organ_mm, np.round(typed[-1], 2))
    same = case.centreline_mm.shape == extracted.shape and np.allclose(
        case.centreline_mm, extracted
    )
    assert not same  # the typed line, not the extracted one
    page = client.get(f"/procedures/{proc_id}/plan")
    assert "corrected by nurse" in page.text
    with client.registry.factory() as session:
        entry = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.table_name == "case_images", AuditEntry.action == "update")
            .order_by(AuditEntry.id.desc())
        ).first()
    assert entry.reason == "nerve centreline corrected"
    assert entry.old_values["centreline_mm"] is None
    assert len(entry.new_values["centreline_mm"]) == len(typed)
    # blank: back to the extracted line
    assert _post(client, headers, proc_id, "  \n").status_code == 303
    row = _row(client.registry, proc_id)
    assert row.centreline_mm is None
    assert row.centreline_by is None
    np.testing.assert_allclose(case_images.patient_case(row).phantom.centreline_mm, extracted)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("24.5, 0, 11", "at least two points"),
        ("24.5, 0, 11\n24.5, x, 10", "point 2 ('24.5, x, 10') is not three finite numbers"),
        ("24.5, 0, 11\n24.5, 10, nan", "point 2"),
        ("24.5, 0, 11\n24.5, 400, 10", "point 2 (24.5, 400, 10) mm lies outside the image"),
        ("24.5, 0, 11\n24.5, 0, 11", "point 2 repeats point 1"),
    ],
    ids=["one-point", "not-a-number", "nan", "outside", "repeated"],
)
def test_impossible_centrelines_are_refused_beside_the_field(
    client, morton_case, text, says
) -> None:
    headers, proc_id = _accepted(client, morton_case)
    response = _post(client, headers, proc_id, text)
    assert response.status_code == 422
    body = html.unescape(response.text)
    assert 'id="error-centreline"' in body
    assert says in body
    assert _row(client.registry, proc_id).centreline_mm is None  # nothing stored


def test_only_editors_at_the_site_may_correct(client, morton_case) -> None:
    headers, proc_id = _accepted(client, morton_case)
    text = "24.5, 0, 11\n24.5, 27, 10"
    client.post("/logout", data={"csrf_token": headers["X-CSRF-Token"]})
    monitor = login(client, "monitor")
    assert _post(client, monitor, proc_id, text).status_code == 403
    client.post("/logout", data={"csrf_token": monitor["X-CSRF-Token"]})
    leeds = login(client, "leedsnurse")  # data entry at another site
    assert _post(client, leeds, proc_id, text).status_code == 404
    assert _row(client.registry, proc_id).centreline_mm is None
