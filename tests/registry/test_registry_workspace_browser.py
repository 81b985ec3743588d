"""Issue 18 bar, in real headless Chromium (Debian's, through Playwright; fixtures of
test_registry_browser.py): upload the Morton phantom's image and labels (written as a patient's
case arrives: anatomy/patient.py write_segmentation_case) to a procedure, accept the proposed
structures, place the probe (the proposal) and move its tip 3 mm — the preview's iceball and
block readout change, and the round trip measured in the browser (performance.now) is printed
(no timed assertion: the machine is shared) — then a real mouse drag on the slice moves the tip
and gives a new readout; run the full plan as a job (``cryoneuro worker --once`` in its own
process, 1 mm grid), see its progress, and find the plan bundle, the report link and the Niivue
view on the procedure page. The audit trail records the upload, the structures accepted, the
job queued and the plan stored.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from registry_helpers import PASSWORD, enrolment, procedure
from sqlalchemy import select
from test_registry_browser import browser_page  # noqa: F401  (the fixture)
from test_registry_case_images import morton_case  # noqa: F401  (the fixture)

from cryoneuro.registry.models import AuditEntry

pytestmark = pytest.mark.slow  # Chromium, a case preview and a 3-D plan (about a minute)

WORKER = "from cryoneuro.cli import main; main()"


def _procedure(base: str) -> int:
    with httpx.Client(base_url=base) as http:
        login = http.post("/api/login", json={"username": "nurse", "password": PASSWORD})
        headers = {"X-CSRF-Token": login.json()["csrf_token"]}
        pid = http.post("/api/participants", json=enrolment(), headers=headers).json()["id"]
        body = procedure()
        body.pop("plan")
        proc = http.post(f"/api/participants/{pid}/procedures", json=body, headers=headers)
        assert proc.status_code == 201, proc.text
        return proc.json()["id"]


def _readout(page) -> dict:
    return {
        "count": int(page.get_attribute("#readout", "data-count")),
        "block": page.inner_text("#readout-block"),
        "volumes": page.inner_text("#readout-volumes"),
        "iceball": page.get_attribute("#readout", "data-iceball"),
        "ms": float(page.get_attribute("#readout", "data-ms")),
    }


def _wait_for_readout(page, after: int) -> dict:
    # selectors, not predicates: the page's CSP forbids eval (Playwright's string functions)
    page.wait_for_selector(f"#readout:not([data-count='{after}'])", timeout=60_000)
    page.wait_for_timeout(300)  # a debounced follow-up request, if one was queued
    page.wait_for_selector("#readout[data-iceball]", timeout=30_000)
    return _readout(page)


def test_workspace_upload_place_preview_and_plan(
    live_server,
    browser_page,  # noqa: F811
    morton_case,  # noqa: F811
) -> None:
    page, base = browser_page, live_server.url
    proc_id = _procedure(base)
    page.goto(base + "/login")
    page.fill("#username", "nurse")
    page.fill("#password", PASSWORD)
    page.click("#submit")
    page.wait_for_url(base + "/")

    # 1. images onto the procedure
    page.goto(f"{base}/procedures/{proc_id}")
    page.click("#open-workspace")
    page.wait_for_url(f"{base}/procedures/{proc_id}/plan")
    page.set_input_files("#image", str(morton_case / "image.nrrd"))
    page.set_input_files("#segmentation", str(morton_case / "phantom.seg.nrrd"))
    page.click("#upload-images")
    page.wait_for_url(f"{base}/procedures/{proc_id}/plan#structures")
    assert "image.nrrd" in page.inner_text("#case-image")

    # 2. the proposed structures, accepted as proposed
    neuroma_row = page.locator("#structure-table tr", has_text="neuroma")
    assert neuroma_row.locator("select").input_value() == "target"
    nerve_row = page.locator("#structure-table tr", has_text="digital_nerve")
    assert nerve_row.locator("select").input_value() == "nerve"
    page.click("#accept-structures")
    page.wait_for_url(f"{base}/procedures/{proc_id}/plan#probe")
    assert "Accepted by nurse" in page.inner_text("#structures-accepted")
    page.wait_for_selector("#workspace:not([data-state=pending])", timeout=60_000)
    assert page.get_attribute("#workspace", "data-state") == "loaded"  # WebGL2 (SwiftShader)
    page.wait_for_selector("#placement[data-state=ready]", timeout=120_000)

    # 3. the proposal, then the tip moved 3 mm towards the skin
    page.click("#accept-proposal")
    first = _wait_for_readout(page, 0)
    tip = [float(v) for v in page.input_value("#tip").split(",")]
    moved = [tip[0], tip[1], tip[2] + 3.0]
    page.fill("#tip", ", ".join(f"{v:.3f}" for v in moved))
    page.dispatch_event("#tip", "change")
    second = _wait_for_readout(page, first["count"])
    assert second["block"] != first["block"]
    assert second["iceball"] != first["iceball"]
    assert "mm" in second["block"]
    print(
        f"\nbrowser-measured preview round trip: {first['ms']:.0f} ms (first pose), "
        f"{second['ms']:.0f} ms (tip moved 3 mm); readout {first['block']} -> {second['block']}"
    )

    # a real drag on the canvas (tip mode): the tip follows the crosshair, a new readout comes
    box = page.locator("#niivue-canvas").bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 12, y0 + 6, steps=4)
    page.mouse.up()
    third = _wait_for_readout(page, second["count"])
    assert page.input_value("#tip") != ", ".join(f"{v:.3f}" for v in moved)
    print(f"after a mouse drag: {third['ms']:.0f} ms; readout {third['block']}")

    # 4. the full plan as a job, its progress, and the stored plan on the procedure page
    page.select_option("#voxel_mm", "1.0")
    page.select_option("#freeze_s", "60")
    page.click("#run-full-plan")
    page.wait_for_url(f"{base}/procedures/{proc_id}#plan-jobs")
    assert page.locator(".plan-job .job-state").first.inner_text() == "queued"
    assert "workspace placement on the uploaded images" in page.inner_text(".plan-job")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WORKER,
            "worker",
            "--db",
            live_server.registry.url,
            "--key-file",
            str(live_server.registry.settings.key_path()),
            "--once",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # progress: htmx polls the job fragment every 2 s while it runs
        page.wait_for_selector(".plan-job[data-state=running]", timeout=120_000)
        page.wait_for_selector(
            ".plan-job[data-state=running] .job-progress:not([value='0.000'])", timeout=120_000
        )
        seen = page.inner_text(".plan-job .job-message")
        # done: the page reloads itself and shows the stored plan
        page.wait_for_selector("#plan-report", timeout=240_000)
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, out.decode(errors="replace")[-2000:]
    print(f"job progress seen: {seen!r}")
    assert "plan.json" in page.inner_text("#plan-files")
    assert page.get_attribute("#plan-report", "href") == f"/procedures/{proc_id}/files/report.html"
    page.wait_for_selector("#plan-viewer:not([data-state=pending])", timeout=60_000)
    assert page.get_attribute("#plan-viewer", "data-state") == "loaded"

    # 5. the audit trail: upload, structures, job queued, plan stored
    registry = live_server.registry
    with registry.factory() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    steps = [(e.table_name, e.action, e.reason) for e in entries]
    upload = next(e for e in entries if (e.table_name, e.action) == ("case_images", "create"))
    assert upload.username == "nurse"
    assert len(upload.new_values["image_upload_sha256"]) == 64
    accepted = next(e for e in entries if e.table_name == "case_images" and e.action == "update")
    assert accepted.reason == "planning structures accepted"
    queued = next(e for e in entries if e.action == "job-queue")
    assert queued.new_values["parameters"]["source"] == "case"
    stored = [e for e in entries if e.table_name == "plan_file" and e.action == "create"]
    assert {e.new_values["name"] for e in stored} >= {"plan.json", "report.html"}
    assert all(e.username == "nurse" for e in stored)  # on behalf of who queued it
    assert any(e.action == "job-done" for e in entries)
    order = [entries.index(x) for x in (upload, accepted, queued, stored[0])]
    assert order == sorted(order), steps
