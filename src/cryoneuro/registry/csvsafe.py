"""Spreadsheet-formula escaping for every CSV the registry writes (issue 13).

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel and LibreOffice (``=HYPERLINK(...)`` typed into a free-text field came out
live in audit.csv and the REDCap records). Following the OWASP "CSV injection" advice, such a
text cell is prefixed with a single quote, which spreadsheets show as text; numbers (including
negative ones, written by the exporter, not typed) are left as they are.

It sits at the top of the registry package, below both users: the audit trail's CSV
(audit.py) and the exports (exports/), which call the services, which write the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` with a leading quote if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]
