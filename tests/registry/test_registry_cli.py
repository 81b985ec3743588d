"""CLI contract: `cryoneuro db upgrade`, `cryoneuro user add` (serve is exercised by the
browser and durability tests, which start it as a subprocess)."""

from __future__ import annotations

import json

from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from cryoneuro.cli import registry_cmd  # noqa: F401  (registers the commands)
from cryoneuro.cli._app import app
from cryoneuro.registry.migrate import alembic_config


def test_db_upgrade_and_user_add(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    result = runner.invoke(app, ["db", "upgrade", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head >= "0003"  # plan_file (0003) and anything after it
    assert json.loads(result.stdout)["revision"] == head
    result = runner.invoke(
        app,
        [
            "user",
            "add",
            "alice",
            "--role",
            "administrator",
            "--db",
            url,
            "--password",
            "long enough pw 1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["role"] == "administrator"
    result = runner.invoke(
        app,
        [
            "user",
            "add",
            "alice",
            "--role",
            "administrator",
            "--db",
            url,
            "--password",
            "long enough pw 1",
        ],
    )
    assert result.exit_code == 2
    assert "exists" in result.output
    result = runner.invoke(
        app, ["user", "add", "bob", "--role", "king", "--db", url, "--password", "long enough pw 1"]
    )
    assert result.exit_code == 2
    assert "role must be one of" in result.output
    result = runner.invoke(
        app,
        [
            "user",
            "add",
            "bob",
            "--role",
            "monitor",
            "--site",
            "NOPE",
            "--db",
            url,
            "--password",
            "long enough pw 1",
        ],
    )
    assert result.exit_code == 2
    assert "no site" in result.output
