"""Registry commands: ``cryoneuro serve``, ``cryoneuro db upgrade``, ``cryoneuro keys init``,
``cryoneuro user add``.

Registered on the shared Typer app when ``cryoneuro.cli`` imports this module.
"""

from __future__ import annotations

import typer

from cryoneuro.cli._app import app, console, emit_json, require_extra, user_errors


def _needs_registry() -> None:
    """Group callback: refuse before any prompt (e.g. a password) when the extra is absent."""
    require_extra("registry")


db_app = typer.Typer(
    help="Registry database: migrations.", no_args_is_help=True, callback=_needs_registry
)
user_app = typer.Typer(help="Registry users.", no_args_is_help=True, callback=_needs_registry)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(
    help="Registry keys: create the key file.", no_args_is_help=True, callback=_needs_registry
)
app.add_typer(user_app, name="user")
app.add_typer(keys_app, name="keys")

DB_OPTION = typer.Option(
    None, "--db", help="Database URL (default: $CRYONEURO_DB_URL or sqlite:///cryoneuro.db)."
)


KEY_FILE_OPTION = typer.Option(
    None,
    "--key-file",
    help="Registry key file (default: "
    "$CRYONEURO_KEY_FILE, else beside a SQLite database or "
    "~/.config/cryoneuro/registry-keys.json).",
)


def _settings(db: str | None, key_file: str | None = None):
    from pathlib import Path

    from cryoneuro.registry.settings import RegistrySettings

    overrides: dict = {}
    if db:
        overrides["db_url"] = db
    if key_file:
        overrides["key_file"] = Path(key_file)
    return RegistrySettings(**overrides)


def _keyed_factory(settings):
    """Engine and session factory with the key file's keys, checked against the database."""
    from cryoneuro.registry.audit import make_sessionmaker
    from cryoneuro.registry.database_keys import check_startup
    from cryoneuro.registry.db import make_engine

    settings = settings.load_keys()
    engine = make_engine(settings.db_url)
    factory = make_sessionmaker(engine, settings.keys)
    try:
        check_startup(settings, factory)
    except BaseException:
        engine.dispose()
        raise
    return settings, engine, factory


@app.command()
@user_errors
def serve(
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
    dev: bool = typer.Option(
        False,
        "--dev",
        help="Development only: ephemeral random "
        "keys instead of the key file (data written is lost).",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    upgrade: bool = typer.Option(
        True, "--upgrade/--no-upgrade", help="Apply database migrations first."
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="Server processes (PostgreSQL: one per core)."
    ),
) -> None:
    """Run the registry web app (research use only, NICE HTG652)."""
    import os

    import uvicorn

    from cryoneuro.errors import InputError
    from cryoneuro.registry.database_keys import DEV_WARNING
    from cryoneuro.registry.migrate import upgrade as run_upgrade
    from cryoneuro.web import create_app

    settings = _settings(db, key_file)
    if workers > 1 and settings.db_url.startswith("sqlite"):
        raise InputError("--workers > 1 needs PostgreSQL: SQLite allows one writer at a time")
    if dev and workers > 1:
        raise InputError(
            "--dev cannot be combined with --workers > 1 (each worker would have "
            "its own ephemeral keys)"
        )
    if not dev:
        settings = settings.load_keys()  # refuse before migrating anything
    if upgrade:
        run_upgrade(settings.db_url)
    application = create_app(settings, dev=dev)  # checks the keys against the database
    if dev:
        typer.echo("\n" + "!" * 78 + "\n" + DEV_WARNING + "\n" + "!" * 78 + "\n", err=True)
    console.print(
        f"cryoneuro registry on http://{host}:{port} (database {settings.db_url}, "
        f"{workers} worker{'s' if workers > 1 else ''})"
    )
    if settings.secure_cookies:
        console.print(
            "session cookies are Secure (HTTPS only): behind an HTTPS proxy this is "
            "right; for local http development set CRYONEURO_SECURE_COOKIES=false"
        )
    if workers == 1:
        # the app's access-log filter replaces reset tokens in request lines (web/app.py)
        uvicorn.run(application, host=host, port=port, log_level="info")
        return
    # Worker processes build the app from the environment (same settings, passed by name).
    os.environ["CRYONEURO_DB_URL"] = settings.db_url
    os.environ["CRYONEURO_KEY_FILE"] = str(settings.key_path())
    uvicorn.run(
        "cryoneuro.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


@db_app.command("upgrade")
@user_errors
def db_upgrade(
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Apply all migrations; create the key file if there is none; register its fingerprint."""
    from cryoneuro.registry.keys import write_key_file
    from cryoneuro.registry.migrate import current_revision, upgrade

    settings = _settings(db, key_file)
    path = settings.key_path()
    created = not path.exists()
    if created:
        write_key_file(path)
    upgrade(settings.db_url)
    _, engine, _ = _keyed_factory(settings)  # registers (or checks) the fingerprint
    engine.dispose()
    revision = current_revision(settings.db_url)
    if json_out:
        emit_json({"revision": revision, "key_file": str(path), "key_file_created": created})
    else:
        console.print(
            f"database at revision {revision}; keys in {path}"
            + (" (new: back it up apart from the database)" if created else "")
        )


@keys_app.command("init")
@user_errors
def keys_init(
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Create the key file (mode 0600) with fresh random keys; never overwrites one."""
    from cryoneuro.registry.keys import write_key_file

    path = _settings(db, key_file).key_path()
    write_key_file(path)
    if json_out:
        emit_json({"key_file": str(path)})
    else:
        console.print(
            f"keys written to {path} (mode 600): back it up apart from the database; "
            "without it NHS numbers cannot be read"
        )


SITE_OPTION = typer.Option(None, "--site", help="Site code (repeatable).")


@user_app.command("add")
@user_errors
def user_add(
    username: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option(
        ..., "--role", help="administrator, investigator, data_entry, monitor or statistician."
    ),
    site: list[str] | None = SITE_OPTION,
    full_name: str = typer.Option("", "--full-name"),
    password: str = typer.Option(
        ...,
        "--password",
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        envvar="CRYONEURO_NEW_USER_PASSWORD",
    ),
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Create a registry user (sites must exist)."""
    from cryoneuro.registry.auth import Actor
    from cryoneuro.registry.db import transaction
    from cryoneuro.registry.services.setup import create_user

    _, engine, factory = _keyed_factory(_settings(db, key_file))
    try:
        with transaction(factory) as session:
            user = create_user(
                session,
                Actor.system(),
                username=username,
                password=password,
                role=role,
                site_codes=site or [],
                full_name=full_name,
            )
            result = {
                "id": user.id,
                "username": user.username,
                "role": user.role,
                "sites": list(site or []),
            }
    finally:
        engine.dispose()
    if json_out:
        emit_json(result)
    else:
        console.print(f"user {username} ({role}) created")


@user_app.command("seed-demo")
@user_errors
def seed_demo(
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
    password: str = typer.Option(
        ..., "--password", prompt=True, hide_input=True, envvar="CRYONEURO_NEW_USER_PASSWORD"
    ),
    sample_data: bool = typer.Option(
        False,
        "--sample-data",
        help="Also enrol synthetic participants with procedures and follow-up (test-range "
        "NHS numbers), so the dashboard is populated.",
    ),
    participants: int = typer.Option(
        12, "--participants", min=1, max=200, help="How many sample participants."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed of the sample data."),
) -> None:
    """Create a demonstration RCT, case series, two sites and one user per role."""
    from cryoneuro.registry.demo import seed_demo as run_seed
    from cryoneuro.registry.demo import seed_sample_data

    settings, engine, factory = _keyed_factory(_settings(db, key_file))
    try:
        run_seed(factory, settings, password)
        console.print("demo studies, sites and users created")
        if sample_data:
            made = seed_sample_data(factory, settings, count=participants, seed=seed)
            console.print(
                f"sample data: {made['participants']} participants, {made['procedures']} "
                f"procedures, {made['followups']} follow-up visits (seed {seed})"
            )
    finally:
        engine.dispose()


@keys_app.command("rotate-session")
@user_errors
def keys_rotate_session(db: str | None = DB_OPTION, key_file: str | None = KEY_FILE_OPTION) -> None:
    """Replace the session key: every session and reset link ends (audited)."""
    from cryoneuro.registry.database_keys import rotate_session_key

    settings, engine, factory = _keyed_factory(_settings(db, key_file))
    try:
        rotate_session_key(settings, factory)
    finally:
        engine.dispose()
    console.print(f"session key replaced in {settings.key_path()}; every user must log in again")


audit_app = typer.Typer(
    help="Registry audit trail: verify its chain.", no_args_is_help=True, callback=_needs_registry
)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
@user_errors
def audit_verify(
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Check the audit trail's HMAC chain; exit 1 naming the first altered, deleted or
    inserted entry."""
    from cryoneuro.registry.audit import verify_chain

    _, engine, factory = _keyed_factory(_settings(db, key_file))
    try:
        with factory() as session:
            report = verify_chain(session, session.info["audit_key"])
    finally:
        engine.dispose()
    if json_out:
        emit_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "before_chain": report.before_chain,
                "problem": report.problem,
                "first_bad_id": report.first_bad_id,
            }
        )
    elif report.ok:
        console.print(
            f"audit trail intact: {report.checked} chained entries"
            + (
                f" ({report.before_chain} older entries predate the chain)"
                if report.before_chain
                else ""
            )
        )
    else:
        typer.echo(f"cryoneuro: audit trail tampered: {report.problem}", err=True)
    if not report.ok:
        raise typer.Exit(code=1)


site_app = typer.Typer(help="Registry sites.", no_args_is_help=True, callback=_needs_registry)
study_app = typer.Typer(help="Registry studies.", no_args_is_help=True, callback=_needs_registry)
app.add_typer(site_app, name="site")
app.add_typer(study_app, name="study")


def _admin_session(db: str | None, key_file: str | None):
    """(settings, engine, factory): keyed and checked against the database."""
    return _keyed_factory(_settings(db, key_file))


@site_app.command("add")
@user_errors
def site_add(
    code: str = typer.Argument(..., help="Short site code, e.g. RBH."),
    name: str = typer.Argument(..., help="Hospital name."),
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
) -> None:
    """Create a recruiting site (audited, as 'system')."""
    from cryoneuro.registry.auth import Actor
    from cryoneuro.registry.db import transaction
    from cryoneuro.registry.services import setup

    _, engine, factory = _admin_session(db, key_file)
    try:
        with transaction(factory) as session:
            setup.create_site(session, Actor.system(), code, name)
    finally:
        engine.dispose()
    console.print(f"site {code} created")


BLIND_OPTION = typer.Option(
    None, "--blind", help="A role kept blind to allocation (repeatable), e.g. statistician."
)
ARM_OPTION = typer.Option(None, "--arm", help="code:label:ratio (repeatable; RCT only).")


@study_app.command("add")
@user_errors
def study_add(
    code: str = typer.Argument(..., help="Study code, e.g. MORTON."),
    title: str = typer.Option(..., "--title"),
    design: str = typer.Option(..., "--design", help="rct or case_series."),
    arm: list[str] | None = ARM_OPTION,
    test_study: bool = typer.Option(
        False, "--test-study", help="A test/training study (accepts test-range NHS numbers)."
    ),
    blind: list[str] | None = BLIND_OPTION,
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
) -> None:
    """Create a study with the default visit schedule and eligibility criteria."""
    from cryoneuro.errors import InputError
    from cryoneuro.registry.auth import Actor
    from cryoneuro.registry.db import transaction
    from cryoneuro.registry.services import setup

    arms = []
    for text in arm or []:
        parts = text.split(":")
        if len(parts) != 3 or not parts[2].isdigit() or not 1 <= int(parts[2]) <= 10:
            raise InputError(f"--arm '{text}': write code:label:ratio, ratio 1–10")
        arms.append((parts[0], parts[1], int(parts[2])))
    _, engine, factory = _admin_session(db, key_file)
    try:
        with transaction(factory) as session:
            setup.create_study(
                session,
                Actor.system(),
                code=code,
                title=title,
                design=design,
                arms=arms,
                test_study=test_study,
                blinded_roles=blind or [],
            )
    finally:
        engine.dispose()
    console.print(f"study {code} created")


@study_app.command("add-site")
@user_errors
def study_add_site(
    study: str = typer.Argument(...),
    site: str = typer.Argument(...),
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
) -> None:
    """Join a site to a study (for an RCT this generates its concealed list)."""
    from cryoneuro.registry.auth import Actor
    from cryoneuro.registry.db import transaction
    from cryoneuro.registry.services import setup

    settings, engine, factory = _admin_session(db, key_file)
    try:
        with transaction(factory) as session:
            setup.add_site_to_study(
                session,
                settings,
                Actor.system(),
                setup.get_study(session, study),
                setup.get_site(session, site),
            )
    finally:
        engine.dispose()
    console.print(f"site {site} joined {study}")


REASON_OPTION = typer.Option(..., "--reason", help="Why (recorded in the audit trail).")


def _change_user(db: str | None, key_file: str | None, username: str, change) -> None:
    from cryoneuro.registry.auth import Actor
    from cryoneuro.registry.db import transaction
    from cryoneuro.registry.services import admin

    _, engine, factory = _admin_session(db, key_file)
    try:
        with transaction(factory) as session:
            change(session, Actor.system(), admin.find_user(session, username).id)
    finally:
        engine.dispose()


@user_app.command("set-role")
@user_errors
def user_set_role(
    username: str = typer.Argument(...),
    role: str = typer.Argument(...),
    reason: str = REASON_OPTION,
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
) -> None:
    """Change a user's role (their sessions end)."""
    from cryoneuro.registry.services import admin

    _change_user(db, key_file, username, lambda s, a, uid: admin.set_role(s, a, uid, role, reason))
    console.print(f"{username} is now {role}")


@user_app.command("set-sites")
@user_errors
def user_set_sites(
    username: str = typer.Argument(...),
    site: list[str] | None = SITE_OPTION,
    reason: str = REASON_OPTION,
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
) -> None:
    """Make the given --site codes exactly the user's member sites."""
    from cryoneuro.registry.services import admin

    _change_user(
        db,
        key_file,
        username,
        lambda s, a, uid: admin.set_sites(s, a, uid, list(site or []), reason),
    )
    console.print(f"{username}: sites {', '.join(site or []) or 'none'}")


@user_app.command("deactivate")
@user_errors
def user_deactivate(
    username: str = typer.Argument(...),
    reason: str = REASON_OPTION,
    db: str | None = DB_OPTION,
    key_file: str | None = KEY_FILE_OPTION,
) -> None:
    """Deactivate a user: log-in refused and every session ends at once."""
    from cryoneuro.registry.services import admin

    _change_user(
        db, key_file, username, lambda s, a, uid: admin.set_active(s, a, uid, False, reason)
    )
    console.print(f"{username} deactivated")
