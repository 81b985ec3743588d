"""The planning workspace (issue 18 items 1–3): ``/procedures/{id}/plan``.

Upload a patient's image and segmentation (validated, de-identified and stored by
registry/services/case_images.py), review the structures proposed from the segment names,
place the probe on the image (Niivue, static/workspace.js) with the live preview
(web/preview_api.py, on the uploaded anatomy), and queue the full 3D plan of the placement as
a job (registry/services/jobs.py; ``cryoneuro worker`` runs it and stores the bundle with the
procedure, whose page then shows the report and the planned iceball as for any plan).

Thin routes over the services: reading needs read access to the procedure's site (404
elsewhere); uploading, accepting structures and queueing need the roles that may edit study
data at that site (403 otherwise). Every write is audited by the services.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import NotFoundError, RegistryError, RegistryInputError
from cryoneuro.registry.services import case_images, plan_files
from cryoneuro.registry.services import jobs as job_service
from cryoneuro.web.deps import FormDep, PageActor, SessionDep, check_csrf
from cryoneuro.web.procedure_pages import procedure_context, upload_to_procedure

router = APIRouter(include_in_schema=False)

#: Form fields of the "Run full plan" form (jobs.placement_parameters checks them).
RUN_FIELDS = ("tip_mm", "direction", "gas", "freeze_s", "protocol", "voxel_mm")


async def posted_images(request: Request) -> dict[str, Any]:
    """The image upload form after the CSRF check: two files, label names and a reason."""
    from starlette.datastructures import UploadFile

    form = await request.form(max_files=2, max_fields=10)
    check_csrf(request, form.get("csrf_token"))  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    for field in ("image", "segmentation"):
        upload = form.get(field)
        if isinstance(upload, UploadFile):
            content = await upload.read(case_images.MAX_UPLOAD_BYTES + 1)
            out[field] = case_images.Upload(upload.filename or "", content)
        else:
            out[field] = case_images.Upload("", b"")
    for field in ("label_names", "reason"):
        value = form.get(field)
        out[field] = value if isinstance(value, str) else ""
    return out


ImagesFormDep = Annotated[dict[str, Any], Depends(posted_images)]


def _choices() -> list[str]:
    from cryoneuro.tissue import TISSUES

    return [*case_images.ROLE_CHOICES, *sorted(t for t in TISSUES if t != "air")]


def render_workspace(
    request: Request,
    session: Any,
    actor: Actor,
    procedure_id: int,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    from cryoneuro.planning import pipeline
    from cryoneuro.planning import protocols as presets
    from cryoneuro.web.pages import render

    procedure, _, common = procedure_context(session, actor, procedure_id, errors)
    row = case_images.get_case(session, actor, procedure.id)
    roles = (row.accepted_roles or row.proposed_roles) if row is not None else {}
    return render(
        request,
        "workspace.html",
        status=status,
        **common,
        case=row,
        roles=roles,
        choices=_choices(),
        max_mb=case_images.MAX_UPLOAD_BYTES // 2**20,
        gases=pipeline.GASES,
        presets=presets.PRESETS,
        voxels=job_service.PLACEMENT_VOXELS_MM,
        job_active=any(
            j.state in ("queued", "running")
            for j in job_service.list_jobs(session, actor, procedure.id, limit=5)
        ),
    )


@router.get("/procedures/{procedure_id}/plan", response_class=HTMLResponse)
def workspace(
    procedure_id: int, request: Request, session: SessionDep, actor: PageActor
) -> HTMLResponse:
    return render_workspace(request, session, actor, procedure_id)


@router.post("/procedures/{procedure_id}/images", response_class=HTMLResponse)
def upload_images(
    procedure_id: int, request: Request, form: ImagesFormDep, session: SessionDep, actor: PageActor
) -> Response:
    def attach() -> None:
        case_images.attach_images(
            session,
            actor,
            procedure_id,
            form["image"],
            form["segmentation"],
            form["label_names"],
            form["reason"],
        )

    target = f"/procedures/{procedure_id}/plan#structures"
    return upload_to_procedure(
        request, session, actor, procedure_id, attach, render_workspace, "image", target
    )


@router.post("/procedures/{procedure_id}/plan/structures", response_class=HTMLResponse)
def accept_structures(
    procedure_id: int, request: Request, form: FormDep, session: SessionDep, actor: PageActor
) -> Response:
    row = case_images.get_case(session, actor, procedure_id)
    if row is None:
        raise NotFoundError("this procedure has no images: upload them first")
    roles = {name: form.get(f"role_{i}", "") for i, name in enumerate(row.segments)}
    try:
        case_images.accept_roles(session, actor, procedure_id, roles)
        session.commit()
    except RegistryInputError as exc:
        session.rollback()
        return render_workspace(
            request, session, actor, procedure_id, status=422, errors={"roles": str(exc)}
        )
    return RedirectResponse(f"/procedures/{procedure_id}/plan#probe", status_code=303)


@router.post("/procedures/{procedure_id}/plan/centreline", response_class=HTMLResponse)
def correct_centreline(
    procedure_id: int, request: Request, form: FormDep, session: SessionDep, actor: PageActor
) -> Response:
    """Store the nerve centreline as the user corrected it (blank: back to the extracted one)."""
    try:
        case_images.correct_centreline(session, actor, procedure_id, form.get("centreline", ""))
        session.commit()
    except RegistryInputError as exc:
        session.rollback()
        return render_workspace(
            request, session, actor, procedure_id, status=422, errors={"centreline": str(exc)}
        )
    return RedirectResponse(f"/procedures/{procedure_id}/plan#centreline", status_code=303)


@router.post("/procedures/{procedure_id}/plan/search", response_class=HTMLResponse)
def run_search(
    procedure_id: int, request: Request, form: FormDep, session: SessionDep, actor: PageActor
) -> Response:
    """Queue the planner's search on the uploaded images (its probe becomes the proposal)."""
    raw = {k: form.get(k, "") for k in ("protocol", "voxel_mm", "n_sobol", "n_local")}
    raw.update(mode="search", source="case")
    return _queue_case_job(request, form, session, actor, procedure_id, raw, "search")


def _queue_case_job(request, form, session, actor, procedure_id: int, raw: dict, field: str):
    """Queue a job on the uploaded images (write rights checked before the form's content);
    a refusal re-renders the workspace with the error beside ``field``."""
    _, participant = plan_files.get_procedure(session, actor, procedure_id)
    actor.require_write(participant.site_id)
    try:
        row = case_images.get_case(session, actor, procedure_id)
        if row is None or not row.accepted_roles:
            raise RegistryInputError("accept the planning structures first", "roles")
        job_service.enqueue_plan(session, actor, procedure_id, raw, form.get("reason", ""))
        session.commit()
    except RegistryInputError as exc:
        session.rollback()
        return render_workspace(
            request, session, actor, procedure_id, status=422, errors={field: str(exc)}
        )
    return RedirectResponse(f"/procedures/{procedure_id}#plan-jobs", status_code=303)


def searched_proposal(session: Any, actor: Actor, procedure_id: int, row: Any) -> dict | None:
    """The probe of the procedure's stored plan when it is a search of these very images
    (their hash in the plan's case record), as the workspace's proposal; else None."""
    import json

    try:
        stored = plan_files.get_file(session, actor, procedure_id, "plan.json")
        plan = json.loads(stored.content)
    except (RegistryError, ValueError):
        return None
    inputs = plan.get("inputs") or {}
    source = str((inputs.get("case") or {}).get("segmentation", ""))
    if f"({row.segmentation_sha256[:12]})" not in source or not plan.get("probes"):
        return None
    if (inputs.get("search") or {}).get("method") != "continuous":
        return None
    probe = plan["probes"][0]
    verdict = (
        "feasible"
        if plan.get("feasible")
        else "not feasible: " + "; ".join(plan.get("reasons") or [])
    )
    return {
        "tip_mm": [round(float(v), 3) for v in probe["tip_mm"]],
        "direction": [float(v) for v in probe["direction"]],
        "rule": f"the planner's search on these images ({verdict}; "
        f"{probe.get('gas')}, {len(plan.get('protocol', []))} phases)",
        "source": "search",
    }


@router.post("/procedures/{procedure_id}/plan/run", response_class=HTMLResponse)
def run_full_plan(
    procedure_id: int, request: Request, form: FormDep, session: SessionDep, actor: PageActor
) -> Response:
    raw = {k: form.get(k, "") for k in RUN_FIELDS}
    raw.update(mode="placement", source="case")
    return _queue_case_job(request, form, session, actor, procedure_id, raw, "run")


def _case_file(row: Any, name: str) -> Response:
    from cryoneuro.web.procedure_pages import DATA_CSP

    if name == case_images.IMAGE_NAME:
        content = row.image
    elif name == "segmentation.nii.gz":
        content = case_images.label_map_nifti(row)
    elif name == case_images.SEGMENTATION_NAME:
        content = row.segmentation
    else:
        raise NotFoundError(f"no case file '{name[:60]}'")
    return Response(
        content,
        media_type="application/octet-stream",
        headers={
            "Content-Security-Policy": DATA_CSP,
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


@router.get("/procedures/{procedure_id}/case/{name}")
def case_file(procedure_id: int, name: str, session: SessionDep, actor: PageActor) -> Response:
    row = case_images.get_case(session, actor, procedure_id)
    if row is None:
        raise NotFoundError("this procedure has no images")
    return _case_file(row, name)


@router.get("/procedures/{procedure_id}/plan/case.json")
def case_json(
    procedure_id: int, request: Request, session: SessionDep, actor: PageActor
) -> JSONResponse:
    """What the viewer draws: the centreline, the target, the proposed placement and the
    preview's grid (LPS mm), from the cached case preview (building it warms the cache)."""
    from cryoneuro._json import json_safe
    from cryoneuro.web import preview_api

    try:
        case = preview_api._case_of(session, actor, procedure_id)
        if case is None:
            raise RegistryInputError("accept the planning structures first", "roles")
        preview = preview_api.case_preview(
            case[0], case[1], preview_api.DEFAULT_GAS, preview_api.DEFAULT_FREEZE_S
        )
    except RegistryError as exc:
        return JSONResponse({"detail": str(exc), "field": None}, status_code=exc.status_code)
    phantom = preview.phantom
    target = np.asarray(preview.target_mm, float)
    direction = np.array([0.0, 0.0, 1.0])  # the planner's "top" approach: target → skin
    half = 0.5 * preview.table.active_length_mm
    tip = target - half * direction  # active length centred on the target
    row = case_images.get_case(session, actor, procedure_id)
    proposal = {
        "tip_mm": np.round(tip, 3).tolist(),
        "direction": direction.tolist(),
        "rule": "vertical needle from the top (the planner's 'top' approach), its "
        "active length centred on the target's centroid; run a search for the planner's own",
        "source": "default",
    }
    proposal = searched_proposal(session, actor, procedure_id, row) or proposal
    grid = preview.grid
    lo = [float(v) for v in grid.origin_mm]
    hi = [o + s for o, s in zip(grid.origin_mm, grid.size_mm, strict=True)]
    return JSONResponse(
        json_safe(
            {
                "centreline_mm": np.round(phantom.centreline_mm, 3).tolist(),
                "target_mm": np.round(target, 3).tolist(),
                "proposal": proposal,
                "grid_lo_mm": lo,
                "grid_hi_mm": hi,
                "tissue": preview.tissue_name,
            }
        )
    )
