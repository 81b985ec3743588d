import numpy as np
import pytest

from cryoneuro.errors import InputError
from cryoneuro.injury import (
    nerve_profile,
    structure_safety,
    sunderland_grade,
    target_coverage,
    warnings,
)
from cryoneuro.thermal import Grid

G = Grid(shape=(40, 40, 80), voxel_mm=0.5)


def _nerve(radius=1.0):
    x, y, _ = G.centres_mm()
    return np.broadcast_to((x - 10) ** 2 + (y - 10) ** 2 <= radius**2, G.shape).copy()


def test_grades():
    assert list(sunderland_grade([10, -5, -30, -120])) == [0, 1, 2, 3]


def test_blocked_length_matches_analytic():
    _, _, z = G.centres_mm()
    t = np.broadcast_to(-60 + 4.0 * np.abs(z - 20), G.shape).copy()  # -20 °C at |z-20| = 10 mm
    line = np.array([[10, 10, 0.5], [10, 10, 39.5]])
    p = nerve_profile(t, G, _nerve(), line, step_mm=0.25)
    assert abs(p.blocked_length_mm - 20.0) <= 0.25 + 1e-9
    assert p.complete_block
    assert not p.neurotmesis_risk
    assert abs(p.lesion_distal_end_mm - (30 - 0.5)) <= 0.25 + 1e-9
    # regrowth starts at the proximal edge (arc 10 mm from z = 0.5 → z = 10.5 … −20 °C at z = 10)
    assert abs(p.lesion_proximal_end_mm - (10 - 0.5)) <= 0.25 + 1e-9
    assert set(np.unique(p.grade)) == {1, 2}


def test_profile_plot_draws_the_profile_and_the_blocked_segment():
    """The figure shows what the profile holds: the warmest/coldest curves are the profile's
    arrays, and the shaded blocked segment spans the analytic block z = 10 … 30 mm (arc
    9.5 … 29.5 mm from z = 0.5), i.e. where −60 + 4|z − 20| ≤ −20 °C."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon, Rectangle

    _, _, z = G.centres_mm()
    t = np.broadcast_to(-60 + 4.0 * np.abs(z - 20), G.shape).copy()
    line = np.array([[10, 10, 0.5], [10, 10, 39.5]])
    p = nerve_profile(t, G, _nerve(), line, step_mm=0.25)
    fig, ax = plt.subplots()
    try:
        assert p.plot(ax) is ax
        curves = {ln.get_label(): ln for ln in ax.get_lines()}
        np.testing.assert_array_equal(curves["warmest in section"].get_xdata(), p.s_mm)
        np.testing.assert_array_equal(curves["warmest in section"].get_ydata(), p.warmest_c)
        np.testing.assert_array_equal(curves["coldest in section"].get_ydata(), p.coldest_c)
        green = [
            patch
            for patch in ax.patches
            if isinstance(patch, Polygon | Rectangle)
            and np.allclose(patch.get_facecolor()[:3], plt.matplotlib.colors.to_rgb("tab:green"))
        ]
        assert len(green) == 1  # one blocked run
        x = green[0].get_xy()[:, 0] if isinstance(green[0], Polygon) else None
        if x is None:
            x = np.array([green[0].get_x(), green[0].get_x() + green[0].get_width()])
        assert x.min() == pytest.approx(10 - 0.5, abs=0.25)
        assert x.max() == pytest.approx(30 - 0.5, abs=0.25)
    finally:
        plt.close(fig)


@pytest.mark.parametrize(("warm_edge", "expected"), [(-25.0, True), (-15.0, False)])
def test_radial_gradient_complete_block(warm_edge, expected):
    x, y, z = G.centres_mm()
    r = np.sqrt((x - 10) ** 2 + (y - 10) ** 2)
    # cold on one side (x < 10) warm on the other: -110 at the axis side, warm_edge on the rim
    t = np.broadcast_to(
        -110 + (warm_edge + 110) * np.clip((x - 9.5) / 1.0, 0, 1) + 0 * r + 0 * z, G.shape
    ).copy()
    p = nerve_profile(t, G, _nerve(1.0), np.array([[10, 10, 5.0], [10, 10, 35.0]]), step_mm=0.5)
    assert p.complete_block is expected
    assert p.neurotmesis_risk  # the cold side is below -100 °C


def test_coverage_and_safety():
    x, y, z = G.centres_mm()
    r = np.sqrt((x - 10) ** 2 + (y - 10) ** 2 + (z - 20) ** 2)
    t = np.broadcast_to(-100 + 10.0 * r, G.shape).copy()  # 0 °C at r = 10, -20 at r = 8
    target = r <= 5
    cov = target_coverage(t, G, target)
    assert cov.fractions[-40.0] == 1.0
    assert cov.max_c <= -50
    skin = np.broadcast_to(x > 19, G.shape).copy()  # 9+ mm from the centre
    artery = np.broadcast_to((x - 10) ** 2 + (z - 35) ** 2 < 1, G.shape).copy()
    rep = {s.name: s for s in structure_safety(t, G, {"skin": skin, "artery": artery})}
    assert rep["skin"].min_c < 0
    assert rep["skin"].warning
    assert rep["artery"].distance_mm[0.0] > 3
    assert rep["artery"].limit_c is None
    assert abs(rep["artery"].distance_mm[-20.0] - (15 - 1 - 8)) < 1.0
    assert len(warnings(list(rep.values()))) == 1


def test_bad_inputs():
    with pytest.raises(InputError):
        nerve_profile(np.zeros((3, 3, 3)), G, _nerve(), np.array([[0, 0, 0], [1, 1, 1]]))
    with pytest.raises(InputError):
        nerve_profile(np.zeros(G.shape), G, _nerve(), np.array([[0, 0, 0]]))
