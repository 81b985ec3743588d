"""A small synthetic plan bundle (20³ grid, fabricated temperature field) for the tests."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from cryoneuro.planning.plan import Plan, ProbePlacement, ProtocolPhase
from cryoneuro.planning.volumes import bundle_plan, write_plan_volumes
from cryoneuro.thermal.geometry import Grid

GRID = Grid(shape=(20, 20, 20), voxel_mm=1.0, origin_mm=(-10.0, -10.0, -10.0))
TIP_MM = (1.5, -2.5, 0.5)  # LPS, a voxel centre
MEDIAN_DAYS = 204.0


def synthetic_fields(grid: Grid = GRID) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like image (fat 'body' in air) and a minimum-temperature field centred on TIP_MM."""
    x, y, z = grid.centres_mm()
    r_body = np.sqrt(x**2 + y**2 + (z * 0.8) ** 2)
    image = np.where(r_body < 9.0, 40.0, -1000.0) + 0.0 * (x + y + z)
    r = np.sqrt((x - TIP_MM[0]) ** 2 + (y - TIP_MM[1]) ** 2 + (z - TIP_MM[2]) ** 2)
    min_temperature = 37.0 - 160.0 * np.exp(-r / 3.0)  # -123 °C at the tip, 0 °C at ~4.4 mm
    return image.astype(np.float32), min_temperature.astype(np.float32)


def plan_json(**overrides: Any) -> str:
    plan = Plan(
        case="synthetic",
        probes=[
            ProbePlacement(
                name="p1",
                tip_mm=TIP_MM,
                direction=(0.0, 0.0, 1.0),
                diameter_mm=1.47,
                active_length_mm=10.0,
                gas="argon",
            )
        ],
        protocol=[ProtocolPhase(kind="freeze", duration_s=180.0, temperature_c=-140.0)],
        relief={"median_days": MEDIAN_DAYS, "interval_days": [120.0, 340.0]},
        min_tissue_temperature_c=-123.0,
    )
    return plan.model_copy(update=overrides).to_json()


def make_plan_dir(out: Path, *, volumes: bool = True) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(plan_json(), encoding="utf-8")
    (out / "report.html").write_text(
        "<!doctype html><html><head><style>h1{color:#005eb8}</style></head><body>"
        "<h1>Plan report: synthetic</h1><script>document.title='ran'</script></body></html>",
        encoding="utf-8",
    )
    (out / "report.pdf").write_bytes(b"%PDF-1.4\n% synthetic\n%%EOF\n")
    if volumes:
        image, tmin = synthetic_fields()
        write_plan_volumes(out, image, tmin, GRID)
    return out


def make_bundle(out: Path, **kwargs: Any) -> bytes:
    """The bytes of plan_bundle.zip for a synthetic plan output folder."""
    return bundle_plan(make_plan_dir(out, **kwargs)).read_bytes()


def rezip(files: dict[str, bytes]) -> bytes:
    """A zip with exactly these members (to build invalid bundles)."""
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def unzip(data: bytes) -> dict[str, bytes]:
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}
