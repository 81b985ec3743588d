"""Plan volumes as NIfTI files and the plan *bundle* the registry stores with a procedure.

``write_plan_volumes`` writes three files on one grid:

* ``image.nii.gz`` — the CT-like image of the planning region (float32);
* ``min_temperature.nii.gz`` — the minimum temperature each voxel reached, °C (float32);
* ``iceball_labels.nii.gz`` — uint8: 0 = above 0 °C, 1 = ≤ 0 °C, 2 = ≤ −20 °C, 3 = ≤ −40 °C
  (the 0/−20/−40 °C isotherms of the plan; NaN temperatures, e.g. outside tissue, are 0).

Coordinates. Arrays are indexed ``[x, y, z]`` in **LPS** millimetres (cryoneuro's convention,
see :mod:`cryoneuro.anatomy.io`), and :class:`~cryoneuro.thermal.Grid` is cell-centred with its
origin at the *corner*, so voxel ``(i, j, k)`` has its centre at
``origin + (i + ½, j + ½, k + ½) · voxel`` (LPS). NIfTI's world space is **RAS** (x → Right,
y → Anterior, z → Superior), so the written affine negates the first two world axes:

    affine = [[-v, 0, 0, -(ox + v/2)],
              [0, -v, 0, -(oy + v/2)],
              [0, 0,  v,   oz + v/2 ],
              [0, 0,  0,   1        ]]

The voxel data are written unchanged (no flipping); only the affine carries the LPS → RAS
change, with qform and sform codes 1 (scanner). A point ``p`` in cryoneuro's LPS mm is at
``(-p_x, -p_y, p_z)`` in the NIfTI world (what a viewer such as Niivue shows).

``bundle_plan`` zips the known plan output files that exist into ``plan_bundle.zip``, the file
uploaded on the registry's procedure page (``/procedures/{id}``) or to
``POST /api/procedures/{id}/plan-bundle``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from cryoneuro.errors import InputError
from cryoneuro.thermal.geometry import Grid

#: The files a plan bundle may contain, in bundle order.
BUNDLE_FILES = (
    "plan.json",
    "report.html",
    "report.pdf",
    "image.nii.gz",
    "min_temperature.nii.gz",
    "iceball_labels.nii.gz",
)
BUNDLE_NAME = "plan_bundle.zip"
#: Iceball label → "at or below this temperature" (°C).
ICEBALL_THRESHOLDS_C = {1: 0.0, 2: -20.0, 3: -40.0}


def grid_affine(grid: Grid) -> np.ndarray:
    """The NIfTI (RAS) voxel-to-world affine of a cell-centred LPS grid (see module doc)."""
    v = float(grid.voxel_mm)
    ox, oy, oz = (float(o) for o in grid.origin_mm)
    return np.array(
        [
            [-v, 0.0, 0.0, -(ox + v / 2)],
            [0.0, -v, 0.0, -(oy + v / 2)],
            [0.0, 0.0, v, oz + v / 2],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def iceball_labels(min_temperature_c: np.ndarray) -> np.ndarray:
    """uint8 labels 0–3 from the minimum temperature (NaN → 0)."""
    t = np.asarray(min_temperature_c, dtype=float)
    labels = np.zeros(t.shape, dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        for label, threshold in ICEBALL_THRESHOLDS_C.items():
            labels[t <= threshold] = label
    return labels


def write_plan_volumes(
    out_dir: str | Path, image: np.ndarray, min_temperature_c: np.ndarray, grid: Grid
) -> dict[str, Path]:
    """Write image, minimum temperature and iceball labels as NIfTI-1 (.nii.gz) on ``grid``.

    Returns name → path. Raises :class:`InputError` when an array is not 3-D on the grid.
    """
    import nibabel as nib

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shape = tuple(int(n) for n in grid.shape)
    arrays = {"image": np.asarray(image), "min_temperature_c": np.asarray(min_temperature_c)}
    for name, array in arrays.items():
        if array.shape != shape:
            raise InputError(f"{name} has shape {array.shape}, the grid is {shape}")
    affine = grid_affine(grid)
    volumes = {
        "image.nii.gz": arrays["image"].astype(np.float32),
        "min_temperature.nii.gz": arrays["min_temperature_c"].astype(np.float32),
        "iceball_labels.nii.gz": iceball_labels(arrays["min_temperature_c"]),
    }
    written: dict[str, Path] = {}
    for name, data in volumes.items():
        img = nib.Nifti1Image(data, affine)
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        img.header.set_xyzt_units(xyz="mm")
        if name == "min_temperature.nii.gz":
            img.header["descrip"] = b"minimum temperature, degC"
        elif name == "iceball_labels.nii.gz":
            img.header["descrip"] = b"1: <=0C 2: <=-20C 3: <=-40C"
        path = out / name
        tmp = out / (name + ".tmp.nii.gz")
        nib.save(img, tmp)
        tmp.replace(path)
        written[name] = path
    return written


def bundle_plan(out_dir: str | Path) -> Path:
    """Zip the known plan files present in ``out_dir`` into ``out_dir/plan_bundle.zip``.

    ``plan.json`` must exist (the registry refuses a bundle without it).
    """
    out = Path(out_dir)
    if not (out / "plan.json").is_file():
        raise InputError(f"{out}: no plan.json to bundle")
    target = out / BUNDLE_NAME
    tmp = out / (BUNDLE_NAME + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in BUNDLE_FILES:
            path = out / name
            if path.is_file():
                # .nii.gz and .pdf are already compressed: store them as they are
                compress = (
                    zipfile.ZIP_STORED if name.endswith((".gz", ".pdf")) else zipfile.ZIP_DEFLATED
                )
                zf.write(path, name, compress_type=compress)
    tmp.replace(target)
    return target
