import time

import numpy as np
import pytest

from cryoneuro.anatomy import amputation_stump, load_phantom, morton_forefoot


@pytest.mark.parametrize("fn", [morton_forefoot, amputation_stump])
def test_phantom(fn, tmp_path):
    t = time.perf_counter()
    ph = fn()
    assert time.perf_counter() - t < 3.0
    a = ph.anatomy
    vox = a.spacing_mm[0] ** 3
    neuroma = a.labels == ph.neuroma_label
    assert 80 < neuroma.sum() * vox < 700  # ~5.5x5.5x10 mm fusiform or ~10 mm bulb
    # realistic HU: cortical bone bright, fat negative
    bone = np.isin(a.labels, ph.bone_labels[:1])
    assert a.image[bone].mean() > 700 and a.image[a.labels == a.label_value("skin")].mean() < 200
    # the centreline runs inside the nerve/neuroma, the end organ inside the grid
    g = a.grid()
    ijk = np.floor((ph.centreline_mm[1:-1] - np.asarray(g.origin_mm)) / g.voxel_mm).astype(int)
    assert np.isin(a.labels[tuple(ijk.T)], [ph.nerve_label, ph.neuroma_label]).all()
    assert g.contains(ph.end_organ_mm)
    # deterministic, and round trip
    assert np.array_equal(fn().anatomy.image, a.image)
    ph.write(tmp_path)
    back = load_phantom(tmp_path)
    assert np.array_equal(back.anatomy.labels, a.labels) and back.anatomy.label_names == a.label_names
    np.testing.assert_allclose(back.anatomy.origin_mm, a.origin_mm)
    grid, mat, materials = back.anatomy.to_model_inputs(back.tissue_map)
    assert mat.shape == grid.shape and {m.name for m in materials} >= {"nerve", "bone", "skin", "fat"}
