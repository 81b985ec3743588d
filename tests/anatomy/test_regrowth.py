import datetime as dt

import pytest

from cryoneuro.errors import InputError
from cryoneuro.regrowth import distance_along_centreline, predict_relief


def test_median_and_dates():
    p = predict_relief(80.0, rate=1.0, delay=7.0, procedure_date=dt.date(2026, 1, 1))
    assert abs(p.median_days - 87.0) < 3.0
    lo, hi = p.interval_days
    assert lo < p.median_days < hi
    assert p.repeat_treatment_date == dt.date(2026, 1, 1) + dt.timedelta(days=round(lo))
    assert p.as_dict()["median_date"].startswith("2026-03")
    exact = predict_relief(80.0, rate_gsd=1.0, delay_sd=0.0)
    assert exact.interval_days == pytest.approx((87.0, 87.0))


def test_interval_widens():
    a = predict_relief(80.0, rate_gsd=1.2)
    b = predict_relief(80.0, rate_gsd=2.0)
    assert b.interval_days[1] - b.interval_days[0] > a.interval_days[1] - a.interval_days[0]


@pytest.mark.parametrize("kw", [{"distance_mm": 0}, {"distance_mm": -5}, {"distance_mm": 10, "rate": 0},
                                {"distance_mm": 10, "rate": -1}])
def test_bad(kw):
    with pytest.raises(InputError) as e:
        predict_relief(**kw)
    assert "\n" not in str(e.value)


def test_distance_along():
    import numpy as np
    c = np.array([[0, 0, 0], [0, 0, 50.0], [0, 30.0, 50.0]])
    assert distance_along_centreline(c, 20.0, [0, 30.0, 52.0]) == pytest.approx(30 + 30 + 2, abs=0.2)
