"""Background jobs: enqueue, claim, progress, finish, fail (with retry) and cancel.

The web app only *queues* a job (:func:`enqueue_plan`); ``cryoneuro worker``
(:mod:`cryoneuro.cli.worker_cmd`) claims it and runs it (:func:`run_one`). Every function takes
a session factory or a session and keeps its transactions short: the plan itself runs outside
any transaction, and only the progress writes and the final store touch the database.

**Claim.** ``SELECT id … WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED``
(PostgreSQL: two workers never pick the same row and never wait for each other), then
``UPDATE job SET state = 'running' … WHERE id = :id AND state = 'queued'``: on SQLite, where
``FOR UPDATE`` is not rendered, the conditional update under the single writer (``BEGIN
IMMEDIATE``, registry/db.py) is what makes the claim exclusive — a second worker's update
matches no row and it moves on.

**Retry.** An unexpected error (a crash, the database busy, memory) leaves the job queued
again until ``max_attempts`` attempts have been made; a worker that stops heart-beating for
:data:`STALE_AFTER_S` loses its job the same way (counted as an attempt). A user error
(:class:`~cryoneuro.errors.CryoneuroError`, e.g. every needle path crosses bone) fails at once:
the same input fails the same way. The error is one line, shown on the procedure page.

**Cancel.** A queued job is cancelled at once; a running one gets ``cancel_requested`` and its
worker stops at the next progress callback (:class:`JobCancelled`) without storing anything.

**Audit.** Each step is an audit event (``job-queue``, ``job-start``, ``job-retry``,
``job-done``, ``job-fail``, ``job-cancel``) on table ``job`` with the procedure's site; the
stored bundle's files are audited as an upload, attributed to the user who queued the job
(the worker acts with that user's current role and sites: a user who lost access meanwhile
gets a failed job, not a stored plan).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import socket
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cryoneuro.errors import CryoneuroError
from cryoneuro.input_checks import MAX_PROTOCOL_S
from cryoneuro.registry.audit import log_event
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.db import transaction
from cryoneuro.registry.errors import ConflictError, NotFoundError, RegistryInputError
from cryoneuro.registry.models import Participant, Procedure, User, utcnow
from cryoneuro.registry.models.jobs import FINAL_STATES, Job, JobKind, JobState
from cryoneuro.registry.services import plan_files
from cryoneuro.registry.services.participants import valid_id

log = logging.getLogger(__name__)

#: A running job whose worker has not written progress for this long is taken back (s).
#: The plan writes progress after every candidate (tens of seconds each on a busy machine).
STALE_AFTER_S = 15 * 60
MAX_ATTEMPTS = 3
#: The bundled phantoms a plan job can plan (name → builder in cryoneuro.anatomy.phantoms).
PHANTOMS = ("morton", "stump")
#: Bounds of the planning parameters a user may set (issue 18: coarse settings for tests).
MAX_LIST = 6
OFFSET_LIMIT_MM = 10.0
SHIFT_LIMIT_MM = 5.0


class JobCancelled(Exception):
    """Raised inside a running job when its cancel flag is seen at a progress callback."""


class WorkerStopping(Exception):
    """Raised inside a running job at a progress callback once the worker was asked to stop."""


#: Set by ``cryoneuro worker`` on SIGTERM: the running job stops at its next progress
#: callback and goes back to the queue. A flag, not an exception thrown from the signal
#: handler, so no library code is interrupted halfway (an exception raised asynchronously
#: can land anywhere, including in code that swallows it).
STOP = threading.Event()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:120]


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes; every registry time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _site_id(session: Session, procedure_id: int) -> int | None:
    return session.scalar(
        select(Participant.site_id)
        .join(Procedure, Procedure.participant_id == Participant.id)
        .where(Procedure.id == procedure_id)
    )


def _event(
    session: Session, actor: Actor | None, action: str, job: Job, details: dict | None = None
) -> None:
    log_event(
        session,
        actor,
        action,
        table="job",
        row_id=str(job.id),
        details={"kind": job.kind, "procedure_id": job.procedure_id, **(details or {})},
        site_id=_site_id(session, job.procedure_id),
        username=None if actor is not None else "worker",
    )


# --- parameters ------------------------------------------------------------------------------


def _numbers(value: Any, field: str, low: float, high: float) -> list[float]:
    if isinstance(value, str):
        value = [v for v in (p.strip() for p in value.split(",")) if v]
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= MAX_LIST:
        raise RegistryInputError(f"{field}: give 1 to {MAX_LIST} numbers", field)
    out = []
    for v in value:
        try:
            x = float(v) if not isinstance(v, bool) else math.nan
        except (TypeError, ValueError):
            raise RegistryInputError(f"{field}: '{str(v)[:20]}' is not a number", field) from None
        if not math.isfinite(x) or not low <= x <= high:
            raise RegistryInputError(f"{field}: {x:g} is outside {low:g} to {high:g}", field)
        out.append(x)
    if len(set(out)) != len(out):
        raise RegistryInputError(f"{field}: a value appears twice", field)
    return out


def plan_parameters(raw: dict[str, Any]) -> dict[str, Any]:
    """Checked parameters of a plan job; blank fields take the planner's defaults
    (:mod:`cryoneuro.planning.pipeline`). :class:`RegistryInputError` names the field."""
    # imported on use (not a cycle): the planner loads Numba and the imaging readers, seconds
    # that the web process spends only when a plan job is checked or run
    from cryoneuro.planning import pipeline

    if str(raw.get("mode") or "") == "placement":
        return placement_parameters(raw)
    if str(raw.get("mode") or "") == "search":
        return search_parameters(raw)
    phantom = str(raw.get("phantom") or "").strip()
    if phantom not in PHANTOMS:
        raise RegistryInputError(
            f"phantom: choose one of {', '.join(PHANTOMS)} (got '{phantom[:20]}')", "phantom"
        )
    gases = raw.get("gases") or list(pipeline.GASES)
    if isinstance(gases, str):
        gases = [g.strip() for g in gases.split(",") if g.strip()]
    if not gases or len(gases) > len(pipeline.GASES) or len(set(gases)) != len(gases):
        raise RegistryInputError(f"gases: choose from {', '.join(pipeline.GASES)}", "gases")
    for gas in gases:
        if gas not in pipeline.GASES:
            raise RegistryInputError(
                f"gases: '{str(gas)[:20]}' is not one of {', '.join(pipeline.GASES)}", "gases"
            )
    longest = (MAX_PROTOCOL_S - pipeline.THAW_S) / 2
    drive = str(raw.get("drive") or pipeline.DRIVE)
    if drive not in ("device", "held"):
        raise RegistryInputError("drive: 'device' or 'held'", "drive")
    return {
        "phantom": phantom,
        "gases": list(gases),
        "offsets_mm": _numbers(
            raw.get("offsets_mm") or list(pipeline.OFFSETS_MM),
            "offsets_mm",
            -OFFSET_LIMIT_MM,
            OFFSET_LIMIT_MM,
        ),
        "shifts_mm": _numbers(
            raw.get("shifts_mm") or list(pipeline.SHIFTS_MM),
            "shifts_mm",
            -SHIFT_LIMIT_MM,
            SHIFT_LIMIT_MM,
        ),
        "freezes_s": _numbers(
            raw.get("freezes_s") or list(pipeline.FREEZE_S), "freezes_s", 10.0, longest
        ),
        "drive": drive,
    }


#: Simulation grids a workspace placement may ask for (mm): the planner's confirmation grid
#: and a coarser, faster one.
PLACEMENT_VOXELS_MM = (0.5, 1.0)


def vector3(value: Any, field: str) -> list[float]:
    """Three finite numbers (a point or a direction, LPS mm): "x,y,z" or a list. Shared by the
    plan jobs and the live preview API, so both refuse the same input with the same words."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise RegistryInputError(f"{field}: give three numbers x, y, z (mm)", field)
    out = []
    for v in value:
        try:
            x = math.nan if isinstance(v, bool) else float(v)
        except (TypeError, ValueError):
            raise RegistryInputError(f"{field}: '{str(v)[:20]}' is not a number", field) from None
        if not math.isfinite(x) or abs(x) > 1e4:
            raise RegistryInputError(f"{field}: each number must be finite and within ±10 m", field)
        out.append(x)
    return out


def _grid_and_drive(raw: dict[str, Any]) -> tuple[float, str]:
    """The simulation grid (one of :data:`PLACEMENT_VOXELS_MM`) and the probe drive of a
    workspace job, checked."""
    from cryoneuro.planning import pipeline

    voxel = _numbers([raw.get("voxel_mm") or 0.5], "voxel_mm", 0.5, 1.0)[0]
    if voxel not in PLACEMENT_VOXELS_MM:
        raise RegistryInputError("voxel_mm: 0.5 or 1", "voxel_mm")
    drive = str(raw.get("drive") or pipeline.DRIVE)
    if drive not in ("device", "held"):
        raise RegistryInputError("drive: 'device' or 'held'", "drive")
    return voxel, drive


def placement_parameters(raw: dict[str, Any]) -> dict[str, Any]:
    """Checked parameters of a workspace placement plan (planning/placement.py): the source
    (``case``: the procedure's uploaded images, or a bundled phantom), tip and direction (LPS
    mm, tip → handle), gas, freeze, optional protocol preset and the simulation grid."""
    from cryoneuro.input_checks import MAX_PROTOCOL_S
    from cryoneuro.planning import pipeline
    from cryoneuro.planning import protocols as presets

    source = str(raw.get("source") or "").strip()
    if source not in ("case", *PHANTOMS):
        raise RegistryInputError(
            f"source: 'case' (the uploaded images) or one of {', '.join(PHANTOMS)}", "source"
        )
    tip = vector3(raw.get("tip_mm"), "tip_mm")
    direction = vector3(raw.get("direction"), "direction")
    if math.hypot(*direction) < 1e-9:
        raise RegistryInputError("direction: a non-zero vector (tip → handle)", "direction")
    gas = str(raw.get("gas") or "argon")
    if gas not in pipeline.GASES:
        raise RegistryInputError(f"gas: choose from {', '.join(pipeline.GASES)}", "gas")
    longest = (MAX_PROTOCOL_S - pipeline.THAW_S) / 2
    freeze = _numbers([raw.get("freeze_s") or 120.0], "freeze_s", 10.0, longest)[0]
    protocol = str(raw.get("protocol") or "").strip() or None
    if protocol is not None:
        if protocol not in presets.PRESETS:
            raise RegistryInputError(
                f"protocol: choose one of {', '.join(presets.PRESETS)}", "protocol"
            )
        offered = [(g, float(f)) for g, f in presets.PRESETS[protocol].options]
        if (gas, freeze) not in offered:
            raise RegistryInputError(
                f"protocol: {protocol} offers "
                + ", ".join(f"{g} {f:g} s" for g, f in offered)
                + f"; not {gas} {freeze:g} s",
                "protocol",
            )
    voxel, drive = _grid_and_drive(raw)
    return {
        "mode": "placement",
        "source": source,
        "tip_mm": tip,
        "direction": direction,
        "gas": gas,
        "freeze_s": freeze,
        "protocol": protocol,
        "voxel_mm": voxel,
        "drive": drive,
    }


#: Search budgets a workspace search job may ask for (Sobol points, Nelder–Mead evaluations).
SEARCH_BUDGET_LIMITS = (1, 64)


def search_parameters(raw: dict[str, Any]) -> dict[str, Any]:
    """Checked parameters of a workspace search job: the planner's continuous search
    (:func:`cryoneuro.planning.pipeline.plan`) on the procedure's uploaded images, with an
    optional protocol preset, the search budget and the confirmation grid; its plan's probe
    becomes the workspace's proposal."""
    from cryoneuro.planning import protocols as presets
    from cryoneuro.planning import search

    protocol = str(raw.get("protocol") or "").strip() or None
    if protocol is not None and protocol not in presets.PRESETS:
        raise RegistryInputError(
            f"protocol: choose one of {', '.join(presets.PRESETS)}", "protocol"
        )
    lo, hi = SEARCH_BUDGET_LIMITS
    budget = {}
    for field, default in (("n_sobol", search.N_SOBOL), ("n_local", search.N_LOCAL)):
        value = _numbers([raw.get(field) or default], field, lo, hi)[0]
        if value != int(value):
            raise RegistryInputError(f"{field}: a whole number from {lo} to {hi}", field)
        budget[field] = int(value)
    voxel, drive = _grid_and_drive(raw)
    return {
        "mode": "search",
        "source": "case",
        "protocol": protocol,
        **budget,
        "voxel_mm": voxel,
        "drive": drive,
    }


# --- the web side: enqueue, read, cancel -----------------------------------------------------


def enqueue_plan(
    session: Session,
    actor: Actor,
    procedure_id: int,
    raw: dict[str, Any],
    reason: str = "",
    max_attempts: int = MAX_ATTEMPTS,
) -> Job:
    """Queue a plan of a bundled phantom for the procedure (write access to its site).

    Refused (409) while another plan job of the procedure is queued or running; a procedure
    that already has a plan bundle needs a reason (the finished bundle replaces it).
    """
    procedure, participant = plan_files.get_procedure(session, actor, procedure_id)
    actor.require_write(participant.site_id)
    if actor.user_id is None:  # the worker acts on behalf of the user who queued the job
        raise RegistryInputError("a plan job is queued by a registry user, not 'system'", "user")
    parameters = plan_parameters(raw)
    reason = (reason or "").strip()[:1000]
    has_bundle = session.scalar(
        select(plan_files.PlanFile.id).where(plan_files.PlanFile.procedure_id == procedure.id)
    )
    if has_bundle is not None and len(reason) < 3:
        raise RegistryInputError(
            "this procedure already has a plan bundle: give a reason for replacing it", "reason"
        )
    active = session.scalar(
        select(Job.id).where(
            Job.procedure_id == procedure.id,
            Job.state.in_([JobState.queued.value, JobState.running.value]),
        )
    )
    if active is not None:
        raise ConflictError(f"plan job {active} of this procedure is still queued or running")
    job = Job(
        kind=JobKind.plan.value,
        procedure_id=procedure.id,
        parameters=parameters,
        reason=reason,
        state=JobState.queued.value,
        progress=0.0,
        message="queued",
        attempts=0,
        max_attempts=max_attempts,
        cancel_requested=False,
        created_by_id=actor.user_id,
        created_by=actor.username,
    )
    session.add(job)
    session.flush()
    _event(session, actor, "job-queue", job, {"parameters": parameters})
    return job


def get_job(session: Session, actor: Actor, procedure_id: int, job_id: int) -> Job:
    """A job of a procedure the actor may read (404 otherwise)."""
    procedure, _ = plan_files.get_procedure(session, actor, procedure_id)
    job = session.get(Job, job_id) if valid_id(job_id) else None
    if job is None or job.procedure_id != procedure.id:
        raise NotFoundError("no such job for this procedure")
    return job


def list_jobs(session: Session, actor: Actor, procedure_id: int, limit: int = 10) -> list[Job]:
    procedure, _ = plan_files.get_procedure(session, actor, procedure_id)
    return list(
        session.scalars(
            select(Job).where(Job.procedure_id == procedure.id).order_by(Job.id.desc()).limit(limit)
        )
    )


def cancel(session: Session, actor: Actor, procedure_id: int, job_id: int) -> Job:
    """Cancel a queued job now, or ask a running one to stop (409 when it has finished)."""
    _, participant = plan_files.get_procedure(session, actor, procedure_id)
    actor.require_write(participant.site_id)
    job = get_job(session, actor, procedure_id, job_id)
    session.refresh(job, with_for_update=True)
    if job.state in FINAL_STATES:
        raise ConflictError(f"job {job.id} has already ended ({job.state})")
    if job.state == JobState.queued:
        job.state = JobState.cancelled.value
        job.finished_at = utcnow()
        job.message = f"cancelled by {actor.username}"
        _event(session, actor, "job-cancel", job, {"was": "queued"})
    else:
        job.cancel_requested = True
        job.message = f"cancel requested by {actor.username}"
        _event(session, actor, "job-cancel", job, {"was": "running", "requested": True})
    session.flush()
    return job


def status(job: Job) -> dict[str, Any]:
    """The job as JSON for the status route and the page."""

    def iso(value: dt.datetime | None) -> str | None:
        value = _aware(value)
        return value.isoformat() if value else None

    return {
        "id": job.id,
        "kind": job.kind,
        "procedure_id": job.procedure_id,
        "state": job.state,
        "progress": job.progress,
        "message": job.message,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "parameters": job.parameters,
        "created_by": job.created_by,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
    }


# --- the worker side -------------------------------------------------------------------------


def _release_stale(session: Session, now: dt.datetime) -> None:
    """Take back running jobs whose worker stopped heart-beating (each an attempt spent)."""
    cutoff = now - dt.timedelta(seconds=STALE_AFTER_S)
    stale = list(
        session.scalars(
            select(Job)
            .where(Job.state == JobState.running.value, Job.heartbeat_at < cutoff)
            .with_for_update(skip_locked=True)
        )
    )
    for job in stale:
        _retry_or_fail(
            session,
            job,
            f"the worker {job.worker} stopped responding (no progress for {STALE_AFTER_S} s)",
            retry=True,
            now=now,
        )


def claim(
    factory: sessionmaker[Session], worker: str | None = None, now: dt.datetime | None = None
) -> int | None:
    """Atomically take the oldest queued job; its id, or None when there is none."""
    worker = (worker or worker_name())[:120]
    now = now or utcnow()
    with transaction(factory) as session:
        _release_stale(session, now)
        session.flush()
        skipped: list[int] = []
        while True:
            job_id = session.scalar(
                select(Job.id)
                .where(Job.state == JobState.queued.value, Job.id.not_in(skipped or [-1]))
                .order_by(Job.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if job_id is None:
                return None
            taken = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == JobState.queued.value)
                .values(
                    state=JobState.running.value,
                    attempts=Job.attempts + 1,
                    started_at=now,
                    heartbeat_at=now,
                    worker=worker,
                    message="started",
                    progress=0.0,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken == 1:
                job = session.get(Job, job_id, populate_existing=True)
                _event(session, None, "job-start", job, {"worker": worker, "attempt": job.attempts})
                return job_id
            skipped.append(job_id)


def report_progress(
    factory: sessionmaker[Session], job_id: int, fraction: float, message: str
) -> None:
    """Record progress (and the heartbeat); :class:`JobCancelled` when a cancel was asked."""
    fraction = min(1.0, max(0.0, float(fraction))) if math.isfinite(fraction) else 0.0
    with transaction(factory) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.running.value)
            .values(progress=fraction, message=message[:200], heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        row = session.execute(select(Job.state, Job.cancel_requested).where(Job.id == job_id)).one()
    if row.cancel_requested or row.state != JobState.running:
        raise JobCancelled
    if STOP.is_set():
        raise WorkerStopping


def _retry_or_fail(
    session: Session, job: Job, error: str, *, retry: bool, now: dt.datetime | None = None
) -> None:
    job.error = error.splitlines()[0][:500] if error.strip() else "failed"
    job.worker = None
    if retry and job.attempts < job.max_attempts and not job.cancel_requested:
        job.state = JobState.queued.value
        job.message = f"attempt {job.attempts} of {job.max_attempts} failed; queued again"
        _event(session, None, "job-retry", job, {"attempt": job.attempts, "error": job.error})
    else:
        job.state = JobState.failed.value
        job.finished_at = now or utcnow()
        job.message = f"failed after {job.attempts} attempt{'s' if job.attempts != 1 else ''}"
        _event(session, None, "job-fail", job, {"attempt": job.attempts, "error": job.error})


def fail(factory: sessionmaker[Session], job_id: int, error: str, retry: bool) -> None:
    with transaction(factory) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is not None and job.state == JobState.running:
            _retry_or_fail(session, job, error, retry=retry)


def mark_cancelled(factory: sessionmaker[Session], job_id: int) -> None:
    with transaction(factory) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is not None and job.state == JobState.running:
            job.state = JobState.cancelled.value
            job.finished_at = utcnow()
            job.worker = None
            job.message = "cancelled while running; nothing stored"
            _event(session, None, "job-cancel", job, {"was": "running", "stopped": True})


def _job_actor(session: Session, job: Job) -> Actor:
    user = session.get(User, job.created_by_id)
    if user is None or not user.active:
        raise RegistryInputError(f"the user who queued the job ({job.created_by}) is inactive")
    return Actor.from_user(user)


def _phantom(name: str):
    # imported on use (not a cycle): the planner loads Numba and the imaging readers, seconds
    # that the web process spends only when a plan job is checked or run
    from cryoneuro.anatomy import phantoms

    return phantoms.morton_forefoot() if name == "morton" else phantoms.amputation_stump()


def run_plan(factory: sessionmaker[Session], job_id: int) -> None:
    """Plan the job's phantom and store the bundle with the procedure in one transaction."""
    # imported on use (not a cycle): the planner loads Numba and the imaging readers, seconds
    # that the web process spends only when a plan job is checked or run
    from cryoneuro.planning.pipeline import plan_phantom
    from cryoneuro.planning.volumes import BUNDLE_NAME

    with factory() as session:
        job = session.get(Job, job_id)
        params = dict(job.parameters)
        procedure_date = session.get(Procedure, job.procedure_id).procedure_date
    if params.get("mode") == "placement":
        _run_placement(factory, job_id, params, procedure_date)
        return
    if params.get("mode") == "search":
        _run_search(factory, job_id, params, procedure_date)
        return

    def progress(fraction: float, message: str) -> None:
        # the planner's fraction covers the simulations; building the phantom and storing
        # the bundle take the first and last few per cent
        report_progress(factory, job_id, 0.05 + 0.9 * fraction, message)

    report_progress(factory, job_id, 0.0, f"building the {params['phantom']} phantom")
    phantom = _phantom(params["phantom"])
    with tempfile.TemporaryDirectory(prefix="cryoneuro-job-") as out:
        plan_phantom(
            phantom,
            out,
            gases=tuple(params["gases"]),
            offsets_mm=tuple(params["offsets_mm"]),
            shifts_mm=tuple(params["shifts_mm"]),
            freezes_s=tuple(params["freezes_s"]),
            drive=params["drive"],
            procedure_date=procedure_date,
            progress=progress,
        )
        report_progress(factory, job_id, 0.97, "storing the plan bundle")
        content = (Path(out) / BUNDLE_NAME).read_bytes()
    _store(factory, job_id, content, f"plan of the {params['phantom']} phantom")


def _run_placement(
    factory: sessionmaker[Session], job_id: int, params: dict[str, Any], procedure_date: Any
) -> None:
    """The full 3D plan of the workspace's placement, on the uploaded case or a phantom."""
    from cryoneuro.planning.placement import plan_placement
    from cryoneuro.planning.volumes import BUNDLE_NAME

    def progress(fraction: float, message: str) -> None:
        report_progress(factory, job_id, 0.05 + 0.9 * fraction, message)

    if params["source"] == "case":
        report_progress(factory, job_id, 0.0, "reading the uploaded images")
        phantom, sha = _uploaded_case(factory, job_id)
        what = f"placement plan of the uploaded images ({sha[:12]})"
    else:
        report_progress(factory, job_id, 0.0, f"building the {params['source']} phantom")
        phantom = _phantom(params["source"])
        what = f"placement plan of the {params['source']} phantom"
    with tempfile.TemporaryDirectory(prefix="cryoneuro-job-") as out:
        plan_placement(
            phantom,
            out,
            tip_mm=params["tip_mm"],
            direction=params["direction"],
            gas=params["gas"],
            freeze_s=params["freeze_s"],
            protocol=params.get("protocol"),
            drive=params["drive"],
            voxel_mm=params["voxel_mm"],
            procedure_date=procedure_date,
            progress=progress,
        )
        report_progress(factory, job_id, 0.97, "storing the plan bundle")
        content = (Path(out) / BUNDLE_NAME).read_bytes()
    _store(factory, job_id, content, what)


def _uploaded_case(factory: sessionmaker[Session], job_id: int) -> tuple[Any, str]:
    """The plannable anatomy of the job's procedure images (with their accepted structures and
    any corrected centreline), and the images' hash."""
    from cryoneuro.registry.models.images import CaseImages
    from cryoneuro.registry.services import case_images

    with factory() as session:
        job = session.get(Job, job_id)
        row = session.scalar(select(CaseImages).where(CaseImages.procedure_id == job.procedure_id))
        if row is None or not row.accepted_roles:
            raise CryoneuroError("the procedure's images or accepted structures are gone")
        phantom = case_images.patient_case(
            row, neuroma_type=case_images.neuroma_type_of(session, job.procedure_id)
        ).phantom
        return phantom, row.image_sha256


def _run_search(
    factory: sessionmaker[Session], job_id: int, params: dict[str, Any], procedure_date: Any
) -> None:
    """The planner's continuous search on the uploaded case; the plan is stored as the
    procedure's bundle (and its probe is the workspace's proposal)."""
    from cryoneuro.planning.pipeline import plan_phantom
    from cryoneuro.planning.volumes import BUNDLE_NAME

    def progress(fraction: float, message: str) -> None:
        report_progress(factory, job_id, 0.05 + 0.9 * fraction, message)

    report_progress(factory, job_id, 0.0, "reading the uploaded images")
    phantom, sha = _uploaded_case(factory, job_id)
    with tempfile.TemporaryDirectory(prefix="cryoneuro-job-") as out:
        plan_phantom(
            phantom,
            out,
            protocol=params.get("protocol"),
            n_sobol=params["n_sobol"],
            n_local=params["n_local"],
            confirm_voxel_mm=params["voxel_mm"],
            drive=params["drive"],
            procedure_date=procedure_date,
            progress=progress,
        )
        report_progress(factory, job_id, 0.97, "storing the plan bundle")
        content = (Path(out) / BUNDLE_NAME).read_bytes()
    _store(factory, job_id, content, f"search plan of the uploaded images ({sha[:12]})")


def _store(factory: sessionmaker[Session], job_id: int, content: bytes, what: str) -> None:
    """Store the finished bundle with the procedure and close the job, in one transaction."""
    with transaction(factory) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job.cancel_requested or job.state != JobState.running:
            raise JobCancelled
        actor = _job_actor(session, job)
        reason = job.reason or f"plan job {job.id}: {what}"
        if job.reason:
            reason = f"plan job {job.id}: {job.reason}"
        rows = plan_files.attach_bundle(session, actor, job.procedure_id, content, reason)
        job.state = JobState.done.value
        job.progress = 1.0
        job.message = "done: plan bundle stored"
        job.finished_at = utcnow()
        job.worker = None
        _event(
            session,
            actor,
            "job-done",
            job,
            {"files": sorted(r.name for r in rows), "bundle_bytes": len(content)},
        )


#: What each job kind runs (the worker looks the kind up here).
HANDLERS: dict[str, Callable[[sessionmaker[Session], int], None]] = {
    JobKind.plan.value: run_plan,
}


def run_one(factory: sessionmaker[Session], worker: str | None = None) -> int | None:
    """Claim and run one job; its id (whatever its outcome), or None when none was queued."""
    job_id = claim(factory, worker)
    if job_id is not None:
        execute(factory, job_id)
    return job_id


def execute(factory: sessionmaker[Session], job_id: int) -> None:
    """Run a claimed job to its end: done, queued again, failed or cancelled."""
    with factory() as session:
        kind = session.get(Job, job_id).kind
    try:
        HANDLERS[kind](factory, job_id)
    except JobCancelled:
        mark_cancelled(factory, job_id)
    except WorkerStopping:
        fail(factory, job_id, "the worker was stopped during the job", retry=True)
    except CryoneuroError as exc:
        # a user error: the same input fails the same way, so no retry
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(factory, job_id, text, retry=False)
    except Exception as exc:
        log.error("job %s failed:\n%s", job_id, traceback.format_exc())
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        fail(factory, job_id, f"{type(exc).__name__}: {first}".rstrip(": "), retry=True)
    except BaseException:
        # interrupted (Ctrl-C, SIGTERM): give the job back, counted as an attempt
        fail(factory, job_id, "the worker was stopped during the job", retry=True)
        raise
