"""Durability: data survive a server restart; a crash mid-write leaves nothing half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import httpx
import pytest
from registry_helpers import PASSWORD, enrolment, followup, procedure
from sqlalchemy import func, select

from cryoneuro.registry.db import transaction
from cryoneuro.registry.models import (
    AuditEntry,
    Consent,
    Neuroma,
    Participant,
    ParticipantIdentifier,
)
from cryoneuro.registry.schemas import EnrolmentIn
from cryoneuro.registry.services import participants

# Servers killed and restarted mid-transaction: the slow tier.
pytestmark = pytest.mark.slow


def _counts(reg) -> dict[str, int]:
    with reg.factory() as session:
        return {
            m.__tablename__: session.scalar(select(func.count()).select_from(m))
            for m in (Participant, ParticipantIdentifier, Consent, Neuroma, AuditEntry)
        }


def test_participant_survives_server_restart(live_server) -> None:
    with httpx.Client(base_url=live_server.url) as http:
        token = http.post("/api/login", json={"username": "nurse", "password": PASSWORD}).json()[
            "csrf_token"
        ]
        h = {"X-CSRF-Token": token}
        pid = http.post("/api/participants", json=enrolment(), headers=h).json()["id"]
        assert (
            http.post(
                f"/api/participants/{pid}/procedures", json=procedure(), headers=h
            ).status_code
            == 201
        )
        assert (
            http.post(f"/api/participants/{pid}/visits", json=followup(), headers=h).status_code
            == 201
        )
    live_server.stop(kill=True)  # no graceful shutdown: committed means on disk
    live_server.start()
    with httpx.Client(base_url=live_server.url) as http:
        http.post("/api/login", json={"username": "nurse", "password": PASSWORD})
        seen = http.get(f"/api/participants/{pid}").json()
    assert seen["study_number"] == "MORTON-RBH-0001"
    assert seen["procedures"][0]["device_lot"] == "LOT-42A"
    assert seen["visits"][0]["answers"]["nrs"] == {"pain": 3}


def test_exception_midway_leaves_no_rows(registry, monkeypatch) -> None:
    before = _counts(registry)

    def explode(*args, **kwargs):
        raise RuntimeError("simulated crash after the participant row was flushed")

    # Neuroma is written last in enrol(): the participant, identifier and consent rows and
    # their audit entries have already been flushed to the database when this fires.
    monkeypatch.setattr(participants, "Neuroma", explode)
    with pytest.raises(RuntimeError), transaction(registry.factory) as session:
        participants.enrol(
            session,
            registry.settings,
            registry.actor("nurse"),
            EnrolmentIn.model_validate(enrolment()),
        )
    assert _counts(registry) == before


CRASH = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from registry_helpers import enrolment
    from cryoneuro.registry.auth import Actor
    from cryoneuro.registry.audit import make_sessionmaker
    from cryoneuro.registry.db import begin_write, make_engine
    from cryoneuro.registry.models import User
    from cryoneuro.registry.schemas import EnrolmentIn
    from cryoneuro.registry.services import participants
    from cryoneuro.registry.settings import RegistrySettings
    from pathlib import Path
    settings = RegistrySettings(db_url={url!r}, key_file=Path({key_file!r})).load_keys()
    session = make_sessionmaker(make_engine(settings.db_url), settings.keys)()
    begin_write(session)
    actor = Actor.from_user(session.get(User, {user_id}))
    participants.enrol(session, settings, actor, EnrolmentIn.model_validate(enrolment()))
    session.flush()
    print("flushed", flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_killed_process_mid_transaction_leaves_no_rows(backend, request) -> None:
    reg = request.getfixturevalue("registry" if backend == "sqlite" else "pg_registry")
    before = _counts(reg)
    script = CRASH.format(
        tests=os.path.dirname(__file__),
        url=reg.url,
        user_id=reg.users["nurse"],
        key_file=str(reg.settings.key_path()),
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        line = proc.stdout.readline().decode().strip()
        assert line == "flushed", proc.stderr.read().decode()[-2000:]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    reg.engine.dispose()
    assert _counts(reg) == before
