"""A plan back into the viewer and PACS: isotherms as segmentations, probes as markups lines.

Why: the radiologist checks a plan on the patient's images in the tools already in use — 3D Slicer
(or any viewer of ``.seg.nrrd``) and PACS (DICOM SEG beside the source series) — rather than in
a picture of a slice.

What is written into the plan's folder (:func:`export_plan`):

* ``plan_isotherms.seg.nrrd`` — the regions at or below 0, −20 and −40 °C of the minimum
  temperature (nested, so each in its own layer), named ``isotherm 0 C`` … and coloured as in the
  report, on the plan's grid (LPS, :mod:`cryoneuro.anatomy.slicer`);
* ``probe_<n>.mrk.json`` — one Slicer markups line per probe, tip → skin entry (LPS mm);
* ``plan_isotherms_seg.dcm`` — when the source images are a DICOM series: the same isotherms as a
  BINARY DICOM SEG on that series' slices (nearest-neighbour resampling of the plan grid onto
  the series grid; :mod:`cryoneuro.anatomy.dicom_seg`), referencing the series and its instances.

The temperatures are read back from ``min_temperature.nii.gz`` (written by the planner; RAS
affine, :mod:`cryoneuro.planning.volumes`), so an export can be redone from a plan folder alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryoneuro.anatomy.segments import Segments
from cryoneuro.errors import InputError
from cryoneuro.planning.plan import Plan

ISOTHERMS_C = (0.0, -20.0, -40.0)
SEG_NRRD, SEG_DICOM = "plan_isotherms.seg.nrrd", "plan_isotherms_seg.dcm"
PROBE_COLOUR = (0.0, 0.9, 1.0)


def isotherm_name(level_c: float) -> str:
    return f"isotherm {level_c:g} C"


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    h = hex_colour.lstrip("#")
    return tuple(int(h[i : i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def isotherm_segments(min_temperature_c: np.ndarray, affine_lps: np.ndarray) -> Segments:
    """The 0/−20/−40 °C regions of a minimum-temperature field (NaN: outside tissue, never in)."""
    from cryoneuro.thermal.figures import ISO_COLOURS

    t = np.asarray(min_temperature_c, float)
    a = np.asarray(affine_lps, float)
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    with np.errstate(invalid="ignore"):
        masks = {isotherm_name(lv): t <= lv for lv in ISOTHERMS_C}
    return Segments(
        masks,
        tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        tuple(float(v) for v in a[:3, 3]),  # type: ignore[arg-type]
        a[:3, :3] / spacing,
        source="plan",
        colours={isotherm_name(lv): _rgb(ISO_COLOURS[lv]) for lv in ISOTHERMS_C},
    )


def read_min_temperature(out_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(minimum temperature °C, 4×4 LPS affine) from the plan folder's NIfTI."""
    import nibabel as nib

    path = Path(out_dir) / "min_temperature.nii.gz"
    if not path.is_file():
        raise InputError(f"{path}: missing; run the plan first (it writes the volumes)")
    img = nib.load(path)
    ras_to_lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    return np.asarray(img.dataobj, dtype=float), ras_to_lps @ img.affine


def export_plan(
    plan: Plan, out_dir: str | Path, *, source_series: str | Path | None = None
) -> dict[str, Path]:
    """Write the isotherm segmentation(s) and the probe markups; returns name → path.

    ``source_series``: the DICOM series folder the plan's images came from (adds the DICOM SEG).
    """
    from cryoneuro.anatomy.slicer import markups_line, write_markups_line, write_seg_nrrd

    out = Path(out_dir)
    tmin, affine = read_min_temperature(out)
    segs = isotherm_segments(tmin, affine)
    written = {"isotherms_seg_nrrd": write_seg_nrrd(segs, out / SEG_NRRD)}
    entries = {i: t.entry_mm for i, t in enumerate(plan.trajectories)}
    for i, probe in enumerate(plan.probes):
        tip = np.asarray(probe.tip_mm, float)
        if i in entries:
            entry = np.asarray(entries[i], float)
        else:  # no trajectory: draw the active part (tip → end of the active zone)
            entry = tip + probe.active_length_mm * np.asarray(probe.direction, float)
        doc = markups_line(
            probe.name,
            tip,
            entry,
            colour=PROBE_COLOUR,
            description=f"{probe.diameter_mm:g} mm, {probe.active_length_mm:g} mm active, "
            f"{probe.gas or ''}",
        )
        key = f"probe_{i + 1}_markups"
        written[key] = write_markups_line(out / f"probe_{i + 1}.mrk.json", doc)
    if source_series is not None:
        from cryoneuro import __version__
        from cryoneuro.anatomy.dicom_seg import read_source_series, write_dicom_seg
        from cryoneuro.anatomy.segments import on_grid_of

        image, datasets = read_source_series(source_series)
        on_series = on_grid_of(segs, image)
        written["isotherms_dicom_seg"] = write_dicom_seg(
            on_series.masks,
            datasets,
            out / SEG_DICOM,
            descriptions={
                isotherm_name(lv): (f"ISO{abs(int(lv))}", f"Planned isotherm {lv:g} degC")
                for lv in ISOTHERMS_C
            },
            series_description=f"cryoneuro plan {plan.case}"[:64],
            software_version=__version__,
        )
    plan.files.update({k: str(v) for k, v in written.items()})
    plan.save(out / "plan.json")
    return written
