"""Image and label-map I/O with SimpleITK, and the :class:`Anatomy` container.

Coordinate convention
---------------------
Everything is kept in **LPS millimetres** (x → patient Left, y → Posterior, z → Superior), the
convention of ITK/SimpleITK and DICOM. (3D Slicer displays RAS; its files on disk are LPS.)
Arrays are indexed ``[x, y, z]`` (SimpleITK's numpy view is ``[z, y, x]``; we transpose).
``Anatomy.origin_mm`` is ITK's origin: the physical position of the **centre** of voxel
``(0, 0, 0)``. The thermal engine's :class:`~cryoneuro.thermal.Grid` is cell-centred with its
origin at the **corner**, so ``grid.origin_mm = origin_mm − voxel_mm / 2``. Oblique images (a
direction matrix other than identity) are resampled to an axis-aligned grid by
:meth:`Anatomy.resample_to` (``sitk.Resample``; labels nearest neighbour, image linear).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cryoneuro.anatomy.labels import DEFAULT_TISSUE_MAP, read_label_table
from cryoneuro.errors import InputError
from cryoneuro.input_checks import MAX_CELLS, MIN_VOXEL_MM
from cryoneuro.thermal.geometry import Grid
from cryoneuro.tissue import ThermalProperties, get_tissue


class ImageReadError(InputError):
    """A file cannot be read as an image (corrupt, unknown format, empty DICOM folder)."""


class SpacingError(InputError):
    """Voxel spacing is zero, negative, non-finite, or anisotropic where isotropy is required."""


class AlignmentError(InputError):
    """A label map does not share the image's size, spacing, origin or direction."""


class LabelMapError(InputError):
    """A label map is not an integer image, or names labels it does not contain."""


ALIGN_TOL_MM = 1e-3
DIRECTION_TOL = 1e-4


@dataclass
class Anatomy:
    """An image (optional) and an integer label map on one voxel grid, in LPS mm.

    ``image``/``labels`` are indexed [x, y, z]; ``origin_mm`` is the centre of voxel (0,0,0);
    ``direction`` is the 3×3 matrix whose columns are the array axes in LPS.
    """

    labels: np.ndarray
    label_names: dict[int, str]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    image: np.ndarray | None = None
    source: str = "anatomy"

    def __post_init__(self) -> None:
        check_spacing(self.spacing_mm, self.source)
        if not np.issubdtype(self.labels.dtype, np.integer):
            raise LabelMapError(
                f"{self.source}: label map has dtype {self.labels.dtype}, not integer"
            )
        if self.image is not None and self.image.shape != self.labels.shape:
            raise AlignmentError(
                f"{self.source}: image shape {self.image.shape} != labels {self.labels.shape}"
            )
        self.direction = np.asarray(self.direction, dtype=float).reshape(3, 3)

    # --- conversions -------------------------------------------------------------------------
    def _to_sitk(self, array: np.ndarray) -> sitk.Image:
        img = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
        img.SetSpacing(tuple(float(s) for s in self.spacing_mm))
        img.SetOrigin(tuple(float(o) for o in self.origin_mm))
        img.SetDirection(tuple(self.direction.ravel()))
        return img

    @property
    def is_axis_aligned(self) -> bool:
        return bool(np.allclose(self.direction, np.eye(3), atol=DIRECTION_TOL))

    def label_value(self, name: str) -> int:
        from cryoneuro.anatomy.labels import label_value

        return label_value(self.label_names, name, source=self.source)

    def mask(self, *names: str) -> np.ndarray:
        """Boolean mask of the voxels carrying any of the named labels."""
        return np.isin(self.labels, [self.label_value(n) for n in names])

    def bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned LPS bounding box of the voxel *corners* (lo, hi)."""
        sp = np.asarray(self.spacing_mm)
        n = np.asarray(self.labels.shape)
        corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) * n - 0.5
        pts = np.asarray(self.origin_mm) + (self.direction @ (corners * sp).T).T
        return pts.min(0), pts.max(0)

    def resample_to(self, voxel_mm: float, bounds_mm: tuple | None = None) -> Anatomy:
        """Resample onto an axis-aligned isotropic grid of ``voxel_mm``.

        ``bounds_mm = (lo, hi)`` in LPS mm (corners); default: the image's bounding box.
        Labels: nearest neighbour (outside → 0); image: linear (outside → −1000 HU, air).
        """
        check_spacing((voxel_mm,) * 3, self.source)
        lo, hi = (
            self.bounds_mm()
            if bounds_mm is None
            else (np.asarray(bounds_mm[0], float), np.asarray(bounds_mm[1], float))
        )
        shape = np.maximum(1, np.round((hi - lo) / voxel_mm).astype(int))
        cells = math.prod(int(n) for n in shape)
        if cells > MAX_CELLS or voxel_mm < MIN_VOXEL_MM:  # before SimpleITK allocates the grid
            raise SpacingError(
                f"{self.source}: resampling to {voxel_mm:g} mm voxels gives {cells:,} cells; "
                f"the limit is {MAX_CELLS:,} cells of at least {MIN_VOXEL_MM:g} mm "
                "(cryoneuro.input_checks); crop the image or check its voxel spacing"
            )
        ref = sitk.Image([int(s) for s in shape], sitk.sitkUInt8)
        ref.SetSpacing((float(voxel_mm),) * 3)
        ref.SetOrigin(tuple(float(v) for v in lo + voxel_mm / 2))
        ref.SetDirection(tuple(np.eye(3).ravel()))
        lab = sitk.Resample(
            self._to_sitk(self.labels.astype(np.int32)),
            ref,
            sitk.Transform(),
            sitk.sitkNearestNeighbor,
            0,
            sitk.sitkInt32,
        )
        img = None
        if self.image is not None:
            r = sitk.Resample(
                self._to_sitk(self.image.astype(np.float32)),
                ref,
                sitk.Transform(),
                sitk.sitkLinear,
                -1000.0,
                sitk.sitkFloat32,
            )
            img = sitk.GetArrayFromImage(r).transpose(2, 1, 0).copy()
        return replace(
            self,
            labels=sitk.GetArrayFromImage(lab).transpose(2, 1, 0).copy(),
            image=img,
            spacing_mm=(float(voxel_mm),) * 3,
            origin_mm=tuple(float(v) for v in lo + voxel_mm / 2),  # type: ignore[arg-type]
            direction=np.eye(3),
        )

    def grid(self) -> Grid:
        """The engine grid (corner origin); requires an axis-aligned isotropic anatomy."""
        if not self.is_axis_aligned:
            raise SpacingError(f"{self.source}: image is oblique; call resample_to(voxel_mm) first")
        sp = self.spacing_mm
        if max(sp) - min(sp) > 1e-6 * max(sp):
            raise SpacingError(
                f"{self.source}: spacing {sp} mm is anisotropic; call resample_to(voxel_mm) first"
            )
        origin = tuple(float(o - sp[0] / 2) for o in self.origin_mm)
        return Grid(
            shape=tuple(int(n) for n in self.labels.shape),  # type: ignore[arg-type]
            voxel_mm=float(sp[0]),
            origin_mm=origin,  # type: ignore[arg-type]
        )

    def to_model_inputs(
        self,
        tissue_map: dict[str, str] | None = None,
        default_tissue: str | None = None,
    ) -> tuple[Grid, np.ndarray, list[ThermalProperties]]:
        """(Grid, uint8 per-voxel material index, materials) for :class:`ThermalModel`.

        ``tissue_map`` maps label names to tissue-library names (merged over
        :data:`DEFAULT_TISSUE_MAP`); label 0 without a name is ``background`` (→ default or fat).
        Labels left unmapped raise :class:`LabelMapError` listing them unless ``default_tissue``.
        """
        grid = self.grid()
        tmap = {**DEFAULT_TISSUE_MAP, **(tissue_map or {})}
        present = [int(v) for v in np.unique(self.labels)]
        names = {
            v: self.label_names.get(v, "background" if v == 0 else f"label_{v}") for v in present
        }
        unmapped = sorted(
            f"{v}:{n}" for v, n in names.items() if n not in tmap and default_tissue is None
        )
        if unmapped:
            raise LabelMapError(
                f"{self.source}: no tissue for labels {unmapped}; add them to tissue_map or give "
                f"default_tissue"
            )
        tissue_names: list[str] = []
        lut = np.zeros(max(present) + 1 if present else 1, dtype=np.uint8)
        for v, n in names.items():
            t = tmap.get(n, default_tissue)
            if t not in tissue_names:
                tissue_names.append(t)  # type: ignore[arg-type]
            lut[v] = tissue_names.index(t)  # type: ignore[arg-type]
        if len(tissue_names) > 255:
            raise LabelMapError(f"{self.source}: more than 255 materials")
        return grid, lut[self.labels], [get_tissue(t) for t in tissue_names]


def check_spacing(spacing: tuple[float, ...], source: str) -> None:
    sp = np.asarray(spacing, dtype=float)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise SpacingError(
            f"{source}: voxel spacing {tuple(spacing)} mm must be three positive numbers"
        )


# --- readers -------------------------------------------------------------------------------------
def read_sitk(path: str | Path) -> sitk.Image:
    """Read a NIfTI/NRRD/any ITK file, or a DICOM series directory, as a 3D SimpleITK image."""
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: no such file or directory")
    try:
        if p.is_dir():
            reader = sitk.ImageSeriesReader()
            files = reader.GetGDCMSeriesFileNames(str(p))
            if not files:
                raise ImageReadError(f"{p}: no DICOM series in this directory")
            reader.SetFileNames(files)
            img = reader.Execute()
        else:
            img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        msg = str(exc).strip().splitlines()
        raise ImageReadError(
            f"{p}: cannot read image ({msg[-1] if msg else 'unknown error'})"[:300]
        ) from None
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError(
            f"{p}: has {img.GetNumberOfComponentsPerPixel()} components per voxel; expected scalar"
        )
    check_spacing(img.GetSpacing(), str(p))
    return img


def _array(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(img).transpose(2, 1, 0).copy()


def check_aligned(image: sitk.Image, labels: sitk.Image, source: str) -> None:
    """Raise :class:`AlignmentError` unless size, spacing, origin, direction agree."""
    if image.GetSize() != labels.GetSize():
        raise AlignmentError(
            f"{source}: label map size {labels.GetSize()} != image size {image.GetSize()}"
        )
    checks = [
        ("spacing", image.GetSpacing(), labels.GetSpacing(), ALIGN_TOL_MM),
        ("origin", image.GetOrigin(), labels.GetOrigin(), ALIGN_TOL_MM),
        ("direction", image.GetDirection(), labels.GetDirection(), DIRECTION_TOL),
    ]
    for what, a, b, tol in checks:
        if not np.allclose(a, b, atol=tol):
            raise AlignmentError(
                f"{source}: label map {what} {tuple(round(v, 4) for v in b)} != image {what} "
                f"{tuple(round(v, 4) for v in a)}; resample the labels onto the image"
            )


def load_anatomy(
    labels_path: str | Path,
    image_path: str | Path | None = None,
    label_names: str | Path | dict | None = None,
    required_labels: tuple[str, ...] = (),
) -> Anatomy:
    """Read a label map (+ optional CT/MR image and label-name table) into an :class:`Anatomy`.

    ``label_names``: a table file (Slicer ``.ctbl``, ITK-SNAP ``.txt``, ``.json``, ``.toml``) or
    a dict; default: ``label_<value>``. ``required_labels`` names that must be present.
    """
    lp = Path(labels_path)
    lab = read_sitk(lp)
    arr = _array(lab)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise LabelMapError(
                f"{lp}: label map has non-integer values (dtype {arr.dtype}); is it an image?"
            )
        arr = arr.astype(np.int32)
    img_arr = None
    if image_path is not None:
        img = read_sitk(image_path)
        check_aligned(img, lab, f"{lp} vs {image_path}")
        img_arr = _array(img).astype(np.float32)
    if isinstance(label_names, (str, Path)):
        names = read_label_table(label_names)
    elif isinstance(label_names, dict):
        from cryoneuro.anatomy.labels import normalise_label_mapping

        names = normalise_label_mapping(label_names)
    else:
        names = {int(v): f"label_{int(v)}" for v in np.unique(arr) if v != 0}
    present = {int(v) for v in np.unique(arr)}
    for req in required_labels:
        values = [v for v, n in names.items() if n == req]
        if not values or not (set(values) & present):
            raise LabelMapError(f"{lp}: required label '{req}' is missing from the label map")
    return Anatomy(
        labels=arr,
        label_names=names,
        spacing_mm=tuple(lab.GetSpacing()),
        origin_mm=tuple(lab.GetOrigin()),
        direction=np.array(lab.GetDirection()).reshape(3, 3),
        image=img_arr,
        source=str(lp),
    )


def write_anatomy(anatomy: Anatomy, image_path: str | Path | None, labels_path: str | Path) -> None:
    """Write labels (and the image if present) as NIfTI/NRRD (by suffix)."""
    sitk.WriteImage(
        anatomy._to_sitk(
            anatomy.labels.astype(np.uint8 if anatomy.labels.max() < 256 else np.int32)
        ),
        str(labels_path),
        True,
    )
    if image_path is not None and anatomy.image is not None:
        sitk.WriteImage(anatomy._to_sitk(anatomy.image.astype(np.float32)), str(image_path), True)


# --- ultrasound -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class UltrasoundPlane:
    """A 2D ultrasound frame placed in 3D (LPS mm): pixel (row, col) → physical point.

    ``p = origin_mm + col·spacing_col·u + row·spacing_row·v`` with ``u`` the in-plane direction of
    increasing column and ``v`` of increasing row (both unit, orthogonal; given by the user or a
    tracker). ``pixel`` is the frame (rows × cols) or None.
    """

    pixel_spacing_mm: tuple[float, float]  # (row spacing, column spacing)
    origin_mm: tuple[float, float, float]
    col_axis: tuple[float, float, float]
    row_axis: tuple[float, float, float]
    pixel: np.ndarray | None = None

    def __post_init__(self) -> None:
        sp = np.asarray(self.pixel_spacing_mm, float)
        if sp.shape != (2,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
            raise SpacingError(
                f"ultrasound: pixel spacing {self.pixel_spacing_mm} must be two positive numbers"
            )
        u, v = np.asarray(self.col_axis, float), np.asarray(self.row_axis, float)
        if not (
            np.isclose(np.linalg.norm(u), 1, atol=1e-3)
            and np.isclose(np.linalg.norm(v), 1, atol=1e-3)
            and abs(u @ v) < 1e-3
        ):
            raise InputError("ultrasound: col_axis and row_axis must be orthogonal unit vectors")

    @property
    def normal(self) -> np.ndarray:
        return np.cross(np.asarray(self.col_axis, float), np.asarray(self.row_axis, float))

    def to_physical(self, row: float | np.ndarray, col: float | np.ndarray) -> np.ndarray:
        """Physical LPS mm of pixel centre(s) (row, col); shape (..., 3)."""
        r = np.asarray(row, float)[..., None]
        c = np.asarray(col, float)[..., None]
        return (
            np.asarray(self.origin_mm)
            + c * self.pixel_spacing_mm[1] * np.asarray(self.col_axis)
            + r * self.pixel_spacing_mm[0] * np.asarray(self.row_axis)
        )


def read_ultrasound(
    path: str | Path,
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
    col_axis: tuple[float, float, float] = (1.0, 0.0, 0.0),
    row_axis: tuple[float, float, float] = (0.0, 0.0, 1.0),
    pixel_spacing_mm: tuple[float, float] | None = None,
) -> UltrasoundPlane:
    """Read a 2D frame (DICOM with PixelSpacing/SequenceOfUltrasoundRegions, or PNG + given
    spacing)."""
    p = Path(path)
    spacing = pixel_spacing_mm
    if p.suffix.lower() in {".dcm", ""} and spacing is None:
        try:
            import pydicom

            ds = pydicom.dcmread(str(p), stop_before_pixels=True)
        except Exception as exc:
            raise ImageReadError(f"{p}: cannot read DICOM ({exc.__class__.__name__})") from None
        if "PixelSpacing" in ds:
            spacing = (float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1]))
        elif "SequenceOfUltrasoundRegions" in ds:  # physical delta in cm
            reg = ds.SequenceOfUltrasoundRegions[0]
            spacing = (abs(float(reg.PhysicalDeltaY)) * 10.0, abs(float(reg.PhysicalDeltaX)) * 10.0)
    if spacing is None:
        raise SpacingError(f"{p}: no pixel spacing in the file; pass pixel_spacing_mm")
    img = read_sitk(p) if p.suffix.lower() not in {".png", ".jpg", ".jpeg"} else None
    if img is None:
        try:
            arr2d = sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
        except RuntimeError:
            raise ImageReadError(f"{p}: cannot read image") from None
    else:
        arr2d = sitk.GetArrayFromImage(img)[0]
    if arr2d.ndim == 3:
        arr2d = arr2d.mean(axis=-1)
    return UltrasoundPlane(tuple(spacing), origin_mm, col_axis, row_axis, pixel=arr2d)  # type: ignore[arg-type]
