"""A patient's image and segmentation onto a procedure: validate, de-identify, store, read back.

Accepted uploads (the readers of issue 9, :mod:`cryoneuro.anatomy`):

* **image**: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``), or a zipped DICOM series (``.zip``);
* **segmentation**: a 3D Slicer ``.seg.nrrd``, a DICOM SEG (``.dcm``), or an integer label map
  (NIfTI/NRRD) with its label names (one ``value name`` per line, as a Slicer colour table).

Checks before anything is read in full, as for plan bundles (services/plan_files.py): the two
uploads together at most :data:`MAX_UPLOAD_BYTES` (one request, as a bundle); the voxel array
declared by the header (NIfTI/NRRD by SimpleITK's header-only read, DICOM by Rows × Columns ×
frames × bits) at most :data:`~cryoneuro.registry.services.plan_files.MAX_VOLUME_BYTES`; a
zip's members counted and their declared sizes summed before extraction, under names we choose
(no path from the zip is used). Then the files are read with the anatomy readers, and the
segmentation must lie on the image's voxel grid: the same spacing and axes, its origin on an
image voxel and its extent inside the image (a Slicer segmentation cropped to its extent is
padded onto the image; a label map must match exactly). Every refusal is one line naming the
file and what is wrong (422).

**De-identification.** DICOM files are de-identified with pydicom before they are written to a
temporary file to be read (:func:`~cryoneuro.registry.services.deidentify.deidentify`: the
patient's name, identifiers, birth date and the other identifying attributes, in nested
sequences too, and every private tag). What is stored is canonical and carries no DICOM
header at all: the image as gzip NIfTI made from the voxel array and its geometry only, the
segmentation as a ``.seg.nrrd`` of named masks. The removed attribute
keywords are recorded with the row.

**Audit.** The row (models/images.py) is audited as any record: who uploaded, the formats,
names, sizes and SHA-256 of the upload and of the stored files; accepting the structures is an
audited change of ``accepted_roles``.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cryoneuro.errors import InputError
from cryoneuro.registry.audit import acting
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.errors import NotFoundError, RegistryInputError
from cryoneuro.registry.models.images import CaseImages
from cryoneuro.registry.services import plan_files
from cryoneuro.registry.services.deidentify import deidentify

#: Each uploaded file (the image, a zipped series, the segmentation), as a plan bundle.
MAX_UPLOAD_BYTES = plan_files.MAX_BUNDLE_BYTES
MAX_VOLUME_BYTES = plan_files.MAX_VOLUME_BYTES
#: Files in a zipped DICOM series (a 2000-slice CT is far beyond a forefoot or a stump).
MAX_SERIES_FILES = 2000
#: Geometry tolerances: as anatomy/io.py's alignment check.
ALIGN_TOL_MM = 1e-3
DIRECTION_TOL = 1e-4
ROLE_CHOICES = ("target", "nerve", "skin", "artery", "bone", "ignore")
IMAGE_NAME = "image.nii.gz"
SEGMENTATION_NAME = "segmentation.seg.nrrd"


def _fail(message: str, field: str) -> RegistryInputError:
    return RegistryInputError(message[:400], field)


@dataclass
class Upload:
    """One uploaded file as the form sent it."""

    name: str
    content: bytes

    @property
    def label(self) -> str:
        return (self.name or "the file")[:80]


def _read_dicom(data: bytes, label: str, field: str) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, AttributeError):
        raise _fail(f"{label}: not a readable DICOM file", field) from None


def _dicom_voxel_bytes(ds: Any) -> int:
    rows = int(getattr(ds, "Rows", 0) or 0)
    cols = int(getattr(ds, "Columns", 0) or 0)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    bits = int(getattr(ds, "BitsAllocated", 16) or 16)
    return rows * cols * frames * max(bits, 8) // 8


# --- format and header checks ----------------------------------------------------------------


def image_format(upload: Upload) -> str:
    """``nifti``, ``nrrd`` or ``dicom-series`` from the name and the first bytes."""
    name = upload.name.lower()
    head = upload.content[:4]
    if name.endswith(".zip") or head == b"PK\x03\x04":
        return "dicom-series"
    if name.endswith(".seg.nrrd"):
        raise _fail(
            f"{upload.label}: a 3D Slicer segmentation goes in the segmentation field", "image"
        )
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith(".nrrd"):
        return "nrrd"
    if name.endswith(".dcm") or upload.content[128:132] == b"DICM":
        raise _fail(f"{upload.label}: a single DICOM file; zip the whole series (.zip)", "image")
    raise _fail(
        f"{upload.label}: not an image: upload NIfTI (.nii, .nii.gz), NRRD (.nrrd) or a zipped "
        "DICOM series (.zip)",
        "image",
    )


def segmentation_format(upload: Upload) -> str:
    """``slicer-seg``, ``dicom-seg`` or ``label-map``."""
    name = upload.name.lower()
    if name.endswith(".seg.nrrd"):
        return "slicer-seg"
    if name.endswith(".dcm") or upload.content[128:132] == b"DICM":
        return "dicom-seg"
    if name.endswith((".nii", ".nii.gz", ".nrrd")):
        return "label-map"
    raise _fail(
        f"{upload.label}: not a segmentation: upload a 3D Slicer .seg.nrrd, a DICOM SEG (.dcm) "
        "or a label map (.nii, .nii.gz, .nrrd) with its label names",
        "segmentation",
    )


def _check_size(upload: Upload, field: str) -> None:
    if not upload.content:
        raise _fail(f"{field}: the file is empty or missing: choose a file", field)
    if len(upload.content) > MAX_UPLOAD_BYTES:
        raise _fail(f"{upload.label}: larger than {MAX_UPLOAD_BYTES // 2**20} MB", field)


def _check_header(path: Path, label: str, field: str) -> None:
    """Header-only read (SimpleITK): a 3-D scalar volume within :data:`MAX_VOLUME_BYTES`."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise _fail(
            f"{label}: no readable image header (corrupt, or not this format)", field
        ) from None
    size = reader.GetSize()
    if len(size) not in (2, 3) or min(size) < 1:
        raise _fail(f"{label}: must be a 3-D volume (size {size})", field)
    if reader.GetNumberOfComponents() != 1:
        raise _fail(f"{label}: has {reader.GetNumberOfComponents()} components per voxel", field)
    itemsize = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    bytes_per = int(sitk.Image([1, 1], reader.GetPixelID()).GetSizeOfPixelComponent())
    total = int(np.prod([int(n) for n in size], dtype=object)) * bytes_per
    if total > MAX_VOLUME_BYTES:
        raise _fail(
            f"{label}: declares {'×'.join(str(n) for n in size)} voxels of {itemsize} "
            f"({total / 2**20:.0f} MiB), over the {MAX_VOLUME_BYTES // 2**20} MiB limit",
            field,
        )


def _suffix(fmt: str, name: str) -> str:
    if fmt == "nifti" or (fmt == "label-map" and name.lower().endswith((".nii", ".nii.gz"))):
        return ".nii.gz" if name.lower().endswith(".gz") else ".nii"
    return ".nrrd"


def _write_dicom_series(upload: Upload, folder: Path) -> list[str]:
    """Extract a zipped series (checked first), de-identifying each file; returns the
    attributes removed."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(upload.content))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
        raise _fail(f"{upload.label}: not a zip file (a DICOM series zipped)", "image") from None
    if not infos:
        raise _fail(f"{upload.label}: the zip is empty", "image")
    if len(infos) > MAX_SERIES_FILES:
        raise _fail(f"{upload.label}: more than {MAX_SERIES_FILES} files in the zip", "image")
    if sum(i.file_size for i in infos) > MAX_VOLUME_BYTES + MAX_UPLOAD_BYTES:
        raise _fail(f"{upload.label}: the files in the zip are too large together", "image")
    removed: set[str] = set()
    voxels = 0
    with archive:
        for n, info in enumerate(infos):
            if info.flag_bits & 0x1:
                raise _fail(f"{upload.label}: '{info.filename[:60]}' is encrypted", "image")
            try:
                data = archive.read(info)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError):
                raise _fail(
                    f"{upload.label}: '{info.filename[:60]}' cannot be read", "image"
                ) from None
            if info.filename.rsplit("/", 1)[-1].upper() == "DICOMDIR":
                continue
            ds = _read_dicom(data, f"{upload.label}: '{info.filename[:60]}'", "image")
            voxels += _dicom_voxel_bytes(ds)
            if voxels > MAX_VOLUME_BYTES:
                raise _fail(
                    f"{upload.label}: the series' voxels exceed the "
                    f"{MAX_VOLUME_BYTES // 2**20} MiB limit",
                    "image",
                )
            removed.update(deidentify(ds))
            ds.save_as(folder / f"{n:05d}.dcm")  # our name: no path from the zip is used
    return sorted(removed)


@dataclass
class Checked:
    """A validated upload, canonical and ready to store."""

    image_format: str
    segmentation_format: str
    image: bytes
    segmentation: bytes
    geometry: dict[str, Any]
    segments: list[str]
    proposed_roles: dict[str, str]
    deidentified: list[str]


def _read_image(upload: Upload, work: Path) -> tuple[str, Any, list[str]]:
    from cryoneuro.anatomy.io import read_sitk

    _check_size(upload, "image")
    fmt = image_format(upload)
    removed: list[str] = []
    if fmt == "dicom-series":
        folder = work / "series"
        folder.mkdir()
        removed = _write_dicom_series(upload, folder)
        path = folder
    else:
        path = work / f"image{_suffix(fmt, upload.name)}"
        path.write_bytes(upload.content)
        _check_header(path, upload.label, "image")
    try:
        return fmt, read_sitk(path), removed
    except InputError as exc:
        raise _fail(f"{upload.label}: {_after_path(str(exc))}", "image") from None


def _after_path(message: str) -> str:
    """An anatomy error without the temporary path it names (the user never saw it)."""
    return re.sub(r"^/\S*?: ", "", message.splitlines()[0])


def _read_segmentation(upload: Upload, label_names: str, work: Path) -> tuple[str, Any, list[str]]:
    from cryoneuro.anatomy.segments import Segments

    _check_size(upload, "segmentation")
    fmt = segmentation_format(upload)
    removed: list[str] = []
    try:
        if fmt == "slicer-seg":
            path = work / "upload.seg.nrrd"
            path.write_bytes(upload.content)
            _check_header(path, upload.label, "segmentation")
            from cryoneuro.anatomy.slicer import read_seg_nrrd

            return fmt, read_seg_nrrd(path), removed
        if fmt == "dicom-seg":
            import pydicom  # noqa: F401  (the reader's dependency)

            ds = _read_dicom(upload.content, upload.label, "segmentation")
            if _dicom_voxel_bytes(ds) // 8 > MAX_VOLUME_BYTES:
                raise _fail(f"{upload.label}: its frames exceed the volume limit", "segmentation")
            removed = deidentify(ds)
            path = work / "upload-seg.dcm"
            ds.save_as(path)
            from cryoneuro.anatomy.dicom_seg import read_dicom_seg

            return fmt, read_dicom_seg(path), removed
        path = work / f"labels{_suffix(fmt, upload.name)}"
        path.write_bytes(upload.content)
        _check_header(path, upload.label, "segmentation")
        names = _label_names(label_names)
        from cryoneuro.anatomy.io import load_anatomy

        anatomy = load_anatomy(path, label_names=names)
        present = {int(v) for v in np.unique(anatomy.labels)} - {0}
        unnamed = sorted(present - set(names))
        if unnamed:
            raise _fail(
                f"label_names: label values {unnamed} of {upload.label} have no name", "label_names"
            )
        masks = {names[v]: anatomy.labels == v for v in sorted(names) if v in present and v != 0}
        return (
            fmt,
            Segments(
                masks,
                anatomy.spacing_mm,
                anatomy.origin_mm,
                anatomy.direction,
                source=upload.label,
            ),
            removed,
        )
    except RegistryInputError:
        raise
    except InputError as exc:
        raise _fail(f"{upload.label}: {_after_path(str(exc))}", "segmentation") from None


def _label_names(text: str) -> dict[int, str]:
    from cryoneuro.anatomy.labels import LabelTableError, _parse_text_table

    if not (text or "").strip():
        raise _fail(
            "label_names: a label map needs its label names, one 'value name' per line "
            "(e.g. '1 neuroma')",
            "label_names",
        )
    try:
        return _parse_text_table(text, "label names")
    except LabelTableError as exc:
        raise _fail(f"label_names: {exc}", "label_names") from None


def _triple(values: Any, digits: int = 4) -> str:
    return "(" + ", ".join(f"{round(float(v), digits):g}" for v in values) + ")"


def check_geometry(segments: Any, image: Any, fmt: str, label: str) -> None:
    """The segmentation must lie on the image's voxel grid (see module doc).

    With ``A`` the voxel-index → LPS mm affines, ``M = A_image⁻¹ · A_segmentation`` maps a
    segmentation voxel to image indices: its linear part must be a signed permutation (the
    same spacing along the same axes, in any order or sense: a DICOM SEG may store its
    frames in the other slice order), its translation whole voxels, and every corner inside
    the image. A label map must be the image's grid exactly (``M`` the identity, same size).
    """
    where = f"segmentation {label}"
    spacing_i = np.asarray(image.GetSpacing(), float)
    dir_i = np.asarray(image.GetDirection(), float).reshape(3, 3)
    a_img = np.eye(4)
    a_img[:3, :3] = dir_i * spacing_i
    a_img[:3, 3] = image.GetOrigin()
    m = np.linalg.solve(a_img, segments.affine())
    linear, index = m[:3, :3], m[:3, 3]
    steps = np.linalg.norm(linear, axis=0)
    if not np.allclose(steps, 1.0, atol=ALIGN_TOL_MM / spacing_i.min()):
        raise _fail(
            f"{where}: voxel spacing {_triple(segments.spacing_mm, 4)} mm differs from the "
            f"image's {_triple(spacing_i, 4)} mm: it must be drawn on this image",
            "segmentation",
        )
    if not np.allclose(np.abs(linear), np.round(np.abs(linear)), atol=1e-3):
        raise _fail(f"{where}: its axes (direction) differ from the image's", "segmentation")
    size_i = np.asarray(image.GetSize(), int)
    size_s = np.asarray(segments.shape, int)
    if fmt == "label-map" and (
        not np.array_equal(size_i, size_s)
        or not np.allclose(linear, np.eye(3), atol=1e-3)
        or not np.allclose(index, 0, atol=0.01)
    ):
        raise _fail(
            f"{where}: a label map must have the image's size {_triple(size_i)}, axes and "
            f"origin (it has {_triple(size_s)}, offset {_triple(index, 2)} voxels)",
            "segmentation",
        )
    if not np.allclose(index, np.round(index), atol=0.01):
        raise _fail(
            f"{where}: its origin is not on an image voxel (offset {_triple(index, 2)} "
            "voxels): it must be drawn on this image",
            "segmentation",
        )
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) * (size_s - 1)
    at = np.round(corners @ linear.T + index).astype(int)
    lo, hi = at.min(axis=0), at.max(axis=0)
    if (lo < 0).any() or (hi >= size_i).any():
        raise _fail(
            f"{where}: its extent (image voxels {_triple(lo)} to {_triple(hi)}) lies outside "
            f"the image's {_triple(size_i)}",
            "segmentation",
        )


def propose_roles(names: list[str]) -> dict[str, str]:
    """Each segment's role by the name rules of :mod:`cryoneuro.anatomy.segments` (a role, a
    tissue name, or ``""`` when no rule names it: the user must choose)."""
    from cryoneuro.anatomy.labels import DEFAULT_TISSUE_MAP
    from cryoneuro.anatomy.segments import ROLE_PATTERNS
    from cryoneuro.tissue import TISSUES

    out: dict[str, str] = {}
    for name in names:
        for role, pattern in ROLE_PATTERNS:
            if re.search(pattern, name, flags=re.IGNORECASE):
                out[name] = role
                break
        else:
            key = name.strip().lower().replace(" ", "_")
            out[name] = (
                DEFAULT_TISSUE_MAP.get(key, key)
                if (key in DEFAULT_TISSUE_MAP or key in TISSUES)
                else ""
            )
    return out


def validate_upload(image: Upload, segmentation: Upload, label_names: str = "") -> Checked:
    """Check and convert an upload; :class:`RegistryInputError` names the file and the problem."""
    import SimpleITK as sitk

    from cryoneuro.anatomy.segments import on_grid_of, same_grid
    from cryoneuro.anatomy.slicer import write_seg_nrrd

    if len(image.content) + len(segmentation.content) > MAX_UPLOAD_BYTES:
        raise _fail(
            f"the image and the segmentation add up to more than {MAX_UPLOAD_BYTES // 2**20} MB "
            "(crop the image to the region of the neuroma)",
            "image",
        )
    with tempfile.TemporaryDirectory(prefix="cryoneuro-upload-") as tmp:
        work = Path(tmp)
        img_fmt, img, removed_i = _read_image(image, work)
        seg_fmt, segs, removed_s = _read_segmentation(segmentation, label_names, work)
        check_geometry(segs, img, seg_fmt, segmentation.label)
        if not same_grid(segs, img):
            segs = on_grid_of(segs, img)
        if not any(m.any() for m in segs.masks.values()):
            raise _fail(
                f"segmentation {segmentation.label}: every segment is empty", "segmentation"
            )
        # canonical image: the voxels and the geometry only (no metadata of the upload)
        array = sitk.GetArrayFromImage(img)
        clean = sitk.GetImageFromArray(array)
        clean.CopyInformation(img)
        image_path = work / IMAGE_NAME
        sitk.WriteImage(clean, str(image_path), True)
        seg_path = work / SEGMENTATION_NAME
        try:
            write_seg_nrrd(segs, seg_path)
        except InputError as exc:
            raise _fail(
                f"segmentation {segmentation.label}: {_after_path(str(exc))}", "segmentation"
            ) from None
        names = list(segs.masks)
        geometry = {
            "shape": [int(n) for n in img.GetSize()],
            "spacing_mm": [float(v) for v in img.GetSpacing()],
            "origin_mm": [float(v) for v in img.GetOrigin()],
            "direction": [float(v) for v in img.GetDirection()],
        }
        return Checked(
            img_fmt,
            seg_fmt,
            image_path.read_bytes(),
            seg_path.read_bytes(),
            geometry,
            names,
            propose_roles(names),
            sorted(set(removed_i) | set(removed_s)),
        )


# --- store, read, accept ---------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get_case(session: Session, actor: Actor, procedure_id: int) -> CaseImages | None:
    """The procedure's images (None when none were uploaded); 404 outside the actor's sites."""
    procedure, _ = plan_files.get_procedure(session, actor, procedure_id)
    return session.scalar(select(CaseImages).where(CaseImages.procedure_id == procedure.id))


def attach_images(
    session: Session,
    actor: Actor,
    procedure_id: int,
    image: Upload,
    segmentation: Upload,
    label_names: str = "",
    reason: str = "",
) -> CaseImages:
    """Validate and store (or replace, with a reason) the procedure's image and segmentation."""
    procedure, participant = plan_files.get_procedure(session, actor, procedure_id)
    actor.require_write(participant.site_id)
    existing = session.scalar(select(CaseImages).where(CaseImages.procedure_id == procedure.id))
    reason = (reason or "").strip()[:1000]
    if existing is not None and len(reason) < 3:
        raise _fail("this procedure already has images: give a reason for replacing them", "reason")
    checked = validate_upload(image, segmentation, label_names)
    values = {
        "image_format": checked.image_format,
        "image_upload_name": image.name[:200],
        "image_upload_sha256": _sha(image.content),
        "segmentation_format": checked.segmentation_format,
        "segmentation_upload_name": segmentation.name[:200],
        "segmentation_upload_sha256": _sha(segmentation.content),
        "image_size": len(checked.image),
        "image_sha256": _sha(checked.image),
        "image": checked.image,
        "segmentation_size": len(checked.segmentation),
        "segmentation_sha256": _sha(checked.segmentation),
        "segmentation": checked.segmentation,
        "geometry": checked.geometry,
        "segments": checked.segments,
        "proposed_roles": checked.proposed_roles,
        "accepted_roles": None,
        "accepted_by": None,
        "deidentified": checked.deidentified,
        "created_by": actor.username,
    }
    with acting(session, actor, reason=reason or "patient image and segmentation uploaded"):
        if existing is None:
            row = CaseImages(procedure_id=procedure.id, **values)
            session.add(row)
        else:
            row = existing
            for key, value in values.items():
                setattr(row, key, value)
    return row


def accept_roles(
    session: Session, actor: Actor, procedure_id: int, roles: dict[str, str]
) -> CaseImages:
    """Record the structures the user accepted (segment → role/tissue/ignore), checked by the
    planner's rules (one target; target, nerve and skin present) and by building the case
    (its centreline is extracted here, so a nerve segment without one is refused now)."""
    from cryoneuro.anatomy.segments import assign_roles

    _, participant = plan_files.get_procedure(session, actor, procedure_id)
    actor.require_write(participant.site_id)
    row = get_case(session, actor, procedure_id)
    if row is None:
        raise NotFoundError("this procedure has no images: upload them first")
    names = list(row.segments)
    chosen = {n: str(roles.get(n, "")).strip() for n in names}
    blank = [n for n, r in chosen.items() if not r]
    if blank:
        raise _fail(f"roles: choose a role for segments {blank}", "roles")
    try:
        assign_roles(names, chosen, "segments")
        patient_case(row, chosen)
    except InputError as exc:
        raise _fail(f"roles: {_after_path(str(exc)).removeprefix('segments: ')}", "roles") from None
    with acting(session, actor, reason="planning structures accepted"):
        row.accepted_roles = chosen
        row.accepted_by = actor.username
    return row


#: Most points a corrected centreline may have (a hand-drawn line needs tens, not thousands).
MAX_CENTRELINE_POINTS = 500


def parse_centreline(text: str, geometry: dict) -> list[list[float]] | None:
    """A corrected centreline from text: one ``x, y, z`` point (LPS mm) per line, proximal to
    distal; None for blank text (go back to the extracted line). Each point must lie within
    the image (one voxel of margin) and differ from the one before; refused with one line
    naming the point otherwise."""
    lines = [ln.strip() for ln in str(text or "").splitlines() if ln.strip()]
    if not lines:
        return None
    if len(lines) > MAX_CENTRELINE_POINTS:
        raise _fail(
            f"centreline: {len(lines)} points; at most {MAX_CENTRELINE_POINTS}", "centreline"
        )
    points = []
    for n, ln in enumerate(lines, start=1):
        parts = [p for p in ln.replace(",", " ").replace(";", " ").split() if p]
        try:
            xyz = [float(p) for p in parts]
        except ValueError:
            xyz = []
        if len(xyz) != 3 or not all(np.isfinite(xyz)):
            raise _fail(
                f"centreline: point {n} ('{ln[:40]}') is not three finite numbers x, y, z (mm)",
                "centreline",
            )
        points.append(xyz)
    if len(points) < 2:
        raise _fail("centreline: give at least two points, proximal to distal", "centreline")
    shape = np.asarray(geometry["shape"], float)
    spacing = np.asarray(geometry["spacing_mm"], float)
    origin = np.asarray(geometry["origin_mm"], float)
    direction = np.asarray(geometry["direction"], float).reshape(3, 3)
    corners = np.array(
        [[i, j, k] for i in (-1, shape[0]) for j in (-1, shape[1]) for k in (-1, shape[2])]
    )
    world = origin + (direction @ (corners * spacing).T).T
    lo, hi = world.min(axis=0), world.max(axis=0)
    for n, xyz in enumerate(points, start=1):
        if np.any(np.asarray(xyz) < lo) or np.any(np.asarray(xyz) > hi):
            raise _fail(
                f"centreline: point {n} {_triple(xyz, 2)} mm lies outside the image "
                f"({_triple(lo, 1)} to {_triple(hi, 1)} mm)",
                "centreline",
            )
        if n > 1 and np.linalg.norm(np.subtract(xyz, points[n - 2])) < 0.01:
            raise _fail(f"centreline: point {n} repeats point {n - 1}", "centreline")
    return points


def correct_centreline(session: Session, actor: Actor, procedure_id: int, text: str) -> CaseImages:
    """Store a user-corrected nerve centreline (or, with blank text, go back to the extracted
    one), checked by :func:`parse_centreline` and by building the case with it; audited."""
    _, participant = plan_files.get_procedure(session, actor, procedure_id)
    actor.require_write(participant.site_id)
    row = get_case(session, actor, procedure_id)
    if row is None:
        raise NotFoundError("this procedure has no images: upload them first")
    if not row.accepted_roles:
        raise _fail("centreline: accept the planning structures first", "centreline")
    points = parse_centreline(text, row.geometry)
    if points is not None:
        try:
            patient_case(
                row, neuroma_type=neuroma_type_of(session, procedure_id), centreline_mm=points
            )
        except InputError as exc:
            raise _fail(f"centreline: {_after_path(str(exc))}", "centreline") from None
    reason = "nerve centreline corrected" if points else "nerve centreline reset to extracted"
    with acting(session, actor, reason=reason):
        row.centreline_mm = points
        row.centreline_by = actor.username if points else None
    return row


def neuroma_type_of(session: Session, procedure_id: int) -> str:
    """``stump`` for a stump neuroma of the participant, else ``morton`` (the planner's two
    kinds: where the block must lie, :mod:`cryoneuro.anatomy.patient`)."""
    from cryoneuro.registry.models import Neuroma, Procedure

    procedure = session.get(Procedure, procedure_id)
    kinds = session.scalars(
        select(Neuroma.neuroma_type).where(Neuroma.participant_id == procedure.participant_id)
    ).all()
    return "stump" if any("stump" in str(k) for k in kinds) else "morton"


def patient_case(
    row: CaseImages,
    roles: dict[str, str] | None = None,
    neuroma_type: str = "morton",
    centreline_mm: list | None = None,
):
    """The plannable case (:class:`cryoneuro.anatomy.patient.PatientCase`) from the stored
    files and the accepted (or given) roles; the nerve centreline is the given one, else the
    user-corrected one stored with the images, else the one extracted from the nerve segment."""
    from cryoneuro.anatomy.patient import load_patient_case

    line = centreline_mm if centreline_mm is not None else row.centreline_mm
    roles = roles if roles is not None else row.accepted_roles
    if not roles:
        raise _fail("roles: accept the planning structures first", "roles")
    with tempfile.TemporaryDirectory(prefix="cryoneuro-case-") as tmp:
        image = Path(tmp) / IMAGE_NAME
        seg = Path(tmp) / SEGMENTATION_NAME
        image.write_bytes(row.image)
        seg.write_bytes(row.segmentation)
        case = load_patient_case(
            seg,
            name=f"procedure-{row.procedure_id}",
            image=image,
            segment_map=dict(roles),
            neuroma_type=neuroma_type,
            centreline_mm=None if not line else np.asarray(line, float),
        )
    case.record["segmentation"] = (
        f"procedure {row.procedure_id} images ({row.segmentation_sha256[:12]})"
    )
    return case


def label_map_nifti(row: CaseImages) -> bytes:
    """The segmentation as a gzip NIfTI label map (1, 2, … in segment order) on the image grid,
    for the viewer; overlapping voxels take the later segment."""
    import SimpleITK as sitk

    from cryoneuro.anatomy.slicer import read_seg_nrrd

    with tempfile.TemporaryDirectory(prefix="cryoneuro-seg-") as tmp:
        seg = Path(tmp) / SEGMENTATION_NAME
        seg.write_bytes(row.segmentation)
        segs = read_seg_nrrd(seg)
        labels = np.zeros(segs.shape, np.uint8)
        for value, mask in enumerate(segs.masks.values(), start=1):
            labels[mask] = min(value, 255)
        img = sitk.GetImageFromArray(np.ascontiguousarray(labels.transpose(2, 1, 0)))
        img.SetSpacing(tuple(float(s) for s in segs.spacing_mm))
        img.SetOrigin(tuple(float(o) for o in segs.origin_mm))
        img.SetDirection(tuple(float(d) for d in np.ravel(segs.direction)))
        out = Path(tmp) / "labels.nii.gz"
        sitk.WriteImage(img, str(out), True)
        return out.read_bytes()
