"""3D Slicer ``.seg.nrrd`` in and out, and segment names → planner roles (issue 12, item 5).

Independent expectations: SimpleITK and pynrrd (not the code under test) re-read what we write;
a file laid out by hand the way Slicer writes it (pynrrd directly, header keys copied from a
Slicer 5 segmentation) is read back; and voxel positions are checked against the DICOM
formula applied to a real CT file's header (pydicom's ``CT_small.dcm``), not against our affine.
"""

from __future__ import annotations

import json

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
from dicom_fixture import ct_series, world_of_index

from cryoneuro.anatomy.segments import SegmentationError, Segments, to_anatomy
from cryoneuro.anatomy.slicer import (
    markups_line,
    read_markups_line,
    read_seg_nrrd,
    write_markups_line,
    write_seg_nrrd,
)


def _oblique(deg=25.0):
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def _segments(shape=(20, 24, 16)):
    rng = np.random.default_rng(3)
    a = rng.random(shape) < 0.3
    b = rng.random(shape) < 0.3  # overlaps a: needs a second layer
    c = np.zeros(shape, bool)
    c[2:5, 3:9, 4:6] = True
    c &= ~a & ~b  # overlaps neither: shares layer 0 with a, as Slicer packs it
    masks = {"isotherm 0 C": a, "Nerve (tibial)": b, "Bone": c}
    return Segments(
        masks,
        (0.7, 0.8, 1.5),
        (-12.5, 30.25, -100.0),
        _oblique(),
        colours={"Bone": (1.0, 1.0, 0.9)},
    )


def test_written_seg_nrrd_reloads_in_simpleitk_and_pynrrd_with_names_and_geometry(tmp_path):
    seg = _segments()
    path = write_seg_nrrd(seg, tmp_path / "plan.seg.nrrd")
    img = sitk.ReadImage(str(path))
    np.testing.assert_allclose(img.GetSpacing(), seg.spacing_mm, atol=1e-9)
    np.testing.assert_allclose(img.GetOrigin(), seg.origin_mm, atol=1e-9)
    np.testing.assert_allclose(np.reshape(img.GetDirection(), (3, 3)), seg.direction, atol=1e-9)
    assert img.GetSize() == seg.shape
    names = [img.GetMetaData(f"Segment{i}_Name") for i in range(3)]
    assert names == list(seg.masks)
    # each segment is its label value in its layer (SimpleITK: layers as components)
    arr = sitk.GetArrayFromImage(img)  # (k, j, i, layer)
    assert img.GetNumberOfComponentsPerPixel() == 2  # a and b overlap
    for i, (name, mask) in enumerate(seg.masks.items()):
        layer = int(img.GetMetaData(f"Segment{i}_Layer"))
        value = int(img.GetMetaData(f"Segment{i}_LabelValue"))
        got = arr[..., layer].transpose(2, 1, 0) == value
        assert (got == mask).all(), name
    assert [img.GetMetaData(f"Segment{i}_Layer") for i in range(3)] == ["0", "1", "0"]
    _, header = nrrd.read(str(path))
    assert header["space"] == "left-posterior-superior"
    assert header["kinds"] == ["list", "domain", "domain", "domain"]
    np.testing.assert_allclose(
        header["space directions"][1:], (seg.direction * seg.spacing_mm).T, atol=1e-9
    )
    assert header["Segment2_Color"].split() == ["1.0", "1.0", "0.9"]
    again = read_seg_nrrd(path)
    assert list(again.masks) == list(seg.masks)
    for name in seg.masks:
        assert (again.masks[name] == seg.masks[name]).all()
    np.testing.assert_allclose(again.affine(), seg.affine(), atol=1e-9)
    assert not list(tmp_path.glob("*.tmp"))
    seg.masks["0 °C"] = seg.masks.pop("Bone")  # NRRD headers are ASCII: refused, nothing written
    with pytest.raises(SegmentationError, match="not single-line ASCII"):
        write_seg_nrrd(seg, tmp_path / "bad.seg.nrrd")
    assert not (tmp_path / "bad.seg.nrrd").exists()


def test_reads_a_file_laid_out_as_slicer_writes_it(tmp_path):
    # One layer, labels 1 and 2, LPS, the keys Slicer 5 writes (extent cropped, tags present)
    vox = np.zeros((10, 12, 8), np.uint8)
    vox[1:4, 2:5, 1:3] = 1
    vox[6:9, 7:10, 4:7] = 2
    header = {
        "type": "unsigned char",
        "space": "left-posterior-superior",
        "space directions": np.array([[-0.5, 0, 0], [0, -0.5, 0], [0, 0, 1.25]]),
        "kinds": ["domain", "domain", "domain"],
        "space origin": np.array([40.0, 20.0, -30.0]),
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
        "Segment0_ID": "Segment_1",
        "Segment0_Name": "Neuroma",
        "Segment0_LabelValue": "1",
        "Segment0_Layer": "0",
        "Segment0_Extent": "1 3 2 4 1 2",
        "Segment0_Color": "0.9 0.5 0.1",
        "Segment0_Tags": "Segmentation.Status:inprogress|",
        "Segment1_ID": "Segment_2",
        "Segment1_Name": "Digital nerve",
        "Segment1_LabelValue": "2",
        "Segment1_Layer": "0",
        "Segment1_Extent": "6 8 7 9 4 6",
        "Segment1_Color": "1 0.8 0",
        "Segment1_Tags": "|",
    }
    path = tmp_path / "slicer.seg.nrrd"
    nrrd.write(str(path), vox, header, index_order="F")
    seg = read_seg_nrrd(path)
    assert list(seg.masks) == ["Neuroma", "Digital nerve"]
    assert (seg.masks["Neuroma"] == (vox == 1)).all()
    assert (seg.masks["Digital nerve"] == (vox == 2)).all()
    np.testing.assert_allclose(seg.spacing_mm, (0.5, 0.5, 1.25))
    np.testing.assert_allclose(seg.direction, np.diag([-1.0, -1.0, 1.0]))
    # voxel (6, 7, 4): origin + i * (-0.5, 0, 0) + j * (0, -0.5, 0) + k * (0, 0, 1.25)
    a = seg.affine()
    np.testing.assert_allclose(a @ [6, 7, 4, 1], [40 - 3.0, 20 - 3.5, -30 + 5.0, 1])


def test_ct_series_labels_at_known_voxels_land_at_the_dicom_world_positions(tmp_path):
    """Orientation end to end: voxels drawn on a real CT series → .seg.nrrd → SimpleITK."""
    paths = ct_series(tmp_path / "ct", n_slices=5, rotation_deg=30.0)
    import pydicom

    from cryoneuro.anatomy.dicom_seg import read_source_series

    image, datasets = read_source_series(tmp_path / "ct")
    drawn = {"Neuroma": [(40, 50, 1), (41, 50, 1)], "Skin": [(10, 100, 3)], "Nerve": [(70, 20, 4)]}
    masks = {}
    for name, voxels in drawn.items():
        m = np.zeros(image.GetSize(), bool)
        for v in voxels:
            m[v] = True
        masks[name] = m
    seg = Segments(
        masks,
        image.GetSpacing(),
        image.GetOrigin(),
        np.reshape(image.GetDirection(), (3, 3)),
    )
    out = write_seg_nrrd(seg, tmp_path / "ct.seg.nrrd")
    back = sitk.ReadImage(str(out))
    arr = sitk.GetArrayFromImage(back)
    by_uid = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in paths}
    for i, (name, voxels) in enumerate(drawn.items()):
        assert back.GetMetaData(f"Segment{i}_Name") == name
        value = int(back.GetMetaData(f"Segment{i}_LabelValue"))
        layer_arr = arr if arr.ndim == 3 else arr[..., int(back.GetMetaData(f"Segment{i}_Layer"))]
        found = {tuple(int(x) for x in v[::-1]) for v in np.argwhere(layer_arr == value)}
        assert found == set(voxels)
        for col, row, k in voxels:
            ds = by_uid[datasets[k].SOPInstanceUID]  # the slice SimpleITK put at index k
            expected = world_of_index(ds, row, col)
            got = back.TransformIndexToPhysicalPoint((col, row, k))
            np.testing.assert_allclose(got, expected, atol=1e-3)


def _mapping_case():
    shape = (30, 30, 20)
    masks = {n: np.zeros(shape, bool) for n in ("Skin", "Neuroma", "N. digitalis", "Muscle", "x")}
    masks["Skin"][2:28, 2:28, 2:18] = True
    masks["Skin"][3:27, 3:27, 3:17] = False  # a closed shell
    masks["N. digitalis"][15, 5:25, 10] = True
    masks["Neuroma"][14:17, 12:16, 9:12] = True  # overlaps the nerve
    masks["Muscle"][5:10, 5:10, 5:10] = True
    masks["x"][20:22, 20:22, 5:7] = True
    return Segments(masks, (0.5, 0.5, 0.5), (0, 0, 0), np.eye(3))


def test_roles_by_name_rules_and_segment_map_with_overlaps_listed():
    seg = _mapping_case()
    with pytest.raises(SegmentationError, match=r"no role or tissue for segments \['x'\]"):
        to_anatomy(seg)
    anat, roles, tissues, mapping = to_anatomy(seg, {"x": "tendon"})
    names = anat.label_names
    assert names[roles["target"][0]] == "Neuroma"
    assert names[roles["nerve"][0]] == "N. digitalis"
    assert names[roles["skin"][0]] == "Skin"
    assert tissues["Muscle"] == "muscle"
    assert tissues["x"] == "tendon"
    assert mapping.how["x"] == "segment_map"
    # overlap: the neuroma wins over the nerve, and the count is stated
    both = int((seg.masks["Neuroma"] & seg.masks["N. digitalis"]).sum())
    assert both > 0
    assert any(f"{both} voxels in both" in o and "kept as 'Neuroma'" in o for o in mapping.overlaps)
    assert (anat.labels[seg.masks["Neuroma"]] == roles["target"][0]).all()
    # inside the skin shell and in no segment: unlabelled tissue; outside the shell: background
    inside = anat.label_names[int(anat.labels[8, 20, 14])]
    assert inside == "unlabelled_tissue"
    assert tissues["unlabelled_tissue"] == "fat"
    assert anat.labels[0, 0, 0] == 0
    # the thermal model takes it: every label has a tissue
    _, lab, _ = anat.to_model_inputs(tissues)
    assert lab.shape == seg.shape


@pytest.mark.parametrize(
    ("segment_map", "message"),
    [
        ({"Muscle": "target", "x": "ignore"}, "all map to the target"),
        ({"Skin": "fat", "x": "ignore"}, r"no segment for \['skin'\]"),
        ({"Nope": "nerve"}, "names segments not in the file"),
        ({"x": "granite"}, "neither a role"),
    ],
)
def test_ambiguous_or_missing_roles_are_refused(segment_map, message):
    with pytest.raises(SegmentationError, match=message):
        to_anatomy(_mapping_case(), segment_map)


def test_markups_line_is_lps_and_round_trips(tmp_path):
    doc = markups_line("probe 1", (1.0, 2.0, 3.0), (4.0, 6.0, 3.0))
    path = write_markups_line(tmp_path / "probe_1.mrk.json", doc)
    raw = json.loads(path.read_text(encoding="utf-8"))
    m = raw["markups"][0]
    assert raw["@schema"].endswith("markups-schema-v1.0.3.json#")
    assert m["type"] == "Line"
    assert m["coordinateSystem"] == "LPS"
    assert m["measurements"][0]["value"] == pytest.approx(5.0)  # 3-4-5 triangle
    tip, entry = read_markups_line(path)
    np.testing.assert_allclose(tip, (1, 2, 3))
    np.testing.assert_allclose(entry, (4, 6, 3))
    # a file saved in RAS by an older Slicer is converted to LPS
    m["coordinateSystem"] = "RAS"
    path.write_text(json.dumps(raw), encoding="utf-8")
    np.testing.assert_allclose(read_markups_line(path)[0], (-1, -2, 3))
