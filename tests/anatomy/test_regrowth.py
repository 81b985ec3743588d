import datetime as dt

import pytest

from cryoneuro.errors import InputError
from cryoneuro.regrowth import distance_along_centreline, predict_relief


def test_median_and_dates():
    p = predict_relief(80.0, rate=1.0, delay=7.0, procedure_date=dt.date(2026, 1, 1))
    assert abs(p.median_days - 87.0) < 3.0
    lo, hi = p.interval_days
    assert lo < p.median_days < hi
    # no repeat-treatment date is derived from the lower bound (issue 12)
    assert not hasattr(p, "repeat_treatment_date")
    assert "repeat_treatment_date" not in p.as_dict()
    assert p.as_dict()["median_date"].startswith("2026-03")
    exact = predict_relief(80.0, rate_gsd=1.0, delay_sd=0.0)
    assert exact.interval_days == pytest.approx((87.0, 87.0))


def test_interval_widens():
    a = predict_relief(80.0, rate_gsd=1.2)
    b = predict_relief(80.0, rate_gsd=2.0)
    assert b.interval_days[1] - b.interval_days[0] > a.interval_days[1] - a.interval_days[0]


@pytest.mark.parametrize(
    "kw",
    [
        {"distance_mm": 0},
        {"distance_mm": -5},
        {"distance_mm": 10, "rate": 0},
        {"distance_mm": 10, "rate": -1},
    ],
)
def test_bad(kw):
    with pytest.raises(InputError) as e:
        predict_relief(**kw)
    assert "\n" not in str(e.value)


def test_distance_along():
    import numpy as np

    c = np.array([[0, 0, 0], [0, 0, 50.0], [0, 30.0, 50.0]])
    assert distance_along_centreline(c, 20.0, [0, 30.0, 52.0]) == pytest.approx(
        30 + 30 + 2, abs=0.2
    )


def test_neuroma_reformation_adds_up_to_nine_days():
    """Without an end organ the re-formed neuroma fires within 9 days of the axons' arrival
    (Wall & Gutnick 1974): with no rate/delay uncertainty, t = 7 + 10/1 + U(0, 9), so the
    median is 17 + 4.5 = 21.5 days and the 90 % interval 17 + 0.45 … 17 + 8.55 days."""
    p = predict_relief(10.0, rate_gsd=1.0, delay_sd=0.0, mechanism="neuroma_reformation")
    assert p.median_days == pytest.approx(21.5, abs=0.15)
    assert p.interval_days == pytest.approx((17.45, 25.55), abs=0.15)
    with pytest.raises(InputError):
        predict_relief(10.0, mechanism="magic")


def test_published_morton_series_are_the_cited_figures():
    """The evidence rows carry the published figures: CVIR 2024 (PMID 38438685) NRS 7.1 → 2.7 at
    6 months with 60.4 % complete relief; Cazzato 2016 VAS 3.0 at a mean 19.7 months; Yoon 2016's
    9.3 months to recurrence is listed as unverified and never used for an interval."""
    from cryoneuro.regrowth import DAYS_PER_MONTH, observed_interval, published_relief

    rows = {r["study"]: r for r in published_relief("morton")}
    cvir = rows["CVIR 2024 MN (PMID 38438685)"]
    assert (
        cvir["months"],
        cvir["pain_baseline"],
        cvir["pain_follow_up"],
        cvir["complete_relief_pct"],
    ) == (6.0, "7.1", "2.7", "60.4")
    assert "60.4%" in cvir["source_text"]
    assert "2.7 ± 2.2 vs 7.1 ± 1.1" in cvir["source_text"]
    assert rows["Cazzato 2016"]["months"] == 19.7
    assert "19.7 months" in rows["Cazzato 2016"]["source_text"]
    obs = observed_interval("morton")
    assert (
        obs["interval_days"]
        == [round(6 * DAYS_PER_MONTH), round(19.7 * DAYS_PER_MONTH)]
        == [183, 600]
    )
    yoon = next(r for r in published_relief("other") if r["study"] == "Yoon 2016")
    assert yoon["verified"] == "no"
    assert yoon["months"] == 9.3
    stump = observed_interval("stump_phantom")  # Prologo 2017 180 days, von Falck 2022 27 months
    assert stump["interval_days"] == [round(5.9 * DAYS_PER_MONTH), round(27 * DAYS_PER_MONTH)]
    assert {s["study"] for s in stump["series"]} == {"Prologo 2017", "von Falck 2022"}


def test_relief_summary_states_the_contradiction_with_both_numbers():
    """A Morton's lesion 45 mm from the end organ: regrowth-limited median ≈ 7 + 45 = 52 days,
    far below the 183 days at which CVIR 2024 still saw relief: the statement says so with both
    numbers, and the rate that would be needed is 45 / (183 − 7) = 0.256 mm/day."""
    from cryoneuro.regrowth import relief_summary

    r = relief_summary(45.0, "morton")
    assert r["median_days"] == pytest.approx(52.0, abs=3.0)
    assert r["agreement"] == "contradiction"
    assert f"{r['median_days']:.0f} days" in r["statement"]
    assert "183–600 days" in r["statement"]
    assert r["rate_needed_mm_per_day"] == pytest.approx(45 / (183 - 7), abs=0.002)
    assert r["observed_in_published_series"]["interval_days"] == [183, 600]
    # a lesion 300 mm from its end organ (median ≈ 307 days) overlaps the published range
    assert relief_summary(300.0, "morton")["agreement"] == "consistent"
    # a traumatic neuroma: no series in the evidence set; said so, not invented
    t = relief_summary(10.0, "traumatic")
    assert t["agreement"] == "no published series"
    assert t["mechanism"] == "neuroma_reformation"
