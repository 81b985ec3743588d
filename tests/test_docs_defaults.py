"""The documentation states the code's defaults (issue 16: docs/thermal.md and docs/case-file.md
said the shaft was thermally transparent by default while the code insulates it)."""

from __future__ import annotations

import re
from pathlib import Path

from cryoneuro.case import SolverSpec

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_solver_defaults_in_the_case_file_table_are_the_codes() -> None:
    text = (DOCS / "case-file.md").read_text(encoding="utf-8")
    pattern = r"^\| `(\w+)` \|.*\| ([^|]+?) \|$"
    rows = {k: v.strip("`") for k, v in re.findall(pattern, text, flags=re.MULTILINE)}
    assert rows["insulated_shaft"] == str(SolverSpec().insulated_shaft).lower()
    assert rows["scheme"] == f'"{SolverSpec().scheme}"'
    assert float(rows["time_step_s"]) == SolverSpec().time_step_s
    assert rows["step_control"] == f'"{SolverSpec().step_control}"'


def test_no_page_calls_the_default_shaft_transparent() -> None:
    assert SolverSpec().insulated_shaft  # the default these pages must describe
    for page in ("thermal.md", "case-file.md"):
        prose = " ".join((DOCS / page).read_text(encoding="utf-8").split())
        assert not re.search(r"shaft[^.]*transparent by default", prose), page
        assert not re.search(r"shaft neither cools nor blocks conduction", prose), page
