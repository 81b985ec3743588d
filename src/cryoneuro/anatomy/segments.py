"""Named segments (3D Slicer ``.seg.nrrd``, DICOM SEG) → the planner's label map and roles.

A segmentation from a viewer is a set of *named, possibly overlapping* binary masks; the planner
needs one integer label map, a tissue for every label, and which labels play which role (the
target neuroma, the nerve, the skin, the arteries, the bones). This module is that bridge,
shared by :mod:`cryoneuro.anatomy.slicer` and :mod:`cryoneuro.anatomy.dicom_seg`.

Rules (each one stated, none silent — :class:`SegmentMapping` lists what it did):

* **Role by name.** A segment's role comes from the editable ``segment_map`` (segment name →
  role, tissue or ``"ignore"``) when it names it, else from :data:`ROLE_PATTERNS` (case-
  insensitive, first match wins: ``neuroma``/``target`` → target before ``nerve`` → nerve).
  A segment matched by neither gets its tissue from its name when that is a tissue-library or
  :data:`~cryoneuro.anatomy.labels.DEFAULT_TISSUE_MAP` name; otherwise it is refused, naming it.
* **One target.** Exactly one segment may be the target; the nerve may be several segments
  (e.g. proximal nerve and digital branches), as may arteries and bones. Target, nerve and
  skin are required.
* **Overlaps.** Where segments overlap, the voxel takes the role of highest precedence
  (:data:`PRECEDENCE`: target > nerve > artery > bone > skin > other tissue), and the counts are
  listed in :attr:`SegmentMapping.overlaps`.
* **Unlabelled voxels.** Voxels in no segment but enclosed by the segmented body (holes of the
  union of segments, filled in 3D and slice by slice along each axis, so a body cropped open at
  the volume's faces is still filled) are ``unlabelled_tissue`` (default ``fat``, the case file
  may say otherwise); the rest is ``background`` (air outside the body, as in the phantoms).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from cryoneuro.anatomy.io import Anatomy, LabelMapError
from cryoneuro.anatomy.labels import DEFAULT_TISSUE_MAP
from cryoneuro.errors import InputError

ROLES = ("target", "nerve", "skin", "artery", "bone")
#: Tissue of each role (cryoneuro.tissue library names).
ROLE_TISSUE = {
    "target": "nerve",
    "nerve": "nerve",
    "skin": "skin",
    "artery": "blood",
    "bone": "bone",
}
#: Default name rules (regular expressions, case-insensitive), tried in this order.
ROLE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("target", r"neuroma|target"),
    ("nerve", r"nerve|nervus|\bn\.\s"),
    ("skin", r"skin|cutis|epiderm"),
    ("artery", r"arter|\ba\.\s"),
    ("bone", r"bone|\bmetatars|phalan|\btibia|fibula|femur|calcane|cuneiform|cuboid|navicular"),
)
#: Overlap precedence (first wins).
PRECEDENCE = ("target", "nerve", "artery", "bone", "skin", "tissue")
UNLABELLED = "unlabelled_tissue"


class SegmentationError(InputError):
    """A segmentation cannot be mapped to the planner's structures (missing or ambiguous roles)."""


@dataclass
class Segments:
    """Named binary masks on one voxel grid (LPS mm; arrays indexed like ``Anatomy``).

    ``masks`` keeps the file's segment order; ``direction`` columns are the array axes in LPS;
    ``origin_mm`` is the centre of voxel (0, 0, 0).
    """

    masks: dict[str, np.ndarray]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    direction: np.ndarray
    source: str = "segmentation"
    colours: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    #: DICOM SEG only: the referenced source series (SeriesInstanceUID), when the file names one.
    referenced_series_uid: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return next(iter(self.masks.values())).shape

    def affine(self) -> np.ndarray:
        """4×4 voxel index → LPS mm."""
        a = np.eye(4)
        a[:3, :3] = np.asarray(self.direction, float) * np.asarray(self.spacing_mm, float)
        a[:3, 3] = self.origin_mm
        return a


@dataclass
class SegmentMapping:
    """What each segment became: role or tissue, label value, and the overlaps resolved."""

    roles: dict[str, str]  # segment name → role ("target", ...), tissue name, or "ignore"
    how: dict[str, str]  # segment name → "segment_map" | "name rule '<pattern>'" | "tissue name"
    overlaps: list[str]
    unlabelled_tissue: str

    def summary(self) -> dict:
        return {
            "segments": {n: {"as": r, "by": self.how[n]} for n, r in self.roles.items()},
            "overlaps": self.overlaps,
            "precedence": " > ".join(PRECEDENCE),
            "unlabelled_voxels_inside_body": self.unlabelled_tissue,
        }


def _is_tissue(name: str) -> bool:
    from cryoneuro.tissue import TISSUES

    return name in TISSUES


def assign_roles(
    names: list[str], segment_map: dict[str, str] | None, source: str
) -> SegmentMapping:
    """Decide each segment's role (see module rules); refuses missing or ambiguous roles."""
    segment_map = dict(segment_map or {})
    unknown = sorted(set(segment_map) - set(names))
    if unknown:
        raise SegmentationError(
            f"{source}: segment_map names segments not in the file: {unknown}; segments are {names}"
        )
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SegmentationError(
            f"{source}: segment names {dup} occur more than once; rename them (e.g. in 3D Slicer)"
        )
    roles: dict[str, str] = {}
    how: dict[str, str] = {}
    unmapped = []
    for name in names:
        if name in segment_map:
            value = segment_map[name]
            if value not in (*ROLES, "ignore") and not _is_tissue(value):
                raise SegmentationError(
                    f"{source}: segment_map['{name}'] = '{value}' is neither a role {list(ROLES)}, "
                    "'ignore', nor a tissue of the library (cryoneuro.tissue)"
                )
            roles[name], how[name] = value, "segment_map"
            continue
        for role, pattern in ROLE_PATTERNS:
            if re.search(pattern, name, flags=re.IGNORECASE):
                roles[name], how[name] = role, f"name rule '{pattern}'"
                break
        else:
            key = name.strip().lower().replace(" ", "_")
            if key in DEFAULT_TISSUE_MAP or _is_tissue(key):
                roles[name] = DEFAULT_TISSUE_MAP.get(key, key)
                how[name] = "tissue name"
            else:
                unmapped.append(name)
    if unmapped:
        raise SegmentationError(
            f"{source}: no role or tissue for segments {unmapped}; add them to segment_map "
            f"(a role {list(ROLES)}, a tissue such as 'muscle', or 'ignore')"
        )
    targets = [n for n, r in roles.items() if r == "target"]
    if len(targets) > 1:
        raise SegmentationError(
            f"{source}: segments {targets} all map to the target; keep one and map the others "
            "in segment_map (e.g. to 'nerve' or 'ignore')"
        )
    missing = [r for r in ("target", "nerve", "skin") if r not in roles.values()]
    if missing:
        raise SegmentationError(
            f"{source}: no segment for {missing} (segments: {names}); name them in segment_map"
        )
    return SegmentMapping(roles, how, [], "fat")


def _body_fill(union: np.ndarray) -> np.ndarray:
    """Holes of ``union`` filled in 3D and slice by slice along each axis (module rules)."""
    filled = ndimage.binary_fill_holes(union)
    for axis in range(3):
        moved = np.moveaxis(union, axis, 0)
        slices = np.stack([ndimage.binary_fill_holes(s) for s in moved])
        filled |= np.moveaxis(slices, 0, axis)
    return filled


def to_anatomy(
    segments: Segments,
    segment_map: dict[str, str] | None = None,
    *,
    image: np.ndarray | None = None,
    unlabelled_tissue: str = "fat",
) -> tuple[Anatomy, dict[str, list[int]], dict[str, str], SegmentMapping]:
    """Flatten named masks into an :class:`Anatomy` (labels named after the segments).

    Returns (anatomy, role → label values, label name → tissue, mapping record).
    """
    if not _is_tissue(unlabelled_tissue):
        raise SegmentationError(
            f"{segments.source}: unlabelled_tissue '{unlabelled_tissue}' is not a tissue of the "
            "library (cryoneuro.tissue)"
        )
    names = list(segments.masks)
    mapping = assign_roles(names, segment_map, segments.source)
    mapping.unlabelled_tissue = unlabelled_tissue
    kept = [n for n in names if mapping.roles[n] != "ignore"]

    def rank(name: str) -> int:
        r = mapping.roles[name]
        return PRECEDENCE.index(r if r in ROLES else "tissue")

    # paint lowest precedence first so higher precedence overwrites; file order breaks ties
    order = sorted(kept, key=lambda n: (-rank(n), -names.index(n)))
    labels = np.zeros(segments.shape, dtype=np.int32)
    label_names: dict[int, str] = {0: "background"}
    values = {n: i + 1 for i, n in enumerate(kept)}
    for n in order:
        labels[segments.masks[n]] = values[n]
        label_names[values[n]] = n
    for i, a in enumerate(kept):
        for b in kept[i + 1 :]:
            both = int(np.count_nonzero(segments.masks[a] & segments.masks[b]))
            if both:
                win = a if rank(a) <= rank(b) else b
                mapping.overlaps.append(
                    f"{both} voxels in both '{a}' and '{b}': kept as '{win}' ({mapping.roles[win]})"
                )
    union = labels > 0
    inside = _body_fill(union) & ~union
    if inside.any():
        labels[inside] = len(kept) + 1
        label_names[len(kept) + 1] = UNLABELLED
    if not np.any(labels == values[next(n for n in kept if mapping.roles[n] == "target")]):
        raise SegmentationError(f"{segments.source}: the target segment is empty")
    role_values: dict[str, list[int]] = {r: [] for r in ROLES}
    tissue_map: dict[str, str] = {"background": "air", UNLABELLED: unlabelled_tissue}
    for n in kept:
        r = mapping.roles[n]
        if r in ROLES:
            role_values[r].append(values[n])
            tissue_map[n] = ROLE_TISSUE[r]
        else:
            tissue_map[n] = r
    for r in ("nerve", "skin"):
        present = [v for v in role_values[r] if np.any(labels == v)]
        if not present:
            raise SegmentationError(
                f"{segments.source}: the {r} segment(s) have no voxels left after overlaps"
            )
    if image is not None and image.shape != labels.shape:
        raise LabelMapError(
            f"{segments.source}: image shape {image.shape} != segmentation {labels.shape}"
        )
    anatomy = Anatomy(
        labels=labels,
        label_names=label_names,
        spacing_mm=tuple(float(s) for s in segments.spacing_mm),  # type: ignore[arg-type]
        origin_mm=tuple(float(o) for o in segments.origin_mm),  # type: ignore[arg-type]
        direction=np.asarray(segments.direction, float),
        image=None if image is None else image.astype(np.float32),
        source=segments.source,
    )
    return anatomy, role_values, tissue_map, mapping


def _sitk_of(mask: np.ndarray, spacing, origin, direction):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(mask.astype(np.uint8).transpose(2, 1, 0)))
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetOrigin(tuple(float(o) for o in origin))
    img.SetDirection(tuple(float(d) for d in np.asarray(direction, float).ravel()))
    return img


def on_grid_of(segments: Segments, reference) -> Segments:
    """The masks resampled (nearest neighbour) onto ``reference``'s grid (a SimpleITK image),
    e.g. a segmentation cropped to its extent, or a SEG without its empty frames, onto the
    series it was drawn on. Voxels of the reference outside the segmentation are empty."""
    import SimpleITK as sitk

    masks = {}
    for name, mask in segments.masks.items():
        out = sitk.Resample(
            _sitk_of(mask, segments.spacing_mm, segments.origin_mm, segments.direction),
            reference,
            sitk.Transform(),
            sitk.sitkNearestNeighbor,
            0,
            sitk.sitkUInt8,
        )
        masks[name] = sitk.GetArrayFromImage(out).transpose(2, 1, 0) > 0
    return Segments(
        masks,
        tuple(reference.GetSpacing()),
        tuple(reference.GetOrigin()),
        np.asarray(reference.GetDirection(), float).reshape(3, 3),
        source=segments.source,
        colours=dict(segments.colours),
        referenced_series_uid=segments.referenced_series_uid,
    )


def same_grid(segments: Segments, reference, tol_mm: float = 1e-3) -> bool:
    """Whether the masks already lie on ``reference``'s voxel grid (size, spacing, origin, axes)."""
    return (
        tuple(segments.shape) == tuple(reference.GetSize())
        and np.allclose(segments.spacing_mm, reference.GetSpacing(), atol=tol_mm)
        and np.allclose(segments.origin_mm, reference.GetOrigin(), atol=tol_mm)
        and np.allclose(np.ravel(segments.direction), reference.GetDirection(), atol=1e-4)
    )
