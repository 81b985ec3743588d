"""The published-evidence table: load, validate and select study rows for meta-analysis.

The bundled file ``data/evidence/neuroma_cryoablation.csv`` holds one row per study × outcome ×
time point, exactly as the numbers were read from each paper's abstract (``source_text`` keeps
the sentence). Users may pass their own file with the same header. Every problem a user can
cause is an :class:`~cryoneuro.errors.InputError` naming the CSV line and column, so that the
CLI can print one actionable line (docs/contracts.md).

Conventions (see ``data/evidence/README.md`` and ``docs/meta-analysis.md``):

* pain means are on a 0–10 scale; a change is *follow-up − baseline* (negative = less pain),
  and ``effect``/``ci_lower``/``ci_upper`` on a pain row are already in that direction;
* ``primary = yes`` marks the one row per study × outcome that enters the main analysis (the
  last reported follow-up); other time points are listed only;
* ``exclude_reason`` (free text) keeps a verified row out of the pooling and says why;
* ``verified = yes`` only when every number in the row was checked against the abstract.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from cryoneuro.errors import InputError

#: Outcome codes allowed in the ``outcome`` column.
OUTCOME_CODES = ("pain_nrs", "pain_vas", "pain_md", "responder", "complication")
DESIGNS = ("case_series", "cohort", "rct")
POPULATIONS = ("morton", "stump_phantom", "traumatic", "other")

#: Columns a user file must have; the others are optional and read as empty when absent.
REQUIRED_COLUMNS = (
    "study",
    "year",
    "design",
    "population",
    "n",
    "outcome",
    "timepoint_months",
    "verified",
    "source_text",
)
NUMERIC_COLUMNS = (
    "year",
    "n",
    "timepoint_months",
    "baseline_mean",
    "baseline_sd",
    "followup_mean",
    "followup_sd",
    "events",
    "total",
    "effect",
    "ci_lower",
    "ci_upper",
)
TEXT_COLUMNS = (
    "journal",
    "doi_or_pmid",
    "guidance",
    "primary",
    "ci_dist",
    "exclude_reason",
    "source_url",
    "notes",
)
ALL_COLUMNS = (
    "study",
    "year",
    "journal",
    "doi_or_pmid",
    "design",
    "population",
    "guidance",
    "n",
    "outcome",
    "timepoint_months",
    "primary",
    "baseline_mean",
    "baseline_sd",
    "followup_mean",
    "followup_sd",
    "events",
    "total",
    "effect",
    "ci_lower",
    "ci_upper",
    "ci_dist",
    "verified",
    "exclude_reason",
    "source_url",
    "source_text",
    "notes",
)


def bundled_path() -> Path:
    """Path of the bundled evidence CSV (installed as package data)."""
    return Path(
        str(resources.files("cryoneuro") / "data" / "evidence" / "neuroma_cryoablation.csv")
    )


def _where(line: int, study: str, column: str) -> str:
    return f"line {line} (study '{study}'), column '{column}'"


def load_evidence(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate an evidence CSV; the bundled data set when ``path`` is None.

    Returns a frame with every column of :data:`ALL_COLUMNS` (numeric ones as float, NaN when
    empty) plus ``line`` (the CSV line number, for messages). Raises :class:`InputError` with
    the line and column of the first problem and how to fix it.
    """
    source = bundled_path() if path is None else Path(path)
    if not source.is_file():
        raise InputError(
            f"{source}: file not found; give the path of an evidence CSV or omit "
            "it to use the bundled data set"
        )
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{source}: not a readable CSV ({first}); save it as UTF-8 "
            "comma-separated text with a header row"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"{source}: missing column(s) {', '.join(missing)}; the header needs "
            f"{', '.join(REQUIRED_COLUMNS)} (see docs/meta-analysis.md)"
        )
    if frame.empty:
        raise InputError(f"{source}: no data rows; add one row per study × outcome × time point")
    for col in ALL_COLUMNS:
        if col not in frame.columns:
            frame[col] = ""
    frame = frame.map(lambda v: v.strip() if isinstance(v, str) else v)
    frame["line"] = np.arange(len(frame)) + 2  # header is line 1
    for col in NUMERIC_COLUMNS:
        frame[col] = [
            _number(v, line, study, col)
            for v, line, study in zip(frame[col], frame["line"], frame["study"], strict=True)
        ]
    for col in ("outcome", "design", "population", "verified", "primary", "ci_dist"):
        frame[col] = frame[col].str.lower()
    for _, row in frame.iterrows():
        _check_row(row)
    _check_primary(frame)
    return frame


def _number(value: str, line: int, study: str, column: str) -> float:
    if value == "" or value.upper() in ("NA", "NAN"):
        if column in ("n", "year", "timepoint_months"):
            raise InputError(f"{_where(line, study, column)} is empty; give a number")
        return math.nan
    try:
        number = float(value)
    except ValueError:
        raise InputError(
            f"{_where(line, study, column)} must be a number, got '{value}'; "
            "write it as digits with a decimal point (e.g. 6.2)"
        ) from None
    if not math.isfinite(number):
        raise InputError(f"{_where(line, study, column)} must be finite, got '{value}'")
    return number


def _check_row(row: pd.Series) -> None:
    line, study = int(row["line"]), row["study"]
    if not study:
        raise InputError(
            f"line {line}: column 'study' is empty; name the study (e.g. 'Cazzato 2016')"
        )
    checks = [
        ("outcome", row["outcome"] in OUTCOME_CODES, f"one of {', '.join(OUTCOME_CODES)}"),
        ("design", row["design"] in DESIGNS, f"one of {', '.join(DESIGNS)}"),
        ("population", row["population"] in POPULATIONS, f"one of {', '.join(POPULATIONS)}"),
        ("verified", row["verified"] in ("yes", "no"), "yes or no"),
        ("primary", row["primary"] in ("", "yes", "no"), "yes, no or empty"),
        ("ci_dist", row["ci_dist"] in ("", "z", "t"), "z, t or empty (= z)"),
    ]
    for col, ok, allowed in checks:
        if not ok:
            raise InputError(f"{_where(line, study, col)} is '{row[col]}'; use {allowed}")
    if row["n"] <= 0 or row["n"] != int(row["n"]):
        raise InputError(
            f"{_where(line, study, 'n')} must be a positive whole number, got {row['n']:g}"
        )
    if row["timepoint_months"] < 0:
        raise InputError(f"{_where(line, study, 'timepoint_months')} must be ≥ 0")
    for col in ("baseline_sd", "followup_sd"):
        if row[col] < 0:  # NaN compares False
            raise InputError(
                f"{_where(line, study, col)} is negative ({row[col]:g}); an SD "
                "is ≥ 0 — check the sign or leave it empty"
            )
    events, total = row["events"], row["total"]
    if not math.isnan(events) or not math.isnan(total):
        if math.isnan(events) or math.isnan(total):
            raise InputError(
                f"{_where(line, study, 'events')}: give both events and total or neither"
            )
        if (
            events < 0
            or total <= 0
            or events > total
            or events != int(events)
            or total != int(total)
        ):
            raise InputError(
                f"{_where(line, study, 'events')}: need whole numbers with "
                f"0 ≤ events ≤ total and total > 0, got {events:g}/{total:g}"
            )
    lo, hi = row["ci_lower"], row["ci_upper"]
    if math.isnan(lo) != math.isnan(hi):
        raise InputError(
            f"{_where(line, study, 'ci_lower')}: give both ci_lower and ci_upper or neither"
        )
    if not math.isnan(lo) and lo >= hi:
        raise InputError(
            f"{_where(line, study, 'ci_lower')}: ci_lower ({lo:g}) must be below ci_upper ({hi:g})"
        )
    if row["verified"] == "yes" and not row["source_text"]:
        raise InputError(
            f"{_where(line, study, 'source_text')} is empty on a verified row; "
            "paste the abstract sentence that gives the numbers, or set "
            "verified=no"
        )


def _check_primary(frame: pd.DataFrame) -> None:
    primary = frame[frame["primary"] == "yes"]
    dup = primary[primary.duplicated(["study", "outcome"], keep=False)]
    if not dup.empty:
        first = dup.iloc[0]
        lines = ", ".join(
            str(v)
            for v in dup[(dup["study"] == first["study"]) & (dup["outcome"] == first["outcome"])][
                "line"
            ]
        )
        raise InputError(
            f"lines {lines} (study '{first['study']}', outcome "
            f"'{first['outcome']}'): more than one row has primary=yes; mark only "
            "the time point to pool (the last follow-up)"
        )


def summary_counts(frame: pd.DataFrame) -> dict[str, int]:
    """How many studies and rows the table holds and how many rows are verified."""
    return {
        "studies": int(frame["study"].nunique()),
        "rows": len(frame),
        "verified_rows": int((frame["verified"] == "yes").sum()),
    }
