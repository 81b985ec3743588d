"""The workspace's server side on an uploaded case (issue 18 items 2–3): the preview API answers
on the patient's anatomy — the same readout as a :class:`PlacementPreview` built directly from
the files that were uploaded (the independent path: anatomy/patient.py on the original files,
no registry) — its iceball NIfTI has the labels of that field, ``case.json`` gives the
centreline that the anatomy reader extracts, and "Run full plan" queues a placement job that
the worker plans on the uploaded case and stores as the procedure's bundle."""

from __future__ import annotations

import base64
import gzip
import json

import nibabel as nib
import numpy as np
import pytest
from sqlalchemy import select
from test_registry_case_images import _morton_files, _procedure, _upload, morton_case  # noqa: F401

from cryoneuro.anatomy.patient import load_patient_case
from cryoneuro.planning.preview import PlacementPreview
from cryoneuro.planning.volumes import iceball_labels
from cryoneuro.registry.models.files import PlanFile
from cryoneuro.registry.models.jobs import Job
from cryoneuro.registry.services import jobs

pytestmark = pytest.mark.slow  # builds a case preview (seconds) and runs a 3-D plan


def _accepted(client, morton_case) -> tuple[dict, int]:  # noqa: F811
    headers, proc_id = _procedure(client)
    assert _upload(client, headers, proc_id, *_morton_files(morton_case)).status_code == 303
    page = client.get(f"/procedures/{proc_id}/plan")
    # accept what was proposed (the select's selected option for each segment)
    from html.parser import HTMLParser

    class Selected(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.name, self.values = None, {}

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "select" and a.get("name", "").startswith("role_"):
                self.name = a["name"]
            if tag == "option" and "selected" in a and self.name:
                self.values[self.name] = a["value"]

    parser = Selected()
    parser.feed(page.text)
    response = client.post(
        f"/procedures/{proc_id}/plan/structures",
        data={"csrf_token": headers["X-CSRF-Token"], **parser.values},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return headers, proc_id


def test_preview_on_the_uploaded_case_and_a_placement_job(client, morton_case) -> None:  # noqa: F811
    headers, proc_id = _accepted(client, morton_case)
    info = client.get(f"/procedures/{proc_id}/plan/case.json")
    assert info.status_code == 200, info.text
    info = info.json()
    direct = load_patient_case(
        morton_case / "phantom.seg.nrrd", name="direct", image=morton_case / "image.nrrd"
    )
    np.testing.assert_allclose(info["centreline_mm"], direct.phantom.centreline_mm, atol=1e-3)
    tip = info["proposal"]["tip_mm"]
    assert info["proposal"]["direction"] == [0.0, 0.0, 1.0]
    # the readout equals a PlacementPreview built from the original files
    expected = PlacementPreview(direct.phantom, gas="argon", freeze_s=120.0)
    answers = []
    for dz in (0.0, 3.0):
        pose = [tip[0], tip[1], tip[2] + dz]
        response = client.post(
            f"/procedures/{proc_id}/plan/preview",
            json={"tip": pose, "direction": [0, 0, 1], "iceball": True},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["phantom"] == "case"
        want = expected.readout(pose, [0, 0, 1])
        assert body["complete_block"] == want.complete_block
        assert body["blocked_length_mm"] == pytest.approx(want.blocked_length_mm)
        assert body["volumes_ml"] == pytest.approx(want.volumes_ml)
        img = nib.Nifti1Image.from_bytes(gzip.decompress(base64.b64decode(body["iceball_nifti"])))
        labels = np.asarray(img.dataobj)
        field = expected.field(pose, [0, 0, 1])
        assert np.array_equal(labels, iceball_labels(np.nan_to_num(field, nan=99.0)))
        # label 1 counts the voxels ≤ 0 °C: the 0 °C volume of the readout
        v_ml = expected.grid.voxel_mm**3 / 1000
        assert np.count_nonzero(labels >= 1) * v_ml == pytest.approx(body["volumes_ml"]["0"])
        answers.append(body)
    assert answers[0]["volumes_ml"] != answers[1]["volumes_ml"] or (
        answers[0]["skin_min_c"] != answers[1]["skin_min_c"]
    )

    # queue the full plan of the placement (1 mm grid: the coarse setting) and run the worker
    run = client.post(
        f"/procedures/{proc_id}/plan/run",
        data={
            "csrf_token": headers["X-CSRF-Token"],
            "tip_mm": ",".join(str(v) for v in tip),
            "direction": "0,0,1",
            "gas": "argon",
            "freeze_s": "60",
            "voxel_mm": "1.0",
        },
        follow_redirects=False,
    )
    assert run.status_code == 303, run.text
    registry = client.registry
    with registry.factory() as session:
        job = session.scalar(select(Job).where(Job.procedure_id == proc_id))
        assert job.parameters["mode"] == "placement"
        assert job.parameters["source"] == "case"
    assert jobs.run_one(registry.factory) == job.id
    with registry.factory() as session:
        job = session.get(Job, job.id)
        assert job.state == "done", job.error
        plan_json = session.scalar(
            select(PlanFile).where(PlanFile.procedure_id == proc_id, PlanFile.name == "plan.json")
        )
        plan = json.loads(plan_json.content)
    # the plan is of the uploaded case, at the chosen tip
    assert plan["case"] == f"procedure-{proc_id}"
    np.testing.assert_allclose(plan["probes"][0]["tip_mm"], tip, atol=1e-3)
