"""Result objects with ``summary()`` and ``plot()`` (issue 16): a simulation's and a
meta-analysis's; and the old import paths of the modules split by role.

The plan's ``summary()`` and ``plot()`` are tested in ``tests/test_plan_api_shape.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

import cryoneuro
from cryoneuro.errors import InputError
from cryoneuro.thermal.result import SimulationResult
from cryoneuro.thermal.solver import ThermalResult

CASE = {
    "domain": {"size_mm": [14, 14, 18], "voxel_mm": 1.0, "tissue": "muscle"},
    "probes": [
        {
            "tip_mm": [7, 7, 4],
            "direction": [0, 0, 1],
            "diameter_mm": 1.5,
            "active_length_mm": 6,
            "tip_temperature_c": -150,
        }
    ],
    "protocol": {"phases": [{"freeze_s": 40}]},
    "solver": {"backend": "array"},
}


@pytest.fixture(scope="module")
def result() -> SimulationResult:
    return cryoneuro.simulate(CASE)


def test_simulate_returns_a_thermal_result_with_summary_and_plot(result):
    assert isinstance(result, ThermalResult)  # everything a ThermalResult had is still there
    table = result.summary([0, -20])
    assert list(table.index) == [0.0, -20.0]
    iso = cryoneuro.isotherms(result, [0, -20])
    for level, key in ((0.0, "0"), (-20.0, "-20")):
        for column in ("volume_ml", "diameter_mm", "length_mm"):
            assert table.loc[level, column] == iso[key][column]
    # a second method for the volume: count the tissue voxels at or below 0 °C (1 mm³ each).
    # The sub-voxel isosurface and the voxel count differ by the partial voxels on the surface
    # (measured here: 0.493 against 0.476 mL, 3.5 %); 10 % fails a summary of the wrong level.
    counted_ml = np.count_nonzero(result.min_temperature_c[result.tissue_mask] <= 0.0) / 1000
    assert table.loc[0.0, "volume_ml"] == pytest.approx(counted_ml, rel=0.1)
    assert table.attrs["coldest_tissue_c"] == float(
        np.nanmin(result.min_temperature_c[result.tissue_mask])
    )
    assert -150.0 <= table.attrs["coldest_tissue_c"] < -20.0


def test_simulation_plot_draws_on_the_given_axes(result):
    fig = Figure()
    ax = fig.add_subplot()
    assert result.plot(ax) is ax
    assert len(ax.images) == 1  # the temperature field
    assert len(ax.collections) >= 1  # the isotherm contours
    assert len(ax.patches) >= 1  # the probe
    across = result.plot(section="across")
    assert across.get_figure() is not fig  # a new figure when none is given


def test_meta_result_summary_holds_the_pooled_values():
    res = cryoneuro.meta_analyse(outcomes=["pain", "complication"])
    table = res.summary()
    for outcome in ("pain", "complication"):
        for method, p in res.outcomes[outcome].pooled.items():
            row = table.loc[(outcome, method)]
            assert row["k"] == p.k
            assert (row["estimate"], row["ci_lower"], row["ci_upper"]) == (
                p.estimate,
                p.ci_lower,
                p.ci_upper,
            )
            assert (row["tau2"], row["i2"]) == (p.tau2, p.i2)
    # complications are proportions: the natural-scale estimate is the inverse logit of the
    # pooled logit (an independent back-transformation)
    row = table.loc[("complication", "dl")]
    assert row["estimate_natural"] == pytest.approx(1 / (1 + np.exp(-row["estimate"])))
    assert np.isnan(table.loc[("pain", "dl"), "estimate_natural"])  # mean change: no other scale


def test_meta_result_plot_draws_a_forest_plot_and_refuses_unknown_outcomes():
    res = cryoneuro.meta_analyse(outcomes=["pain"])
    fig = Figure()
    ax = fig.add_subplot()
    assert res.plot("pain", ax=ax) is ax
    assert len(ax.collections) >= res.outcomes["pain"].k  # a square per study
    with pytest.raises(InputError, match="no pooled estimate"):
        res.plot("responder")


def test_old_import_paths_of_the_split_modules():
    from cryoneuro import sweep, sweep_io, sweep_plots, sweep_stats
    from cryoneuro.analysis import meta, meta_io, meta_plots, meta_run, meta_spec

    assert meta.run_meta is meta_run.run_meta
    assert meta.analyse_effects is meta_run.analyse_effects
    assert meta.forest_plot is meta_plots.forest_plot
    assert meta.write_meta_report is meta_io.write_meta_report
    assert meta.is_generic is meta_io.is_generic
    assert meta.METHODS is meta_spec.METHODS
    assert meta.natural is meta_spec.natural
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = meta.nonexistent
    assert sweep.block_by_error is sweep_stats.block_by_error
    assert sweep._wilson is sweep_stats._wilson
    assert sweep.plot_plan_sweep is sweep_plots.plot_plan_sweep
    assert sweep.write_results is sweep_io.write_results
