import numpy as np
import pytest

from cryoneuro.anatomy import amputation_stump, load_phantom, morton_forefoot

#: The neuroma's semi-axes (x, y, z mm) as published/described for each phantom: Morton's
#: fusiform neuroma 5.5 × 10 × 5.5 mm (5.5 mm diameter within the 4.9-6.2 mm means of Lee et al.
#: 2007, Korean J Radiol 8:148, and Pollak et al. 1992, J Foot Surg 31:534); the stump's bulb
#: neuroma about 10 mm (10 × 9 × 11 mm, anatomy/phantoms.py docstring).
NEUROMA_SEMI_AXES_MM = {"morton_forefoot": (2.75, 5.0, 2.75), "amputation_stump": (5.0, 4.5, 5.5)}


@pytest.mark.parametrize("fn", [morton_forefoot, amputation_stump])
def test_phantom(fn, tmp_path):
    ph = fn()
    a = ph.anatomy
    vox = a.spacing_mm[0] ** 3
    neuroma = a.labels == ph.neuroma_label
    # the voxelised neuroma is the stated ellipsoid: volume 4/3 π abc within 3 % (0.5 mm voxels
    # on a 158-518 mm³ body: measured −0.9 % / +0.9 %) and extents 2a, 2b, 2c within a voxel
    semi = np.array(NEUROMA_SEMI_AXES_MM[fn.__name__])
    assert neuroma.sum() * vox == pytest.approx(4 / 3 * np.pi * semi.prod(), rel=0.03)
    ijk = np.argwhere(neuroma)
    extent = (ijk.max(axis=0) - ijk.min(axis=0) + 1) * a.spacing_mm[0]
    np.testing.assert_allclose(extent, 2 * semi, atol=a.spacing_mm[0])
    # realistic HU: cortical bone bright, fat negative
    bone = np.isin(a.labels, ph.bone_labels[:1])
    assert a.image[bone].mean() > 700
    assert a.image[a.labels == a.label_value("skin")].mean() < 200
    # the centreline runs inside the nerve/neuroma; the end organ is the stump's bulb (inside
    # the grid) or, for Morton's, the toe tip TOE_LENGTH_MM beyond the web (outside it)
    g = a.grid()
    ijk = np.floor((ph.centreline_mm[1:-1] - np.asarray(g.origin_mm)) / g.voxel_mm).astype(int)
    assert np.isin(a.labels[tuple(ijk.T)], [ph.nerve_label, ph.neuroma_label]).all()
    if fn is morton_forefoot:
        from cryoneuro.anatomy.phantoms import TOE_LENGTH_MM

        gap = ph.end_organ_mm - ph.centreline_mm[-1]
        assert gap[1] == pytest.approx(TOE_LENGTH_MM)
        assert np.linalg.norm(gap) < TOE_LENGTH_MM + 5
    else:
        assert g.contains(ph.end_organ_mm)
    # deterministic, and round trip
    assert np.array_equal(fn().anatomy.image, a.image)
    ph.write(tmp_path)
    back = load_phantom(tmp_path)
    assert np.array_equal(back.anatomy.labels, a.labels)
    assert back.anatomy.label_names == a.label_names
    np.testing.assert_allclose(back.anatomy.origin_mm, a.origin_mm)
    grid, mat, materials = back.anatomy.to_model_inputs(back.tissue_map)
    assert mat.shape == grid.shape
    assert {m.name for m in materials} >= {
        "nerve",
        "bone",
        "skin",
        "fat",
    }


def test_stump_phantom_states_its_bulb_rule_and_relief_mechanism(tmp_path):
    """The stump's block must lie proximal to or through the bulb's widest section: its arc
    length along the tibial-nerve centreline (0,0 → 20 mm, then segments of √196.5, √25.5 and
    √20.5 mm to the bulb centre) = 20 + 14.018 + 5.050 + 4.528 = 43.595 mm (hand-computed);
    it survives write/load, and the stump has no end organ (neuroma re-formation mechanism)."""
    import math

    ph = amputation_stump()
    expected = 20 + math.sqrt(196.5) + math.sqrt(25.5) + math.sqrt(20.5)
    assert ph.block_proximal_to_mm == pytest.approx(expected, abs=1e-6)
    assert ph.neuroma_type == "stump"
    assert morton_forefoot().block_proximal_to_mm is None
    back = load_phantom(ph.write(tmp_path / "stump"))
    assert back.block_proximal_to_mm == pytest.approx(expected, abs=1e-6)
    assert back.neuroma_type == "stump"
