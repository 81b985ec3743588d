"""Live placement preview for the planning workspace (issue 18 item 3, server side).

``GET /procedures/{id}/plan/preview?tip=x,y,z&direction=x,y,z`` (or ``POST`` with a JSON body
``{"tip": [...], "direction": [...]}``) answers the readout of
:meth:`cryoneuro.planning.preview.PlacementPreview.readout` — nerve block, neurotmesis risk,
skin minimum, margin and distance, isotherm volumes, warnings — for one probe pose on the
bundled phantom the procedure's plan used (or ``phantom=morton|stump``). Coordinates are the
plan's (LPS mm); ``direction`` points from the tip to the handle and need not be unit length.

Why a per-process cache: building a :class:`PlacementPreview` (the phantom, its 0.5 mm region
of interest and the r–z table) takes seconds, a readout a fraction of a second; the workspace
asks for a readout on every probe move. So each (phantom, gas, freeze) is built once per
process and kept in a small LRU cache (:func:`functools.lru_cache`); a lock makes concurrent
first requests build it once. Reading a procedure's preview needs read access to its site,
like its page.

**Uploaded images.** When the procedure has a patient's images with accepted structures
(registry/services/case_images.py) and the request names no phantom, the preview is built on
the patient's anatomy and cached per (procedure, stored files' SHA-256, accepted roles, gas,
freeze) in the same way (:func:`case_preview`): a new upload or new roles give a new key.
With ``"iceball": true`` the answer carries the iceball labels (1: ≤ 0 °C, 2: ≤ −20 °C,
3: ≤ −40 °C) as a base64 gzip NIfTI on the preview's grid (``iceball_nifti``), for the
workspace's viewer; the field is placed once for both.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cryoneuro._json import json_safe
from cryoneuro.registry.errors import RegistryError, RegistryInputError
from cryoneuro.registry.services import plan_files
from cryoneuro.registry.services.jobs import vector3
from cryoneuro.web.deps import ApiActor, PageActor, SessionDep

router = APIRouter(include_in_schema=False)

#: Phantom parameter → the bundled phantom's name (the ``case`` a plan of it records).
PHANTOMS = {"morton": "morton_forefoot", "stump": "amputation_stump"}
#: Preview builds kept per process (each holds a phantom's grids: tens of MB).
CACHE_SIZE = 4
DEFAULT_GAS = "argon"
DEFAULT_FREEZE_S = 120.0
_build_lock = threading.Lock()


@lru_cache(maxsize=CACHE_SIZE)
def _cached(phantom: str, gas: str, freeze_s: float):
    from cryoneuro.anatomy import phantoms
    from cryoneuro.planning.preview import PlacementPreview

    build = phantoms.morton_forefoot if phantom == "morton" else phantoms.amputation_stump
    return PlacementPreview(build(), gas=gas, freeze_s=freeze_s)


def placement_preview(phantom: str, gas: str, freeze_s: float):
    """The process's :class:`PlacementPreview` for these settings (built on first use)."""
    with _build_lock:
        return _cached(phantom, gas, float(freeze_s))


_case_cache: OrderedDict[tuple, Any] = OrderedDict()


def case_preview(key: tuple, build_phantom: Callable[[], Any], gas: str, freeze_s: float):
    """The :class:`PlacementPreview` of an uploaded case, built once per ``key`` + settings
    (least recently used dropped beyond :data:`CACHE_SIZE`)."""
    from cryoneuro.planning.preview import PlacementPreview

    full = (*key, gas, float(freeze_s))
    with _build_lock:
        if full in _case_cache:
            _case_cache.move_to_end(full)
            return _case_cache[full]
        preview = PlacementPreview(build_phantom(), gas=gas, freeze_s=float(freeze_s))
        _case_cache[full] = preview
        while len(_case_cache) > CACHE_SIZE:
            _case_cache.popitem(last=False)
        return preview


def _settings_for(
    plan: dict[str, Any], raw: dict[str, Any], has_case: bool = False
) -> tuple[str, str, float]:
    """Phantom, gas and freeze: the request's, else the procedure's plan's, else defaults.
    The phantom is ``"case"`` when the procedure has accepted images and none is named."""
    from cryoneuro.input_checks import MAX_PROTOCOL_S
    from cryoneuro.planning import pipeline

    phantom = raw.get("phantom")
    if phantom in (None, "") and has_case:
        phantom = "case"
    elif phantom in (None, ""):
        case = plan.get("case") or (plan.get("inputs") or {}).get("phantom")
        phantom = next((k for k, v in PHANTOMS.items() if v == case), None)
        if phantom is None:
            raise RegistryInputError(
                "phantom: this procedure's plan is not of a bundled phantom; give "
                "phantom=morton or phantom=stump",
                "phantom",
            )
    if phantom not in PHANTOMS and not (has_case and phantom == "case"):
        raise RegistryInputError(
            f"phantom: choose one of {', '.join(PHANTOMS)} (got '{str(phantom)[:20]}')", "phantom"
        )
    probes = plan.get("probes") or [{}]
    gas = raw.get("gas") or (probes[0] or {}).get("gas") or DEFAULT_GAS
    if gas not in pipeline.GASES:
        raise RegistryInputError(
            f"gas: '{str(gas)[:20]}' is not one of {', '.join(pipeline.GASES)}", "gas"
        )
    freeze = raw.get("freeze_s")
    if freeze in (None, ""):
        freezes = [
            p.get("duration_s") for p in plan.get("protocol") or [] if p.get("kind") == "freeze"
        ]
        freeze = freezes[0] if freezes else DEFAULT_FREEZE_S
    try:
        freeze_s = math.nan if isinstance(freeze, bool) else float(freeze)
    except (TypeError, ValueError):
        raise RegistryInputError("freeze_s: not a number", "freeze_s") from None
    longest = (MAX_PROTOCOL_S - pipeline.THAW_S) / 2
    if not math.isfinite(freeze_s) or not 10.0 <= freeze_s <= longest:
        raise RegistryInputError(f"freeze_s: give 10 to {longest:g} s", "freeze_s")
    return phantom, gas, freeze_s


def preview_readout(
    plan: dict[str, Any],
    raw: dict[str, Any],
    case: tuple[tuple, Callable[[], Any]] | None = None,
) -> dict[str, Any]:
    """Validate the request and compute the readout (JSON-safe: NaN/inf become null).
    ``case``: (cache key, phantom builder) of the procedure's accepted images, if any."""
    import time

    tip = vector3(raw.get("tip"), "tip")
    direction = vector3(raw.get("direction"), "direction")
    if math.hypot(*direction) < 1e-9:
        raise RegistryInputError("direction: must be a non-zero vector (tip → handle)", "direction")
    phantom, gas, freeze_s = _settings_for(plan, raw, has_case=case is not None)
    if phantom == "case" and case is not None:
        preview = case_preview(case[0], case[1], gas, freeze_s)
    else:
        preview = placement_preview(phantom, gas, freeze_s)
    grid = preview.grid
    lo = list(grid.origin_mm)
    hi = [o + s for o, s in zip(grid.origin_mm, grid.size_mm, strict=True)]
    if not all(a <= t <= b for a, t, b in zip(lo, tip, hi, strict=True)):
        box = ", ".join(f"{a:.1f}–{b:.1f}" for a, b in zip(lo, hi, strict=True))
        raise RegistryInputError(
            f"tip: outside the {phantom} planning grid (x, y, z mm: {box})", "tip"
        )
    placed = time.perf_counter()
    field = preview.field(tip, direction)
    readout = asdict(preview.judge(field, placed))
    extra: dict[str, Any] = {}
    if raw.get("iceball") in (True, "1", "true"):
        extra["iceball_nifti"] = _iceball_nifti(field, grid)
    return json_safe(
        {
            **readout,
            **extra,
            "phantom": phantom,
            "gas": gas,
            "freeze_s": freeze_s,
            "tip_mm": tip,
            "direction": direction,
        }
    )


def _iceball_nifti(field: Any, grid: Any) -> str:
    """Iceball labels 0–3 as a base64 gzip NIfTI (RAS affine of the LPS grid, as the plan's
    volumes: planning/volumes.py)."""
    import base64
    import gzip

    import nibabel as nib
    import numpy as np

    from cryoneuro.planning.volumes import grid_affine, iceball_labels

    affine = grid_affine(grid)
    img = nib.Nifti1Image(iceball_labels(np.nan_to_num(field, nan=99.0)), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return base64.b64encode(gzip.compress(img.to_bytes(), compresslevel=1)).decode("ascii")


def _case_of(session: Any, actor: Any, procedure_id: int) -> tuple[tuple, Callable[[], Any]] | None:
    """(cache key, builder) of the procedure's uploaded images with accepted structures."""
    from cryoneuro.registry.services import case_images

    row = case_images.get_case(session, actor, procedure_id)
    if row is None or not row.accepted_roles:
        return None
    neuroma = case_images.neuroma_type_of(session, procedure_id)
    key = (
        procedure_id,
        row.image_sha256,
        row.segmentation_sha256,
        tuple(sorted(row.accepted_roles.items())),
        neuroma,
        None if not row.centreline_mm else tuple(map(tuple, row.centreline_mm)),
    )

    def build() -> Any:  # the bytes are read only when the preview is not cached yet
        return case_images.patient_case(row, neuroma_type=neuroma).phantom

    return key, build


def _json_error(exc: RegistryError) -> JSONResponse:
    """Errors as JSON (the app answers errors outside /api with an HTML page): the
    workspace's script reads ``field`` to mark the input."""
    field = exc.field if isinstance(exc, RegistryInputError) else None
    return JSONResponse({"detail": str(exc), "field": field}, status_code=exc.status_code)


@router.get("/procedures/{procedure_id}/plan/preview")
def preview_get(
    procedure_id: int, request: Request, session: SessionDep, actor: PageActor
) -> JSONResponse:
    try:
        procedure, _ = plan_files.get_procedure(session, actor, procedure_id)
        case = _case_of(session, actor, procedure.id)
        return JSONResponse(preview_readout(procedure.plan or {}, dict(request.query_params), case))
    except RegistryError as exc:
        return _json_error(exc)


@router.post("/procedures/{procedure_id}/plan/preview")
async def preview_post(procedure_id: int, request: Request, actor: ApiActor) -> JSONResponse:
    from starlette.concurrency import run_in_threadpool

    try:
        raw = await request.json()
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        return _json_error(RegistryInputError("body: send a JSON object", "body"))

    def work() -> dict[str, Any]:
        with request.app.state.session_factory() as session:
            procedure, _ = plan_files.get_procedure(session, actor, procedure_id)
            # the session stays open so an uncached case preview can read the stored files
            return preview_readout(
                procedure.plan or {}, raw, _case_of(session, actor, procedure.id)
            )

    try:
        return JSONResponse(await run_in_threadpool(work))
    except RegistryError as exc:
        return _json_error(exc)
