"""A patient's segmentation (``.seg.nrrd`` or DICOM SEG) and images → a plannable case.

Why: the planner works on a :class:`~cryoneuro.anatomy.PatientAnatomy` (anatomy, the roles of
its labels, the nerve centreline and end organ). For a patient these come from a viewer's
segmentation; this module assembles them, records every choice it made (segment roles,
overlaps, how the centreline and its distal end were found), and leaves each one overridable in
the case file.

Steps: read the segmentation (by suffix: ``.nrrd`` → 3D Slicer, else DICOM SEG) → put it on the
image's grid when an image is given (nearest neighbour; a Slicer segmentation cropped to its
extent, or a SEG without empty frames, is not on the image grid) → named masks to a label map and
roles (:func:`cryoneuro.anatomy.segments.to_anatomy`) → resample to an axis-aligned isotropic
grid when the images are oblique or anisotropic (the thermal engine's grid) → centreline and end
organ from the nerve and target segments unless given (:mod:`cryoneuro.anatomy.centreline`) →
for a stump neuroma without ``block_proximal_to_mm``, the arc length of the bulb's widest
section: the centreline station whose cross-section holds most target voxels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryoneuro.anatomy.io import read_sitk
from cryoneuro.anatomy.labels import DEFAULT_TISSUE_MAP
from cryoneuro.anatomy.patient_anatomy import PatientAnatomy
from cryoneuro.anatomy.segments import Segments, on_grid_of, same_grid, to_anatomy


@dataclass
class PatientCase:
    phantom: PatientAnatomy
    #: what was decided and how (goes into the plan's inputs)
    record: dict = field(default_factory=dict)
    #: the DICOM series folder the images came from (for a DICOM SEG of the plan), or None
    source_series: Path | None = None


def read_segmentation(path: str | Path) -> Segments:
    """A 3D Slicer ``.seg.nrrd`` (suffix ``.nrrd``) or a DICOM SEG file (anything else)."""
    p = Path(path)
    if p.name.lower().endswith(".nrrd"):
        from cryoneuro.anatomy.slicer import read_seg_nrrd

        return read_seg_nrrd(p)
    from cryoneuro.anatomy.dicom_seg import read_dicom_seg

    return read_dicom_seg(p)


def _affine(anatomy) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = np.asarray(anatomy.direction, float) * np.asarray(anatomy.spacing_mm, float)
    a[:3, 3] = anatomy.origin_mm
    return a


def widest_section_arc_mm(centreline_mm: np.ndarray, target_world_mm: np.ndarray) -> float:
    """Arc length (mm) of the centreline station whose cross-section holds most target voxels.

    A voxel belongs to its nearest station's section when it lies within half a station step
    of the plane through the station normal to the centreline (so the voxels beyond either end
    of the line, which are nearest to the end station, do not pile up there)."""
    from scipy.spatial import cKDTree

    line = np.asarray(centreline_mm, float)
    steps = np.linalg.norm(np.diff(line, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(steps)])
    tangent = np.gradient(line, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    half = 0.5 * np.concatenate([[steps[0]], 0.5 * (steps[:-1] + steps[1:]), [steps[-1]]])
    _, nearest = cKDTree(line).query(target_world_mm)
    along = np.einsum("ij,ij->i", target_world_mm - line[nearest], tangent[nearest])
    inside = np.abs(along) <= half[nearest] + 1e-9
    counts = np.bincount(nearest[inside], minlength=len(line))
    return float(s[int(np.argmax(counts))])


def load_patient_case(
    segmentation: str | Path,
    *,
    name: str,
    image: str | Path | None = None,
    segment_map: dict[str, str] | None = None,
    unlabelled_tissue: str = "fat",
    tissue_map: dict[str, str] | None = None,
    centreline_mm: np.ndarray | None = None,
    end_organ_mm: np.ndarray | None = None,
    end_organ_hint_mm: np.ndarray | None = None,
    neuroma_type: str = "morton",
    block_proximal_to_mm: float | None = None,
    voxel_mm: float = 0.5,
) -> PatientCase:
    """Read the segmentation (and image) and build the plannable case; see the module steps."""
    from cryoneuro.anatomy.centreline import extract_centreline

    segs = read_segmentation(segmentation)
    record: dict = {"segmentation": str(segmentation)}
    image_arr = None
    source_series = None
    if image is not None:
        img = read_sitk(image)
        if not same_grid(segs, img):
            segs = on_grid_of(segs, img)
            record["resampled_onto_image"] = (
                "the segmentation was resampled (nearest neighbour) onto the image's grid"
            )
        import SimpleITK as sitk

        image_arr = sitk.GetArrayFromImage(img).transpose(2, 1, 0).astype(np.float32)
        if Path(image).is_dir():
            source_series = Path(image)
    anatomy, roles, tissues, mapping = to_anatomy(
        segs, segment_map, image=image_arr, unlabelled_tissue=unlabelled_tissue
    )
    record["segment_mapping"] = mapping.summary()
    for role in ("nerve", "skin"):  # the planner takes one label per role: merge the others
        first, *rest = roles[role]
        if rest:
            anatomy.labels[np.isin(anatomy.labels, rest)] = first
            merged = [anatomy.label_names[v] for v in rest]
            record.setdefault("merged", []).append(
                f"{role}: {merged} merged into '{anatomy.label_names[first]}'"
            )
            roles[role] = [first]
    if not anatomy.is_axis_aligned or max(anatomy.spacing_mm) - min(anatomy.spacing_mm) > 1e-6:
        voxel = min(voxel_mm, min(anatomy.spacing_mm))
        anatomy = anatomy.resample_to(voxel)
        record["resampled_to_mm"] = voxel
    values = anatomy.labels
    target = values == roles["target"][0]
    nerve = np.isin(values, roles["nerve"])
    if not target.any():
        from cryoneuro.anatomy.segments import SegmentationError

        raise SegmentationError(f"{segmentation}: the target vanished when resampled; too small?")
    affine = _affine(anatomy)
    if centreline_mm is None:
        line = extract_centreline(
            nerve,
            affine,
            target_mask=target,
            end_organ_hint_mm=end_organ_hint_mm,
            source=f"{segmentation}: nerve segment(s)",
        )
        centreline = line.points_mm
        record["centreline"] = line.summary()
        end_organ = line.end_organ_mm if end_organ_mm is None else np.asarray(end_organ_mm, float)
        if end_organ_mm is not None:
            record["centreline"]["end_organ_mm"] = "given in the case file"
    else:
        centreline = np.asarray(centreline_mm, float)
        if end_organ_mm is None:
            end_organ = centreline[-1]
            record["centreline"] = {"source": "case file", "end_organ": "its distal (last) point"}
        else:
            end_organ = np.asarray(end_organ_mm, float)
            record["centreline"] = {"source": "case file"}
    if neuroma_type == "stump" and block_proximal_to_mm is None:
        world = (affine[:3, :3] @ np.argwhere(target).T).T + affine[:3, 3]
        block_proximal_to_mm = widest_section_arc_mm(centreline, world)
        record["block_proximal_to_mm"] = {
            "value": round(block_proximal_to_mm, 2),
            "rule": "arc length of the centreline station whose cross-section holds most "
            "target voxels (the bulb's widest section)",
        }
    phantom = PatientAnatomy(
        name=name,
        anatomy=anatomy,
        neuroma_label=roles["target"][0],
        nerve_label=roles["nerve"][0],
        artery_labels=list(roles["artery"]),
        skin_label=roles["skin"][0],
        bone_labels=list(roles["bone"]),
        centreline_mm=centreline,
        end_organ_mm=end_organ,
        notes=f"from segmentation {Path(segmentation).name}",
        tissue_map={**DEFAULT_TISSUE_MAP, **tissues, **(tissue_map or {})},
        neuroma_type=neuroma_type,
        block_proximal_to_mm=block_proximal_to_mm,
        record=record,
    )
    return PatientCase(phantom, record, source_series)


def phantom_segments(phantom: PatientAnatomy) -> Segments:
    """A phantom's labels as named segments (what a Slicer user would have drawn): for the
    demo and for tests that plan a phantom through the segmentation path."""
    anat = phantom.anatomy
    masks = {
        name: anat.labels == value
        for value, name in sorted(anat.label_names.items())
        if value != 0 and np.any(anat.labels == value)
    }
    return Segments(
        masks,
        tuple(float(s) for s in anat.spacing_mm),  # type: ignore[arg-type]
        tuple(float(o) for o in anat.origin_mm),  # type: ignore[arg-type]
        np.asarray(anat.direction, float),
        source=phantom.name,
    )


def write_segmentation_case(phantom: PatientAnatomy, folder: str | Path) -> Path:
    """Write a phantom as a patient's case would arrive: ``phantom.seg.nrrd`` (its labels as
    named segments), ``image.nrrd`` (its CT-like image) and ``<name>.toml`` (no structures and no
    centreline: both come from the segment names and the nerve segment). Returns the case file.

    The case keeps the phantom's end organ (``end_organ_mm``: for the Morton phantom the web
    space lies beyond the segmented nerve, which a segment cannot show) and its neuroma type.
    """
    import SimpleITK as sitk

    from cryoneuro.anatomy.slicer import write_seg_nrrd

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    write_seg_nrrd(phantom_segments(phantom), d / "phantom.seg.nrrd")
    anat = phantom.anatomy
    if anat.image is not None:
        sitk.WriteImage(anat._to_sitk(anat.image.astype(np.float32)), str(d / "image.nrrd"), True)
    end = ", ".join(f"{v:.3f}" for v in phantom.end_organ_mm)
    text = (
        f"# {phantom.name} as a 3D Slicer segmentation (cryoneuro demo --via-segmentation)\n"
        "[anatomy]\n"
        'segmentation = "phantom.seg.nrrd"\n'
        'image = "image.nrrd"\n\n'
        "[nerve]\n"
        f'neuroma_type = "{phantom.neuroma_type}"\n'
        f"end_organ_mm = [{end}]\n"
    )
    case = d / f"{phantom.name}.toml"  # the plan is named after its case file
    case.write_text(text, encoding="utf-8")
    return case
