"""3D Slicer segmentations (``.seg.nrrd``) and markups (``.mrk.json``), read and written.

Why: a radiologist segments the nerve, the neuroma and the structures at risk in 3D Slicer; its
segmentation file carries the segment names, colours and geometry in one NRRD, so the planner
can read it without a separate label table, and the plan can go back into the same viewer.

Format (Slicer's segmentation storage; https://slicer.readthedocs.io/en/latest/developer_guide/
modules/segmentations.html): a 3D (one layer) or 4D (``kinds: list domain domain domain``, one
layer per overlapping group) NRRD in ``space: left-posterior-superior``; segment ``i`` is the
voxels equal to ``Segment{i}_LabelValue`` in layer ``Segment{i}_Layer``, named by
``Segment{i}_Name``. Reading and writing go through ``slicerio`` (maintained by the Slicer
developers, on ``pynrrd``), so the header keys are exactly Slicer's. Array axes are the NRRD's
``i, j, k`` (``index_order='F'``), the same ``[x, y, z]`` convention as
:class:`~cryoneuro.anatomy.io.Anatomy`; ``space directions``/``space origin`` give the LPS
affine, which :class:`~cryoneuro.anatomy.segments.Segments` keeps unchanged.

Markups: one ``Line`` per probe in Slicer's markups JSON schema v1.0.3 (``coordinateSystem``
``LPS``, control points ``[tip, entry]`` in mm), which Slicer loads by drag and drop.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cryoneuro.anatomy.io import ImageReadError, SpacingError
from cryoneuro.anatomy.segments import Segments

MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
    "Resources/Schema/markups-schema-v1.0.3.json#"
)


def _split_affine(affine: np.ndarray, source: str) -> tuple[tuple, tuple, np.ndarray]:
    cols = np.asarray(affine, float)[:3, :3]
    spacing = np.linalg.norm(cols, axis=0)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise SpacingError(f"{source}: space directions give voxel spacing {spacing.tolist()} mm")
    direction = cols / spacing
    if abs(abs(np.linalg.det(direction)) - 1) > 1e-3:
        raise SpacingError(f"{source}: space directions are not orthogonal; resample in Slicer")
    return (
        tuple(float(s) for s in spacing),
        tuple(float(o) for o in np.asarray(affine)[:3, 3]),
        direction,
    )


def read_seg_nrrd(path: str | Path) -> Segments:
    """Read a Slicer ``.seg.nrrd`` into named masks (every layer; overlaps kept)."""
    import slicerio

    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"{p}: no such segmentation file")
    try:
        seg = slicerio.read_segmentation(str(p))
    except Exception as exc:  # pynrrd raises its own and ValueError/KeyError on bad headers
        raise ImageReadError(
            f"{p}: not a readable 3D Slicer segmentation ({exc.__class__.__name__}: {exc})"[:300]
        ) from None
    segments = seg.get("segments") or []
    if not segments:
        raise ImageReadError(f"{p}: no Segment<i>_Name entries in the header; not a .seg.nrrd?")
    voxels = seg["voxels"]
    if voxels.ndim not in (3, 4):
        raise ImageReadError(f"{p}: voxel array has {voxels.ndim} dimensions (3 or 4 expected)")
    spacing, origin, direction = _split_affine(seg["ijkToLPS"], str(p))
    masks = {}
    colours = {}
    for s in segments:
        name = str(s.get("name", s.get("id")))
        if name in masks:
            from cryoneuro.anatomy.segments import SegmentationError

            raise SegmentationError(f"{p}: two segments are named '{name}'; rename one in Slicer")
        masks[name] = slicerio.segment_mask(seg, s)
        if "color" in s:
            colours[name] = tuple(float(c) for c in s["color"])
    return Segments(masks, spacing, origin, direction, source=str(p), colours=colours)  # type: ignore[arg-type]


def write_seg_nrrd(segments: Segments, path: str | Path) -> Path:
    """Write named masks as a Slicer ``.seg.nrrd`` (overlapping masks go to separate layers).

    Written to a temporary name and moved into place, so a half-written file is never left.
    """
    import slicerio

    p = Path(path)
    odd = [n for n in segments.masks if not n.isascii() or "\n" in n]
    if odd:  # NRRD headers are ASCII lines (teem NRRD format 5)
        from cryoneuro.anatomy.segments import SegmentationError

        raise SegmentationError(
            f"{p}: segment names {odd} are not single-line ASCII (NRRD headers)"
        )
    first = next(iter(segments.masks.values()))
    seg = slicerio.create_segmentation(first.shape, segments.affine())
    seg["containedRepresentationNames"] = ["Binary labelmap"]
    for i, (name, mask) in enumerate(segments.masks.items()):
        fields: dict[str, object] = {"id": f"Segment_{i + 1}", "name": name}
        if name in segments.colours:
            fields["color"] = [round(float(c), 6) for c in segments.colours[name]]
        slicerio.add_segment(seg, mask, fields)
    tmp = p.with_name(p.name + ".tmp")
    slicerio.write_segmentation(str(tmp), seg)
    tmp.replace(p)
    return p


def markups_line(
    name: str,
    tip_mm: tuple[float, float, float] | np.ndarray,
    entry_mm: tuple[float, float, float] | np.ndarray,
    *,
    colour: tuple[float, float, float] = (0.0, 0.9, 1.0),
    description: str = "",
) -> dict:
    """A Slicer markups ``Line`` (LPS mm) from the tip to the skin entry."""
    points: list[dict] = []
    for label, pos in (("tip", tip_mm), ("entry", entry_mm)):
        points.append(
            {
                "id": str(len(points) + 1),
                "label": f"{name} {label}",
                "description": description if label == "tip" else "",
                "position": [float(v) for v in pos],
                "orientation": [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],
                "selected": True,
                "locked": True,
                "visibility": True,
                "positionStatus": "defined",
            }
        )
    return {
        "@schema": MARKUPS_SCHEMA,
        "markups": [
            {
                "type": "Line",
                "coordinateSystem": "LPS",
                "coordinateUnits": "mm",
                "locked": True,
                "fixedNumberOfControlPoints": True,
                "labelFormat": "%N-%d",
                "controlPoints": points,
                "measurements": [
                    {
                        "name": "length",
                        "enabled": True,
                        "value": float(
                            np.linalg.norm(np.asarray(entry_mm, float) - np.asarray(tip_mm, float))
                        ),
                        "units": "mm",
                        "printFormat": "%-#4.4gmm",
                    }
                ],
                "display": {
                    "visibility": True,
                    "color": list(colour),
                    "selectedColor": list(colour),
                },
            }
        ],
    }


def write_markups_line(path: str | Path, markups: dict) -> Path:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(markups, indent=2), encoding="utf-8")
    tmp.replace(p)
    return p


def read_markups_line(path: str | Path) -> list[np.ndarray]:
    """Control points (LPS mm) of the first markup of a ``.mrk.json`` (RAS files converted)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        m = doc["markups"][0]
        pts = [np.asarray(c["position"], float) for c in m["controlPoints"]]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ImageReadError(f"{p}: not a Slicer markups file ({exc.__class__.__name__})") from None
    if m.get("coordinateSystem", "LPS") == "RAS":
        pts = [pt * np.array([-1.0, -1.0, 1.0]) for pt in pts]
    return pts
