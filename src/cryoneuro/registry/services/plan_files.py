"""Plan bundles: validate an uploaded .zip, store its files with the procedure, serve them.

A bundle (made by :func:`cryoneuro.planning.volumes.bundle_plan`) holds ``plan.json`` and
optionally ``report.html``, ``report.pdf`` and three NIfTI volumes on one grid. Everything is
checked before anything is stored, and the files, ``procedure.plan`` and
``procedure.predicted_relief_days`` change in the caller's one transaction (audited).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.errors import InputError
from cryoneuro.planning.plan import Plan
from cryoneuro.registry.audit import acting
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import NotFoundError, RegistryInputError
from cryoneuro.registry.models import Participant, Procedure
from cryoneuro.registry.models.files import PlanFile
from cryoneuro.registry.services.participants import get_participant, valid_id

#: Upload limits (the zip itself, and the sum of the files in it).
MAX_BUNDLE_BYTES = 50 * 1024 * 1024
MAX_FILES_BYTES = 50 * 1024 * 1024
#: Largest NIfTI voxel array (dimensions × bytes per voxel, from the header, checked before
#: decompressing): 64 MiB is 16.7 million float32 voxels (256³, or a 512 × 512 × 64 CT crop);
#: the bundled phantoms' grids are 100 × 80 × 60 and 120³ (7 MB). Three 500³ volumes (the
#: review's 2 MB zip that stalled the server) are refused from their 352-byte headers.
MAX_VOLUME_BYTES = 64 * 1024 * 1024
#: NIfTI-1 header plus the 4-byte extension flag (nibabel reads this much).
NIFTI_HEADER_BYTES = 352
MEDIA_TYPES = {
    "plan.json": "application/json",
    "report.html": "text/html; charset=utf-8",
    "report.pdf": "application/pdf",
    "image.nii.gz": "application/gzip",
    "min_temperature.nii.gz": "application/gzip",
    "iceball_labels.nii.gz": "application/gzip",
}
VOLUMES = ("image.nii.gz", "min_temperature.nii.gz", "iceball_labels.nii.gz")
FIELD = "bundle"


@dataclass
class BundleFile:
    name: str
    content: bytes

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.name]


@dataclass
class Bundle:
    files: dict[str, BundleFile]
    plan: dict[str, Any]
    predicted_relief_days: float | None
    shape: tuple[int, ...] | None = None


def _fail(message: str) -> RegistryInputError:
    return RegistryInputError(message, FIELD)


def _gunzip(data: bytes, name: str, limit: int) -> bytes:
    """Decompress at most ``limit`` bytes (never trust a gzip header's size)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error:
        raise _fail(f"{name} is not gzip-compressed NIfTI") from None
    if len(out) > limit or d.unconsumed_tail:
        raise _fail(f"{name} holds more data than its header declares")
    return out


def nifti_size_from_header(name: str, data: bytes) -> int:
    """Bytes the whole file decompresses to, from the header alone (only its first 352
    bytes are decompressed); refuses a volume whose voxels exceed :data:`MAX_VOLUME_BYTES`."""
    import nibabel as nib

    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = d.decompress(data, NIFTI_HEADER_BYTES)
    except zlib.error:
        raise _fail(f"{name} is not gzip-compressed NIfTI") from None
    try:
        header = nib.Nifti1Header.from_fileobj(io.BytesIO(head), check=False)
        shape = header.get_data_shape()
        itemsize = header.get_data_dtype().itemsize
        offset = int(header.get_data_offset())
    except Exception as exc:
        raise _fail(f"{name} has no readable NIfTI-1 header ({str(exc)[:120]})") from None
    voxel_bytes = int(np.prod([int(n) for n in shape], dtype=object)) * itemsize
    if voxel_bytes > MAX_VOLUME_BYTES:
        raise _fail(
            f"{name} declares {'×'.join(str(n) for n in shape)} voxels of {itemsize} "
            f"bytes ({voxel_bytes / 2**20:.0f} MiB), over the {MAX_VOLUME_BYTES // 2**20} "
            "MiB limit"
        )
    return max(offset, NIFTI_HEADER_BYTES) + voxel_bytes


def _read_nifti(name: str, data: bytes) -> Any:
    import nibabel as nib

    raw = _gunzip(data, name, nifti_size_from_header(name, data))
    try:
        img = nib.Nifti1Image.from_bytes(raw)
        array = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise _fail(f"{name} is not a readable NIfTI-1 image ({str(exc)[:120]})") from None
    if array.ndim != 3 or min(array.shape) < 1:
        raise _fail(f"{name} must be a 3-D volume (shape {array.shape})")
    return img, array


def validate_bundle(content: bytes) -> Bundle:
    """Check an uploaded bundle; :class:`RegistryInputError` (field ``bundle``) names the
    problem."""
    if not content:
        raise _fail("the bundle is empty: choose the plan_bundle.zip file")
    if len(content) > MAX_BUNDLE_BYTES:
        raise _fail(f"the bundle is larger than {MAX_BUNDLE_BYTES // 2**20} MB")
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
        raise _fail("not a zip file: upload the plan_bundle.zip made by cryoneuro") from None
    files: dict[str, BundleFile] = {}
    total = 0
    with archive:
        for info in infos:
            if info.is_dir():
                continue
            name = info.filename.rsplit("/", 1)[-1]
            if name not in MEDIA_TYPES:
                raise _fail(
                    f"unknown file '{info.filename[:80]}' in the bundle; allowed: "
                    + ", ".join(MEDIA_TYPES)
                )
            if name in files:
                raise _fail(f"'{name}' appears twice in the bundle")
            if info.flag_bits & 0x1:
                raise _fail(f"'{name}' is encrypted")
            total += info.file_size
            if total > MAX_FILES_BYTES:
                raise _fail(
                    f"the files in the bundle add up to more than {MAX_FILES_BYTES // 2**20} MB"
                )
            try:
                with archive.open(info) as handle:
                    data = handle.read(MAX_FILES_BYTES + 1)
            except (
                zipfile.BadZipFile,
                zlib.error,
                OSError,
                RuntimeError,
                NotImplementedError,
                EOFError,
            ):
                raise _fail(f"'{name}' cannot be read from the zip (corrupt?)") from None
            if len(data) > info.file_size:
                raise _fail(f"'{name}' is larger than the zip says")
            files[name] = BundleFile(name, data)
    if "plan.json" not in files:
        raise _fail("the bundle has no plan.json")
    try:
        text = files["plan.json"].content.decode("utf-8")
        plan = Plan.from_json(text)
    except UnicodeDecodeError:
        raise _fail("plan.json is not UTF-8 text") from None
    except InputError as exc:
        raise _fail(f"plan.json: {exc}") from None
    if "report.pdf" in files and not files["report.pdf"].content.startswith(b"%PDF"):
        raise _fail("report.pdf is not a PDF file")
    if "report.html" in files:
        try:
            files["report.html"].content.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail("report.html is not UTF-8 text") from None
    shape = _check_volumes(files)
    relief = plan.relief.get("median_days") if isinstance(plan.relief, dict) else None
    predicted = (
        float(relief)
        if isinstance(relief, int | float) and not isinstance(relief, bool) and 0 <= relief <= 3650
        else None
    )
    return Bundle(files, plan.model_dump(mode="json"), predicted, shape)


def _check_volumes(files: dict[str, BundleFile]) -> tuple[int, ...] | None:
    present = [n for n in VOLUMES if n in files]
    if not present:
        return None
    if "image.nii.gz" not in files:
        raise _fail("the bundle has volumes but no image.nii.gz to show them on")
    for name in present:  # every header checked before any volume is decompressed
        nifti_size_from_header(name, files[name].content)
    reference: tuple[str, tuple[int, ...], np.ndarray] | None = None
    for name in present:
        img, array = _read_nifti(name, files[name].content)
        if name == "min_temperature.nii.gz" and array.dtype.kind != "f":
            raise _fail(f"{name} must hold floating-point °C (got {array.dtype})")
        if name == "iceball_labels.nii.gz":
            if array.dtype != np.uint8:
                raise _fail(f"{name} must be uint8 (got {array.dtype})")
            if array.size and int(array.max()) > 3:
                raise _fail(f"{name} may only hold labels 0–3 (found {int(array.max())})")
        affine = np.asarray(img.affine, dtype=float)
        if reference is None:
            reference = (name, array.shape, affine)
            continue
        ref_name, ref_shape, ref_affine = reference
        if array.shape != ref_shape:
            raise _fail(
                f"{name} has shape {array.shape} but {ref_name} has {ref_shape}: the "
                "volumes must share one grid"
            )
        if not np.allclose(affine, ref_affine, atol=1e-4):
            raise _fail(
                f"{name} and {ref_name} have different affines (voxel size, origin or "
                "orientation): the volumes must share one grid"
            )
    assert reference is not None
    return reference[1]


def _procedure(session: Session, actor: Actor, procedure_id: int) -> tuple[Procedure, Participant]:
    procedure = session.get(Procedure, procedure_id) if valid_id(procedure_id) else None
    if procedure is None:
        raise NotFoundError("no such procedure at your sites")
    participant = get_participant(session, actor, procedure.participant_id)
    return procedure, participant


def get_procedure(
    session: Session, actor: Actor, procedure_id: int
) -> tuple[Procedure, Participant]:
    """The procedure and its participant, if at one of the actor's sites (404 otherwise)."""
    return _procedure(session, actor, procedure_id)


def attach_bundle(
    session: Session, actor: Actor, procedure_id: int, content: bytes, reason: str = ""
) -> list[PlanFile]:
    """Validate and store a plan bundle; sets the procedure's plan and predicted relief.

    Replacing an existing bundle needs a ``reason`` (the old files' deletion is audited).
    """
    procedure, participant = _procedure(session, actor, procedure_id)
    actor.require_write(participant.site_id)
    existing = list(session.scalars(select(PlanFile).where(PlanFile.procedure_id == procedure.id)))
    reason = (reason or "").strip()[:1000]
    if existing and len(reason) < 3:
        raise RegistryInputError(
            "this procedure already has a plan bundle: give a reason for replacing it", "reason"
        )
    bundle = validate_bundle(content)
    reason = reason or "plan bundle uploaded (plan and predicted relief from plan.json)"
    rows: list[PlanFile] = []
    with acting(session, actor, reason=reason):
        for row in existing:
            session.delete(row)
        session.flush()
        for f in bundle.files.values():
            row = PlanFile(
                procedure_id=procedure.id,
                name=f.name,
                media_type=f.media_type,
                size=len(f.content),
                sha256=hashlib.sha256(f.content).hexdigest(),
                content=f.content,
                created_by=actor.username,
            )
            session.add(row)
            rows.append(row)
        procedure.plan = bundle.plan
        if bundle.predicted_relief_days is not None:
            procedure.predicted_relief_days = bundle.predicted_relief_days
    return rows


def list_files(session: Session, actor: Actor, procedure_id: int) -> list[PlanFile]:
    procedure, _ = _procedure(session, actor, procedure_id)
    return list(
        session.scalars(
            select(PlanFile).where(PlanFile.procedure_id == procedure.id).order_by(PlanFile.id)
        )
    )


def get_file(session: Session, actor: Actor, procedure_id: int, name: str) -> PlanFile:
    """One stored file (bytes loaded), for readers at the procedure's site."""
    procedure, _ = _procedure(session, actor, procedure_id)
    row = session.scalar(
        select(PlanFile).where(PlanFile.procedure_id == procedure.id, PlanFile.name == name[:100])
    )
    if row is None:
        raise NotFoundError(f"this procedure has no file '{name[:60]}'")
    return row
