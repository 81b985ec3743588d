"""The plan report as tables (issue 12, item 6): every section a table whose cells carry the
plan's values with units, the same tables in the HTML and the PDF, and plot colours that cannot
be confused (the artery against the −40 °C isotherm).

Independent expectations: the values are those put into the Plan (typed here, or computed by
``cryoneuro.regrowth.relief_summary`` for the relief rows); the PDF's text is read back from
the SVG rendering of the same pages (text kept as text), not from our table builder; colour
differences are CIEDE2000 (scikit-image), ≥ 20 being well above the just-noticeable ≈ 2.3
(Sharma & Bala, Digital Color Imaging Handbook, 2003).
"""

from __future__ import annotations

import io
import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from cryoneuro import regrowth
from cryoneuro.planning import report_tables as rt
from cryoneuro.planning.plan import (
    Isotherm,
    Plan,
    ProbePlacement,
    ProtocolPhase,
    TrajectorySummary,
)
from cryoneuro.planning.report import write_report


def _plan(warnings=None) -> Plan:
    relief = regrowth.relief_summary(22.0, "stump")
    return Plan(
        case="stump test",
        probes=[
            ProbePlacement(
                name="probe 1",
                tip_mm=(30.0, 41.5, 20.25),
                direction=(0.0, 0.6, 0.8),
                diameter_mm=1.47,
                active_length_mm=10.0,
                tip_temperature_c=-185.8,
                gas="argon",
                device="argon-17G-sphere-class",
                drive="device",
                wall_temperature_end_c=-141.26,
                mean_cooling_w=21.7,
            )
        ],
        protocol=[
            ProtocolPhase(kind="freeze", duration_s=150),
            ProtocolPhase(kind="thaw-passive", duration_s=30),
            ProtocolPhase(kind="freeze", duration_s=150),
        ],
        trajectories=[
            TrajectorySummary(
                entry_mm=[30.0, 52.0, 34.0],
                tip_mm=[30.0, 41.5, 20.25],
                depth_mm=17.3,
                angle_to_skin_normal_deg=36.9,
                path=[("skin", 0.0), ("subcutaneous_fat", 1.0), ("neuroma", 15.0)],
                clearance_mm={"posterior_tibial_artery": 6.4},
            )
        ],
        isotherms={
            "0": Isotherm(volume_ml=3.41, diameter_mm=17.2, length_mm=22.9),
            "-20": Isotherm(volume_ml=1.52, diameter_mm=12.1, length_mm=18.3),
            "-40": Isotherm(volume_ml=0.87, diameter_mm=9.6, length_mm=16.2),
        },
        nerve={
            "complete_block": True,
            "blocked_length_mm": 9.5,
            "neurotmesis_risk": False,
            "warmest_min_c": -27.4,
            "block_proximal_to_mm": 43.6,
            "a_future_field_s": 12.0,
        },
        coverage={"target_volume_ml": 0.52, "fraction_at_or_below_-20_c": 0.93},
        safety=[
            {
                "structure": "skin",
                "min_temperature_c": 21.4,
                "limit_c": 0.0,
                "margin_c": 21.4,
                "distance_from_0c_mm": 8.1,
            },
            {
                "structure": "artery",
                "min_temperature_c": -3.2,
                "limit_c": None,
                "margin_c": None,
                "distance_from_0c_mm": 0.0,
            },
        ],
        relief=relief,
        warnings=warnings
        if warnings is not None
        else [
            "artery partially frozen (−3.2 °C, inside the mushy range) "
            "(source: docs/domain-facts.md §3)",
            "needle passes 2.1 mm from the artery [source: user setting, 3 mm]",
            "no source given here",
        ],
    )


def _cells(table: rt.Table) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in table.rows}


def test_each_section_is_a_table_with_values_and_units():
    plan = _plan()
    tables = {t.title: t for t in rt.report_tables(plan)}
    iso = _cells(tables["Iceball: isotherms of the minimum temperature"])
    assert iso["−40 °C"] == ["0.87 ml", "9.6 mm", "16.2 mm"]
    assert iso["0 °C"][0] == "3.41 ml"
    proto = tables["Protocol"].rows
    assert [r[1] for r in proto] == ["freeze", "thaw-passive", "freeze"]
    assert proto[-1][3] == "330 s"  # 150 + 30 + 150, the cumulative end
    nerve = _cells(tables["Block along the nerve"])
    assert nerve["blocked length along the nerve"] == ["9.5 mm"]
    assert nerve["warmest point of the coldest cross-section"] == ["−27.4 °C"]
    assert nerve["neurotmesis risk (a point at or below the neurotmesis range)"] == ["no"]
    assert nerve["a future field"] == ["12 s"]  # unknown keys are shown, labelled by suffix
    cov = _cells(tables["Target (neuroma) coverage"])
    assert cov["fraction of the target at or below −20 °C"] == ["93 %"]
    struct = tables["Adjacent structures: minimum temperature against the limit"]
    assert struct.columns[1] == "minimum temperature °C"
    assert _cells(struct)["artery"][0] == "−3.2 °C"
    assert _cells(struct)["artery"][1] == "–"  # no limit: a dash, not "None"
    probes = _cells(tables["Probes"])["probe 1"]
    assert probes[0] == "argon-17G-sphere-class (argon)"
    assert "−141 °C" in probes[4]
    # no key=value dumps anywhere
    for t in tables.values():
        for row in t.rows:
            for cell in row:
                assert not re.search(r"\w=\S", cell), (t.title, cell)


def test_relief_table_puts_the_estimate_beside_the_published_series():
    plan = _plan()
    e = plan.relief["regrowth_limited_estimate"]
    o = plan.relief["observed_in_published_series"]
    table = rt.relief_table(plan)
    rows = _cells(table)
    lo, hi = e["interval_days"]
    assert rows["regrowth-limited estimate"][:2] == [
        f"{e['median_days']:.0f} days",
        f"{lo:.0f}–{hi:.0f} days ({e['level']:.0%})",
    ]
    assert rows["observed in published series"][1] == (
        f"{o['interval_days'][0]}–{o['interval_days'][1]} days"
    )
    studies = [r[0].strip() for r in table.rows[2:]]
    assert studies == [s["study"] for s in o["series"]]
    assert table.note == plan.relief["statement"]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            "bone partially frozen (source: docs/domain-facts.md §3)",
            ("bone partially frozen", "docs/domain-facts.md §3"),
        ),
        ("skin below 0 °C [sources: Prologo 2017]", ("skin below 0 °C", "Prologo 2017")),
        ("needle close to artery", ("needle close to artery", "–")),
        ({"text": "artery frozen", "source": "user setting"}, ("artery frozen", "user setting")),
    ],
)
def test_warnings_keep_their_source_in_its_own_column(item, expected):
    assert rt.split_warning(item) == expected


def test_pdf_pages_carry_the_tables_as_text(tmp_path):
    plan = _plan()
    figs = rt.pdf_pages(plan, ["Cryoablation plan — stump test", "v", "Feasible"])
    text = ""
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none"}):
        for fig in figs:
            buf = io.StringIO()
            fig.savefig(buf, format="svg")
            text += buf.getvalue()
            plt.close(fig)
    for expected in (
        "Probes",
        "Protocol",
        "Iceball: isotherms of the minimum temperature",
        "Block along the nerve",
        "Adjacent structures: minimum temperature against the limit",
        "Duration of relief",
        "Warnings",
        "0.87 ml",
        "9.5 mm",
        "docs/domain-facts.md §3",
        plan.relief["observed_in_published_series"]["series"][0]["study"],
    ):
        assert expected in text, expected
    # and the written report: a PDF of those pages, the HTML with the same tables
    paths = write_report(plan, tmp_path, {})
    pdf = paths["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF")
    assert pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") + pdf.count(
        b"/Type /Page>"
    ) >= len(figs)
    page = paths["html"].read_text(encoding="utf-8")
    assert "<th>source</th>" in page
    assert "<td>blocked length along the nerve</td><td>9.5 mm</td>" in page
    assert "complete_block" not in page.split("Inputs (for reproducibility)")[0]


def test_a_plan_without_block_relief_or_warnings_still_reports(tmp_path):
    plan = _plan(warnings=[]).model_copy(update={"relief": {}, "trajectories": [], "safety": []})
    rows = _cells(rt.relief_table(plan))
    assert rows == {"no complete block": ["no relief estimate"]}
    assert rt.warnings_table(plan).rows == [["–", "none", "–"]]
    paths = write_report(plan, tmp_path, {})
    assert paths["pdf"].read_bytes().startswith(b"%PDF")


def test_structure_and_isotherm_colours_are_distinct():
    from matplotlib.colors import to_rgb
    from skimage.color import deltaE_ciede2000, rgb2lab

    from cryoneuro.planning.figures import PROBE_COLOUR, STRUCTURE_COLOURS
    from cryoneuro.thermal.figures import ISO_COLOURS

    def lab(c):
        return rgb2lab(np.array([[to_rgb(c)]]))[0, 0]

    colours = {
        **STRUCTURE_COLOURS,
        "probe": PROBE_COLOUR,
        **{f"{k:g} °C": v for k, v in ISO_COLOURS.items()},
    }
    names = list(colours)
    worst = min(
        (float(deltaE_ciede2000(lab(colours[a]), lab(colours[b]))), a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    )
    assert worst[0] >= 20.0, worst
    # the pair the issue named
    assert deltaE_ciede2000(lab(STRUCTURE_COLOURS["artery"]), lab(ISO_COLOURS[-40.0])) > 40
