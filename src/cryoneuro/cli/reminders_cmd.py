"""``cryoneuro reminders``: e-mail participants their ePRO links and sites their digests.

- ``cryoneuro reminders send [--dry-run] [--json]``: safe to run from cron (idempotent, see
  :mod:`cryoneuro.registry.services.reminders`); exit 1 when any e-mail failed, 2 when SMTP or
  the public address is not configured.
- ``cryoneuro reminders contact STUDY_NUMBER EMAIL``: a participant's contact address
  (stored encrypted like the NHS number).
- ``cryoneuro reminders site-address SITE EMAIL``: where a site's digest goes.
"""

from __future__ import annotations

import datetime as dt

import typer

from cryoneuro.cli._app import app, console, emit_json, user_errors
from cryoneuro.cli.registry_cmd import DB_OPTION, KEY_FILE_OPTION, _keyed_factory, _settings

reminders_app = typer.Typer(
    help="ePRO reminders: e-mail participants their links and sites a digest.",
    no_args_is_help=True,
)
app.add_typer(reminders_app, name="reminders")


def _date(value: str | None) -> dt.date | None:
    from cryoneuro.errors import InputError

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"--today: '{value[:20]}' is not a date (YYYY-MM-DD)") from None


@reminders_app.command("send")
@user_errors
def send(
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List what would be sent; send and record nothing."
    ),
    today: str | None = typer.Option(
        None, "--today", help="Run as of this date (YYYY-MM-DD; default: today)."
    ),
    json_output: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Send due/overdue ePRO links to participants and a digest to each site (idempotent)."""
    from cryoneuro.registry.services.reminders import SmtpMailer, send_reminders

    day = _date(today)
    settings = _settings(db, key_file)
    mailer = None if dry_run else SmtpMailer.from_settings(settings)
    settings, engine, factory = _keyed_factory(settings)
    try:
        report = send_reminders(factory, settings, mailer, today=day, dry_run=dry_run)
    finally:
        engine.dispose()
    if json_output:
        emit_json(report.to_dict())
    else:
        verb = "would send" if dry_run else "sent"
        for entry in report.sent:
            who = entry.get("participant") or f"site {entry.get('site')}"
            console.print(f"{verb}: {entry['kind']} {who} {entry.get('visit_code', '')}".rstrip())
        for entry in report.no_contact:
            console.print(
                f"no contact address: {entry['participant']} {entry['visit_code']} "
                "(listed in the site digest)"
            )
        for site in report.no_site_address:
            console.print(
                f"no digest for site {site}: no notification address "
                f"(cryoneuro reminders site-address {site} EMAIL)"
            )
        for entry in report.failed:
            console.print(f"[red]failed[/red]: {entry}")
        console.print(
            f"{len(report.sent)} {verb}, {report.already_sent} already sent earlier, "
            f"{len(report.failed)} failed"
        )
    if report.failed:
        raise typer.Exit(code=1)


@reminders_app.command("contact")
@user_errors
def contact(
    study_number: str = typer.Argument(..., help="The participant's study number."),
    email: str = typer.Argument(..., help="Their e-mail address (stored encrypted)."),
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
) -> None:
    """Set a participant's contact e-mail address (audited; never shown in clear)."""
    from cryoneuro.registry.auth import Actor
    from cryoneuro.registry.db import transaction
    from cryoneuro.registry.services.epro_site import set_contact_email
    from cryoneuro.registry.services.participants import find_by_study_number

    settings, engine, factory = _keyed_factory(_settings(db, key_file))
    try:
        with transaction(factory) as session:
            participant = find_by_study_number(session, Actor.system(), study_number)
            set_contact_email(session, settings, Actor.system(), participant.id, email)
    finally:
        engine.dispose()
    console.print(f"contact address stored (encrypted) for {study_number}")


@reminders_app.command("site-address")
@user_errors
def site_address(
    site: str = typer.Argument(..., help="Site code, e.g. RBH."),
    email: str = typer.Argument(..., help="Where the site's digest goes."),
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
) -> None:
    """Set the address a site's due/overdue digest and safety alerts are e-mailed to."""
    from cryoneuro.registry.auth import Actor
    from cryoneuro.registry.db import transaction
    from cryoneuro.registry.services.reminders import set_site_address

    _, engine, factory = _keyed_factory(_settings(db, key_file))
    try:
        with transaction(factory) as session:
            set_site_address(session, Actor.system(), site, email)
    finally:
        engine.dispose()
    console.print(f"digest address of {site} stored")
