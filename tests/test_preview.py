"""The live single-probe preview: an r–z table placed in 3D (cryoneuro.thermal.preview).

Independent expectations: the table's own cell-centre values (the placement is a pure change
of coordinates, so at cell centres it must reproduce them for any probe orientation), and the
r–z solver's isotherm volumes computed by its own quadrature (a 3D voxel count of the placed
field must converge to them).
"""

from __future__ import annotations

import numpy as np
import pytest

from cryoneuro.errors import GeometryError, InputError
from cryoneuro.thermal.axisymmetric import solve_axisymmetric
from cryoneuro.thermal.geometry import Grid
from cryoneuro.thermal.preview import build_table, cached_table, place_field, place_on_grid
from cryoneuro.tissue import get_tissue

FAT = get_tissue("fat")
KW = dict(
    probe_diameter_mm=1.47,
    active_length_mm=10.0,
    protocol=[("freeze", 60.0)],
    tip_temperature_c=-150.0,
    cell_mm=0.4,
    dt_s=3.0,
    reach_mm=14.0,
)


@pytest.fixture(scope="module")
def table():
    return build_table(FAT, **KW)


def _frame(direction):
    """An orthonormal frame (e1, e2, u) with u along ``direction``."""
    u = np.asarray(direction, float) / np.linalg.norm(direction)
    helper = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(u, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(u, e1), u


@pytest.mark.parametrize("direction", [(0, 0, 1), (1, 2, -0.5), (-0.3, 0.1, -1.0)])
def test_placement_reproduces_the_table_at_cell_centres_for_any_orientation(table, direction):
    rng = np.random.default_rng(1)
    e1, e2, u = _frame(direction)
    tip = np.array([3.0, -7.0, 11.0])
    i_s = rng.integers(0, len(table.s_mm), 400)
    i_r = rng.integers(0, len(table.r_mm), 400)
    phi = rng.uniform(0, 2 * np.pi, 400)
    s, r = table.s_mm[i_s], table.r_mm[i_r]
    pts = (
        tip + s[:, None] * u + r[:, None] * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)
    )
    got = place_field(table, pts, tip, direction)
    want = table.minimum_c[i_s, i_r]
    tissue = np.isfinite(want) & np.isfinite(got)
    assert tissue.sum() > 300
    np.testing.assert_allclose(got[tissue], want[tissue], atol=1e-9)
    # NaN exactly where the table has the probe (its cells are NaN there too)
    probe = np.isnan(got)
    assert np.all(np.isnan(want[probe]) | (r[probe] < 0.5 * KW["probe_diameter_mm"] + 0.4))


def test_far_points_are_at_body_temperature(table):
    far = np.array([[0.0, 0.0, -40.0], [30.0, 0.0, 5.0]])
    np.testing.assert_allclose(place_field(table, far, (0, 0, 0), (0, 0, 1)), 37.0)


def test_voxel_volumes_converge_to_the_rz_isotherm_volumes(table):
    """The placed field on a 0.25 mm 3D grid encloses the r–z volumes (own quadrature)."""
    ref = solve_axisymmetric(
        FAT,
        probe_diameter_mm=1.47,
        active_length_mm=10.0,
        tip_temperature_c=-150.0,
        protocol=[("freeze", 60.0)],
        radius_mm=14.0 + 1.47,
        z_extent_mm=(0.0, 14.0 + 10.0 + 14.0),
        tip_z_mm=14.0,
        cell_mm=0.4,
        dt_s=3.0,
        fine_margin_mm=14.0,
    )
    grid = Grid(shape=(64, 64, 96), voxel_mm=0.25, origin_mm=(-8.0, -8.0, -6.0))
    t = place_on_grid(table, grid, (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    # the r–z volumes are of {T <= iso} plus the active probe (shaft excluded): count the
    # NaN voxels of the active part (z <= active length, the probe along +z from the tip) in
    z = grid.axis_mm(2)[None, None, :]
    active_probe = np.isnan(t) & (z <= 10.0)
    for iso in ("0", "-20", "-40"):
        want = ref.isotherms_minimum[iso]["volume_ml"]
        got = np.count_nonzero((np.nan_to_num(t, nan=99.0) <= float(iso)) | active_probe)
        got *= 0.25**3 / 1000
        assert got == pytest.approx(want, rel=0.04), iso


def test_cache_round_trip_and_a_corrupt_file_is_rebuilt(tmp_path):
    first = cached_table(FAT, cache_dir=tmp_path, **KW)
    [path] = list(tmp_path.glob("table-*.npz"))
    again = cached_table(FAT, cache_dir=tmp_path, **KW)
    np.testing.assert_array_equal(first.minimum_c, again.minimum_c)
    assert again.inputs == first.inputs
    path.write_bytes(b"not a numpy file")
    rebuilt = cached_table(FAT, cache_dir=tmp_path, **KW)
    np.testing.assert_array_equal(first.minimum_c, rebuilt.minimum_c)
    other = cached_table(FAT, cache_dir=tmp_path, **{**KW, "tip_temperature_c": -120.0})
    assert len(list(tmp_path.glob("table-*.npz"))) == 2
    assert np.nanmin(other.minimum_c) > np.nanmin(first.minimum_c)


def test_bad_inputs_are_refused_with_the_field_named(table):
    with pytest.raises(GeometryError, match="direction"):
        place_field(table, np.zeros((1, 3)), (0, 0, 0), (0, 0, 0))
    with pytest.raises(InputError, match="reach_mm"):
        build_table(FAT, **{**KW, "reach_mm": 3.0, "protocol": [("freeze", 300.0)]})
    with pytest.raises(InputError, match="device"):
        build_table(FAT, **{**KW, "tip_temperature_c": None})
