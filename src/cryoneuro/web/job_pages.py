"""Plan jobs on the procedure page: queue a full plan, follow its progress, cancel it.

No planning happens here (issue 18 item 4): the POST only writes a queued row, and
``cryoneuro worker`` runs it (registry/services/jobs.py). The page polls a small HTML fragment
with htmx (vendored in static/htmx) while the job is queued or running; when a poll finds it
done the response asks htmx to reload the page (``HX-Refresh``), which then shows the stored
bundle's report and Niivue view as for an upload. The JSON status route serves scripts.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from cryoneuro.registry.errors import RegistryError, RegistryInputError
from cryoneuro.registry.models.jobs import JobState
from cryoneuro.registry.services import jobs as job_service
from cryoneuro.registry.services import plan_files
from cryoneuro.web.deps import FormDep, PageActor, SessionDep
from cryoneuro.web.pages import render
from cryoneuro.web.procedure_pages import job_context, render_procedure

router = APIRouter(include_in_schema=False)

FIELDS = ("phantom", "gases", "offsets_mm", "shifts_mm", "freezes_s")


@router.post("/procedures/{procedure_id}/plan-jobs", response_class=HTMLResponse)
def queue_plan(
    procedure_id: int, request: Request, form: FormDep, session: SessionDep, actor: PageActor
) -> Response:
    raw = {k: form.get(k, "") for k in FIELDS}
    try:
        job_service.enqueue_plan(session, actor, procedure_id, raw, form.get("reason", ""))
        session.commit()
    except RegistryInputError as exc:
        session.rollback()
        field = exc.field or "phantom"
        return render_procedure(
            request, session, actor, procedure_id, status=422, errors={f"job_{field}": str(exc)}
        )
    return RedirectResponse(f"/procedures/{procedure_id}#plan-jobs", status_code=303)


@router.get("/procedures/{procedure_id}/plan-jobs/{job_id}")
def job_status(
    procedure_id: int, job_id: int, session: SessionDep, actor: PageActor
) -> JSONResponse:
    try:
        return JSONResponse(
            job_service.status(job_service.get_job(session, actor, procedure_id, job_id))
        )
    except RegistryError as exc:  # JSON errors for a JSON route (the app's are HTML here)
        return JSONResponse({"detail": str(exc), "field": None}, status_code=exc.status_code)


@router.get("/procedures/{procedure_id}/plan-jobs/{job_id}/progress", response_class=HTMLResponse)
def job_progress(
    procedure_id: int, job_id: int, request: Request, session: SessionDep, actor: PageActor
) -> HTMLResponse:
    _, participant = plan_files.get_procedure(session, actor, procedure_id)
    job = job_service.get_job(session, actor, procedure_id, job_id)
    response = render(
        request,
        "plan_job.html",
        actor=actor,
        x_id=procedure_id,
        **job_context(job, actor, participant.site_id),
    )
    if job.state == JobState.done and request.headers.get("hx-request"):
        response.headers["HX-Refresh"] = "true"  # show the stored plan, report and viewer
    return response


@router.post("/procedures/{procedure_id}/plan-jobs/{job_id}/cancel")
def cancel_job(
    procedure_id: int, job_id: int, form: FormDep, session: SessionDep, actor: PageActor
) -> Response:
    job_service.cancel(session, actor, procedure_id, job_id)
    session.commit()
    return RedirectResponse(f"/procedures/{procedure_id}#plan-jobs", status_code=303)
