"""The nerve block cannot be fooled (issue 12, item 1): synthetic temperature fields on
synthetic nerves, so each expectation is a hand-computed length or a threshold, independent of
the thermal engine.

Geometry conventions: 0.5 mm voxels, cell-centred; a value is set on the voxels whose centres
satisfy the stated inequality, so a boundary is exact to one voxel and trilinear interpolation
blurs it by at most one more; length tolerances are therefore ±0.5 mm (one voxel) plus one
0.25 mm station step where stated.
"""

from __future__ import annotations

import numpy as np
import pytest

from cryoneuro.injury import nerve_profile
from cryoneuro.thermal import Grid


def _stump(cold_region):
    """A tibial-nerve trunk (radius 1.5 mm) along z from z = 0 to 20 mm ending in a spherical
    bulb of radius 5 mm centred at z = 25 mm (x = y = 10). Centreline: trunk axis to the bulb
    centre (arc 25 mm, the widest section) then to the distal pole (arc 30 mm)."""
    grid = Grid.from_size((20, 20, 34), 0.5)
    x, y, z = grid.centres_mm()
    rho2 = (x - 10) ** 2 + (y - 10) ** 2
    nerve = np.broadcast_to((rho2 <= 1.5**2) & (z <= 22.0), grid.shape) | (
        rho2 + (z - 25) ** 2 <= 25.0
    )
    temp = np.full(grid.shape, 4.0)  # the bulb's main body at +4 C, as the stump demo reported
    temp[np.broadcast_to(cold_region(x, y, z), grid.shape)] = -25.0
    line = np.array([[10, 10, 0.0], [10, 10, 25.0], [10, 10, 30.0]])
    return grid, temp, nerve, line


def test_stump_cold_tip_of_the_bulb_is_not_a_block():
    """Only the distal cap of the bulb (z ≥ 28.5 mm, past the widest section at z = 25 mm) is
    at −25 C, the bulb's main sections stay at +4 C: the old rule called this a complete block
    (stations on the cap are whole, tiny, cold sections); with the bulb rule it is not."""
    grid, temp, nerve, line = _stump(lambda x, y, z: z >= 28.5)
    naive = nerve_profile(temp, grid, nerve, line)
    assert naive.complete_block  # the trap: a cold cap looks like a block without the bulb rule
    prof = nerve_profile(temp, grid, nerve, line, block_proximal_to_mm=25.0)
    assert not prof.complete_block
    assert prof.blocked_length_mm == 0.0
    assert prof.summary()["block_proximal_to_mm"] == 25.0


def test_stump_block_through_the_widest_section_counts_and_is_measured_to_it():
    """−25 C over 22 ≤ z ≤ 28 (the whole bulb section there): the block counts, but only up to
    the widest section at arc 25 mm, so its length is 25 − 22 = 3 mm (hand-computed; stations
    at 0.25 mm, one voxel of interpolation blur at the proximal edge)."""
    grid, temp, nerve, line = _stump(lambda x, y, z: (z >= 22.0) & (z <= 28.0))
    prof = nerve_profile(temp, grid, nerve, line, block_proximal_to_mm=25.0)
    assert prof.complete_block
    assert prof.blocked_length_mm == pytest.approx(3.0, abs=0.5 + 0.25)
    assert prof.lesion_proximal_end_mm == pytest.approx(22.0, abs=0.5)
    assert prof.lesion_distal_end_mm == pytest.approx(25.0, abs=0.25)


def _through_nerve(shaft_radius=0.75, freeze_half=5.0):
    """A nerve of radius 1.5 mm along x at y = z = 10; a vertical needle (along z) through it
    at x = 20 whose insulated shaft (radius ``shaft_radius``) is NaN, as the engine writes it.
    −60 C over |x − 20| ≤ ``freeze_half`` (whole sections), −120 C within 1.5 mm of the needle
    axis (the tissue touching the probe)."""
    grid = Grid.from_size((40, 20, 20), 0.5)
    x, y, z = grid.centres_mm()
    nerve = np.broadcast_to((y - 10) ** 2 + (z - 10) ** 2 <= 1.5**2, grid.shape).copy()
    temp = np.full(grid.shape, 20.0)
    temp[np.broadcast_to(np.abs(x - 20) <= freeze_half, grid.shape)] = -60.0
    d_axis2 = np.broadcast_to((x - 20) ** 2 + (y - 10) ** 2, grid.shape)
    temp[d_axis2 <= 1.5**2] = -120.0
    temp[d_axis2 <= shaft_radius**2] = np.nan
    line = np.array([[0.5, 10, 10], [39.5, 10, 10]])
    return grid, temp, nerve, line


def test_needle_through_the_nerve_keeps_blocked_length_and_neurotmesis():
    """NaN shaft cells inside the nerve are displaced tissue: the −60 C segment is 10 mm long
    (|x − 20| ≤ 5, hand-computed) whether or not a needle pierces it, and the −120 C tissue
    against the needle is a neurotmesis risk (threshold −100 C, Ilfeld et al. 2016)."""
    grid, temp, nerve, line = _through_nerve()
    prof = nerve_profile(temp, grid, nerve, line)
    assert prof.neurotmesis_risk
    assert prof.blocked_length_mm == pytest.approx(10.0, abs=0.5 + 0.25)
    # no NaN anywhere in what the plan reads; the pierced stations are sampled and graded 3
    summary = prof.summary()
    assert all(v is not None for v in summary.values())
    assert np.isfinite(prof.warmest_c).all()
    assert np.isfinite(prof.coldest_c).all()
    at_needle = np.abs(prof.s_mm - (20 - 0.5)) < 0.2
    assert (prof.grade[at_needle] == 3).all()
    # the same field without the needle: the same blocked length (the needle changes nothing)
    clean = temp.copy()
    clean[np.isnan(clean)] = -120.0
    assert nerve_profile(clean, grid, nerve, line).blocked_length_mm == pytest.approx(
        prof.blocked_length_mm, abs=0.25
    )


def test_a_station_whose_whole_section_is_the_shaft_or_outside_the_grid_is_not_blocked():
    """Unsampled stations are unblocked and never NaN in the grade: a nerve whose far end runs
    12 mm beyond the grid (x up to 52 mm on a 40 mm grid) at −60 C everywhere is blocked only
    inside the grid: 0.5 → 40 mm, i.e. 39.5 mm (hand-computed, ± one station)."""
    grid, temp, nerve, _ = _through_nerve()
    cold = np.where(np.isnan(temp), np.nan, -60.0)
    line = np.array([[0.5, 10, 10], [52.0, 10, 10]])
    prof = nerve_profile(cold, grid, nerve, line)
    outside = prof.s_mm > 40.0 - 0.5 + 0.5
    assert not prof.blocked[outside].any()
    assert prof.grade.dtype == np.int8
    assert set(np.unique(prof.grade)) <= {1, 2, 3}
    assert prof.blocked_length_mm == pytest.approx(39.5, abs=0.5)
    # a half-sampled section (nerve half outside the grid in y) never counts
    half = np.zeros(grid.shape, bool)
    yy = grid.centres_mm()[1]
    half[
        np.broadcast_to((yy - 0.0) ** 2 + (grid.centres_mm()[2] - 10) ** 2 <= 1.5**2, grid.shape)
    ] = True
    prof = nerve_profile(
        np.full(grid.shape, -60.0), grid, half, np.array([[0.5, 0.0, 10], [39.5, 0.0, 10]])
    )
    assert not prof.complete_block
    assert (prof.sampled_fraction < 0.9).all()


def test_oblique_nerve_block_length_and_lesion_ends():
    """A nerve along (1, 1, 1)/√3 (radius 1.5 mm) through the grid centre; −50 C where the
    axial coordinate t (distance along the axis from the centre) satisfies |t| ≤ 4 mm: a block
    8 mm long (hand-computed), proximal edge at arc L/2 − 4, distal at L/2 + 4."""
    grid = Grid.from_size((30, 30, 30), 0.5)
    x, y, z = grid.centres_mm()
    axis = np.ones(3) / np.sqrt(3)
    c = np.array([15.0, 15.0, 15.0])
    d = np.stack(np.broadcast_arrays(x - c[0], y - c[1], z - c[2]), axis=-1)
    t = d @ axis
    rho = np.linalg.norm(d - t[..., None] * axis, axis=-1)
    nerve = rho <= 1.5
    temp = np.where(np.abs(t) <= 4.0, -50.0, 10.0)
    half = 10.0
    line = np.array([c - half * axis, c + half * axis])
    prof = nerve_profile(temp, grid, nerve, line)
    assert prof.complete_block
    assert not prof.neurotmesis_risk
    # oblique voxels: the edge of the cold band is resolved to one voxel diagonal (0.87 mm)
    assert prof.blocked_length_mm == pytest.approx(8.0, abs=0.9)
    assert prof.lesion_proximal_end_mm == pytest.approx(half - 4.0, abs=0.9)
    assert prof.lesion_distal_end_mm == pytest.approx(half + 4.0, abs=0.9)


def test_section_rules_are_parameters_and_validated():
    from cryoneuro.errors import InputError

    grid, temp, nerve, line = _through_nerve()
    with pytest.raises(InputError):
        nerve_profile(temp, grid, nerve, line, min_sampled_fraction=0.0)
