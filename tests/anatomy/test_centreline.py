"""Centreline extraction from a nerve segment against analytic curves (issue 12, item 5).

Expectations are geometric, independent of the code: a tube drawn around a known curve must give
back that curve (every point within one voxel of it), its arc length (within 5 %: the
skeleton stops up to a radius short of each rounded end, so the expectation is the curve length
minus about one tube radius per end), and the proximal → distal direction chosen by the stated
rule.
"""

from __future__ import annotations

import numpy as np
import pytest

from cryoneuro.anatomy.centreline import CentrelineError, extract_centreline


def _tube(shape, spacing, curve_mm, radius_mm, direction=None, origin=(0.0, 0.0, 0.0)):
    """Voxels within radius of a densely sampled curve; returns (mask, affine)."""
    direction = np.eye(3) if direction is None else np.asarray(direction, float)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(spacing, float)
    affine[:3, 3] = origin
    idx = np.indices(shape).reshape(3, -1).T
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    from scipy.spatial import cKDTree

    d, _ = cKDTree(curve_mm).query(world)
    return (d <= radius_mm).reshape(shape), affine


def _distance_to_curve(points, curve):
    from scipy.spatial import cKDTree

    return cKDTree(curve).query(points)[0]


def test_quarter_arc_in_an_oblique_anisotropic_grid():
    # a quarter circle of radius 20 mm in a plane tilted 30 degrees, 1.2 mm tube radius
    r, theta = 20.0, np.linspace(0, np.pi / 2, 2000)
    tilt = np.deg2rad(30)
    curve = np.column_stack(
        [r * np.cos(theta), r * np.sin(theta) * np.cos(tilt), r * np.sin(theta) * np.sin(tilt)]
    ) + np.array([5.0, 5.0, 5.0])
    rot = np.deg2rad(20)  # oblique grid: rotated 20 degrees about S
    direction = np.array(
        [[np.cos(rot), -np.sin(rot), 0], [np.sin(rot), np.cos(rot), 0], [0, 0, 1.0]]
    )
    mask, affine = _tube(
        (90, 90, 60), (0.4, 0.4, 0.6), curve, 1.2, direction, origin=(-8.0, -6.0, -2.0)
    )
    target = np.zeros_like(mask)  # the "neuroma" near the theta = 90 degree end
    world = np.indices(mask.shape).reshape(3, -1).T @ affine[:3, :3].T + affine[:3, 3]
    target.ravel()[np.linalg.norm(world - curve[-1], axis=1) < 2.5] = True
    line = extract_centreline(mask, affine, target_mask=target & mask, smooth_mm=2.0)
    voxel = 0.6
    assert _distance_to_curve(line.points_mm, curve).max() < voxel
    expected = r * np.pi / 2  # 31.4 mm, +- a tube radius at each rounded end, +- 5 %
    assert abs(line.length_mm - expected) < 2 * 1.2 + 0.05 * expected
    # distal end = the end near the target (theta = 90 degrees)
    assert np.linalg.norm(line.points_mm[-1] - curve[-1]) < 2.5
    assert np.linalg.norm(line.points_mm[0] - curve[0]) < 2.5
    np.testing.assert_allclose(line.end_organ_mm, line.points_mm[-1])
    steps = np.linalg.norm(np.diff(line.points_mm, axis=0), axis=1)
    assert steps.max() < 1.2  # resampled about every 1 mm


def test_hint_overrides_the_target_rule_and_branch_is_not_the_path():
    # a straight nerve 30 mm along y with a 6 mm side branch at y = 10: the longest path is
    # the trunk, and the hint at the y = 0 end makes that end distal
    trunk = np.column_stack([np.full(600, 10.0), np.linspace(2, 32, 600), np.full(600, 10.0)])
    branch = np.column_stack([np.linspace(10, 16, 200), np.full(200, 12.0), np.full(200, 10.0)])
    mask, affine = _tube((40, 70, 24), (0.5, 0.5, 0.5), np.vstack([trunk, branch]), 1.0, None)
    line = extract_centreline(mask, affine, end_organ_hint_mm=np.array([10.0, 0.0, 10.0]))
    assert line.points_mm[-1][1] < 5.0  # distal = the y ≈ 2 end
    assert line.points_mm[0][1] > 29.0
    assert _distance_to_curve(line.points_mm, trunk).max() < 0.75
    assert "hint" in line.rule


def test_too_short_or_empty_is_refused_in_one_line():
    mask = np.zeros((10, 10, 10), bool)
    with pytest.raises(CentrelineError, match="empty"):
        extract_centreline(mask, np.eye(4))
    mask[4:6, 4:6, 3:6] = True  # 3 voxels long
    with pytest.raises(CentrelineError, match="at least 5 mm"):
        extract_centreline(mask, np.eye(4), target_mask=mask)


def test_straight_prism_that_thinning_deletes_falls_back_to_the_centred_path():
    # an even-width prism along z touching the volume's faces: scikit-image 0.26's 3D thinning
    # returns no voxel at all for it (issue #3757); the centreline must still be its axis
    shape = (16, 16, 60)
    x, y = np.mgrid[: shape[0], : shape[1]]
    disk = (x - 7.5) ** 2 + (y - 7.5) ** 2 <= 12  # centred between voxels 7 and 8
    mask = np.repeat(disk[..., None], shape[2], axis=2)
    affine = np.diag([0.5, 0.5, 0.5, 1.0])
    target = np.zeros(shape, bool)
    target[5:11, 5:11, 50:58] = mask[5:11, 5:11, 50:58]
    line = extract_centreline(mask, affine, target_mask=target)
    assert line.method.startswith("centred minimal path")
    # the axis is at x = y = 7.5 voxels = 3.75 mm, between voxel centres (3.5 and 4.0 mm): away
    # from the end faces (4 mm: a radius and the smoothing window), a quarter voxel off at most
    z = line.points_mm[:, 2]
    inner = (z > 4.0) & (z < 29.5 - 4.0)
    assert np.abs(line.points_mm[inner, :2] - 3.75).max() <= 0.25 + 1e-9
    assert np.abs(line.points_mm[:, :2] - 3.75).max() < 1.0  # ends: within two voxels
    assert line.points_mm[0][2] < 2.0  # from the z = 0 face ...
    assert line.points_mm[-1][2] > 27.0  # ... to the far one (29.5 mm), distal at the target
    assert line.length_mm == pytest.approx(29.5, abs=2.0)
