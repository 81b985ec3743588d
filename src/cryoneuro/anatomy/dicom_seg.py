"""DICOM Segmentation (SEG) objects, read and written with highdicom.

Why: in a hospital the images and their segmentations live in PACS as DICOM; a SEG object names
its segments (Segment Label), references the series it was drawn on, and carries each frame's
position, so it can be read without a separate label table and a plan can go back to PACS
beside the patient's series.

Reading (:func:`read_dicom_seg`): ``highdicom.seg.segread`` then ``Segmentation.get_volume``
(the frames sorted into a regularly spaced volume; overlapping segments kept apart). highdicom's
volume is indexed ``(slice, row, column)``; we transpose it to ``(column, row, slice)`` and permute
the affine's columns to match, which is the ``[x, y, z]`` order SimpleITK gives the source series
(:func:`cryoneuro.anatomy.io.read_sitk`), so a SEG and its series line up voxel for voxel.

Writing (:func:`write_dicom_seg`): a BINARY ``Segmentation`` (SOP class
1.2.840.10008.5.1.4.1.1.66.4)
whose frames are the source series' slices, in the order GDCM sorts them, so each frame references
its source instance and copies its position; empty frames are omitted. Segment category and
type codes: a planned isotherm is not an anatomical structure, so it is coded
``SCT 49755003 "Morphologically abnormal structure"`` / a private code of this software
(coding scheme ``99CRYONEURO``), as the DICOM standard allows for concepts it has no code for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cryoneuro.anatomy.io import ImageReadError
from cryoneuro.anatomy.segments import Segments

SEG_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.66.4"
PRIVATE_SCHEME = "99CRYONEURO"


def read_source_series(folder: str | Path):
    """(SimpleITK image, pydicom datasets in the same slice order) of a DICOM series folder."""
    import pydicom
    import SimpleITK as sitk

    from cryoneuro.anatomy.io import read_sitk

    p = Path(folder)
    if not p.is_dir():
        raise ImageReadError(f"{p}: a DICOM SEG needs the source series folder, not a file")
    image = read_sitk(p)
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(p))
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    return image, datasets


def read_dicom_seg(path: str | Path) -> Segments:
    """Read a DICOM SEG into named masks on its own (regularly spaced) frame geometry."""
    import highdicom as hd

    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"{p}: no such DICOM SEG file")
    try:
        seg = hd.seg.segread(str(p))
    except Exception as exc:  # pydicom/highdicom raise many types for a non-SEG file
        raise ImageReadError(
            f"{p}: not a DICOM Segmentation ({exc.__class__.__name__}: {exc})"[:300]
        ) from None
    numbers = list(seg.segment_numbers)
    try:
        volume = seg.get_volume(segment_numbers=numbers, combine_segments=False)
    except (RuntimeError, ValueError) as exc:
        raise ImageReadError(
            f"{p}: frames do not form a regularly spaced volume ({exc})"[:300]
        ) from None
    arr = np.asarray(volume.array)
    if arr.ndim == 3:
        arr = arr[..., None]
    affine = np.asarray(volume.affine, float)
    # (slice, row, column) → (column, row, slice): transpose the data, permute the columns
    arr = arr.transpose(2, 1, 0, 3)
    cols = affine[:3, [2, 1, 0]]
    spacing = np.linalg.norm(cols, axis=0)
    masks = {}
    for i, n in enumerate(numbers):
        label = str(seg.get_segment_description(n).segment_label)
        if label in masks:
            from cryoneuro.anatomy.segments import SegmentationError

            raise SegmentationError(f"{p}: two segments are labelled '{label}'")
        masks[label] = arr[..., i] > 0
    ref = getattr(seg, "ReferencedSeriesSequence", None)
    return Segments(
        masks,
        tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        tuple(float(v) for v in affine[:3, 3]),  # type: ignore[arg-type]
        cols / spacing,
        source=str(p),
        referenced_series_uid=str(ref[0].SeriesInstanceUID) if ref else None,
    )


def _code(value: str, meaning: str):
    import highdicom as hd

    return hd.sr.CodedConcept(value=value, scheme_designator=PRIVATE_SCHEME, meaning=meaning)


def write_dicom_seg(
    masks: dict[str, np.ndarray],
    source_datasets: Sequence,
    path: str | Path,
    *,
    descriptions: dict[str, tuple[str, str]] | None = None,
    series_description: str = "cryoneuro plan",
    software_version: str = "",
) -> Path:
    """Write masks indexed ``(column, row, slice)`` on the source series as a BINARY DICOM SEG.

    ``source_datasets``: the series' datasets in slice order (:func:`read_source_series`);
    ``descriptions``: segment name → (private code value, meaning); default: the name.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    p = Path(path)
    names = list(masks)
    n_slices = len(source_datasets)
    rows, columns = int(source_datasets[0].Rows), int(source_datasets[0].Columns)
    pixels = np.zeros((n_slices, rows, columns, len(names)), dtype=bool)
    for s, name in enumerate(names):
        m = np.asarray(masks[name], bool)
        if m.shape != (columns, rows, n_slices):
            raise ImageReadError(
                f"mask '{name}' has shape {m.shape}; the source series is "
                f"{(columns, rows, n_slices)} (columns, rows, slices)"
            )
        pixels[..., s] = m.transpose(2, 1, 0)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="cryoneuro",
        version=software_version or "0",
        family=_code("BIOHEAT", "Bioheat simulation"),
    )
    segment_descriptions = []
    for i, name in enumerate(names, start=1):
        value, meaning = (descriptions or {}).get(name, (f"SEG{i}", name))
        segment_descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=i,
                segment_label=name[:64],
                segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                segmented_property_type=_code(value, meaning[:64]),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
            )
        )
    seg = hd.seg.Segmentation(
        source_images=list(source_datasets),
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions,
        series_instance_uid=hd.UID(),
        series_number=9901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="cryoneuro",
        manufacturer_model_name="cryoneuro planner",
        software_versions=software_version or "0",
        device_serial_number="none",
        series_description=series_description[:64],
        content_label="CRYOPLAN",
        content_description=series_description[:64],
    )
    tmp = p.with_name(p.name + ".tmp")
    seg.save_as(str(tmp))
    tmp.replace(p)
    return p
