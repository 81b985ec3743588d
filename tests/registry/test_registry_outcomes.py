"""Dashboard outcome plots: the numbers behind them against a hand computation, role scope,
PostgreSQL JSON extraction, and the inline SVG on the page."""

from __future__ import annotations

import datetime as dt
import re
import statistics

import pytest
from registry_helpers import enrolment, followup, nhs_numbers

from cryoneuro.registry.schemas import EnrolmentIn, FollowUpIn
from cryoneuro.registry.services import clinical, participants
from cryoneuro.registry.services.allocation import randomise
from cryoneuro.registry.services.dashboard import mean_ci, outcome_summary

TODAY = dt.date.today()


def _seed(reg) -> dict[int, str]:
    """STUMP at RBH: m3 pain 2, 4, 9 (and m1 pain 6); one STUMP participant at LTH (pain 0);
    MORTON at RBH: six randomised participants with m3 pain 1..6. Returns MORTON pain → arm."""
    admin = reg.actor("admin")
    numbers = iter(nhs_numbers(20, start=500))
    arms: dict[int, str] = {}
    with reg.factory() as session:

        def enrol(study: str, site: str, days_ago: int) -> int:
            body = enrolment(
                next(numbers),
                study=study,
                site=site,
                enrolment_date=(TODAY - dt.timedelta(days=days_ago)).isoformat(),
                consent_date=(TODAY - dt.timedelta(days=days_ago)).isoformat(),
            )
            return participants.enrol(
                session, reg.settings, admin, EnrolmentIn.model_validate(body)
            ).id

        def visit(pid: int, code: str, pain: int) -> None:
            clinical.record_followup(
                session,
                admin,
                pid,
                FollowUpIn.model_validate(
                    followup(
                        visit_code=code,
                        answers={"nrs": {"pain": pain}},
                        visit_date=(TODAY - dt.timedelta(days=1)).isoformat(),
                    )
                ),
            )

        for days_ago, pain in [(120, 2), (120, 4), (60, 9)]:
            pid = enrol("STUMP", "RBH", days_ago)
            visit(pid, "m3", pain)
            if pain == 4:
                visit(pid, "m1", 6)
        visit(enrol("STUMP", "LTH", 90), "m3", 0)
        for pain in range(1, 7):
            pid = enrol("MORTON", "RBH", 100)
            arms[pain] = randomise(session, reg.settings, admin, pid)
            visit(pid, "m3", pain)
        session.commit()
    return arms


def _row(summary, study: str, visit: str, arm: str = "") -> dict:
    rows = [
        r
        for s in summary
        if s["study"] == study
        for r in s["pain"]
        if r["visit_code"] == visit and r["arm"] == arm
    ]
    assert len(rows) == 1, rows
    return rows[0]


def test_outcome_numbers_match_a_hand_computation(registry) -> None:
    arms = _seed(registry)
    with registry.factory() as session:
        everyone = outcome_summary(session, registry.actor("stats"))
        nurse = outcome_summary(session, registry.actor("nurse"))
    # STUMP m3, all sites: pain 2, 4, 9, 0 → mean 3.75, sd² = (3.0625+0.0625+27.5625+14.0625)/3
    row = _row(everyone, "STUMP", "m3")
    assert row["n"] == 4
    assert row["mean"] == pytest.approx(3.75)
    half = 3.182446305284263 * (44.75 / 3 / 4) ** 0.5  # t(0.975, 3) · s/√n
    assert row["ci_low"] == pytest.approx(3.75 - half)
    assert row["ci_high"] == pytest.approx(3.75 + half)
    assert row["arm_label"] == "all participants"
    # the nurse sees RBH only: pain 2, 4, 9 → mean 5, s = √13, t(0.975, 2) = 4.302653
    row = _row(nurse, "STUMP", "m3")
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(5.0)
    assert row["ci_high"] - row["mean"] == pytest.approx(4.302652729749464 * (13 / 3) ** 0.5)
    single = _row(nurse, "STUMP", "m1")
    assert single["n"] == 1
    assert single["mean"] == 6
    assert single["ci_low"] is None
    # MORTON per arm against statistics on the allocations actually made
    for arm in set(arms.values()):
        values = [pain for pain, a in arms.items() if a == arm]
        row = _row(everyone, "MORTON", "m3", arm)
        assert row["n"] == len(values)
        assert row["mean"] == pytest.approx(statistics.mean(values))
        if len(values) > 1:
            from scipy.stats import t

            half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
            assert row["ci_low"] == pytest.approx(statistics.mean(values) - half)
    # recruitment: cumulative per site by enrolment date
    stump = next(s for s in everyone if s["study"] == "STUMP")
    assert stump["recruitment"]["RBH"] == [
        ((TODAY - dt.timedelta(days=120)).isoformat(), 2),
        ((TODAY - dt.timedelta(days=60)).isoformat(), 3),
    ]
    assert stump["recruitment"]["LTH"] == [((TODAY - dt.timedelta(days=90)).isoformat(), 1)]
    assert "LTH" not in next(s for s in nurse if s["study"] == "STUMP")["recruitment"]
    assert mean_ci(2, 6.0, 20.0)[0] == 3.0


def test_outcome_queries_on_postgresql(pg_registry) -> None:
    _seed(pg_registry)
    with pg_registry.factory() as session:
        summary = outcome_summary(session, pg_registry.actor("stats"))
    row = _row(summary, "STUMP", "m3")
    assert row["n"] == 4
    assert row["mean"] == pytest.approx(3.75)
    assert sum(r["n"] for s in summary if s["study"] == "MORTON" for r in s["pain"]) == 6


def test_dashboard_shows_inline_svg(client) -> None:
    _seed(client.registry)
    from registry_helpers import login

    headers = login(client, "nurse")
    page = client.get("/").text
    assert '<figure id="pain-chart-STUMP"><svg' in page
    assert '<figure id="recruitment-chart-MORTON"><svg' in page
    means = {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r'class="pain-point" data-arm="" data-visit="(\w+)" data-mean="([\d.]+)"', page
        )
    }
    assert means == {"m1": 6.0, "m3": 5.0}  # STUMP at the nurse's site
    assert 'data-site="RBH" data-total="3"' in page
    assert 'data-site="LTH"' not in page
    api = client.get("/api/dashboard/outcomes", headers=headers).json()
    assert {s["study"] for s in api} == {"STUMP", "MORTON"}
    assert "<script" not in page.split("<h2>Outcomes</h2>")[1].split("<h2>")[0]
