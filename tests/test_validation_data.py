"""Schema checks of the measured-iceball validation data (src/cryoneuro/data/validation/).

These tables are the evidence the device probe model (issue 11) is calibrated on and validated
against, so a malformed row would silently bias a fit or a verdict. The checks are plain schema
and range checks: no model is run here. The calibration/validation split is declared in the
data's README before any prediction is looked at; the test holds the data to it (at most one
calibration figure per device class, every calibration figure a single-probe diameter).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "src" / "cryoneuro" / "data" / "validation"
ICEBALLS = DATA / "measured_iceballs.csv"
MEDIA = DATA / "phantom_media.csv"

REQUIRED = [
    "id",
    "source",
    "device",
    "device_class",
    "gas",
    "probe_diameter_mm",
    "active_length_mm",
    "n_probes",
    "layout",
    "spacing_mm",
    "medium",
    "medium_temperature_c",
    "freeze_s",
    "isotherm_c",
    "quantity",
    "measured_value",
    "unit",
    "uncertainty",
    "source_sentence",
    "verified",
    "role",
    "notes",
    "setting",
    "distance_mm",
]
DEVICE_CLASSES = {
    "argon-2.4mm",
    "argon-1.7mm",
    "argon-17G-sphere",
    "argon-17G-rod",
    "argon-17G-seed",
    "argon-17G-other",
    "n2o-handheld",
    "co2",
    "other",
}
ROLES = {"calibration", "validation", "context"}
SETTINGS = {
    "phantom",
    "ex_vivo",
    "in_vivo",
    "in_vitro_TEM",
    "in_vitro_dish",
    "manufacturer_spec",
}
# quantity -> allowed units and the plausible range of the value in that unit
QUANTITIES = {
    "diameter": ({"mm"}, (0.5, 200.0)),
    "length": ({"mm"}, (0.5, 300.0)),
    "radius": ({"mm"}, (0.25, 100.0)),
    "volume_ml": ({"ml"}, (0.001, 1000.0)),
    "temperature_at_distance": ({"degC"}, (-200.0, 50.0)),
    "area_fraction": ({"fraction"}, (0.0, 1.0)),
    "diameter_ratio": ({"ratio to 2.4 mm probe"}, (0.0, 2.0)),
    "area_ratio": ({"ratio to 2.4 mm probe"}, (0.0, 2.0)),
    "isotherm_gap": ({"mm", "mm (upper bound)"}, (0.0, 50.0)),
}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _num(text: str) -> float:
    value = float(text)
    assert math.isfinite(value)
    return value


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return _rows(ICEBALLS)


def test_required_columns_present(rows):
    with ICEBALLS.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    missing = [c for c in REQUIRED if c not in header]
    assert not missing, f"measured_iceballs.csv lacks columns {missing}"
    assert len(header) == len(set(header)), "duplicated column names"


def test_ids_unique_and_nonempty(rows):
    ids = [r["id"].strip() for r in rows]
    assert all(ids), "a row has an empty id"
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, f"duplicated ids {dupes}"


def test_every_row_has_source_and_exact_sentence(rows):
    for r in rows:
        assert r["source"].strip(), f"{r['id']}: empty source"
        assert len(r["source_sentence"].strip()) >= 20, f"{r['id']}: source_sentence missing"
        assert r["verified"] in {"yes", "no"}, f"{r['id']}: verified must be yes/no"
        if r["verified"] == "no":
            # a second-hand number must say where it was seen
            assert r["notes"].strip(), f"{r['id']}: unverified row without a note of where seen"


def test_vocabularies(rows):
    for r in rows:
        assert r["device_class"] in DEVICE_CLASSES, f"{r['id']}: device_class {r['device_class']!r}"
        assert r["role"] in ROLES, f"{r['id']}: role {r['role']!r}"
        assert r["setting"] in SETTINGS, f"{r['id']}: setting {r['setting']!r}"
        assert r["quantity"] in QUANTITIES, f"{r['id']}: quantity {r['quantity']!r}"
        units, _ = QUANTITIES[r["quantity"]]
        assert r["unit"] in units, f"{r['id']}: unit {r['unit']!r} for {r['quantity']}"
        if r["role"] == "context":
            assert r["notes"].strip(), f"{r['id']}: a context row must give its reason in notes"


def test_measured_values_in_range(rows):
    for r in rows:
        _, (lo, hi) = QUANTITIES[r["quantity"]]
        value = _num(r["measured_value"])
        assert lo < value <= hi, f"{r['id']}: measured_value {value} outside ({lo}, {hi}]"
        if r["quantity"] == "temperature_at_distance":
            assert 0.0 <= _num(r["distance_mm"]) <= 100.0, f"{r['id']}: distance_mm"


def test_simulation_inputs_numeric_and_plausible(rows):
    """Rows used for fitting or validation carry the inputs a simulation needs."""
    for r in rows:
        if r["role"] == "context":
            continue
        assert 0.0 < _num(r["freeze_s"]) <= 7200.0, f"{r['id']}: freeze_s"
        assert -200.0 <= _num(r["isotherm_c"]) <= 5.0, f"{r['id']}: isotherm_c"
        if r["probe_diameter_mm"]:
            assert 0.2 <= _num(r["probe_diameter_mm"]) <= 10.0, f"{r['id']}: probe_diameter_mm"
        if r["active_length_mm"]:
            assert 1.0 <= _num(r["active_length_mm"]) <= 100.0, f"{r['id']}: active_length_mm"
        if r["spacing_mm"]:
            assert 2.0 <= _num(r["spacing_mm"]) <= 60.0, f"{r['id']}: spacing_mm"
        if r["medium_temperature_c"]:
            assert -5.0 <= _num(r["medium_temperature_c"]) <= 45.0, f"{r['id']}: medium temperature"
        else:
            assert r["notes"].strip(), f"{r['id']}: no medium temperature and no note why"
        if r["n_probes"]:
            n = int(r["n_probes"])
            assert 1 <= n <= 25, f"{r['id']}: n_probes"
            assert (n == 1) == (r["spacing_mm"] == ""), f"{r['id']}: spacing given iff n_probes > 1"


def test_at_most_one_calibration_row_per_device_class(rows):
    cal = Counter(r["device_class"] for r in rows if r["role"] == "calibration")
    over = {k: n for k, n in cal.items() if n > 1}
    assert not over, f"device classes with more than one calibration row: {over}"


def test_calibration_rows_are_single_probe_diameters_read_first_hand(rows):
    for r in rows:
        if r["role"] != "calibration":
            continue
        assert r["n_probes"] == "1", r["id"]
        assert r["layout"] == "single", r["id"]
        assert r["quantity"] == "diameter", r["id"]
        assert r["unit"] == "mm", r["id"]
        assert r["verified"] == "yes", f"{r['id']}: a calibration figure must be verified"
        assert r["medium_temperature_c"], r["id"]
        assert r["setting"] == "phantom", f"{r['id']}: calibrate on phantom data only"


def test_littrup_single_probe_is_the_argon_24_calibration_figure(rows):
    # Issue 11 and Littrup et al. 2009 (JVIR 20:1343) abstract: single 2.4 mm probe, 15 min,
    # lethal (-30 degC) ice diameter 1.2 cm in ~39 degC agar.
    cal = [r for r in rows if r["role"] == "calibration" and r["device_class"] == "argon-2.4mm"]
    assert len(cal) == 1
    r = cal[0]
    assert (_num(r["measured_value"]), _num(r["isotherm_c"]), _num(r["freeze_s"])) == (12, -30, 900)
    assert _num(r["medium_temperature_c"]) == 39
    assert "1.2, 3.3, 4.1 and 4.9 cm" in r["source_sentence"]


def test_numbers_appear_in_their_source_sentence(rows):
    """A value printed in the sentence (in its own unit) must be findable there."""
    for r in rows:
        if r["notes"].startswith("read from"):  # figure/table readings are quoted by caption
            continue
        value = _num(r["measured_value"])
        sentence = r["source_sentence"].replace("\u2009", " ")
        candidates = {f"{value:g}", f"{value / 10:g}", f"{value * 100:g}", f"{value:.1f}"}
        assert any(c in sentence for c in candidates), (
            f"{r['id']}: {value} not found (as mm, cm or %) in its source_sentence"
        )


def test_phantom_media_table():
    media = _rows(MEDIA)
    assert media, "phantom_media.csv is empty"
    for m in media:
        assert m["medium"].strip(), m
        assert m["property"].strip(), m
        assert m["source"].strip(), f"{m['medium']}/{m['property']}: no source"
        value = _num(m["value"])
        assert value > 0 or m["property"].startswith("freezing"), f"{m['medium']}/{m['property']}"
        assert m["unit"].strip(), f"{m['medium']}/{m['property']}: no unit"


def test_every_phantom_medium_used_by_a_simulated_row_has_properties(rows):
    # in-vivo / ex-vivo rows take their properties from the tissue library, not from this table
    media = {m["medium"].split()[0].lower() for m in _rows(MEDIA)}
    for r in rows:
        if r["role"] == "context" or r["setting"] != "phantom":
            continue
        base = r["medium"].split()[0].lower()
        assert base in media, f"{r['id']}: medium {r['medium']!r} has no row in phantom_media.csv"
