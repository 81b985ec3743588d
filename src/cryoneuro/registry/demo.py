"""Demonstration set-up: an RCT (Morton's neuroma) and a case series (stump neuromas) at two
sites, with one user per role. Used by ``cryoneuro user seed-demo`` and the tests. Both are
test studies: they accept the NHS test-range numbers (999…) and nothing real belongs there."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cryoneuro.registry.auth import Actor
from cryoneuro.registry.db import transaction
from cryoneuro.registry.errors import ConflictError, RegistryInputError
from cryoneuro.registry.models import Participant, Study
from cryoneuro.registry.nhs import nhs_check_digit
from cryoneuro.registry.schemas import EnrolmentIn, FollowUpIn, ProcedureIn
from cryoneuro.registry.services import clinical, participants, setup
from cryoneuro.registry.services.allocation import randomise
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


# --- sample participants (issue 18 item 5) ---------------------------------------------------

#: First nine digits of the sample NHS numbers: the 999 test range, away from the tests' own.
SAMPLE_NHS_START = 999_900_000
SAMPLE_VISITS = ("w2", "m1", "m3", "m6", "m12")
VISIT_DAYS = {"baseline": 0, "w2": 14, "m1": 30, "m3": 91, "m6": 182, "m12": 365}


def _sample_nhs(count: int) -> list[str]:
    found: list[str] = []
    n = SAMPLE_NHS_START
    while len(found) < count:
        check = nhs_check_digit(str(n))
        if check is not None:
            found.append(f"{n}{check}")
        n += 1
    return found


def _answers(rng, pain: int) -> dict:
    """NRS pain, EQ-5D-5L and MOxFQ answers that move together with the pain score."""
    level = 1 + min(4, pain // 2)
    return {
        "nrs": {"pain": pain},
        "eq5d5l": {
            "mobility": max(1, min(5, level + rng.choice((-1, 0, 0, 1)))),
            "self_care": 1,
            "usual_activities": max(1, min(5, level + rng.choice((-1, 0, 0)))),
            "pain_discomfort": level,
            "anxiety_depression": rng.choice((1, 1, 2)),
            "vas": max(0, min(100, 95 - 6 * pain + rng.randint(-5, 5))),
        },
        "moxfq": {
            f"q{i}": max(0, min(4, pain // 2 + rng.choice((-1, 0, 0, 1)))) for i in range(1, 17)
        },
    }


def seed_sample_data(
    factory: sessionmaker[Session],
    settings: RegistrySettings,
    *,
    count: int = 12,
    seed: int = 0,
    today: dt.date | None = None,
) -> dict[str, int]:
    """Enrol ``count`` synthetic participants in the demo studies (RBH and LTH alternately;
    every third in the STUMP case series), randomise those in the RCT, record a procedure
    (every case-series participant, the RCT's cryoablation arm) and the follow-up visits
    that are due by ``today``, with pain falling after cryoablation.

    Deterministic: the same ``seed`` and ``today`` give the same records, except that the
    RCT's allocations come from the study's concealed randomisation list (made with fresh
    randomness for each registry), and a participant's procedure and pain follow the arm
    drawn. Everything goes
    through the services (validated and audited as the 'system' user) in one transaction.
    Refused when the demo studies already hold participants, so it never doubles them.
    """
    if not 1 <= count <= 200:
        raise RegistryInputError("--participants: give 1 to 200", "count")
    today = today or dt.date.today()
    system = Actor.system()
    made = {"participants": 0, "procedures": 0, "followups": 0}
    with transaction(factory) as session:
        studies = {s.code: s for s in session.scalars(select(Study))}
        if not {"MORTON", "STUMP"} <= set(studies):
            raise RegistryInputError("run `cryoneuro user seed-demo` first: no demo studies", "db")
        existing = session.scalar(
            select(func.count())
            .select_from(Participant)
            .where(Participant.study_id.in_([studies["MORTON"].id, studies["STUMP"].id]))
        )
        if existing:
            raise ConflictError(
                f"the demo studies already hold {existing} participants: sample data not added"
            )
        for i, nhs in enumerate(_sample_nhs(count)):
            # one generator per participant: an allocation (drawn from the study's concealed
            # list, not from the seed) changes nothing for the participants after it
            rng = random.Random(f"{seed}:{i}")
            study = "STUMP" if i % 3 == 2 else "MORTON"
            enrolled = today - dt.timedelta(days=rng.randint(20, 420))
            enrolment = EnrolmentIn.model_validate(
                {
                    "study_code": study,
                    "site_code": "RBH" if i % 2 == 0 else "LTH",
                    "nhs_number": nhs,
                    "sex": rng.choice(("female", "female", "male")),
                    "age_at_enrolment_years": rng.randint(32, 78),
                    "enrolment_date": enrolled.isoformat(),
                    "consent_date": (enrolled - dt.timedelta(days=1)).isoformat(),
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
                        "neuroma_type": "mortons" if study == "MORTON" else "stump",
                        "anatomical_site": rng.choice(("second web space", "third web space"))
                        if study == "MORTON"
                        else rng.choice(("sciatic, above-knee stump", "tibial, below-knee stump")),
                        "laterality": rng.choice(("left", "right")),
                        "size_mm": round(rng.uniform(4.0, 9.0), 1),
                    },
                }
            )
            p = participants.enrol(session, settings, system, enrolment)
            made["participants"] += 1
            arm = randomise(session, settings, system, p.id) if study == "MORTON" else None
            day0 = min(today, enrolled + dt.timedelta(days=rng.randint(3, 20)))
            baseline_pain = rng.randint(6, 9)
            # cryoablation lowers pain over weeks; a steroid injection less and less lastingly
            drop = rng.randint(3, 6)
            lot = f"DEMO-{rng.randint(100, 999)}"
            if arm != "steroid":
                body = {
                    "procedure_date": day0.isoformat(),
                    "neuroma_id": p.neuromas[0].id if p.neuromas else None,
                    "imaging_modality": "ultrasound",
                    "anaesthesia": "local",
                    "device_name": "Visual-ICE",
                    "manufacturer": "Boston Scientific",
                    "device_lot": lot,
                    "probe_model": "IceSphere 1.5 (17G)",
                    "gas": "argon",
                    "protocol": "2 x (2 min freeze, 30 s passive thaw)",
                    "operator": "Dr Demo",
                }
                clinical.record_procedure(session, system, p.id, ProcedureIn.model_validate(body))
                made["procedures"] += 1
            visits = [("baseline", enrolled, baseline_pain)]
            for code in SAMPLE_VISITS:
                when = day0 + dt.timedelta(days=VISIT_DAYS[code])
                if when > today:
                    break
                fade = 1.0 if arm != "steroid" else max(0.0, 1.0 - VISIT_DAYS[code] / 120)
                effect = round((drop if arm != "steroid" else 3) * fade)
                pain = max(0, min(10, baseline_pain - effect + rng.choice((-1, 0, 0, 1))))
                visits.append((code, when, pain))
            for code, when, pain in visits:
                answers = _answers(rng, pain)
                if code == "w2":
                    answers = {"nrs": answers["nrs"]}
                clinical.record_followup(
                    session,
                    system,
                    p.id,
                    FollowUpIn.model_validate(
                        {"visit_code": code, "visit_date": when.isoformat(), "answers": answers}
                    ),
                )
                made["followups"] += 1
    return made
