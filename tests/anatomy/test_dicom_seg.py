"""DICOM SEG in and out with highdicom (issue 12, item 5 and bar).

Fixture: a CT series built from pydicom's real ``CT_small.dcm`` (tests/anatomy/dicom_fixture.py),
axis-aligned as shipped and turned 30° (oblique). Labels are drawn at known voxel indices of the
series as SimpleITK reads it; the expected world positions come from each source slice's own
header by the DICOM formula (PS3.3 C.7.6.2.1.1), not from our code. The written SEG is checked
with pydicom (SOP class, referenced series and instances, segment labels) and highdicom
(``segread``), and its frames' positions must put the labelled pixels at the expected world
points; re-read through our reader and put back on the series grid, the same voxels come back.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_fixture import ct_series, world_of_index

from cryoneuro.anatomy.dicom_seg import (
    SEG_SOP_CLASS_UID,
    read_dicom_seg,
    read_source_series,
    write_dicom_seg,
)
from cryoneuro.anatomy.io import ImageReadError
from cryoneuro.anatomy.segments import on_grid_of, same_grid, to_anatomy

DRAWN = {  # (column, row, slice) indices in the SimpleITK order of the series
    "Neuroma": [(40, 50, 1), (41, 50, 1), (41, 51, 2)],
    "Nerve": [(60, 20, 0), (61, 20, 0), (62, 21, 3)],
    "Skin": [(5, 100, 4), (6, 100, 4)],
}


@pytest.fixture(params=[0.0, 30.0], ids=["axis-aligned", "oblique-30deg"])
def series(request, tmp_path):
    ct_series(tmp_path / "ct", n_slices=5, rotation_deg=request.param)
    image, datasets = read_source_series(tmp_path / "ct")
    masks = {}
    for name, voxels in DRAWN.items():
        m = np.zeros(image.GetSize(), bool)
        for v in voxels:
            m[v] = True
        masks[name] = m
    return image, datasets, masks


def _frame_world(seg_ds, frame_index, row, col):
    """World LPS of (row, col) in one SEG frame, from the SEG's own headers."""
    shared = seg_ds.SharedFunctionalGroupsSequence[0]
    frame = seg_ds.PerFrameFunctionalGroupsSequence[frame_index]
    iop = np.asarray(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    dr, dc = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    ipp = np.asarray(frame.PlanePositionSequence[0].ImagePositionPatient, float)
    return ipp + iop[:3] * dc * col + iop[3:] * dr * row


def test_seg_validates_and_puts_labels_at_the_dicom_world_positions(series, tmp_path):
    import highdicom as hd

    _, datasets, masks = series
    path = write_dicom_seg(masks, datasets, tmp_path / "plan_seg.dcm", software_version="test")
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == SEG_SOP_CLASS_UID
    assert ds.Modality == "SEG"
    assert ds.SegmentationType == "BINARY"
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == datasets[0].SeriesInstanceUID
    assert ds.FrameOfReferenceUID == datasets[0].FrameOfReferenceUID
    assert ds.StudyInstanceUID == datasets[0].StudyInstanceUID  # same study as the source
    assert [s.SegmentLabel for s in ds.SegmentSequence] == list(DRAWN)
    seg = hd.seg.segread(path)
    assert seg.number_of_segments == 3
    by_uid = {d.SOPInstanceUID: d for d in datasets}
    pixels = ds.pixel_array if ds.NumberOfFrames > 1 else ds.pixel_array[None]
    found: dict[str, set] = {n: set() for n in DRAWN}
    for f, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        name = list(DRAWN)[number - 1]
        src_uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        src = by_uid[src_uid]  # the frame references a real source slice ...
        for row, col in np.argwhere(pixels[f]):
            world = _frame_world(ds, f, row, col)
            # ... and lies where that slice's own header puts the same pixel
            np.testing.assert_allclose(world, world_of_index(src, row, col), atol=1e-3)
            found[name].add(tuple(np.round(world, 3)))
    for name, voxels in DRAWN.items():
        expected = {tuple(np.round(world_of_index(datasets[k], r, c), 3)) for c, r, k in voxels}
        assert found[name] == expected, name


def test_reloaded_seg_gives_back_the_same_voxels_on_the_series(series, tmp_path):
    image, datasets, masks = series
    path = write_dicom_seg(masks, datasets, tmp_path / "seg.dcm")
    seg = read_dicom_seg(path)
    assert list(seg.masks) == list(DRAWN)
    assert seg.referenced_series_uid == datasets[0].SeriesInstanceUID
    assert not same_grid(seg, image)  # empty frames were omitted: fewer slices
    back = on_grid_of(seg, image)
    assert same_grid(back, image)
    for name, voxels in DRAWN.items():
        assert {tuple(int(x) for x in v) for v in np.argwhere(back.masks[name])} == set(voxels)
    # and it maps to the planner's roles by name
    anatomy, roles, _, _ = to_anatomy(back)
    assert anatomy.label_names[roles["target"][0]] == "Neuroma"
    assert anatomy.label_names[roles["nerve"][0]] == "Nerve"


def test_not_a_segmentation_is_one_line(tmp_path):
    from pydicom.data import get_testdata_file

    with pytest.raises(ImageReadError, match="not a DICOM Segmentation"):
        read_dicom_seg(get_testdata_file("CT_small.dcm"))
    with pytest.raises(ImageReadError, match="no such DICOM SEG"):
        read_dicom_seg(tmp_path / "missing.dcm")
    with pytest.raises(ImageReadError, match="source series folder"):
        read_source_series(tmp_path / "missing.dcm")
