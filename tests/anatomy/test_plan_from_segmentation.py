"""Plan a patient's case from a DICOM SEG drawn on a real CT series, and export the plan back
as a 3D Slicer segmentation, probe markups and a DICOM SEG referencing the series (issue 12,
item 5, end to end through the CLI).

The CT series is pydicom's ``CT_small.dcm`` repeated into 8 slices and turned 30° about S
(tests/anatomy/dicom_fixture.py). On it a small forefoot-like case is drawn at known voxels: a
box of soft tissue whose boundary is the skin, a nerve along the image's row axis and a neuroma
on it. Independent expectations: the extracted centreline runs along the drawn nerve's LPS
direction (the series' column-direction cosines, IOP[3:6]); every voxel of the exported −20 °C
isotherm, placed in the world by the SEG's own frame headers, lies where the planner's minimum
temperature (read through nibabel's RAS affine, not our code) is ≤ −20 °C.
"""

from __future__ import annotations

import json
from itertools import pairwise

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_fixture import ct_series
from typer.testing import CliRunner

from cryoneuro.anatomy.dicom_seg import SEG_SOP_CLASS_UID, read_source_series, write_dicom_seg
from cryoneuro.cli import app

ROT = 30.0


def _draw_case(folder):
    ct_series(folder / "ct", n_slices=8, rotation_deg=ROT)
    image, datasets = read_source_series(folder / "ct")
    shape = image.GetSize()  # (columns, rows, slices)
    body = np.zeros(shape, bool)
    body[34:95, 34:95, :] = True  # 40 x 40 mm of tissue, the full 20 mm depth
    inner = np.zeros(shape, bool)
    inner[35:94, 35:94, :7] = True
    skin = body & ~inner  # the box's side walls and its top slice
    nerve = np.zeros(shape, bool)
    nerve[62:67, 36:93, 3] = True  # 3.3 mm wide, one 2.5 mm slice, along the rows
    neuroma = np.zeros(shape, bool)
    neuroma[59:70, 58:70, 2:5] = True  # 7 x 8 x 7.5 mm
    masks = {"Skin": skin, "Digital nerve": nerve, "Neuroma": neuroma}
    write_dicom_seg(masks, datasets, folder / "seg.dcm")
    (folder / "case.toml").write_text(
        """
[anatomy]
segmentation = "seg.dcm"
image = "ct"

[plan]
search = "grid"              # one candidate: keeps the test cheap
gases = ["argon"]
offsets_mm = [0]
shifts_mm = [0]
freezes_s = [60]
""",
        encoding="utf-8",
    )
    return datasets


def test_plan_from_dicom_seg_on_a_ct_series_and_export_back(tmp_path):
    datasets = _draw_case(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["plan", str(tmp_path / "case.toml"), "--out", str(out), "--export-seg", "--json"]
    )
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    case = plan["inputs"]["case"]
    roles = {n: v["as"] for n, v in case["segment_mapping"]["segments"].items()}
    assert roles == {"Skin": "skin", "Digital nerve": "nerve", "Neuroma": "target"}
    # the centreline follows the drawn nerve: the series' column direction (increasing row)
    line = np.asarray(case["centreline"]["centreline_mm"])
    axis = np.linalg.svd(line - line.mean(0))[2][0]
    row_dir = np.asarray(datasets[0].ImageOrientationPatient, float)[3:]
    assert abs(axis @ row_dir) > np.cos(np.deg2rad(3.0))
    assert case["centreline"]["length_mm"] > 30.0  # the nerve is drawn 37.7 mm long

    # Slicer segmentation of the isotherms: names, and the plan grid's geometry
    seg_img = sitk.ReadImage(plan["files"]["isotherms_seg_nrrd"])
    names = [seg_img.GetMetaData(f"Segment{i}_Name") for i in range(3)]
    assert names == ["isotherm 0 C", "isotherm -20 C", "isotherm -40 C"]
    tmin_img = nib.load(out / "min_temperature.nii.gz")
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ tmin_img.affine
    np.testing.assert_allclose(seg_img.GetOrigin(), lps[:3, 3], atol=1e-6)
    np.testing.assert_allclose(seg_img.GetSpacing(), np.abs(np.diag(lps)[:3]), atol=1e-9)

    # probe markups: the tip is the plan's
    mrk = json.loads((out / "probe_1.mrk.json").read_text(encoding="utf-8"))
    tip = mrk["markups"][0]["controlPoints"][0]["position"]
    np.testing.assert_allclose(tip, plan["probes"][0]["tip_mm"])

    # DICOM SEG on the source series
    ds = pydicom.dcmread(plan["files"]["isotherms_dicom_seg"])
    assert ds.SOPClassUID == SEG_SOP_CLASS_UID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == datasets[0].SeriesInstanceUID
    assert [s.SegmentLabel for s in ds.SegmentSequence] == names
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = np.asarray(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    dr, dc = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    tmin = np.asarray(tmin_img.dataobj, float)
    inv = np.linalg.inv(lps)
    pixels = ds.pixel_array if ds.NumberOfFrames > 1 else ds.pixel_array[None]
    checked = 0
    for f, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        if int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber) != 2:
            continue  # the -20 C isotherm
        ipp = np.asarray(frame.PlanePositionSequence[0].ImagePositionPatient, float)
        rc = np.argwhere(pixels[f])
        world = ipp + np.outer(rc[:, 1] * dc, iop[:3]) + np.outer(rc[:, 0] * dr, iop[3:])
        ijk = np.rint((inv[:3, :3] @ world.T).T + inv[:3, 3]).astype(int)
        assert (tmin[tuple(ijk.T)] <= -20.0).all()
        checked += len(ijk)
    assert checked > 0


def test_phantoms_written_as_slicer_cases_read_back_with_their_hand_drawn_nerve(tmp_path):
    """The phantoms' centrelines and the stump bulb's widest section were drawn by hand from
    their construction (anatomy/phantoms.py); written as Slicer cases and read back, the
    extracted ones must agree: mean distance under 0.6 mm (about a voxel), the proximal end
    within 2.5 mm (a nerve radius), the stump's distal end within 5 mm (the bulb's radius: the
    extracted end is the centre of the end face, up to one radius inside the pole the hand line
    ends on), the widest section within 1.5 mm; the roles are the phantoms' labels."""
    from scipy.spatial import cKDTree

    from cryoneuro.anatomy.patient import write_segmentation_case
    from cryoneuro.anatomy.phantoms import amputation_stump, morton_forefoot
    from cryoneuro.cli.plan_cmd import load_plan_case

    for make in (morton_forefoot, amputation_stump):
        ph = make()
        case, _ = load_plan_case(write_segmentation_case(ph, tmp_path / ph.name))
        got = case.phantom
        names = got.anatomy.label_names
        assert names[got.neuroma_label] == ph.anatomy.label_names[ph.neuroma_label]
        assert names[got.nerve_label] == ph.anatomy.label_names[ph.nerve_label]
        assert names[got.skin_label] == "skin"
        assert sorted(names[v] for v in got.bone_labels) == sorted(
            ph.anatomy.label_names[v] for v in ph.bone_labels
        )
        assert [names[v] for v in got.artery_labels] == [
            ph.anatomy.label_names[v] for v in ph.artery_labels
        ]
        hand = np.vstack([np.linspace(a, b, 200) for a, b in pairwise(ph.centreline_mm)])
        d = cKDTree(hand).query(got.centreline_mm)[0]
        assert d.mean() < 0.6, (ph.name, d.mean())
        assert np.linalg.norm(got.centreline_mm[0] - ph.centreline_mm[0]) < 2.5
        if ph.neuroma_type == "stump":  # (the Morton hand line ends beyond the segment)
            assert np.linalg.norm(got.centreline_mm[-1] - hand[-1]) < 5.0
        np.testing.assert_allclose(got.end_organ_mm, ph.end_organ_mm, atol=1e-3)  # kept
        if ph.neuroma_type == "stump":  # the same place, each at its own line's arc length
            where = [
                _at_arc(line, s)
                for line, s in (
                    (got.centreline_mm, got.block_proximal_to_mm),
                    (ph.centreline_mm, ph.block_proximal_to_mm),
                )
            ]
            assert np.linalg.norm(where[0] - where[1]) < 1.5


def _at_arc(line: np.ndarray, s_mm: float) -> np.ndarray:
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
    return np.array([np.interp(s_mm, s, line[:, a]) for a in range(3)])


@pytest.mark.parametrize(
    ("anatomy", "extra", "message"),
    [
        ('segmentation = "s.seg.nrrd"', "", "give anatomy.image"),
        ('labels = "l.nii.gz"\nsegmentation = "s.seg.nrrd"', "", "exactly one of labels"),
        ("", "", "exactly one of labels"),
        (
            'segmentation = "s.seg.nrrd"\nimage = "i.nrrd"',
            '[structures]\ntarget = "n"\nnerve = "n"\nskin = "s"\n',
            "not [structures]",
        ),
        ('labels = "l.nii.gz"', "", "give [structures], nerve.centreline_mm"),
        (
            'segmentation = "missing.seg.nrrd"\nimage = "i.nrrd"',
            "",
            "missing.seg.nrrd: no such segmentation file",
        ),
    ],
)
def test_case_file_mistakes_are_one_line_exit_2(tmp_path, anatomy, extra, message):
    case = tmp_path / "case.toml"
    case.write_text(f"[anatomy]\n{anatomy}\n{extra}", encoding="utf-8")
    res = CliRunner().invoke(app, ["plan", str(case), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
