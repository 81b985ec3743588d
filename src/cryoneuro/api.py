"""The notebook API: eight functions that cover the four steps, simulate → plan → record → evaluate.

``import cryoneuro`` exposes these names lazily (:func:`cryoneuro.__getattr__`): importing the
package stays cheap, and each function imports only the layer it needs. Every function is a thin,
documented entry point over the package that does the work; the examples in the docstrings are run
as tests (``tests/test_api_doctests.py``), so they are kept true.

========================  ===========================================================
:func:`load_case`         read and validate a case file (TOML) or a mapping
:func:`simulate`          3D Pennes bioheat with freezing around the case's probes
:func:`isotherms`         volume, diameter and length of each isotherm of a result
:func:`tip_state`         Joule–Thomson tip temperature and cooling of a cryogen
:func:`plan`              choose probe placement, cryogen and protocol on an anatomy
:func:`score`             validate and score a questionnaire (NRS, EQ-5D-5L, MOXFQ, …)
:func:`analyse`           the study analysis of tidy registry tables, with a report
:func:`meta_analyse`      random-effects synthesis of the published evidence
========================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations; the imports happen inside each function
    from cryoneuro.analysis.meta import MetaResult
    from cryoneuro.analysis.tidy import TidyData
    from cryoneuro.anatomy.patient_anatomy import PatientAnatomy
    from cryoneuro.case import Case
    from cryoneuro.planning.plan import Plan
    from cryoneuro.probe import ProbeState
    from cryoneuro.thermal.result import SimulationResult
    from cryoneuro.thermal.solver import ThermalResult

__all__ = [
    "analyse",
    "isotherms",
    "load_case",
    "meta_analyse",
    "plan",
    "score",
    "simulate",
    "tip_state",
]


def load_case(source: str | Path | Mapping[str, Any]) -> Case:
    """Read and validate a case: domain, tissue, probes, protocol and outputs.

    Parameters
    ----------
    source : str, pathlib.Path or mapping
        A case file in TOML (see ``docs/case-file.md``), or the same content as a mapping
        (lengths in mm, temperatures in °C, durations in s).

    Returns
    -------
    cryoneuro.case.Case
        The validated case; ``case.model()`` and ``case.phases()`` are what :func:`simulate` runs.

    Raises
    ------
    cryoneuro.errors.CaseFileError
        With one line naming the field and how to fix it, for any invalid, impossible or
        too-large input (checked before anything is allocated).

    Examples
    --------
    >>> import cryoneuro
    >>> case = cryoneuro.load_case({
    ...     "domain": {"size_mm": [12, 12, 16], "voxel_mm": 1.0, "tissue": "muscle"},
    ...     "probes": [{"tip_mm": [6, 6, 4], "direction": [0, 0, 1], "diameter_mm": 1.5,
    ...                 "active_length_mm": 6, "tip_temperature_c": -150}],
    ...     "protocol": {"phases": [{"freeze_s": 30}]},
    ... })
    >>> case.grid().shape  # 12 x 12 x 16 mm at 1 mm
    (12, 12, 16)
    >>> cryoneuro.load_case({"domain": {"size_mm": [12, 12, 16], "voxel_mm": -1}})
    Traceback (most recent call last):
    ...
    cryoneuro.errors.CaseFileError: case: domain.voxel_mm: Input should be greater than 0 (got -1)
    """
    from cryoneuro.case import load_case as _load_case
    from cryoneuro.case import parse_case

    if isinstance(source, Mapping):
        return parse_case(dict(source), "case")
    return _load_case(source)


def simulate(
    case: Case | str | Path | Mapping[str, Any],
    *,
    progress: Callable[[float, str], None] | None = None,
) -> SimulationResult:
    """Simulate a case: 3D Pennes bioheat with freezing (enthalpy method) around its probes.

    The equations, parameters and their sources are in ``docs/thermal.md`` and
    :mod:`cryoneuro.thermal.solver`; this function runs :func:`cryoneuro.thermal.simulate` with
    the case's model, protocol and solver options.

    Parameters
    ----------
    case : Case, str, pathlib.Path or mapping
        A case from :func:`load_case`, or anything :func:`load_case` accepts.
    progress : callable, optional
        Called as ``progress(fraction, label)`` while the protocol runs.

    Returns
    -------
    cryoneuro.thermal.result.SimulationResult
        A :class:`~cryoneuro.thermal.ThermalResult`: ``min_temperature_c`` and
        ``temperature_c`` (°C, on ``grid``), the temperature at the case's output points over
        time (``point_times_s`` in s, ``point_temperatures_c`` in °C), the time below each
        threshold (``time_below_s``, s) and the probes' heat (J); ``summary()`` tabulates the
        isotherms (mL, mm) and ``plot(ax)`` draws the temperature through the probe.

    References
    ----------
    Pennes HH. Analysis of tissue and arterial blood temperatures in the resting human forearm.
    J Appl Physiol 1948;1(2):93-122.

    Examples
    --------
    A 1.5 mm probe held at -150 °C in muscle for 30 s, on a coarse 1 mm grid (NumPy backend):

    >>> import cryoneuro
    >>> result = cryoneuro.simulate({
    ...     "domain": {"size_mm": [12, 12, 16], "voxel_mm": 1.0, "tissue": "muscle"},
    ...     "probes": [{"tip_mm": [6, 6, 4], "direction": [0, 0, 1], "diameter_mm": 1.5,
    ...                 "active_length_mm": 6, "tip_temperature_c": -150}],
    ...     "protocol": {"phases": [{"freeze_s": 30}]},
    ...     "solver": {"backend": "array"},
    ... })
    >>> tissue = result.min_temperature_c[result.tissue_mask]  # °C, coldest reached per voxel
    >>> -150.0 <= float(tissue.min()) < -20.0  # frozen by the probe, never colder than it
    True
    >>> float(tissue.max()) <= 37.0  # nothing warmer than the body
    True
    >>> table = result.summary()  # one row per isotherm, nested: 0 °C holds -20 °C
    >>> list(table.index), list(table.columns)
    ([0.0, -20.0, -40.0], ['volume_ml', 'diameter_mm', 'length_mm'])
    >>> bool(table.loc[0.0, "volume_ml"] > table.loc[-20.0, "volume_ml"] > 0)
    True
    >>> len(result.plot().images)  # the temperature in the plane of the probe
    1
    """
    from cryoneuro.thermal import simulate as _simulate
    from cryoneuro.thermal.result import SimulationResult

    if not _is_case(case):
        case = load_case(case)  # type: ignore[arg-type]
    options = case.simulate_options()  # type: ignore[union-attr]
    result = _simulate(case.model(), case.phases(), progress=progress, **options)  # type: ignore[union-attr]
    return SimulationResult.of(result)


def _is_case(value: Any) -> bool:
    from cryoneuro.case import Case

    return isinstance(value, Case)


def isotherms(
    result: ThermalResult, levels_c: Sequence[float] = (0.0, -20.0, -40.0), *, field: str = "min"
) -> dict[str, dict[str, float]]:
    """Volume, diameter and length of each isotherm of a simulation.

    Parameters
    ----------
    result : ThermalResult
        From :func:`simulate`.
    levels_c : sequence of float
        Isotherm levels in °C (0 °C: edge of the iceball; -20 to -40 °C: the lethal range).
    field : {"min", "final"}
        ``"min"`` (default) measures the region that *ever* reached the level, which is what
        injury depends on; ``"final"`` the region below it at the end of the protocol.

    Returns
    -------
    dict
        Level (as text, e.g. ``"-20"``) → ``volume_ml`` (mL), ``diameter_mm`` (mm, across the
        first probe) and ``length_mm`` (mm, along it), from a sub-voxel isosurface.

    Examples
    --------
    >>> import cryoneuro
    >>> result = cryoneuro.simulate({
    ...     "domain": {"size_mm": [12, 12, 16], "voxel_mm": 1.0, "tissue": "muscle"},
    ...     "probes": [{"tip_mm": [6, 6, 4], "direction": [0, 0, 1], "diameter_mm": 1.5,
    ...                 "active_length_mm": 6, "tip_temperature_c": -150}],
    ...     "protocol": {"phases": [{"freeze_s": 30}]},
    ...     "solver": {"backend": "array"},
    ... })
    >>> iso = cryoneuro.isotherms(result, [0, -20])
    >>> sorted(iso)
    ['-20', '0']
    >>> iso["0"]["diameter_mm"] > iso["-20"]["diameter_mm"] > 1.5  # nested, wider than the probe
    True
    """
    from cryoneuro.thermal.summary import isotherms as _isotherms

    if field not in ("min", "final"):
        from cryoneuro.errors import InputError

        raise InputError(f"field must be 'min' or 'final' (got '{field}')")
    return _isotherms(result, levels_c, field=field)


def tip_state(
    gas: str,
    supply_bar: float | None = None,
    exhaust_bar: float = 1.01325,
    supply_temperature_c: float = 20.0,
    precooled: bool = True,
) -> ProbeState:
    """Steady no-load tip temperature and cooling per unit mass flow of a Joule–Thomson probe.

    Real-gas enthalpies from CoolProp; the model, its assumptions and sources are in
    ``docs/probe.md`` and :func:`cryoneuro.probe.tip_state`.

    Parameters
    ----------
    gas : str
        argon, nitrogen, nitrous-oxide, carbon-dioxide or helium (aliases Ar, N2, N2O, CO2, He).
    supply_bar : float, optional
        Absolute supply pressure in bar; default per gas (``cryoneuro.probe.GASES``).
    exhaust_bar : float
        Absolute exhaust pressure in bar (default 1 atm).
    supply_temperature_c : float
        Supply temperature in °C (default 20).
    precooled : bool
        An ideal counter-flow recuperator (True) or a single pass (False).

    Returns
    -------
    cryoneuro.probe.ProbeState
        ``tip_temperature_c`` (°C), ``cooling_power_w_per_g_s`` (W per g/s of gas), the exit
        phase and quality, and notes on the model's validity.

    References
    ----------
    Bell IH, Wronski J, Quoilin S, Lemort V. Pure and pseudo-pure fluid thermophysical property
    evaluation and the open-source thermophysical property library CoolProp. Ind Eng Chem Res
    2014;53(6):2498-2508.

    Examples
    --------
    Argon expanded to 1 atm boils at its normal boiling point, 87.30 K = -185.85 °C:

    >>> import cryoneuro
    >>> state = cryoneuro.tip_state("argon")
    >>> round(state.tip_temperature_c, 1)
    -185.8
    >>> state.cooling_power_w_per_g_s > 0
    True
    """
    from cryoneuro.probe import tip_state as _tip_state

    return _tip_state(
        gas,
        supply_bar=supply_bar,
        exhaust_bar=exhaust_bar,
        supply_temperature_c=supply_temperature_c,
        precooled=precooled,
    )


def plan(
    anatomy: PatientAnatomy | str,
    out_dir: str | Path | None = None,
    *,
    gases: Sequence[str] | None = None,
    offsets_mm: Sequence[float] | None = None,
    shifts_mm: Sequence[float] | None = None,
    freezes_s: Sequence[float] | None = None,
    progress: Callable[[float, str], None] | None = None,
    **options: Any,
) -> Plan:
    """Plan a neuroma cryoablation: probe placement, cryogen and protocol, checked for nerve
    block, skin and artery safety, with a predicted duration of relief.

    Candidates are screened on a 1 mm grid and the best are confirmed at 0.5 mm by full 3D
    simulation (:func:`cryoneuro.planning.pipeline.plan`, ``docs/planning.md``). Computing
    writes nothing; give ``out_dir`` (or call :func:`cryoneuro.planning.pipeline.write_plan`
    later) to write ``plan.json`` and the report (HTML, PDF, figures, NIfTI volumes).

    Parameters
    ----------
    anatomy : PatientAnatomy or {"morton", "stump"}
        A labelled anatomy (:class:`cryoneuro.anatomy.PatientAnatomy`: a patient's, from a case
        file, or a phantom) or the name of a bundled phantom.
    out_dir : str or pathlib.Path, optional
        Folder to write the plan and its report into; default: write nothing.
    gases, offsets_mm, shifts_mm, freezes_s : sequence, optional
        Restrict the candidates: cryogens; lateral needle offsets from the target (mm); shifts of
        the active part along the needle (mm); freeze durations (s). Default: the planner's set.
        Offsets or shifts ask for the grid search.
    progress : callable, optional
        Called as ``progress(fraction, label)``.
    **options
        Passed to :func:`cryoneuro.planning.pipeline.plan` (``search_method``, ``approach``,
        ``protocol``, ``n_probes``, ``policy``, ``boundaries``, ``drive``, voxel sizes, ...).

    Returns
    -------
    cryoneuro.planning.plan.Plan
        The chosen probes and protocol (s, °C), isotherms (mL, mm), nerve block, safety
        margins (°C, mm), predicted relief (days), whether it is feasible and why not;
        ``summary()`` tabulates them, ``plot(ax)`` draws the iceball on the image, and
        ``files`` lists what was written (empty without ``out_dir``).

    References
    ----------
    Cazzato RL, Garnon J, Ramamurthy N, et al. Percutaneous MR-guided cryoablation of Morton's
    neuroma: rationale and technical details after the first 20 patients. Cardiovasc Intervent
    Radiol 2016;39(10):1491-1498 (the freeze-thaw protocol). The thresholds of nerve injury and
    their sources are in ``docs/injury.md``; the planner's choices in ``docs/planning.md``.

    Examples
    --------
    Argon, one 60 s double freeze, on the bundled Morton's neuroma phantom:

    >>> import cryoneuro
    >>> p = cryoneuro.plan("morton", gases=["argon"], shifts_mm=[0.0], freezes_s=[60.0])
    >>> p.probes[0].gas, p.files  # computed, nothing written
    ('argon', {})
    >>> [phase.kind for phase in p.protocol][:2]
    ['freeze', 'thaw-passive']
    >>> table = p.summary()  # one row per quantity, values taken from the plan
    >>> table.loc["0 °C isotherm diameter", "value"] == p.isotherms["0"].diameter_mm
    True
    >>> iceball = p.isotherms
    >>> iceball["0"].volume_ml > iceball["-20"].volume_ml > iceball["-40"].volume_ml
    True
    >>> len(p.plot().collections) > 0  # isotherm and outline contours on a new Axes
    True
    """
    from cryoneuro.anatomy.phantoms import amputation_stump, morton_forefoot
    from cryoneuro.errors import InputError
    from cryoneuro.planning import pipeline

    if isinstance(anatomy, str):
        makers = {"morton": morton_forefoot, "stump": amputation_stump}
        if anatomy not in makers:
            raise InputError(
                f"anatomy must be a PatientAnatomy or one of {sorted(makers)} (got {anatomy!r})"
            )
        anatomy = makers[anatomy]()
    for name, value in (
        ("gases", gases),
        ("offsets_mm", offsets_mm),
        ("shifts_mm", shifts_mm),
        ("freezes_s", freezes_s),
    ):
        if value is not None:
            options[name] = tuple(value)
    result = pipeline.plan(anatomy, progress=progress, **options)
    if out_dir is not None:
        pipeline.write_plan(result, out_dir)
    return result


def score(instrument: str, answers: Mapping[str, Any], **options: Any) -> dict[str, Any]:
    """Validate a questionnaire's answers and score it.

    Parameters
    ----------
    instrument : str
        ``nrs`` (pain 0–10), ``vas`` (pain 0–100 mm), ``bpi`` (Brief Pain Inventory),
        ``eq5d5l`` (EQ-5D-5L), ``moxfq`` (Manchester–Oxford Foot Questionnaire), ``stump``,
        ``mobility``; see ``docs/instruments.md``.
    answers : mapping
        Item name → answer (the items and their ranges are in the instrument's definition).
    **options
        Instrument-specific; EQ-5D-5L: ``value_sets=`` a value-set name or names.

    Returns
    -------
    dict
        Measure → value, on the instrument's own scale (stated per measure in the docs).

    Raises
    ------
    cryoneuro.errors.InputError
        One line naming the item and its allowed range.

    References
    ----------
    Herdman M, et al. Development and preliminary testing of the new five-level version of EQ-5D
    (EQ-5D-5L). Qual Life Res 2011;20(10):1727-1736.

    Examples
    --------
    Full health on EQ-5D-5L ("11111") has an index of 1 under every value set, by definition:

    >>> import cryoneuro
    >>> s = cryoneuro.score("eq5d5l", {"mobility": 1, "self_care": 1, "usual_activities": 1,
    ...                                "pain_discomfort": 1, "anxiety_depression": 1})
    >>> s["profile"], s["index_england"]
    ('11111', 1.0)
    >>> cryoneuro.score("nrs", {"pain": 7})
    {'pain': 7.0}
    >>> cryoneuro.score("nrs", {"pain": 11})
    Traceback (most recent call last):
    ...
    cryoneuro.errors.InputError: nrs: item 'pain' must be an integer 0–10 (got 11)
    """
    from cryoneuro.instruments import score as _score

    return dict(_score(instrument, answers, **options))


def analyse(
    data: TidyData | str | Path,
    out_dir: str | Path,
    *,
    report: bool = True,
    bootstrap: int = 2000,
    seed: int = 1,
    **options: Any,
) -> dict[str, Any]:
    """The study analysis of tidy registry tables: checks, pain over time (MMRM), responders,
    relief survival, safety, and (for a trial) the treatment effect; with an HTML/PDF report.

    Parameters
    ----------
    data : TidyData, str or pathlib.Path
        Tidy tables (``docs/tidy-format.md``): a folder or zip of CSV files, or a
        :class:`~cryoneuro.analysis.tidy.TidyData` (e.g. from a registry export).
    out_dir : str or pathlib.Path
        Folder for the report and tables.
    report : bool
        Write the HTML/PDF report (default True).
    bootstrap : int
        Bootstrap resamples for the cost-effectiveness intervals.
    seed : int
        Seed of the bootstrap (results are reproducible for a seed).
    **options
        Passed to :func:`cryoneuro.analysis.study.analyse` (``primary_visit``, ``control``,
        ``covariance``, ``df_method``, ``duplicates``, ``unit_costs``, ``progress``).

    Returns
    -------
    dict
        The headline results: design, primary visit, exclusions, estimates with 95 % CIs
        (pain in points on 0–10), and the files written.

    Examples
    --------
    A synthetic two-arm trial whose true effect is -2 points of pain:

    >>> import cryoneuro, tempfile
    >>> from cryoneuro.analysis.synthetic import SyntheticStudy, generate
    >>> data = generate(SyntheticStudy(n_per_arm=40, seed=3))
    >>> with tempfile.TemporaryDirectory() as out:
    ...     results = cryoneuro.analyse(data, out, report=False, bootstrap=50)
    >>> results["design"], results["pain_outcome"]
    ('rct', 'pain')
    """
    from cryoneuro.analysis.study import analyse as _analyse
    from cryoneuro.analysis.tidy import load_tidy

    if isinstance(data, str | Path):
        data = load_tidy(data)
    return _analyse(data, out_dir, report=report, bootstrap=bootstrap, seed=seed, **options)


def meta_analyse(
    data: str | Path | None = None,
    *,
    outcomes: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    r: float = 0.5,
) -> MetaResult:
    """Random-effects meta-analysis of the published evidence on neuroma cryoablation.

    Parameters
    ----------
    data : str or pathlib.Path, optional
        An evidence CSV in the bundled format; default the bundled, source-checked evidence.
    outcomes : sequence of str, optional
        ``pain`` (mean change, points on 0–10), ``pain_md``, ``responder`` and ``complication``
        (proportions); default every outcome with at least 2 poolable studies.
    methods : sequence of {"dl", "pm", "reml"}, optional
        τ² estimators: DerSimonian–Laird, Paule–Mandel, REML; default all three.
    r : float
        Assumed baseline–follow-up correlation for SDs of change (0 ≤ r < 1).

    Returns
    -------
    cryoneuro.analysis.meta.MetaResult
        Per outcome: the study table, the pooled estimates with 95 % CIs, prediction intervals,
        τ² and I², and the sensitivity to ``r``; ``summary()`` tabulates the pooled estimates
        (one row per outcome and method), ``plot(outcome, ax)`` draws a forest plot and
        ``to_dict()`` gives the JSON payload.

    References
    ----------
    DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials
    1986;7(3):177-188. Paule RC, Mandel J. Consensus values and weighting factors. J Res Natl Bur
    Stand 1982;87(5):377-385.

    Examples
    --------
    >>> import cryoneuro
    >>> result = cryoneuro.meta_analyse(outcomes=["pain"])
    >>> pain = result.outcomes["pain"]
    >>> pain.pooled["dl"].k >= 2
    True
    >>> pain.pooled["dl"].ci_lower <= pain.pooled["dl"].estimate <= pain.pooled["dl"].ci_upper
    True
    >>> row = result.summary().loc[("pain", "dl")]  # points on 0-10, negative = less pain
    >>> (row["k"], row["estimate"]) == (pain.pooled["dl"].k, pain.pooled["dl"].estimate)
    True
    >>> len(result.plot("pain").collections) >= pain.k  # a square per study
    True
    """
    from cryoneuro.analysis.meta_run import METHODS, run_meta

    return run_meta(data, outcomes=outcomes, methods=tuple(methods or METHODS), r=r)
