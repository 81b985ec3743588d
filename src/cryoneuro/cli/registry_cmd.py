"""Registry commands: ``cryoneuro serve``, ``cryoneuro db upgrade``, ``cryoneuro user add``.

Registered on the shared Typer app when ``cryoneuro.cli`` imports this module.
"""

from __future__ import annotations

import typer

from cryoneuro.cli._app import app, console, emit_json, user_errors

db_app = typer.Typer(help="Registry database: migrations.", no_args_is_help=True)
user_app = typer.Typer(help="Registry users.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")

DB_OPTION = typer.Option(None, "--db", help="Database URL (default: $CRYONEURO_DB_URL or "
                                             "sqlite:///cryoneuro.db).")


def _settings(db: str | None):
    from cryoneuro.registry.settings import RegistrySettings

    return RegistrySettings(db_url=db) if db else RegistrySettings()


@app.command()
@user_errors
def serve(db: str | None = DB_OPTION,
          host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
          port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
          upgrade: bool = typer.Option(True, "--upgrade/--no-upgrade",
                                       help="Apply database migrations first."),
          workers: int = typer.Option(1, "--workers", min=1, max=64,
                                      help="Server processes (PostgreSQL: one per core).")
          ) -> None:
    """Run the registry web app (research use only, NICE HTG652)."""
    import os

    import uvicorn

    from cryoneuro.errors import InputError
    from cryoneuro.registry.migrate import upgrade as run_upgrade
    from cryoneuro.web import create_app

    settings = _settings(db)
    if workers > 1 and settings.db_url.startswith("sqlite"):
        raise InputError("--workers > 1 needs PostgreSQL: SQLite allows one writer at a time")
    if upgrade:
        run_upgrade(settings.db_url)
    console.print(f"cryoneuro registry on http://{host}:{port} (database {settings.db_url}, "
                  f"{workers} worker{'s' if workers > 1 else ''})")
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
        return
    # Worker processes build the app from the environment (same settings, passed by name).
    os.environ["CRYONEURO_DB_URL"] = settings.db_url
    uvicorn.run("cryoneuro.web.app:create_app", factory=True, host=host, port=port,
                workers=workers, log_level="warning")


@db_app.command("upgrade")
@user_errors
def db_upgrade(db: str | None = DB_OPTION,
               json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Apply all migrations to the registry database."""
    from cryoneuro.registry.migrate import current_revision, upgrade

    settings = _settings(db)
    upgrade(settings.db_url)
    revision = current_revision(settings.db_url)
    if json_out:
        emit_json({"revision": revision})
    else:
        console.print(f"database at revision {revision}")


SITE_OPTION = typer.Option(None, "--site", help="Site code (repeatable).")


@user_app.command("add")
@user_errors
def user_add(username: str = typer.Argument(..., help="Login name."),
             role: str = typer.Option(..., "--role", help="administrator, investigator, "
                                      "data_entry, monitor or statistician."),
             site: list[str] | None = SITE_OPTION,
             full_name: str = typer.Option("", "--full-name"),
             password: str = typer.Option(..., "--password", prompt=True, hide_input=True,
                                          confirmation_prompt=True,
                                          envvar="CRYONEURO_NEW_USER_PASSWORD"),
             db: str | None = DB_OPTION,
             json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Create a registry user (sites must exist)."""
    from cryoneuro.registry.auth import Actor
    from cryoneuro.registry.db import make_engine, make_sessionmaker, transaction
    from cryoneuro.registry.services.setup import create_user

    settings = _settings(db)
    engine = make_engine(settings.db_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            user = create_user(session, Actor.system(), username=username, password=password,
                               role=role, site_codes=site or [], full_name=full_name)
            result = {"id": user.id, "username": user.username, "role": user.role,
                      "sites": list(site or [])}
    finally:
        engine.dispose()
    if json_out:
        emit_json(result)
    else:
        console.print(f"user {username} ({role}) created")


@user_app.command("seed-demo")
@user_errors
def seed_demo(db: str | None = DB_OPTION,
              password: str = typer.Option(..., "--password", prompt=True, hide_input=True,
                                           envvar="CRYONEURO_NEW_USER_PASSWORD")) -> None:
    """Create a demonstration RCT, case series, two sites and one user per role."""
    from cryoneuro.registry.db import make_engine, make_sessionmaker
    from cryoneuro.registry.demo import seed_demo as run_seed

    settings = _settings(db)
    engine = make_engine(settings.db_url)
    try:
        run_seed(make_sessionmaker(engine), settings, password)
    finally:
        engine.dispose()
    console.print("demo studies, sites and users created")
