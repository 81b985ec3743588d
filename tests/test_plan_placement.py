"""The full plan of a chosen placement (planning/placement.py, the workspace's "Run full plan"):
a needle path through a metatarsal is refused by the planner's trajectory rule before anything
is simulated, the chosen protocol option must exist, and the registry's job parameters for a
placement are checked field by field (one line naming the field)."""

from __future__ import annotations

import numpy as np
import pytest

from cryoneuro.anatomy import phantoms
from cryoneuro.errors import GeometryError, InputError
from cryoneuro.planning.placement import plan_placement


@pytest.fixture(scope="module")
def morton():
    return phantoms.morton_forefoot()


def test_a_path_through_bone_is_refused(morton, tmp_path) -> None:
    anat = morton.anatomy
    bone = np.isin(anat.labels, morton.bone_labels)
    # a metatarsal voxel in the planning region (x within 14 mm of the neuroma), and a tip
    # 2 mm below it (plantar), the needle going up (dorsal) through the bone
    grid = anat.grid()
    neuroma = np.argwhere(anat.labels == morton.neuroma_label).mean(axis=0)
    candidates = np.argwhere(bone)
    near = candidates[np.abs(candidates[:, 0] - neuroma[0]) * grid.voxel_mm < 12]
    near = near[np.abs(near[:, 1] - neuroma[1]) * grid.voxel_mm < 6]
    i, j, k = near[np.argmin(near[:, 2])]  # the most plantar bone voxel there
    centre = np.array([grid.axis_mm(a)[v] for a, v in enumerate((i, j, k))])
    tip = centre - np.array([0.0, 0.0, 2.0])
    with pytest.raises(
        GeometryError, match=r"path is refused \(the needle crosses bone \('metatarsal"
    ):
        plan_placement(morton, tmp_path, tip_mm=tip, direction=[0, 0, 1], voxel_mm=1.0)
    assert not (tmp_path / "plan_bundle.zip").exists()


def test_the_protocol_must_offer_the_chosen_option(morton, tmp_path) -> None:
    with pytest.raises(InputError, match=r"offers .*; not argon 45 s"):
        plan_placement(
            morton,
            tmp_path,
            tip_mm=[24.5, 27.0, 5.0],
            direction=[0, 0, 1],
            protocol="planner-double-freeze",
            freeze_s=45.0,
        )
    with pytest.raises(InputError, match="non-zero"):
        plan_placement(morton, tmp_path, tip_mm=[24.5, 27.0, 5.0], direction=[0, 0, 0])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source": "elsewhere"}, "source"),
        ({"tip_mm": "1,2"}, "tip_mm"),
        ({"tip_mm": "1,x,3"}, "tip_mm"),
        ({"direction": "0,0,0"}, "direction"),
        ({"gas": "helium"}, "gas"),
        ({"freeze_s": "5"}, "freeze_s"),
        ({"protocol": "unknown"}, "protocol"),
        ({"protocol": "planner-double-freeze", "freeze_s": "90"}, "protocol"),
        ({"voxel_mm": "0.75"}, "voxel_mm"),
    ],
)
def test_placement_job_parameters_name_the_bad_field(change, field) -> None:
    from cryoneuro.registry.errors import RegistryInputError
    from cryoneuro.registry.services.jobs import plan_parameters

    good = {
        "mode": "placement",
        "source": "case",
        "tip_mm": "24.5, 27, 5",
        "direction": "0,0,1",
        "gas": "argon",
        "freeze_s": "60",
        "voxel_mm": "1.0",
    }
    checked = plan_parameters(good)
    assert checked["tip_mm"] == [24.5, 27.0, 5.0]
    assert checked["voxel_mm"] == 1.0
    with pytest.raises(RegistryInputError) as err:
        plan_parameters({**good, **change})
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}:")
