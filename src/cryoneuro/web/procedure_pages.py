"""The procedure page: details, the plan bundle (upload, files, report link) and the Niivue
viewer of the planned iceball; and the route that serves a stored plan file.

Files are served only to users who may read the participant (site-scoped like every
participant route), with a Content-Security-Policy per file kind: the stored report.html may
show its inline styles and data: images but can run no script, load nothing, submit nothing
and cannot be framed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cryoneuro.registry.auth import WRITE_ROLES, Actor
from cryoneuro.registry.errors import RegistryInputError
from cryoneuro.registry.models import Participant, Procedure
from cryoneuro.registry.models.jobs import FINAL_STATES, Job
from cryoneuro.registry.services import jobs as job_service
from cryoneuro.registry.services import plan_files
from cryoneuro.web.deps import PageActor, SessionDep, UploadFormDep
from cryoneuro.web.pages import render

router = APIRouter(include_in_schema=False)

REPORT_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
    "sandbox; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DATA_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"
PDF_CSP = "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def file_response(row: Any) -> Response:
    """A stored plan file with its media type and a CSP suited to its kind."""
    csp = (
        REPORT_CSP
        if row.name.endswith(".html")
        else (PDF_CSP if row.name.endswith(".pdf") else DATA_CSP)
    )
    inline = row.name.endswith((".html", ".pdf", ".json"))
    disposition = f'{"inline" if inline else "attachment"}; filename="{row.name}"'
    return Response(
        row.content,
        media_type=row.media_type,
        headers={
            "Content-Security-Policy": csp,
            "Content-Disposition": disposition,
            "X-Content-SHA256": row.sha256,
        },
    )


def _viewer(procedure: Procedure, names: set[str]) -> dict[str, Any] | None:
    if "image.nii.gz" not in names:
        return None
    base = f"/procedures/{procedure.id}/files/"
    target = None
    probes = (procedure.plan or {}).get("probes") or []
    tip = probes[0].get("tip_mm") if probes and isinstance(probes[0], dict) else None
    if isinstance(tip, list) and len(tip) == 3 and all(isinstance(v, int | float) for v in tip):
        # plan coordinates are LPS mm; the NIfTI world (and Niivue) is RAS
        target = f"{-float(tip[0]):.3f},{-float(tip[1]):.3f},{float(tip[2]):.3f}"
    overlay = "iceball_labels.nii.gz" if "iceball_labels.nii.gz" in names else None
    return {
        "image": base + "image.nii.gz",
        "overlay": base + overlay if overlay else "",
        "target": target or "",
    }


def procedure_context(
    session: Any, actor: Actor, procedure_id: int, errors: dict[str, str] | None
) -> tuple[Procedure, Participant, dict[str, Any]]:
    """The procedure (read access checked), its participant and what every page of it shows."""
    procedure, participant = plan_files.get_procedure(session, actor, procedure_id)
    return (
        procedure,
        participant,
        {
            "actor": actor,
            "x": procedure,
            "p": participant,
            "errors": errors or {},
            "can_write": actor.role in WRITE_ROLES and actor.can_access_site(participant.site_id),
        },
    )


def render_procedure(
    request: Request,
    session: Any,
    actor: Actor,
    procedure_id: int,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    procedure, participant, common = procedure_context(session, actor, procedure_id, errors)
    files = plan_files.list_files(session, actor, procedure.id)
    names = {f.name for f in files}
    plan = procedure.plan or {}
    relief = plan.get("relief") if isinstance(plan.get("relief"), dict) else {}
    plan_jobs = [
        job_context(j, actor, participant.site_id)
        for j in job_service.list_jobs(session, actor, procedure.id, limit=5)
    ]
    return render(
        request,
        "procedure.html",
        status=status,
        **common,
        files=files,
        names=names,
        plan=plan,
        relief=relief,
        viewer=_viewer(procedure, names),
        max_mb=plan_files.MAX_BUNDLE_BYTES // 2**20,
        plan_jobs=plan_jobs,
        phantoms=job_service.PHANTOMS,
        job_active=any(c["active"] for c in plan_jobs),
    )


def job_context(job: Job, actor: Actor, site_id: int) -> dict:
    return {
        "j": job,
        "active": job.state not in FINAL_STATES,
        "can_cancel": job.state not in FINAL_STATES
        and not job.cancel_requested
        and actor.role in WRITE_ROLES
        and actor.can_access_site(site_id),
    }


@router.get("/procedures/{procedure_id}", response_class=HTMLResponse)
def procedure_page(
    procedure_id: int, request: Request, session: SessionDep, actor: PageActor
) -> HTMLResponse:
    return render_procedure(request, session, actor, procedure_id)


def upload_to_procedure(
    request: Request,
    session: Any,
    actor: Actor,
    procedure_id: int,
    attach: Callable[[], Any],
    rerender: Callable[..., HTMLResponse],
    field: str,
    target: str,
) -> Response:
    """Both uploads: write rights first, then ``attach`` and commit; a refusal re-renders."""
    _, participant = plan_files.get_procedure(session, actor, procedure_id)
    actor.require_write(participant.site_id)
    try:
        attach()
        session.commit()
    except RegistryInputError as exc:
        session.rollback()
        return rerender(
            request,
            session,
            actor,
            procedure_id,
            status=422,
            errors={exc.field or field: str(exc)},
        )
    return RedirectResponse(target, status_code=303)


@router.post("/procedures/{procedure_id}/plan-bundle", response_class=HTMLResponse)
def upload_bundle(
    procedure_id: int, request: Request, form: UploadFormDep, session: SessionDep, actor: PageActor
) -> Response:
    def attach() -> None:
        plan_files.attach_bundle(session, actor, procedure_id, form["bundle"], form["reason"])

    target = f"/procedures/{procedure_id}"
    return upload_to_procedure(
        request, session, actor, procedure_id, attach, render_procedure, "bundle", target
    )


@router.get("/procedures/{procedure_id}/files/{name}")
def procedure_file(procedure_id: int, name: str, session: SessionDep, actor: PageActor) -> Response:
    return file_response(plan_files.get_file(session, actor, procedure_id, name))
