import json

import numpy as np
import pytest
import SimpleITK as sitk

from cryoneuro.anatomy import (
    AlignmentError,
    Anatomy,
    ImageReadError,
    LabelMapError,
    SpacingError,
    UltrasoundPlane,
    load_anatomy,
    read_label_table,
)
from cryoneuro.errors import InputError


def _write(path, arr, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None):
    img = sitk.GetImageFromArray(arr.transpose(2, 1, 0))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    sitk.WriteImage(img, str(path))
    return path


@pytest.fixture
def pair(tmp_path):
    lab = np.zeros((10, 12, 8), np.uint8)
    lab[3:6, 4:8, 2:5] = 1
    lab[6:8, 4:8, 2:5] = 2
    img = np.where(lab > 0, 40.0, -100.0).astype(np.float32)
    _write(tmp_path / "img.nii.gz", img, (0.5, 0.5, 0.5), (10.0, -5.0, 3.0))
    _write(tmp_path / "lab.nrrd", lab, (0.5, 0.5, 0.5), (10.0, -5.0, 3.0))
    (tmp_path / "names.json").write_text(
        json.dumps({"1": "neuroma", "2": "muscle"}), encoding="utf-8"
    )
    return tmp_path


def test_load_roundtrip_and_axes(pair):
    a = load_anatomy(
        pair / "lab.nrrd", pair / "img.nii.gz", pair / "names.json", required_labels=("neuroma",)
    )
    assert a.labels.shape == (10, 12, 8)
    assert a.labels[4, 5, 3] == 1
    assert a.image[4, 5, 3] == 40
    g, mat, materials = a.to_model_inputs()
    assert g.origin_mm == (9.75, -5.25, 2.75)
    assert g.voxel_mm == 0.5
    assert mat.dtype == np.uint8
    assert {m.name for m in materials} >= {"nerve", "muscle"}


def test_label_tables(tmp_path):
    (tmp_path / "a.ctbl").write_text(
        "# Slicer\n0 background 0 0 0 0\n1 neuroma 255 0 0 255\n", encoding="utf-8"
    )
    (tmp_path / "b.txt").write_text(
        '# ITK-SNAP\n    0     0    0    0        0  0  0    "Clear Label"\n'
        '    1   255    0    0        1  1  1    "plantar fat"\n',
        encoding="utf-8",
    )
    (tmp_path / "c.toml").write_text("skin = 3\n", encoding="utf-8")
    assert read_label_table(tmp_path / "a.ctbl")[1] == "neuroma"
    assert read_label_table(tmp_path / "b.txt")[1] == "plantar fat"
    assert read_label_table(tmp_path / "c.toml") == {3: "skin"}


def test_corrupt_file(tmp_path):
    p = tmp_path / "bad.nii.gz"
    p.write_bytes(b"\x1f\x8b not really a nifti")
    with pytest.raises(ImageReadError) as e:
        load_anatomy(p)
    assert "bad.nii.gz" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kw", [{"spacing": (0.6, 0.5, 0.5)}, {"origin": (11.0, -5.0, 3.0)}])
def test_misaligned(pair, kw):
    lab = np.zeros((10, 12, 8), np.uint8)
    lab[1, 1, 1] = 1
    args = {"spacing": (0.5, 0.5, 0.5), "origin": (10.0, -5.0, 3.0)} | kw
    _write(pair / "lab2.nii.gz", lab, **args)
    with pytest.raises(AlignmentError, match="lab2"):
        load_anatomy(pair / "lab2.nii.gz", pair / "img.nii.gz")


def test_missing_and_nonint_labels(pair):
    with pytest.raises(LabelMapError, match="nerve"):
        load_anatomy(pair / "lab.nrrd", label_names=pair / "names.json", required_labels=("nerve",))
    _write(pair / "f.nii.gz", np.full((4, 4, 4), 0.5, np.float32))
    with pytest.raises(LabelMapError, match="non-integer"):
        load_anatomy(pair / "f.nii.gz")


def test_unmapped_and_anisotropic(pair):
    a = load_anatomy(pair / "lab.nrrd", label_names={"1": "neuroma", "2": "mystery"})
    with pytest.raises(LabelMapError, match="mystery"):
        a.to_model_inputs()
    assert len(a.to_model_inputs(default_tissue="muscle")[2]) >= 2
    b = Anatomy(labels=a.labels, label_names=a.label_names, spacing_mm=(0.5, 0.5, 1.0))
    with pytest.raises(SpacingError):
        b.grid()
    with pytest.raises(SpacingError):
        Anatomy(labels=a.labels, label_names={}, spacing_mm=(0.5, 0.0, 0.5))
    assert b.resample_to(0.5).labels.shape == (10, 12, 16)


def test_oblique_image_lands_at_its_world_position(tmp_path):
    """An oblique label map (array axes rotated 30° about z in LPS) is read with its direction
    and resampled to where it is in the world: a 8 × 2 × 2 mm bar along the array's first axis,
    centred on array index c = (9.5, 9.5, 9.5) at 1 mm spacing and origin o, must end up centred
    at o + R·c with its long axis along R·x̂ = (cos 30°, sin 30°, 0). Ignoring the direction
    puts the centre 6.6 mm away and the axis along x (0°)."""
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[6:14, 9:11, 9:11] = 1
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    origin = np.array([-3.0, 2.0, 5.0])
    path = _write(
        tmp_path / "oblique.nrrd", lab, (1.0, 1.0, 1.0), tuple(origin), tuple(rot.ravel())
    )
    a = load_anatomy(path, label_names={"1": "neuroma"})
    np.testing.assert_allclose(a.direction, rot, atol=1e-9)
    r = a.resample_to(0.5)
    assert r.is_axis_aligned
    ijk = np.argwhere(r.labels == 1).astype(float)
    world = np.asarray(r.origin_mm) + ijk * 0.5  # axis-aligned: origin is voxel (0,0,0)'s centre
    expected_centre = origin + rot @ np.array([9.5, 9.5, 9.5])
    np.testing.assert_allclose(world.mean(axis=0), expected_centre, atol=0.25)
    # long axis: the principal direction of the resampled voxels
    _, _, vt = np.linalg.svd(world - world.mean(axis=0), full_matrices=False)
    angle = np.degrees(np.arctan2(vt[0, 1], vt[0, 0])) % 180
    assert angle == pytest.approx(30.0, abs=2.0)
    assert abs(vt[0, 2]) < 0.02
    assert len(world) * 0.125 == pytest.approx(32.0, rel=0.15)  # 8 × 2 × 2 mm survives
    assert isinstance(r.grid().voxel_mm, float)


def test_ultrasound_plane(tmp_path):
    us = UltrasoundPlane((0.1, 0.2), (1.0, 2.0, 3.0), (1, 0, 0), (0, 0, 1))
    np.testing.assert_allclose(us.to_physical(10, 5), [2.0, 2.0, 4.0])
    with pytest.raises(InputError):
        UltrasoundPlane((0.1, 0.2), (0, 0, 0), (1, 0, 0), (1, 0, 0))
    from cryoneuro.anatomy import read_ultrasound

    p = tmp_path / "f.png"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((30, 40), np.uint8)), str(p))
    with pytest.raises(SpacingError):
        read_ultrasound(p)
    assert read_ultrasound(p, pixel_spacing_mm=(0.1, 0.1)).pixel.shape == (30, 40)


def test_dicom_series(tmp_path):
    arr = (np.arange(4 * 5 * 3).reshape(4, 5, 3) % 7).astype(np.int16)
    vol = sitk.GetImageFromArray(arr.transpose(2, 1, 0))
    vol.SetSpacing((0.5, 0.5, 0.5))
    w = sitk.ImageFileWriter()
    w.KeepOriginalImageUIDOn()
    for k in range(3):
        sl = vol[:, :, k]
        for tag, val in {
            "0020|000e": "1.2.826.0.1.3680043.2.1125.1",
            "0020|0032": f"0\\0\\{k * 0.5}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|0030": "0.5\\0.5",
            "0020|0013": str(k),
            "0008|0060": "CT",
        }.items():
            sl.SetMetaData(tag, val)
        w.SetFileName(str(tmp_path / f"s{k}.dcm"))
        w.Execute(sl)
    a = load_anatomy(tmp_path)
    assert a.labels.shape == (4, 5, 3)
    assert np.array_equal(a.labels, arr)
    assert np.allclose(a.spacing_mm, 0.5)
    with pytest.raises(ImageReadError, match="no DICOM"):
        load_anatomy(_empty(tmp_path))


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_resample_refuses_too_many_cells_before_allocating():
    """A 20 mm image resampled to 0.02 mm voxels would be 1e9 cells (input_checks.MAX_CELLS is
    64 M) and to 0.005 mm below the smallest voxel: refused with the source named, not a
    MemoryError (SimpleITK would allocate the reference grid first)."""
    from cryoneuro.anatomy.io import SpacingError

    a = Anatomy(
        labels=np.zeros((20, 20, 20), np.uint8),
        label_names={0: "background"},
        spacing_mm=(1, 1, 1),
        source="tiny.nii.gz",
    )
    with pytest.raises(
        SpacingError, match=r"tiny.nii.gz: resampling to 0.02 mm voxels gives 1,000,000,000 cells"
    ):
        a.resample_to(0.02)
    with pytest.raises(SpacingError, match=r"of at least 0\.01 mm"):
        a.resample_to(0.005)
    assert a.resample_to(0.25).labels.shape == (80, 80, 80)  # 512 000 cells: fine
