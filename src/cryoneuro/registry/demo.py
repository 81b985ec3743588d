"""Demonstration set-up: an RCT (Morton's neuroma) and a case series (stump neuromas) at two
sites, with one user per role. Used by ``cryoneuro user seed-demo`` and the tests. Both are
test studies: they accept the NHS test-range numbers (999…) and nothing real belongs there."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from cryoneuro.registry.auth import Actor
from cryoneuro.registry.db import transaction
from cryoneuro.registry.services import setup
from cryoneuro.registry.settings import RegistrySettings

DEMO_USERS = [
    ("admin", "administrator", []),
    ("investigator", "investigator", ["RBH"]),
    ("nurse", "data_entry", ["RBH"]),
    ("leedsnurse", "data_entry", ["LTH"]),
    ("monitor", "monitor", ["RBH", "LTH"]),
    ("stats", "statistician", []),
]


def seed_demo(
    factory: sessionmaker[Session], settings: RegistrySettings, password: str
) -> dict[str, int]:
    """Create the demo studies, sites and users; returns user name → id."""
    users: dict[str, int] = {}
    system = Actor.system()
    with transaction(factory) as session:
        rbh = setup.create_site(session, system, "RBH", "Royal Berkshire Hospital")
        lth = setup.create_site(session, system, "LTH", "Leeds Teaching Hospitals")
        rct = setup.create_study(
            session,
            system,
            code="MORTON",
            title="Cryoablation vs steroid injection for Morton's neuroma",
            design="rct",
            arms=[("cryo", "Cryoablation", 1), ("steroid", "Steroid injection", 1)],
            test_study=True,
        )
        series = setup.create_study(
            session,
            system,
            code="STUMP",
            title="Cryoablation of stump neuromas",
            design="case_series",
            test_study=True,
        )
        for study in (rct, series):
            for site in (rbh, lth):
                setup.add_site_to_study(session, settings, system, study, site)
        for username, role, sites in DEMO_USERS:
            user = setup.create_user(
                session, system, username=username, password=password, role=role, site_codes=sites
            )
            session.flush()
            users[username] = user.id
    return users
