"""Newcomer polish (issue 18 item 5): ``cryoneuro user seed-demo --sample-data`` fills the
dashboard with synthetic participants, procedures and follow-up (deterministic per seed), and
the enrolment form has one "Eligibility" section with inclusion and exclusion grouped."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from registry_helpers import PASSWORD, login
from sqlalchemy import select
from typer.testing import CliRunner

from cryoneuro.cli import app
from cryoneuro.registry.demo import VISIT_DAYS, seed_sample_data
from cryoneuro.registry.errors import ConflictError
from cryoneuro.registry.models import FollowUpVisit, Participant, Procedure, Study

TODAY = dt.date(2026, 12, 1)


def _snapshot(registry) -> list[tuple]:
    """Every sample record, in enrolment order, without database ids."""
    with registry.factory() as session:
        rows = []
        for p in session.scalars(select(Participant).order_by(Participant.id)):
            study = session.get(Study, p.study_id).code
            procedures = session.scalars(
                select(Procedure.procedure_date).where(Procedure.participant_id == p.id)
            ).all()
            visits = session.execute(
                select(FollowUpVisit.visit_code, FollowUpVisit.visit_date, FollowUpVisit.answers)
                .where(FollowUpVisit.participant_id == p.id)
                .order_by(FollowUpVisit.visit_date)
            ).all()
            rows.append(
                (
                    study,
                    p.enrolment_date,
                    p.sex,
                    tuple(procedures),
                    tuple(map(tuple, visits)),
                    p.arm_code,
                )
            )
        return rows


def test_sample_data_is_plausible_and_deterministic(registry, tmp_path) -> None:
    from registry_helpers import make_registry

    made = seed_sample_data(registry.factory, registry.settings, count=9, seed=3, today=TODAY)
    rows = _snapshot(registry)
    assert len(rows) == made["participants"] == 9
    assert [r[0] for r in rows].count("STUMP") == 3  # every third in the case series
    assert made["procedures"] == sum(1 for r in rows if r[3])
    assert made["followups"] == sum(len(r[4]) for r in rows)
    with registry.factory() as session:
        people = session.scalars(select(Participant)).all()
        # the RCT's participants are randomised; the case series has every procedure
        assert all(p.arm_code for p in people if session.get(Study, p.study_id).code == "MORTON")
        arms = {p.id: p.arm_code for p in people}
    assert [r[5] for r in rows] == list(arms.values())
    for study, enrolled, _sex, procedures, visits, arm in rows:
        if study == "STUMP" or arm == "cryo":
            assert len(procedures) == 1
        else:
            assert procedures == ()  # the steroid arm has no cryoablation
        codes = [v[0] for v in visits]
        assert codes[0] == "baseline"
        assert visits[0][1] == enrolled
        day0 = procedures[0] if procedures else None
        for code, when, answers in visits:
            assert enrolled <= when <= TODAY
            assert 0 <= answers["nrs"]["pain"] <= 10
            if day0 and code != "baseline":
                assert when == day0 + dt.timedelta(days=VISIT_DAYS[code])
    # the same seed on a fresh registry gives the same records, but for the RCT allocations
    # (the study's concealed list is new randomness per registry) and what follows from them
    again = make_registry(f"sqlite:///{tmp_path / 'again.db'}")
    seed_sample_data(again.factory, again.settings, count=9, seed=3, today=TODAY)
    second = _snapshot(again)
    assert [r[:3] for r in second] == [r[:3] for r in rows]
    same_arm = [i for i, (a, b) in enumerate(zip(rows, second, strict=True)) if a[5] == b[5]]
    assert len(same_arm) >= 3  # at least the case series (no arm)
    assert [second[i] for i in same_arm] == [rows[i] for i in same_arm]
    other = make_registry(f"sqlite:///{tmp_path / 'other.db'}")
    seed_sample_data(other.factory, other.settings, count=9, seed=4, today=TODAY)
    assert _snapshot(other) != rows
    # never doubled
    with pytest.raises(ConflictError, match="already hold 9 participants"):
        seed_sample_data(registry.factory, registry.settings, count=9, seed=3, today=TODAY)
    assert len(_snapshot(registry)) == 9


def test_seed_demo_cli_populates_the_dashboard(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from cryoneuro.registry.settings import RegistrySettings
    from cryoneuro.web import create_app

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade", "--db", url]).exit_code == 0
    keys = tmp_path / "demo.db.keys.json"  # made beside the SQLite database by the upgrade
    assert keys.exists()
    result = runner.invoke(
        app,
        [
            "user",
            "seed-demo",
            "--db",
            url,
            "--key-file",
            str(keys),
            "--password",
            PASSWORD,
            "--sample-data",
            "--participants",
            "6",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "sample data: 6 participants" in result.output
    settings = RegistrySettings(db_url=url, key_file=keys, secure_cookies=False)
    with TestClient(create_app(settings)) as client:
        login(client, "admin")
        page = client.get("/").text
        assert re.search(r'id="total-participants">6<', page), page[:2000]
        assert re.search(r'id="total-procedures">[1-6]<', page)


def test_enrolment_form_has_one_eligibility_section(client) -> None:
    login(client, "nurse")
    page = client.get("/enrol?study=MORTON").text
    assert page.count("<h2>Eligibility</h2>") == 1
    inclusion = page.index("<h3>Inclusion criteria</h3>")
    exclusion = page.index("<h3>Exclusion criteria</h3>")
    assert page.index("<h2>Eligibility</h2>") < inclusion < exclusion
    for text in (
        "Aged 18 or over",
        "Neuroma confirmed on ultrasound or MRI",
        "Pain for at least 3 months",
    ):
        assert inclusion < page.index(text) < exclusion
    for text in ("Uncorrected coagulopathy", "Infection at the puncture site"):
        assert page.index(text) > exclusion
    assert (
        page.count("<h3>Inclusion criteria</h3>") == page.count("<h3>Exclusion criteria</h3>") == 1
    )
