"""Seeding and request helpers shared by the registry tests (and the browser server)."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plan_bundle_helpers import plan_json
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cryoneuro.registry.audit import make_sessionmaker
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.database_keys import check_startup
from cryoneuro.registry.db import make_engine
from cryoneuro.registry.demo import seed_demo
from cryoneuro.registry.keys import write_key_file
from cryoneuro.registry.migrate import upgrade
from cryoneuro.registry.models import User
from cryoneuro.registry.settings import RegistrySettings

PASSWORD = "correct horse battery 7"
#: The registry's configured public address in the tests (reset links are built from it).
PUBLIC_URL = "https://registry.example.test"
VALID_NHS = [
    "9434765919",
    "9990000018",
    "9990000026",
    "9990000034",
    "9990000042",
    "9990000050",
    "9990000069",
    "9990000077",
    "9990000085",
    "9990000093",
]


def find_postgres_bin(
    root: Path = Path("/usr/lib/postgresql"), env: dict[str, str] | None = None
) -> Path | None:
    """The directory holding the PostgreSQL server programs (initdb, pg_ctl), or None.

    In order: ``CRYONEURO_PG_BIN``; the highest major version under ``root`` (Debian/Ubuntu
    install each major as ``/usr/lib/postgresql/<major>/bin``; majors compare as numbers, so 16
    beats 9.6); ``pg_config --bindir``; the directory of ``initdb`` on PATH.
    """
    import os
    import shutil
    import subprocess

    env = os.environ if env is None else env
    if env.get("CRYONEURO_PG_BIN"):
        return Path(env["CRYONEURO_PG_BIN"])

    def version(path: Path) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in path.parent.name.split("."))
        except ValueError:
            return (-1,)

    installed = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists() and version(p) >= (0,)),
        key=version,
    )
    if installed:
        return installed[-1]
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").exists():
            return Path(out.stdout.strip())
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def nhs_numbers(count: int, start: int = 0) -> list[str]:
    """Valid test-range NHS numbers (999…), skipping those whose check digit would be 10."""
    from cryoneuro.registry.nhs import nhs_check_digit

    found: list[str] = []
    n = start
    while len(found) < count:
        nine = f"999{n:06d}"
        check = nhs_check_digit(nine)
        if check is not None:
            found.append(nine + str(check))
        n += 1
    return found


@dataclass
class Registry:
    url: str
    engine: Engine
    factory: sessionmaker[Session]
    settings: RegistrySettings
    users: dict[str, int] = field(default_factory=dict)

    def actor(self, username: str) -> Actor:
        with self.factory() as session:
            user = session.get(User, self.users[username])
            return Actor.from_user(user)


def make_registry(url: str, seed: bool = True, key_file: Path | None = None) -> Registry:
    """Migrate ``url`` and open it with a key file (created with fresh random keys when
    missing; default: beside a SQLite database, else a temporary file). Cookies without
    ``Secure`` because the test client talks plain http."""
    upgrade(url)
    settings = RegistrySettings(db_url=url, secure_cookies=False, public_base_url=PUBLIC_URL)
    if key_file is None and not url.startswith("sqlite"):
        key_file = Path(tempfile.mkdtemp(prefix="cryoneuro-keys-")) / "registry-keys.json"
    if key_file is not None:
        settings = settings.model_copy(update={"key_file": key_file})
    if not settings.key_path().exists():
        write_key_file(settings.key_path())
    settings = settings.load_keys()
    engine = make_engine(url)
    reg = Registry(url, engine, make_sessionmaker(engine, settings.keys), settings)
    check_startup(settings, reg.factory)
    if seed:
        seed_registry(reg.factory, settings, reg.users)
    return reg


def seed_registry(
    factory: sessionmaker[Session], settings: RegistrySettings, users: dict[str, int] | None = None
) -> None:
    """The demo set-up: RCT MORTON and case series STUMP at RBH and LTH; one user per role."""
    created = seed_demo(factory, settings, PASSWORD)
    if users is not None:
        users.update(created)


def enrolment(
    nhs: str = "9434765919", study: str = "MORTON", site: str = "RBH", **overrides: Any
) -> dict[str, Any]:
    """A valid enrolment request body."""
    body: dict[str, Any] = {
        "study_code": study,
        "site_code": site,
        "nhs_number": nhs,
        "sex": "female",
        "age_at_enrolment_years": 54,
        "enrolment_date": (dt.date.today() - dt.timedelta(days=100)).isoformat(),
        "consent_date": (dt.date.today() - dt.timedelta(days=101)).isoformat(),
        "consent_form_version": "v2.1",
        "consented": True,
        "eligibility": {
            "adult": True,
            "confirmed_neuroma": True,
            "pain_3_months": True,
            "coagulopathy": False,
            "local_infection": False,
            "cold_disorder": False,
        },
        "neuroma": {
            "neuroma_type": "mortons",
            "anatomical_site": "third web space",
            "laterality": "left",
            "size_mm": 6.5,
            "prior_treatments": ["steroid injection"],
        },
    }
    body.update(overrides)
    return body


def procedure(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "procedure_date": (dt.date.today() - dt.timedelta(days=90)).isoformat(),
        "imaging_modality": "ultrasound",
        "anaesthesia": "local",
        "device_name": "IceSphere 1.5",
        "manufacturer": "Boston Scientific",
        "device_lot": "LOT-42A",
        "probe_model": "17G",
        "gas": "argon",
        "protocol": "2 x (3 min freeze, 1 min passive thaw)",
        "operator": "Dr Example",
        "plan": json.loads(
            plan_json(relief={"median_days": 180.0, "interval_days": [120.0, 300.0]})
        ),
    }
    body.update(overrides)
    return body


def followup(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "visit_code": "m3",
        "visit_date": (dt.date.today() - dt.timedelta(days=2)).isoformat(),
        "answers": {
            "nrs": {"pain": 3},
            "eq5d5l": {
                "mobility": 2,
                "self_care": 1,
                "usual_activities": 2,
                "pain_discomfort": 2,
                "anxiety_depression": 1,
                "vas": 75,
            },
            "moxfq": {f"q{i}": i % 5 for i in range(1, 17)},
        },
    }
    body.update(overrides)
    return body


def adverse_event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "onset_date": (dt.date.today() - dt.timedelta(days=80)).isoformat(),
        "category": "infection",
        "description": "Cellulitis at the puncture site",
        "severity": "mild",
        "serious": False,
        "relatedness": "probable",
        "outcome": "recovered",
        "device_incident": False,
    }
    body.update(overrides)
    return body


def login(client: Any, username: str) -> dict[str, str]:
    """Log in through the API; returns the headers for writes (CSRF)."""
    response = client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"X-CSRF-Token": response.json()["csrf_token"]}
