"""Participant self-report (ePRO) and reminders (issue 14): the one-time link's refusals
(expired, revoked, other visit, tampered, used), resumable answers, identical rows to staff
entry, the source in the audit trail, safety alerts, and `cryoneuro reminders send` through a
real local SMTP server (aiosmtpd): idempotent, dry-run, unconfigured SMTP refused."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlparse

import pytest
from epro_helpers import (
    TODAY,
    SmtpCapture,
    body,
    link_in,
    seed_due_participant,
    set_site_digest,
    smtp_settings,
)
from itsdangerous import URLSafeTimedSerializer
from registry_helpers import PASSWORD, login
from sqlalchemy import select
from typer.testing import CliRunner

from cryoneuro.cli._app import app
from cryoneuro.instruments import score
from cryoneuro.registry.db import transaction
from cryoneuro.registry.errors import RegistryInputError
from cryoneuro.registry.identifiers import decrypt_identifier
from cryoneuro.registry.models import (
    AuditEntry,
    EproAlert,
    EproLink,
    FollowUpVisit,
    ParticipantContact,
    ReminderLog,
)
from cryoneuro.registry.schemas import FollowUpIn
from cryoneuro.registry.services import clinical, epro, epro_site
from cryoneuro.registry.services.reminders import (
    SmtpMailer,
    SmtpNotConfiguredError,
    send_reminders,
)

EQ = {
    "mobility": "2",
    "self_care": "1",
    "usual_activities": "3",
    "pain_discomfort": "2",
    "anxiety_depression": "1",
    "vas": "72",
}


def _form(pain: str = "4", eq: dict[str, str] | None = None, change: str = "a_little_better"):
    form = {"answers.nrs.pain": pain, "change_since_procedure": change}
    form.update({f"answers.eq5d5l.{k}": v for k, v in (eq or EQ).items()})
    return form


def _issue(reg, pid: int, visit: str = "w2", now: dt.datetime | None = None) -> str:
    with transaction(reg.factory) as session:
        _link, token = epro.issue_link(session, reg.settings, reg.actor("nurse"), pid, visit, now)
    return token


def _csrf(client, token: str) -> str:
    page = client.get(f"/epro/{token}")
    assert page.status_code == 200, page.text
    marker = 'name="csrf_token" value="'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]


def _post(client, token: str, form: dict[str, str], action: str = "submit"):
    return client.post(
        f"/epro/{token}", data={**form, "action": action, "csrf_token": _csrf(client, token)}
    )


# --- the link ---------------------------------------------------------------------------------


def test_expired_link_is_refused_with_410(registry, client) -> None:
    pid = seed_due_participant(registry)
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(days=registry.settings.epro_link_ttl_days + 1)
    token = _issue(registry, pid, now=issued)
    response = client.get(f"/epro/{token}")
    assert response.status_code == 410
    assert "expired" in response.text
    assert '<html lang="en">' in response.text


def test_revoked_link_is_refused(registry, client) -> None:
    pid = seed_due_participant(registry)
    token = _issue(registry, pid)
    assert client.get(f"/epro/{token}").status_code == 200
    with transaction(registry.factory) as session:
        link = session.scalar(select(EproLink).where(EproLink.participant_id == pid))
        with pytest.raises(RegistryInputError, match="reason"):
            epro.revoke_link(session, registry.actor("nurse"), link.id, "")
        epro.revoke_link(session, registry.actor("nurse"), link.id, "wrong e-mail address")
    response = client.get(f"/epro/{token}")
    assert response.status_code == 410
    assert "withdrawn by your clinic" in response.text
    with registry.factory() as session:
        entry = session.scalars(
            select(AuditEntry).where(
                AuditEntry.table_name == "epro_link", AuditEntry.action == "update"
            )
        ).all()[-1]
    assert entry.reason == "wrong e-mail address"
    assert entry.username == "nurse"


def test_token_for_visit_a_cannot_open_or_write_visit_b(registry, client) -> None:
    pid = seed_due_participant(registry)
    token_a = _issue(registry, pid, "w2")
    token_b = _issue(registry, pid, "m1")
    serializer = URLSafeTimedSerializer(registry.settings.secret_key, salt=epro.SALT)
    payload_a = serializer.loads(token_a)
    assert payload_a["v"] == "w2"
    # the same nonce re-signed for visit B (someone holding the key): not a stored link
    forged = serializer.dumps({**payload_a, "v": "m1"})
    assert client.get(f"/epro/{forged}").status_code == 404
    # the page of A is A's, and a form naming B still writes A only
    assert "2 weeks follow-up" in client.get(f"/epro/{token_a}").text
    response = _post(client, token_a, {**_form(), "visit_code": "m1"})
    assert response.status_code == 200, response.text
    with registry.factory() as session:
        codes = set(
            session.scalars(
                select(FollowUpVisit.visit_code).where(FollowUpVisit.participant_id == pid)
            )
        )
    assert codes == {"w2"}
    assert client.get(f"/epro/{token_b}").status_code == 200  # B is untouched and still open


def test_tampered_signature_or_foreign_key_is_refused(registry, client) -> None:
    pid = seed_due_participant(registry)
    token = _issue(registry, pid)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert client.get(f"/epro/{flipped}").status_code == 404
    foreign = URLSafeTimedSerializer("another registry's key", salt=epro.SALT).dumps(
        URLSafeTimedSerializer(registry.settings.secret_key, salt=epro.SALT).loads(token)
    )
    response = client.get(f"/epro/{foreign}")
    assert response.status_code == 404
    assert "not valid" in response.text
    assert client.get("/epro/" + "x" * 25).status_code == 404


def test_token_is_stored_only_hashed(registry) -> None:
    pid = seed_due_participant(registry)
    token = _issue(registry, pid)
    with registry.factory() as session:
        link = session.scalar(select(EproLink).where(EproLink.participant_id == pid))
        assert link.token_hash == epro.token_hash(token)
        dump = json.dumps([e.new_values for e in session.scalars(select(AuditEntry))], default=str)
    assert token not in dump
    assert link.token_hash not in dump  # redacted in the trail


# --- answering --------------------------------------------------------------------------------


def test_partial_answers_are_saved_and_resumed(registry, client) -> None:
    pid = seed_due_participant(registry)
    token = _issue(registry, pid)
    response = _post(client, token, {"answers.nrs.pain": "6"}, action="save")
    assert response.status_code == 200
    assert 'id="saved-message"' in response.text
    page = client.get(f"/epro/{token}").text
    assert 'id="answers.nrs.pain-6" name="answers.nrs.pain" value="6" checked' in page
    # submitting without the requested NRS is refused naming the field; the draft stays
    response = _post(
        client, token, {"answers.nrs.pain": "", "change_since_procedure": "much_better"}
    )
    assert response.status_code == 422
    assert "asked for it" in response.text
    with registry.factory() as session:
        assert not session.scalars(
            select(FollowUpVisit).where(FollowUpVisit.participant_id == pid)
        ).all()


def test_incomplete_instrument_names_the_missing_item(registry, client) -> None:
    pid = seed_due_participant(registry)
    token = _issue(registry, pid)
    eq = dict(EQ)
    eq.pop("self_care")
    response = _post(client, token, _form(eq=eq))
    assert response.status_code == 422
    assert "answers.eq5d5l.self_care" in response.text


def test_submission_equals_staff_entry_and_is_marked_participant_entered(registry, client) -> None:
    pid = seed_due_participant(registry, nhs_index=0)
    other = seed_due_participant(registry, nhs_index=1)
    token = _issue(registry, pid)
    response = _post(client, token, _form(pain="4"))
    assert response.status_code == 200, response.text
    assert "Thank you" in response.text
    # staff enter the same answers for another participant through the staff service
    answers = {"nrs": {"pain": 4}, "eq5d5l": {k: int(v) for k, v in EQ.items()}}
    with transaction(registry.factory) as session:
        clinical.record_followup(
            session,
            registry.actor("nurse"),
            other,
            FollowUpIn(visit_code="w2", visit_date=TODAY, answers=answers),
        )
    with registry.factory() as session:
        mine = session.scalar(select(FollowUpVisit).where(FollowUpVisit.participant_id == pid))
        staff = session.scalar(select(FollowUpVisit).where(FollowUpVisit.participant_id == other))
        assert mine.answers == staff.answers == answers
        assert mine.scores == staff.scores
        # and both equal the instruments package scoring the answers independently
        assert mine.scores["eq5d5l"] == pytest.approx(dict(score("eq5d5l", answers["eq5d5l"])))
        assert mine.scores["nrs"] == {"pain": 4.0}
        created = session.scalar(
            select(AuditEntry).where(
                AuditEntry.table_name == "followup_visit",
                AuditEntry.row_id == str(mine.id),
                AuditEntry.action == "create",
            )
        )
        event = session.scalar(select(AuditEntry).where(AuditEntry.action == "epro-done"))
        link = session.scalar(select(EproLink).where(EproLink.participant_id == pid))
    assert created.username.startswith("participant:MORTON-RBH-")
    assert created.user_id is None
    assert event.new_values["source"] == "participant"
    assert event.row_id == str(mine.id)
    assert link.submitted_at is not None
    assert link.followup_visit_id == mine.id
    # the link is spent
    again = client.get(f"/epro/{token}")
    assert again.status_code == 410
    assert "already been sent" in again.text
    assert client.post(f"/epro/{token}", data={"action": "submit"}).status_code in (403, 410)


def test_stump_participant_gets_the_stump_set_not_moxfq(registry, client) -> None:
    pid = seed_due_participant(registry, study="STUMP", neuroma_type="stump")
    token = _issue(registry, pid, "m1")  # scheduled: nrs, eq5d5l, moxfq → stump
    page = client.get(f"/epro/{token}").text
    assert 'id="section-stump"' in page
    assert 'id="section-moxfq"' not in page
    form = {
        **_form(),
        "answers.stump.residual_limb_pain": "3",
        "answers.stump.phantom_pain": "5",
        "answers.stump.phantom_episodes_per_day": "4",
        "answers.stump.phantom_episode_duration_min": "10",
    }
    assert _post(client, token, form).status_code == 200
    with registry.factory() as session:
        visit = session.scalar(select(FollowUpVisit).where(FollowUpVisit.participant_id == pid))
    assert visit.scores["stump"]["phantom_burden"] == 40.0  # 4 episodes × 10 min


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"answers.nrs.pain": "10"}, "nrs.pain = 10"),
        ({"answers.nrs.pain": "3", "change_since_procedure": "much_worse"}, "much worse"),
    ],
)
def test_high_risk_answer_shows_the_safety_message_and_alerts_the_site(
    registry, client, form, reason
) -> None:
    pid = seed_due_participant(registry)
    token = _issue(registry, pid)
    response = _post(client, token, form, action="save")
    assert 'id="safety-message"' in response.text
    assert registry.settings.epro_safety_message in response.text
    with registry.factory() as session:
        alert = session.scalar(select(EproAlert).where(EproAlert.participant_id == pid))
    assert alert is not None
    assert any(reason in r for r in alert.reasons)
    # visible to the site's staff, not to another site's
    login(client, "nurse")
    assert reason in client.get("/epro/completion").text
    client.post("/api/logout", headers={})
    client.cookies.clear()
    login(client, "leedsnurse")
    assert reason not in client.get("/epro/completion").text


def test_a_moderate_answer_raises_no_alert(registry, client) -> None:
    pid = seed_due_participant(registry)
    token = _issue(registry, pid)
    response = _post(client, token, _form(pain="9", change="a_little_worse"))
    assert response.status_code == 200
    assert "safety-message" not in response.text
    with registry.factory() as session:
        assert session.scalar(select(EproAlert.id)) is None


def test_contact_email_is_encrypted_and_never_in_the_trail(registry) -> None:
    pid = seed_due_participant(registry, email_address="jo.bloggs@example.test")
    with registry.factory() as session:
        row = session.scalar(
            select(ParticipantContact).where(ParticipantContact.participant_id == pid)
        )
        dump = json.dumps([e.new_values for e in session.scalars(select(AuditEntry))], default=str)
    assert "jo.bloggs" not in row.email_encrypted
    assert decrypt_identifier(registry.settings, row.email_encrypted) == "jo.bloggs@example.test"
    assert "jo.bloggs" not in dump
    with (
        transaction(registry.factory) as session,
        pytest.raises(RegistryInputError, match="e-mail"),
    ):
        epro_site.set_contact_email(
            session, registry.settings, registry.actor("nurse"), pid, "not-an-address"
        )


def test_staff_issue_link_page_and_completion(registry, client) -> None:
    pid = seed_due_participant(registry)
    headers = login(client, "nurse")
    page = client.get(f"/participants/{pid}/epro")
    assert "An address is on file" in page.text
    assert "patient@example.test" not in page.text
    csrf = headers["X-CSRF-Token"]
    response = client.post(
        f"/participants/{pid}/epro/links", data={"visit_code": "w2", "csrf_token": csrf}
    )
    assert response.status_code == 200
    start = response.text.index('id="new-link-url" href="') + len('id="new-link-url" href="')
    url = response.text[start : response.text.index('"', start)]
    assert url.startswith(registry.settings.public_base_url + "/epro/")
    token = urlparse(url).path.removeprefix("/epro/")
    assert _post(client, token, _form()).status_code == 200
    client.get("/")  # still the nurse's session
    table = client.get("/epro/completion").text
    row = table[table.index("<td>RBH</td><td>w2</td>") :].split("</tr>")[0]
    assert "<td>1</td><td>1</td><td>1</td><td>100.0 %</td>" in row


# --- reminders --------------------------------------------------------------------------------


def test_reminders_send_twice_sends_once_and_the_link_works(registry, client) -> None:
    pid = seed_due_participant(registry, nhs_index=0)
    seed_due_participant(registry, nhs_index=1, email_address=None)  # no address: in the digest
    seed_due_participant(registry, nhs_index=2, procedure_days_ago=5)  # nothing due yet
    set_site_digest(registry)
    with SmtpCapture() as smtp:
        settings = smtp_settings(registry, smtp)
        mailer = SmtpMailer.from_settings(settings)
        dry = send_reminders(registry.factory, settings, mailer, dry_run=True)
        assert smtp.messages == []
        assert [e["kind"] for e in dry.sent] == ["due", "digest"]
        first = send_reminders(registry.factory, settings, mailer)
        second = send_reminders(registry.factory, settings, mailer)
        messages = smtp.messages
    assert [e["kind"] for e in first.sent] == ["due", "digest"]
    assert second.sent == []
    assert second.already_sent == 2
    assert len(messages) == 2
    invite = next(m for m in messages if m["To"] == "patient@example.test")
    digest = next(m for m in messages if m["To"] == "rbh-team@example.test")
    assert "2 weeks" in invite["Subject"]
    assert "2 due" in digest["Subject"]
    assert "No contact e-mail on file" in body(digest)
    with registry.factory() as session:
        keys = sorted(session.scalars(select(ReminderLog.dedup_key)))
    assert keys[0] == f"p{pid}:w2:due"
    # follow the link from the captured message
    token = urlparse(link_in(invite)).path.removeprefix("/epro/")
    assert client.get(f"/epro/{token}").status_code == 200
    assert _post(client, token, _form()).status_code == 200


def test_overdue_visit_gets_one_overdue_reminder(registry) -> None:
    # w2 (day 14, window -3/+7) closed on day 21; m1 (day 30, -7) opens on day 23
    pid = seed_due_participant(registry, procedure_days_ago=22)
    with SmtpCapture() as smtp:
        settings = smtp_settings(registry, smtp)
        report = send_reminders(registry.factory, settings, SmtpMailer.from_settings(settings))
        send_reminders(registry.factory, settings, SmtpMailer.from_settings(settings))
        messages = smtp.messages
    assert [(e["kind"], e["visit_code"]) for e in report.sent] == [("overdue", "w2")]
    assert len(messages) == 1
    assert "overdue" in messages[0]["Subject"]
    with registry.factory() as session:
        assert session.scalar(select(ReminderLog.participant_id)) == pid


def test_digest_includes_open_safety_alerts(registry, client) -> None:
    pid = seed_due_participant(registry)
    set_site_digest(registry)
    token = _issue(registry, pid)
    _post(client, token, {"answers.nrs.pain": "10"}, action="save")
    with SmtpCapture() as smtp:
        settings = smtp_settings(registry, smtp)
        send_reminders(registry.factory, settings, SmtpMailer.from_settings(settings))
        digest = next(m for m in smtp.messages if m["To"] == "rbh-team@example.test")
    assert "1 open safety alert" in digest["Subject"]
    assert "nrs.pain = 10" in body(digest)


def test_unconfigured_smtp_is_refused_in_one_line(registry, monkeypatch) -> None:
    with pytest.raises(SmtpNotConfiguredError, match="CRYONEURO_SMTP_HOST"):
        SmtpMailer.from_settings(registry.settings)
    unsafe = registry.settings.model_copy(
        update={
            "smtp_host": "mail.example.test",
            "smtp_from": "a@example.test",
            "smtp_security": "none",
            "smtp_username": "u",
            "smtp_password": "p",
        }
    )
    with pytest.raises(SmtpNotConfiguredError, match="unencrypted"):
        SmtpMailer.from_settings(unsafe)
    for name in ("CRYONEURO_SMTP_HOST", "CRYONEURO_SMTP_FROM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRYONEURO_KEY_FILE", str(registry.settings.key_path()))
    result = CliRunner().invoke(app, ["reminders", "send", "--db", registry.url])
    assert result.exit_code == 2
    assert result.output.strip().startswith("cryoneuro: error: SMTP is not configured")
    assert len(result.output.strip().splitlines()) == 1


def test_cli_send_through_smtp_and_dry_run(registry, monkeypatch) -> None:
    seed_due_participant(registry)
    monkeypatch.setenv("CRYONEURO_KEY_FILE", str(registry.settings.key_path()))
    monkeypatch.setenv("CRYONEURO_PUBLIC_BASE_URL", registry.settings.public_base_url)
    runner = CliRunner()
    with SmtpCapture() as smtp:
        for name, value in smtp.env().items():
            monkeypatch.setenv(name, value)
        dry = runner.invoke(app, ["reminders", "send", "--db", registry.url, "--dry-run", "--json"])
        assert dry.exit_code == 0, dry.output
        assert json.loads(dry.stdout)["sent"][0]["kind"] == "due"
        assert smtp.messages == []
        for _ in range(2):
            result = runner.invoke(app, ["reminders", "send", "--db", registry.url, "--json"])
            assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["already_sent"] == 1
        assert len(smtp.messages) == 1
    assert PASSWORD not in result.output


def test_site_staff_acknowledge_an_alert_other_sites_cannot(registry, client) -> None:
    pid = seed_due_participant(registry)
    token = _issue(registry, pid)
    _post(client, token, {"answers.nrs.pain": "10"}, action="save")
    with registry.factory() as session:
        alert_id = session.scalar(select(EproAlert.id))
    client.cookies.clear()
    leeds = login(client, "leedsnurse")
    refused = client.post(
        f"/epro/alerts/{alert_id}/acknowledge", data={"csrf_token": leeds["X-CSRF-Token"]}
    )
    assert refused.status_code == 404
    client.cookies.clear()
    nurse = login(client, "nurse")
    done = client.post(
        f"/epro/alerts/{alert_id}/acknowledge",
        data={"csrf_token": nurse["X-CSRF-Token"], "back": "completion"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert 'id="no-alerts"' in client.get("/epro/completion").text
    with registry.factory() as session:
        alert = session.get(EproAlert, alert_id)
        entry = session.scalars(
            select(AuditEntry).where(
                AuditEntry.table_name == "epro_alert", AuditEntry.action == "update"
            )
        ).all()[-1]
    assert alert.acknowledged_by == "nurse"
    assert entry.username == "nurse"
    assert "acknowledged" in entry.reason


def test_epro_tokens_are_kept_out_of_the_access_log() -> None:
    import logging

    from cryoneuro.web.app import RedactTokens

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s "%s %s"', ("1.2.3.4", "GET", ""), None
    )
    record.args = ("1.2.3.4", "GET", "/epro/eyJwIjoxLCJ2IjoidzIifQ.Z1x.abc")
    RedactTokens().filter(record)
    assert record.args[2] == "/epro/[redacted]"
    record.args = ("1.2.3.4", "GET", "/epro/completion")
    RedactTokens().filter(record)
    assert record.args[2] == "/epro/completion"


def test_link_for_a_visit_the_clinic_recorded_is_refused(registry, client) -> None:
    pid = seed_due_participant(registry)
    token = _issue(registry, pid)
    with transaction(registry.factory) as session:
        clinical.record_followup(
            session,
            registry.actor("nurse"),
            pid,
            FollowUpIn(visit_code="w2", visit_date=TODAY, answers={"nrs": {"pain": 2}}),
        )
    response = client.get(f"/epro/{token}")
    assert response.status_code == 410
    assert "already recorded" in response.text


def test_site_without_a_digest_address_is_reported_not_skipped_silently(registry) -> None:
    seed_due_participant(registry)
    report = send_reminders(registry.factory, registry.settings, None, dry_run=True)
    assert report.no_site_address == ["RBH"]
    assert [e["kind"] for e in report.sent] == ["due"]


def test_reminders_are_idempotent_on_postgresql(pg_registry) -> None:
    """The same run twice on PostgreSQL (the production database): one e-mail, one log row."""
    seed_due_participant(pg_registry)
    with SmtpCapture() as smtp:
        settings = smtp_settings(pg_registry, smtp)
        for _ in range(2):
            send_reminders(pg_registry.factory, settings, SmtpMailer.from_settings(settings))
        messages = smtp.messages
    assert len(messages) == 1
    with pg_registry.factory() as session:
        assert len(session.scalars(select(ReminderLog)).all()) == 1
        assert len(session.scalars(select(EproLink)).all()) == 1
