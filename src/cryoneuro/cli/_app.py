"""The Typer application and the conventions every command follows.

Commands live in sibling modules (one per domain step) and register themselves on ``app``.
Conventions (docs/contracts.md): every computing command takes ``--json`` and then prints exactly
one JSON object on stdout; human output goes through Rich; user mistakes
(:class:`~cryoneuro.errors.CryoneuroError`) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from cryoneuro import __version__
from cryoneuro._json import json_safe
from cryoneuro.errors import CryoneuroError

app = typer.Typer(
    name="cryoneuro",
    help="Simulate, plan, record and evaluate percutaneous cryoablation of peripheral neuromas.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Human-facing output; progress bars and messages go to stderr so that --json stays clean.
console = Console(stderr=True)
out = Console()

F = TypeVar("F", bound=Callable[..., Any])


#: Top-level modules of the optional extras (``pyproject.toml``) and the extra that provides each.
#: A command whose extra is not installed fails with one line naming the extra, not a traceback.
EXTRA_OF_MODULE = {
    **dict.fromkeys(
        (
            "fastapi",
            "starlette",
            "uvicorn",
            "sqlalchemy",
            "alembic",
            "pydantic_settings",
            "argon2",
            "itsdangerous",
            "multipart",
            "python_multipart",
            "cryptography",
            "psycopg",
            "fhir",
        ),
        "registry",
    ),
    "dask": "scale",
    "distributed": "scale",
    "cupy": "gpu",
}


#: The modules whose presence shows an extra is installed (checked before a command starts).
EXTRA_PROBES = {
    "registry": (
        "fastapi",
        "sqlalchemy",
        "alembic",
        "pydantic_settings",
        "argon2",
        "itsdangerous",
        "cryptography",
    ),
    "scale": ("dask.distributed",),
}


def _missing_extra_message(extra: str, module: str | None) -> str:
    return (
        f"cryoneuro: error: this command needs the '{extra}' extra ({module} is not "
        f'installed): install cryoneuro[{extra}], e.g. pip install "cryoneuro[{extra}]"'
    )


def require_extra(extra: str) -> None:
    """Exit 2 with one line naming ``extra`` when it is not installed — called before a command
    prompts or starts a progress bar, so that nothing else is printed first."""
    import importlib

    for module in EXTRA_PROBES[extra]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            typer.echo(
                _missing_extra_message(extra, getattr(exc, "name", None) or module), err=True
            )
            raise typer.Exit(code=2) from None


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra whose absence raised ``exc``, or None when ``exc`` is not about an extra."""
    top = (exc.name or "").split(".")[0]
    return EXTRA_OF_MODULE.get(top)


def user_errors(func: F) -> F:
    """Turn a :class:`CryoneuroError`, or a missing optional extra, into a one-line message and
    a non-zero exit (2)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CryoneuroError as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            typer.echo(f"cryoneuro: error: {message}", err=True)
            raise typer.Exit(code=exc.exit_code) from None
        except ModuleNotFoundError as exc:
            extra = missing_extra(exc)
            if extra is None:
                raise
            typer.echo(_missing_extra_message(extra, exc.name), err=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: map them to null so every consumer can parse the output."""
    return json_safe(value)


def emit_json(payload: Any) -> None:
    """Print one JSON object on stdout and nothing else."""
    text = json.dumps(_finite(json.loads(json.dumps(payload, default=_json_default))), indent=2)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"cryoneuro {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    """Simulate, plan, record and evaluate percutaneous cryoablation of peripheral neuromas."""
