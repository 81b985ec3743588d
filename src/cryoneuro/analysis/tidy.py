"""The tidy data format: the one contract between the registry (or any source) and analysis.

Six tables, one row per observation, participants named only by a pseudonymous
``participant_id``; dates are ISO 8601 and every dated row also carries
``days_since_procedure`` (day 0 = first cryoablation; negative before it) so that survival and
longitudinal models need no calendar arithmetic. A data set is a folder holding
``<table>.csv`` or ``<table>.parquet`` files, or a ``.zip`` of CSVs (what the registry's
export writes). Only ``participants`` is required; an absent table is read as empty.

``scores`` is long: (participant, visit, instrument, kind, measure, value), where kind is
``item`` (a raw answer) or ``score`` (a scored measure, names as in :mod:`cryoneuro.instruments`,
e.g. ``nrs/pain``, ``eq5d5l/index_england``, ``moxfq/walking_standing``). Raw items are
re-scored by :func:`scored` when a visit has no score rows, so data typed in elsewhere
(e.g. REDCap) need only the answers.

The schema below is the single source of the column names; docs/tidy-format.md is generated
from the same definitions (``cryoneuro analyse --schema``).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from cryoneuro.errors import InputError

Kind = Literal["str", "int", "float", "bool", "date"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool
    description: str


def _c(name: str, kind: Kind, required: bool, description: str) -> Column:
    return Column(name, kind, required, description)


_PID = _c("participant_id", "str", True, "pseudonymous study number")
_DAYS = _c("days_since_procedure", "int", False, "days after the first cryoablation (day 0)")

SCHEMA: dict[str, list[Column]] = {
    "participants": [
        _PID,
        _c("study", "str", False, "study code"),
        _c("site", "str", False, "site code (stratum of randomisation)"),
        _c("design", "str", False, "rct or case_series"),
        _c("arm", "str", False, "allocated arm code (RCT); empty for a case series"),
        _c("sex", "str", False, "female, male, other, unknown"),
        _c("age_at_enrolment_years", "int", False, "age in whole years"),
        _c("enrolment_date", "date", False, "date of enrolment (consent)"),
        _c(
            "status",
            "str",
            False,
            "screen_failed, enrolled, withdrawn, lost_to_follow_up or completed",
        ),
        _c(
            "status_reason",
            "str",
            False,
            "why screen-failed, withdrawn or lost (shown in the CONSORT diagram)",
        ),
        _c("neuroma_type", "str", False, "morton, stump or traumatic"),
        _c("neuroma_site", "str", False, "anatomical site, e.g. third web space"),
        _c("laterality", "str", False, "left, right"),
        _c("neuroma_size_mm", "float", False, "largest diameter on imaging, mm"),
        _c("prior_treatments", "str", False, "semicolon-separated list"),
    ],
    "procedures": [
        _PID,
        _c("procedure_id", "str", True, "unique per procedure"),
        _c("procedure_date", "date", False, "date of the cryoablation"),
        _DAYS,
        _c("imaging_modality", "str", False, "ultrasound, ct, mri, fluoroscopy"),
        _c("anaesthesia", "str", False, "local, regional, sedation, general"),
        _c("device_name", "str", False, "cryoablation system"),
        _c("manufacturer", "str", False, "device manufacturer"),
        _c("device_lot", "str", False, "probe lot number"),
        _c("probe_model", "str", False, "probe model"),
        _c("gas", "str", False, "argon, nitrous-oxide, carbon-dioxide, nitrogen"),
        _c("protocol", "str", False, "freeze/thaw protocol as given"),
        _c("operator", "str", False, "operator (role or pseudonym)"),
        _c(
            "predicted_relief_days",
            "float",
            False,
            "regrowth-limited median relief (days) of the stored plan "
            "(cryoneuro.regrowth.relief_summary)",
        ),
        _c("has_plan", "bool", False, "a cryoneuro plan is attached"),
    ],
    "visits": [
        _PID,
        _c("visit_id", "str", False, "unique per visit"),
        _c("visit_code", "str", True, "baseline, w2, m1, m3, m6, m12, m24 …"),
        _c("visit_date", "date", False, "date of the visit"),
        _DAYS,
    ],
    "scores": [
        _PID,
        _c("visit_code", "str", True, "the visit the answers belong to"),
        _c("visit_date", "date", False, "date of the visit"),
        _DAYS,
        _c("instrument", "str", True, "nrs, vas, eq5d5l, moxfq, bpi, stump, mobility"),
        _c("kind", "str", True, "item (raw answer) or score (scored measure)"),
        _c("measure", "str", True, "item or measure name"),
        _c("value", "str", False, "the answer or score (numbers as text are fine)"),
    ],
    "adverse_events": [
        _PID,
        _c("event_id", "str", False, "unique per event"),
        _c("onset_date", "date", False, "date of onset"),
        _DAYS,
        _c(
            "category",
            "str",
            True,
            "pain, worsening_of_symptoms, infection, "
            "damage_to_adjacent_structures, further_intervention, other (NICE HTG652)",
        ),
        _c("severity", "str", False, "mild, moderate, severe"),
        _c("serious", "bool", False, "meets the definition of a serious adverse event"),
        _c("relatedness", "str", False, "not_related … definite"),
        _c("outcome", "str", False, "recovered … fatal, unknown"),
        _c("device_incident", "bool", False, "reportable device incident (Yellow Card)"),
        _c("procedure_id", "str", False, "procedure the event follows"),
        _c("description", "str", False, "free text"),
    ],
    "reinterventions": [
        _PID,
        _c("reintervention_id", "str", False, "unique per re-intervention"),
        _c("reintervention_date", "date", False, "date"),
        _DAYS,
        _c("kind", "str", False, "repeat cryoablation, surgery (neurectomy), injection …"),
        _c("description", "str", False, "free text"),
    ],
    "visits_not_done": [
        _PID,
        _c("visit_code", "str", True, "the scheduled visit that did not take place"),
        _c(
            "reason",
            "str",
            True,
            "lost_to_follow_up, withdrew, died, unable or other (shown in the CONSORT flow)",
        ),
        _c("reason_text", "str", False, "free text; required for other"),
        _c("recorded_date", "date", False, "when the site established it"),
    ],
    "missing_items": [
        _PID,
        _c("visit_code", "str", True, "the visit (which took place)"),
        _c("instrument", "str", True, "nrs, vas, eq5d5l, moxfq, bpi, stump, mobility"),
        _c("item", "str", True, "the item without a value"),
        _c(
            "missing_code",
            "str",
            True,
            "why: not-asked, asked-declined, asked-unknown, not-applicable, unknown "
            "(HL7 FHIR DataAbsentReason); never a value",
        ),
    ],
    "deviations": [
        _PID,
        _c("deviation_id", "str", False, "unique per deviation"),
        _c("deviation_date", "date", False, "date of the deviation"),
        _DAYS,
        _c("category", "str", True, "eligibility, visit_window, procedure, consent, other"),
        _c("visit_code", "str", False, "the visit concerned, if any"),
        _c("description", "str", False, "free text"),
    ],
}

TABLES: dict[str, list[str]] = {t: [c.name for c in cols] for t, cols in SCHEMA.items()}

#: Reasons a visit was not done, missing-item codes (HL7 FHIR DataAbsentReason) and deviation
#: categories: the registry's vocabularies (registry/models/queries.py), repeated here so the
#: analysis needs no registry (a test checks that both agree).
NOT_DONE_REASONS = ("lost_to_follow_up", "withdrew", "died", "unable", "other")
MISSING_CODES = ("not-asked", "asked-declined", "asked-unknown", "not-applicable", "unknown")
DEVIATION_CATEGORIES = ("eligibility", "visit_window", "procedure", "consent", "other")

SAFETY_CATEGORIES = (
    "pain",
    "worsening_of_symptoms",
    "infection",
    "damage_to_adjacent_structures",
    "further_intervention",
    "other",
)


@dataclass
class TidyData:
    """A validated data set: one DataFrame per table, columns typed as in :data:`SCHEMA`."""

    participants: pd.DataFrame
    procedures: pd.DataFrame
    visits: pd.DataFrame
    scores: pd.DataFrame
    adverse_events: pd.DataFrame
    reinterventions: pd.DataFrame
    source: str = ""
    #: table → the file it was read from (for messages that name file, row and column)
    files: dict[str, str] = field(default_factory=dict)
    #: Why data are absent (issue 14): optional tables, empty when not given.
    visits_not_done: pd.DataFrame = field(default_factory=lambda: _empty("visits_not_done"))
    missing_items: pd.DataFrame = field(default_factory=lambda: _empty("missing_items"))
    deviations: pd.DataFrame = field(default_factory=lambda: _empty("deviations"))

    def table(self, name: str) -> pd.DataFrame:
        return getattr(self, name)

    @property
    def design(self) -> str:
        """``rct`` when any participant has an arm and the design says so, else case_series."""
        designs = set(self.participants["design"].dropna().str.lower()) - {""}
        if "rct" in designs or (
            self.participants["arm"].fillna("").ne("").any()
            and self.participants["arm"].dropna().nunique() > 1
        ):
            return "rct"
        return "case_series"


def _empty(table: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in TABLES[table]})


def _coerce(frame: pd.DataFrame, table: str, where: str) -> pd.DataFrame:
    """Type every known column; the first bad cell is named (table, column, row)."""
    # a RangeIndex, so that index label i is row i + 2 of the file (header = row 1)
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    for column in SCHEMA[table]:
        if column.name not in frame.columns:
            if column.required:
                raise InputError(
                    f"{where}: table '{table}' lacks required column '{column.name}' "
                    f"(columns are: {', '.join(TABLES[table])})"
                )
            frame[column.name] = pd.Series([None] * len(frame), dtype="object")
            continue
        raw = frame[column.name]
        blank = raw.isna() | raw.astype(str).str.strip().isin(["", "nan", "NaN", "None", "NA"])
        if column.required and blank.any():
            row = int(np.flatnonzero(blank.to_numpy())[0]) + 2
            raise InputError(
                f"{where}: {table}.{column.name} is empty in row {row}; "
                f"every row needs a {column.description}"
            )
        if column.kind == "str":
            frame[column.name] = raw.where(~blank, None).map(
                lambda v: None if v is None else str(v).strip().lstrip("'")
            )
            continue
        text = raw.where(~blank, None)
        if column.kind in ("int", "float"):
            values = pd.to_numeric(text, errors="coerce")
            bad = values.isna() & ~blank
            if column.kind == "int":
                bad |= values.notna() & (values % 1 != 0)
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(
                    f"{where}: {table}.{column.name} in row {row + 2} is "
                    f"'{str(raw.iloc[row])[:30]}', not "
                    f"a{'n integer' if column.kind == 'int' else ' number'}"
                )
            frame[column.name] = values.astype("Int64" if column.kind == "int" else "float64")
        elif column.kind == "bool":
            mapped = text.map(
                lambda v: (
                    None
                    if v is None
                    else {
                        "true": True,
                        "1": True,
                        "yes": True,
                        "false": False,
                        "0": False,
                        "no": False,
                    }.get(str(v).strip().lower(), "?")
                )
            )
            if (mapped == "?").any():
                row = int(np.flatnonzero((mapped == "?").to_numpy())[0])
                raise InputError(
                    f"{where}: {table}.{column.name} in row {row + 2} is "
                    f"'{str(raw.iloc[row])[:30]}'; use true or false"
                )
            frame[column.name] = mapped.astype("boolean")
        elif column.kind == "date":
            values = pd.to_datetime(text, errors="coerce", format="ISO8601")
            bad = values.isna() & ~blank
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(
                    f"{where}: {table}.{column.name} in row {row + 2} is "
                    f"'{str(raw.iloc[row])[:30]}', not a date; use YYYY-MM-DD"
                )
            frame[column.name] = values
    return frame


def validate(data: TidyData) -> TidyData:
    """Cross-table checks: unique participants, known participant ids, allowed categories."""
    where = data.source or "data"
    ids = data.participants["participant_id"]
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise InputError(
            f"{where}: participants.participant_id '{duplicated.iloc[0]}' appears "
            "twice; each participant needs one row"
        )
    known = set(ids)
    for table in (
        "procedures",
        "visits",
        "scores",
        "adverse_events",
        "reinterventions",
        "visits_not_done",
        "missing_items",
        "deviations",
    ):
        frame = data.table(table)
        unknown = sorted(set(frame["participant_id"]) - known)
        if unknown:
            raise InputError(
                f"{where}: {table} refers to participant_id '{unknown[0]}' that is "
                "not in participants; add the participant or remove the rows"
            )
    kinds = set(data.scores["kind"].str.lower())
    if kinds - {"item", "score"}:
        raise InputError(
            f"{where}: scores.kind must be 'item' or 'score' "
            f"(found '{sorted(kinds - {'item', 'score'})[0]}')"
        )
    categories = set(data.adverse_events["category"])
    if categories - set(SAFETY_CATEGORIES):
        raise InputError(
            f"{where}: adverse_events.category "
            f"'{sorted(categories - set(SAFETY_CATEGORIES))[0]}' is not one of "
            f"{', '.join(SAFETY_CATEGORIES)}"
        )
    for table, column, allowed in (
        ("visits_not_done", "reason", NOT_DONE_REASONS),
        ("missing_items", "missing_code", MISSING_CODES),
        ("deviations", "category", DEVIATION_CATEGORIES),
    ):
        values = set(data.table(table)[column])
        if values - set(allowed):
            raise InputError(
                f"{where}: {table}.{column} '{sorted(values - set(allowed))[0]}' is not one "
                f"of {', '.join(allowed)}"
            )
    return data


def _read_table(source: Path, table: str, members: dict[str, bytes] | None) -> pd.DataFrame | None:
    where = str(source)
    try:
        if members is not None:
            raw = members.get(f"{table}.csv")
            return (
                None
                if raw is None
                else pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
            )
        parquet, csv = source / f"{table}.parquet", source / f"{table}.csv"
        if parquet.is_file():
            return pd.read_parquet(parquet).astype(object)
        if csv.is_file():
            return pd.read_csv(csv, dtype=str, keep_default_na=False, encoding="utf-8")
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(
            f"{where}: cannot read table '{table}': {str(exc).splitlines()[0][:120]}"
        ) from None
    return None


def load_tidy(path: str | Path) -> TidyData:
    """Read a tidy data set from a folder (CSV or Parquet per table) or a zip of CSVs."""
    source = Path(path)
    members: dict[str, bytes] | None = None
    if source.is_file() and source.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(source) as archive:
                members = {
                    Path(n).name: archive.read(n) for n in archive.namelist() if n.endswith(".csv")
                }
        except zipfile.BadZipFile:
            raise InputError(
                f"{source}: not a readable zip file; give the registry's tidy "
                "export or a folder of CSV files"
            ) from None
    elif not source.is_dir():
        raise InputError(
            f"{source}: no such folder or .zip; DATA must be a folder with "
            "participants.csv (and visits.csv, scores.csv, …) or their zip"
        )
    frames: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}
    for table in SCHEMA:
        if members is not None:
            files[table] = f"{source}:{table}.csv"
        else:
            parquet = source / f"{table}.parquet"
            files[table] = str(parquet if parquet.is_file() else source / f"{table}.csv")
        frame = _read_table(source, table, members)
        if frame is None:
            if table == "participants":
                raise InputError(
                    f"{source}: no participants.csv or participants.parquet; "
                    "a tidy data set needs at least the participants table"
                )
            frame = _empty(table)
        frames[table] = _coerce(frame, table, str(source))
    data = TidyData(**frames, source=str(source), files=files)
    return validate(data)


def from_frames(source: str = "frames", **tables: pd.DataFrame) -> TidyData:
    """Build and validate a data set from in-memory DataFrames (missing tables are empty)."""
    unknown = set(tables) - set(SCHEMA)
    if unknown:
        raise InputError(f"unknown tidy table(s): {', '.join(sorted(unknown))}")
    frames = {t: _coerce(tables.get(t, _empty(t)), t, source) for t in SCHEMA}
    return validate(TidyData(**frames, source=source, files={t: f"{source}:{t}" for t in SCHEMA}))


def write_tidy(
    data: TidyData, out_dir: str | Path, fmt: Literal["csv", "parquet"] = "csv"
) -> dict[str, Path]:
    """Write each table as ``<table>.csv`` or ``<table>.parquet`` (atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for table in SCHEMA:
        frame = data.table(table)[TABLES[table]].copy()
        for column in SCHEMA[table]:
            if column.kind == "date":
                frame[column.name] = frame[column.name].dt.strftime("%Y-%m-%d")
        path = out / f"{table}.{fmt}"
        tmp = path.with_name(path.name + ".tmp")
        if fmt == "parquet":
            frame.astype({c.name: "string" for c in SCHEMA[table] if c.kind == "str"}).to_parquet(
                tmp, index=False
            )
        else:
            frame.to_csv(tmp, index=False, encoding="utf-8")
        tmp.replace(path)
        paths[table] = path
    return paths


def schema_markdown() -> str:
    """The schema as Markdown tables (docs/tidy-format.md is this text)."""
    lines = []
    for table, columns in SCHEMA.items():
        lines += [
            f"### `{table}`",
            "",
            "| column | type | required | meaning |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{c.name}` | {c.kind} | {'yes' if c.required else ''} | {c.description} |"
            for c in columns
        ]
        lines.append("")
    return "\n".join(lines)


def file_of(data: TidyData, table: str) -> str:
    """The file a table was read from, for messages."""
    return data.files.get(table, f"{data.source or 'data'}:{table}")
