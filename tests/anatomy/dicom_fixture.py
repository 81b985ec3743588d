"""A small CT series built from a real DICOM file shipped with pydicom (``CT_small.dcm``).

The file's own header (patient, study, pixel data, 0.661468 mm pixels, 128 × 128) is kept; each
slice gets its own SOP Instance UID, Instance Number and Image Position (Patient) one slice
thickness apart along the normal of the orientation. ``rotation_deg`` turns the in-plane axes
about the patient's S axis, so the series can be oblique (direction ≠ identity), the case where
an index/axis mix-up shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid


def ct_series(folder: Path, n_slices: int = 6, rotation_deg: float = 0.0) -> list[Path]:
    """Write ``n_slices`` files into ``folder``; returns them in slice order (increasing normal)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    a = np.deg2rad(rotation_deg)
    row = np.array([np.cos(a), np.sin(a), 0.0])  # direction of increasing column
    col = np.array([-np.sin(a), np.cos(a), 0.0])  # direction of increasing row
    normal = np.cross(row, col)
    spacing = 2.5
    origin = np.asarray(base.ImagePositionPatient, float)
    series_uid = generate_uid()
    paths = []
    for k in range(n_slices):
        ds = base.copy()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [round(float(v), 8) for v in (*row, *col)]
        ds.ImagePositionPatient = [round(float(v), 6) for v in origin + k * spacing * normal]
        ds.SliceThickness = spacing
        ds.SpacingBetweenSlices = spacing  # CT_small.dcm says 5.0; keep the header consistent
        ds.SliceLocation = float(origin[2] + k * spacing)
        path = folder / f"slice{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def world_of_index(ds: pydicom.Dataset, row: int, col: int) -> np.ndarray:
    """LPS mm of pixel (row, col) of one slice, from its own header (DICOM PS3.3 C.7.6.2.1.1)."""
    ipp = np.asarray(ds.ImagePositionPatient, float)
    iop = np.asarray(ds.ImageOrientationPatient, float)
    dr, dc = (float(v) for v in ds.PixelSpacing)  # row spacing, column spacing
    return ipp + iop[:3] * dc * col + iop[3:] * dr * row
