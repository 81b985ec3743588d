"""Command-line interface: a thin Typer shell over the core packages.

Each sibling module registers the commands of one domain step on :data:`app`.
"""

from __future__ import annotations

import os

from cryoneuro.cli import analyse_cmd as _analyse_cmd  # noqa: F401  (analyse)
from cryoneuro.cli import cohort_cmd as _cohort_cmd  # noqa: F401  (cohort resimulate)
from cryoneuro.cli import demo_cmd as _demo_cmd  # noqa: F401  (demo)
from cryoneuro.cli import design_cmd as _design_cmd  # noqa: F401  (design)
from cryoneuro.cli import meta_cmd as _meta_cmd  # noqa: F401  (meta)
from cryoneuro.cli import plan_cmd as _plan_cmd  # noqa: F401  (plan)
from cryoneuro.cli import probe_cmd as _probe_cmd  # noqa: F401  (registers `probe`)
from cryoneuro.cli import registry_cmd as _registry_cmd  # noqa: F401  (serve, db, user)
from cryoneuro.cli import reminders_cmd as _reminders_cmd  # noqa: F401  (reminders)
from cryoneuro.cli import score_cmd as _score_cmd  # noqa: F401  (score)
from cryoneuro.cli import simulate_cmd as _simulate_cmd  # noqa: F401  (registers `simulate`)
from cryoneuro.cli import sweep_cmd as _sweep_cmd  # noqa: F401  (sweep)
from cryoneuro.cli import validate_cmd as _validate_cmd  # noqa: F401  (validate)
from cryoneuro.cli import worker_cmd as _worker_cmd  # noqa: F401  (worker)
from cryoneuro.cli._app import app, console, emit_json, user_errors

__all__ = ["app", "console", "emit_json", "main", "user_errors"]


def main() -> None:
    """Console-script entry point.

    The command line draws figures to files only, so pyplot (used by some reports) gets the
    file-only Agg backend unless the user chose one: no display is needed on a headless machine.
    The library itself never chooses a backend.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    app()
