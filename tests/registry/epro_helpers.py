"""A real local SMTP server (aiosmtpd) that keeps what it receives, and the seeding the ePRO
tests share: participants with a procedure so that a scheduled visit is due."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import socket
import threading
from email.message import EmailMessage
from typing import Any

from registry_helpers import enrolment, nhs_numbers, procedure

from cryoneuro.registry.db import transaction
from cryoneuro.registry.schemas import EnrolmentIn, ProcedureIn
from cryoneuro.registry.services import clinical, participants
from cryoneuro.registry.services.epro_site import set_contact_email
from cryoneuro.registry.services.reminders import set_site_address

TODAY = dt.date.today()
LINK = re.compile(r"https?://\S+/epro/[A-Za-z0-9_.\-]+")


class CapturingHandler:
    """aiosmtpd handler: parses and keeps every message (envelope recipients too)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class SmtpCapture:
    """A running aiosmtpd server on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.handler = CapturingHandler()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpCapture:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[EmailMessage]:
        with self.handler.lock:
            return list(self.handler.messages)

    def env(self) -> dict[str, str]:
        """Settings (as environment) for the registry to send through this server."""
        return {
            "CRYONEURO_SMTP_HOST": "127.0.0.1",
            "CRYONEURO_SMTP_PORT": str(self.port),
            "CRYONEURO_SMTP_SECURITY": "none",
            "CRYONEURO_SMTP_FROM": "registry@example.test",
        }


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def link_in(message: EmailMessage) -> str:
    found = LINK.search(body(message))
    assert found, body(message)
    return found.group(0)


def seed_due_participant(
    reg: Any,
    *,
    nhs_index: int = 0,
    study: str = "MORTON",
    site: str = "RBH",
    procedure_days_ago: int = 15,
    email_address: str | None = "patient@example.test",
    neuroma_type: str = "mortons",
) -> int:
    """Enrol one participant with a procedure ``procedure_days_ago`` days ago (15: the w2
    visit, day 14 with a window of −3/+7 days, is due); returns the participant id."""
    admin = reg.actor("admin")
    body_ = enrolment(nhs_numbers(1, start=7000 + nhs_index)[0], study=study, site=site)
    body_["neuroma"]["neuroma_type"] = neuroma_type
    with transaction(reg.factory) as session:
        participant = participants.enrol(
            session, reg.settings, admin, EnrolmentIn.model_validate(body_)
        )
        clinical.record_procedure(
            session,
            admin,
            participant.id,
            ProcedureIn.model_validate(
                procedure(
                    procedure_date=(TODAY - dt.timedelta(days=procedure_days_ago)).isoformat(),
                    plan=None,
                )
            ),
        )
        if email_address:
            set_contact_email(session, reg.settings, admin, participant.id, email_address)
        return participant.id


def set_site_digest(reg: Any, site: str = "RBH", address: str = "rbh-team@example.test") -> None:
    with transaction(reg.factory) as session:
        set_site_address(session, reg.actor("admin"), site, address)


def smtp_settings(reg: Any, capture: SmtpCapture) -> Any:
    """The registry's settings pointed at ``capture`` (keys kept)."""
    return reg.settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": capture.port,
            "smtp_security": "none",
            "smtp_from": "registry@example.test",
        }
    )
