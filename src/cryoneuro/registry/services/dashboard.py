"""Recruitment counts and visits due/overdue (the study dashboard), and the outcome summary.

**Cache** (issue 17 item 7). The dashboard page is read far more often than the counts
change, and computing it means touching every followed participant (at 10,000 participants,
30,000 visit windows). So its parts are kept per process in :data:`CACHE`, each under a
*stamp*: the ids of the newest audit entries of the tables the part is computed from, read in
one statement (:func:`stamps`; an index probe per table, migration 0011). Every write to a
registry table goes through the audit trail (audit.py: no service can skip it), the audit
ids follow commit order (appends are serialised by the chain head's lock), and entries are
never deleted — so a part whose stamp is unchanged is exactly what a fresh computation would
give, in every server process, and any write that could change it (a follow-up, a visit
recorded as not done, a procedure, an enrolment or withdrawal, an adverse event, a change to
the study set-up) changes its stamp. The stamp is read before the data, so a part computed
while a write commits is stored under the older stamp and never served again. A session with
audited changes not yet committed neither reads nor fills the cache (its view may be rolled
back).

The parts, and the tables that stamp them:

* structure — recruitment, procedures, every followed participant's open visit windows
  before subtracting visits done, enrolment series, study set-up: participant, procedure,
  study, study_arm, visit_definition, site (changes rarely: enrolment, withdrawal, procedures);
* visits — the visits done or not done, follow-up count, pain sums: the structure's tables
  plus followup_visit, visit_not_done (changes with every follow-up entry: only this part is
  recomputed then, a query of the site's visits instead of the windows of every participant);
* events — adverse event counts: participant, adverse_event.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import Float, cast, func, literal, null, select, true, union_all
from sqlalchemy.orm import Session, selectinload

from cryoneuro.registry.audit import AUDIT_PENDING, CHAIN_START
from cryoneuro.registry.auth import Actor
from cryoneuro.registry.models import (
    AdverseEvent,
    AuditEntry,
    FollowUpVisit,
    Participant,
    Procedure,
    RegistrySetting,
    Site,
    Study,
    VisitDefinition,
    VisitNotDone,
)


def visit_status(
    definition: VisitDefinition, day0: dt.date, done: bool, today: dt.date
) -> tuple[str, dt.date, dt.date]:
    """'done', 'overdue' (window closed), 'due' (window open) or 'upcoming'."""
    target = day0 + dt.timedelta(days=definition.day)
    opens = target - dt.timedelta(days=definition.window_before_days)
    closes = target + dt.timedelta(days=definition.window_after_days)
    if done:
        return "done", opens, closes
    if today > closes:
        return "overdue", opens, closes
    if today >= opens:
        return "due", opens, closes
    return "upcoming", opens, closes


#: Visits listed per kind (due, overdue): a registry of thousands would otherwise send every
#: open window; the totals say how many there are, the lists start with the most urgent.
LIST_LIMIT = 100

# --- the cache --------------------------------------------------------------------------------

#: The tables each cached part is computed from (module docstring).
STRUCTURE_TABLES = ("participant", "procedure", "study", "study_arm", "visit_definition", "site")
VISIT_TABLES = (*STRUCTURE_TABLES, "followup_visit", "visit_not_done")
EVENT_TABLES = ("participant", "adverse_event")
STAMPED_TABLES = tuple(dict.fromkeys((*VISIT_TABLES, *EVENT_TABLES)))


class AggregateCache:
    """Values under (key, stamp), least recently used dropped beyond ``size`` keys; a value
    is returned only while its stamp equals the current one. Thread-safe (the web app's
    routes run in a threadpool); two threads missing at once both compute, harmlessly."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._values: OrderedDict[Hashable, tuple[Hashable, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, stamp: Hashable | None, compute: Callable[[], Any]) -> Any:
        """The value for ``key`` at ``stamp``, computed (and kept) when missing or stale;
        ``stamp`` None computes without the cache."""
        if stamp is None:
            return compute()
        with self._lock:
            held = self._values.get(key)
            if held is not None and held[0] == stamp:
                self._values.move_to_end(key)
                self.hits += 1
                return held[1]
        value = compute()
        with self._lock:
            self.misses += 1
            self._values[key] = (stamp, value)
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self.hits = self.misses = 0


#: This process's cache of dashboard parts.
CACHE = AggregateCache()


def stamps(session: Session) -> dict[str, Any] | None:
    """The id of the newest audit entry of each table in :data:`STAMPED_TABLES` (0: none),
    in one statement; None when the session has audited changes not yet committed (its
    view may be rolled back, so it must neither fill nor read the cache)."""
    if session.info.get(AUDIT_PENDING) or session.new or session.dirty or session.deleted:
        return None
    row = session.execute(_stamps_statement()).one()
    ids = {table: int(value or 0) for table, value in zip(STAMPED_TABLES, row[1:], strict=True)}
    return {"": str(session.get_bind().url), "chain": row[0] or "", **ids}


@lru_cache(maxsize=1)
def _stamps_statement() -> Any:
    """The statement of :func:`stamps`, built once (building it cost more than running it)."""
    newest = [
        select(AuditEntry.id)
        .where(AuditEntry.table_name == table)
        .order_by(AuditEntry.id.desc())
        .limit(1)
        .scalar_subquery()
        for table in STAMPED_TABLES
    ]
    # the chain's start record (HMAC under this database's audit key) names the database, so
    # two registries served from one process (tests) never share entries
    start = select(RegistrySetting.value).where(RegistrySetting.name == CHAIN_START)
    return select(start.scalar_subquery(), *newest)


def _stamp(current: dict[str, Any] | None, tables: tuple[str, ...]) -> tuple[Any, ...] | None:
    return None if current is None else tuple(current[t] for t in ("", "chain", *tables))


def _scope_key(actor: Actor) -> tuple[bool, tuple[int, ...]]:
    return actor.all_sites, tuple(sorted(actor.site_ids))


def _in_scope(actor: Actor) -> Any:
    """The condition on :class:`Participant` for the actor's sites (true for all sites)."""
    if actor.all_sites:
        return true()
    return Participant.site_id.in_(sorted(actor.site_ids) or [-1])


# --- the parts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    closes: int  # ordinal
    participant_id: int
    visit_code: str
    label: str
    opens: int  # ordinal
    study_number: str


@dataclass(frozen=True)
class _Structure:
    recruitment: list[tuple[str, str, int]]
    procedures: int
    #: kind (1 due, 2 overdue) → every open window of that kind, most urgent first
    windows: dict[int, list[_Window]]
    #: (participant id, visit code) → kind, for the windows above
    kind_of: dict[tuple[int, str], int]
    #: (study id, site code, enrolment date, participants), in date order
    enrolments: list[tuple[int, str, dt.date, int]]
    #: JSON-ready study set-up for the outcome summary, in study code order
    studies: list[dict[str, Any]]


@dataclass(frozen=True)
class _Visits:
    done: frozenset[tuple[int, str]]
    #: kind → how many of its windows are done (or recorded as not done)
    done_by_kind: dict[int, int]
    followup_visits: int
    #: (study id, arm, visit code, n, sum, sum of squares) of the NRS pain score
    pain: list[tuple[int, str | None, str, int, float, float]]


def _structure(session: Session, actor: Actor, today: dt.date) -> _Structure:
    scope = _in_scope(actor)
    studies = list(
        session.scalars(
            select(Study)
            .order_by(Study.code)
            .options(selectinload(Study.arms), selectinload(Study.visits))
        )
    )
    site_codes = dict(session.execute(select(Site.id, Site.code)).all())
    by_id = {s.id: s for s in studies}
    recruitment = [
        (by_id[study_id].code, site_codes[site_id], int(n))
        for study_id, site_id, n in session.execute(
            select(Participant.study_id, Participant.site_id, func.count())
            .where(scope)
            .group_by(Participant.study_id, Participant.site_id)
        )
    ]
    recruitment.sort()
    procedures = session.scalar(
        select(func.count())
        .select_from(Procedure)
        .join(Participant, Participant.id == Procedure.participant_id)
        .where(scope)
    )
    # only participants who are enrolled and have had a procedure (day 0) have visits due
    followed = session.execute(
        select(
            Participant.id,
            Participant.study_id,
            Participant.study_number,
            func.min(Procedure.procedure_date),
        )
        .join(Procedure, Procedure.participant_id == Participant.id)
        .where(scope, Participant.status == "enrolled")
        .group_by(Participant.id, Participant.study_id, Participant.study_number)
        .order_by(Participant.id)
    ).all()
    windows = _open_windows(followed, by_id, today)
    enrolments = [
        (study_id, site_codes[site_id], day, int(n))
        for study_id, site_id, day, n in session.execute(
            select(
                Participant.study_id, Participant.site_id, Participant.enrolment_date, func.count()
            )
            .where(scope)
            .group_by(Participant.study_id, Participant.site_id, Participant.enrolment_date)
            .order_by(Participant.enrolment_date)
        )
    ]
    return _Structure(
        recruitment=recruitment,
        procedures=int(procedures or 0),
        windows=windows,
        kind_of={(w.participant_id, w.visit_code): k for k, ws in windows.items() for w in ws},
        enrolments=enrolments,
        studies=[
            {
                "id": s.id,
                "study": s.code,
                "title": s.title,
                "design": s.design,
                "blinded_roles": list(s.blinded_roles or []),
                "visits": [{"code": v.code, "label": v.label, "day": v.day} for v in s.visits],
                "arms": {a.code: a.label for a in s.arms},
            }
            for s in studies
        ],
    )


def _open_windows(
    followed: list, studies: dict[int, Study], today: dt.date
) -> dict[int, list[_Window]]:
    """Every open window (due: 1, overdue: 2) of the followed participants, visits done not
    yet subtracted, most urgent first (closing date, then participant).

    The rule of :func:`visit_status`, evaluated for all participants × visit definitions at
    once with NumPy (a Python loop over 10,000 participants × 6 visits took seconds).
    """
    out: dict[int, list[_Window]] = {1: [], 2: []}
    if not followed:
        return out
    pids = np.array([row[0] for row in followed], dtype=np.int64)
    study_ids = np.array([row[1] for row in followed], dtype=np.int64)
    day0 = np.array([row[3].toordinal() for row in followed], dtype=np.int64)
    number = [row[2] for row in followed]
    now = today.toordinal()
    kinds, rows, defs, opens_all, closes_all = [], [], [], [], []
    for study_id in np.unique(study_ids):
        in_study = np.flatnonzero(study_ids == study_id)
        for definition in studies[int(study_id)].visits:
            target = day0[in_study] + definition.day
            opens = target - definition.window_before_days
            closes = target + definition.window_after_days
            state = np.where(now > closes, 2, np.where(now >= opens, 1, 0))
            keep = state > 0
            kinds.append(state[keep])
            rows.append(in_study[keep])
            defs += [definition] * int(keep.sum())
            opens_all.append(opens[keep])
            closes_all.append(closes[keep])
    kind = np.concatenate(kinds)
    row = np.concatenate(rows)
    opens = np.concatenate(opens_all)
    closes = np.concatenate(closes_all)
    for code in (1, 2):
        sel = np.flatnonzero(kind == code)
        for i in sel[np.lexsort((pids[row[sel]], closes[sel]))].tolist():
            definition = defs[i]
            out[code].append(
                _Window(
                    int(closes[i]),
                    int(pids[row[i]]),
                    definition.code,
                    definition.label,
                    int(opens[i]),
                    number[row[i]],
                )
            )
    return out


def _visits(session: Session, actor: Actor, structure: _Structure) -> _Visits:
    """The visits done and not done at the actor's sites and the pain sums, from one query
    (a row per visit: a few thousand at 10,000 participants). The pain score is extracted
    from the JSON once per visit and summed here: summing it in SQL extracted it three times
    (count, sum, sum of squares), the largest share of this part's time."""
    scope = _in_scope(actor)
    pain = FollowUpVisit.scores["nrs"]["pain"].as_float()
    rows = session.execute(
        union_all(
            select(
                literal(0).label("kind"),
                FollowUpVisit.participant_id,
                FollowUpVisit.visit_code,
                Participant.study_id,
                Participant.arm_code,
                pain.label("pain"),
            )
            .join(Participant, Participant.id == FollowUpVisit.participant_id)
            .where(scope),
            select(
                literal(1).label("kind"),
                VisitNotDone.participant_id,
                VisitNotDone.visit_code,
                Participant.study_id,
                Participant.arm_code,
                cast(null(), Float).label("pain"),
            )
            .join(Participant, Participant.id == VisitNotDone.participant_id)
            .where(scope),
        )
    ).all()
    done: set[tuple[int, str]] = set()
    followups = 0
    sums: dict[tuple[int, str | None, str], list[float]] = {}
    for kind, pid, code, study_id, arm, value in rows:
        done.add((int(pid), code))
        if kind == 0:
            followups += 1
            acc = sums.setdefault((int(study_id), arm, code), [0, 0.0, 0.0])
            if value is not None:
                acc[0] += 1
                acc[1] += float(value)
                acc[2] += float(value) * float(value)
    kind_of = structure.kind_of
    done_by_kind = Counter(kind_of[pair] for pair in done if pair in kind_of)
    pain_rows = [
        (study_id, arm, code, int(n), total, total_sq)
        for (study_id, arm, code), (n, total, total_sq) in sorted(
            sums.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2])
        )
    ]
    return _Visits(frozenset(done), dict(done_by_kind), followups, pain_rows)


def _events(session: Session, actor: Actor) -> tuple[int, int]:
    scope = _in_scope(actor)
    total, serious = session.execute(
        select(
            func.count(AdverseEvent.id),
            func.count(AdverseEvent.id).filter(AdverseEvent.serious.is_(True)),
        )
        .join(Participant, Participant.id == AdverseEvent.participant_id)
        .where(scope)
    ).one()
    return int(total or 0), int(serious or 0)


def _parts(
    session: Session,
    actor: Actor,
    today: dt.date,
    cache: AggregateCache | None,
    *,
    events: bool = True,
) -> tuple[_Structure, _Visits, tuple[int, int] | None, AggregateCache, dict[str, Any] | None]:
    """The cached parts, the cache used (a throwaway one when ``cache`` is None) and the
    stamps they were checked against (None: not cached)."""
    if cache is None:
        cache = AggregateCache(size=0)  # computes every part, keeps nothing
        current = None
    else:
        current = stamps(session)
    scope = _scope_key(actor)
    structure = cache.get(
        ("structure", scope, today),
        _stamp(current, STRUCTURE_TABLES),
        lambda: _structure(session, actor, today),
    )
    visits = cache.get(
        ("visits", scope, today),
        _stamp(current, VISIT_TABLES),
        lambda: _visits(session, actor, structure),
    )
    counts = (
        cache.get(("events", scope), _stamp(current, EVENT_TABLES), lambda: _events(session, actor))
        if events
        else None
    )
    return structure, visits, counts, cache, current


# --- the views --------------------------------------------------------------------------------


def dashboard(
    session: Session,
    actor: Actor,
    today: dt.date | None = None,
    limit: int = LIST_LIMIT,
    cache: AggregateCache | None = CACHE,
) -> dict[str, Any]:
    """Counts per study and site plus the list of visits due or overdue at the actor's sites.

    Built from aggregate queries and cached in parts (module docstring; ``cache`` None:
    computed afresh): a page view after a follow-up entry re-reads the site's visits done,
    not every participant's windows.
    """
    today = today or dt.date.today()
    return _dashboard_from(actor, today, limit, *_parts(session, actor, today, cache))


def _dashboard_from(
    actor: Actor,
    today: dt.date,
    limit: int,
    structure: _Structure,
    visits: _Visits,
    counts: tuple[int, int] | None,
    used: AggregateCache,
    current: dict[str, Any] | None,
) -> dict[str, Any]:
    assert counts is not None
    board = used.get(
        ("board", _scope_key(actor), today, limit),
        _stamp(current, STAMPED_TABLES),
        lambda: _board(structure, visits, counts, limit),
    )
    # copies: the cached board stays as computed whatever the caller does with its result
    return {
        "totals": dict(board["totals"]),
        "recruitment": [dict(r) for r in board["recruitment"]],
        "visits_due": [dict(v) for v in board["visits_due"]],
        "visits_overdue": [dict(v) for v in board["visits_overdue"]],
    }


def _board(
    structure: _Structure, visits: _Visits, counts: tuple[int, int], limit: int
) -> dict[str, Any]:
    lists: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for kind, listed in lists.items():
        for w in structure.windows[kind]:
            if len(listed) >= limit:
                break
            if (w.participant_id, w.visit_code) in visits.done:
                continue
            listed.append(
                {
                    "participant_id": w.participant_id,
                    "study_number": w.study_number,
                    "visit_code": w.visit_code,
                    "label": w.label,
                    "status": "due" if kind == 1 else "overdue",
                    "window_opens": dt.date.fromordinal(w.opens).isoformat(),
                    "window_closes": dt.date.fromordinal(w.closes).isoformat(),
                }
            )
    n_open = {k: len(structure.windows[k]) - visits.done_by_kind.get(k, 0) for k in (1, 2)}
    return {
        "totals": {
            "participants": sum(n for _, _, n in structure.recruitment),
            "procedures": structure.procedures,
            "followup_visits": visits.followup_visits,
            "adverse_events": counts[0],
            "serious_adverse_events": counts[1],
            "visits_due": n_open[1],
            "visits_overdue": n_open[2],
        },
        "recruitment": [
            {"study": study, "site": site, "participants": n}
            for study, site, n in structure.recruitment
        ],
        "visits_due": lists[1],
        "visits_overdue": lists[2],
    }


@lru_cache(maxsize=4096)
def _t_quantile(p: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(p, df))


def mean_ci(
    n: int, total: float, total_sq: float, level: float = 0.95
) -> tuple[float, float | None, float | None]:
    """Mean and t-based confidence interval from a count, sum and sum of squares."""
    mean = total / n
    if n < 2:
        return mean, None, None
    variance = max((total_sq - n * mean * mean) / (n - 1), 0.0)
    half = _t_quantile(0.5 + level / 2, n - 1) * (variance / n) ** 0.5
    return mean, mean - half, mean + half


BLINDED_ARM = "blinded"


def outcome_summary(
    session: Session,
    actor: Actor,
    today: dt.date | None = None,
    cache: AggregateCache | None = CACHE,
) -> list[dict[str, Any]]:
    """Per study: mean pain (NRS 0–10) by visit with 95 % CI per arm, and cumulative
    recruitment over time per site — at the actor's sites.

    Pain is the stored score ``scores.nrs.pain`` (from :mod:`cryoneuro.instruments` via the
    bridge). Both come from GROUP BY queries (count, sum, sum of squares per study × arm ×
    visit; participants per study × site × enrolment date): no participant objects are loaded,
    so the cost grows with the number of groups, not of participants. They are the cached
    parts of :func:`dashboard` (module docstring); blinding is applied per actor here.
    """
    structure, visits, *_ = _parts(session, actor, today or dt.date.today(), cache, events=False)
    return _outcomes_from(actor, structure, visits)


def dashboard_page(
    session: Session,
    actor: Actor,
    today: dt.date | None = None,
    cache: AggregateCache | None = CACHE,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """:func:`dashboard` and :func:`outcome_summary` together, as the dashboard page shows
    them: one check of the cache's stamps for both."""
    today = today or dt.date.today()
    parts = _parts(session, actor, today, cache)
    return _dashboard_from(actor, today, LIST_LIMIT, *parts), _outcomes_from(
        actor, parts[0], parts[1]
    )


def _outcomes_from(actor: Actor, structure: _Structure, visits: _Visits) -> list[dict[str, Any]]:
    studies = {s["id"]: s for s in structure.studies}
    result: dict[int, dict[str, Any]] = {
        s["id"]: {
            "study": s["study"],
            "title": s["title"],
            "design": s["design"],
            "visits": copy.deepcopy(s["visits"]),
            "arms": dict(s["arms"]),
            "pain": [],
            "recruitment": {},
        }
        for s in structure.studies
    }

    def blinded(study_id: int) -> bool:
        return actor.role in studies[study_id]["blinded_roles"]

    pooled: dict[tuple[int, str], list[float]] = {}
    for study_id, _arm, visit_code, n, total, total_sq in visits.pain:
        if n and study_id in studies and blinded(study_id):
            # a blinded role sees pain pooled over the arms (sums of n, x and x² add up)
            acc = pooled.setdefault((study_id, visit_code), [0, 0.0, 0.0])
            acc[0] += int(n)
            acc[1] += float(total)
            acc[2] += float(total_sq)
    pain_rows = [r for r in visits.pain if not (r[0] in studies and blinded(r[0]))]
    pain_rows += [
        (sid, BLINDED_ARM, visit, n, total, sq) for (sid, visit), (n, total, sq) in pooled.items()
    ]
    for study_id, arm, visit_code, n, total, total_sq in pain_rows:
        if not n or study_id not in result:
            continue
        mean, lo, hi = mean_ci(int(n), float(total), float(total_sq))
        study = result[study_id]
        arm_label = (
            "all arms (blinded)"
            if arm == BLINDED_ARM
            else study["arms"].get(arm, arm)
            if arm
            else ("all participants" if study["design"] != "rct" else "not randomised")
        )
        study["pain"].append(
            {
                "arm": arm or "",
                "arm_label": arm_label,
                "visit_code": visit_code,
                "n": int(n),
                "mean": mean,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    for study_id, site, day, n in structure.enrolments:
        series = result[study_id]["recruitment"].setdefault(site, [])
        previous = series[-1][1] if series else 0
        series.append(
            (day.isoformat() if hasattr(day, "isoformat") else str(day), previous + int(n))
        )
    for study in result.values():
        order = {v["code"]: i for i, v in enumerate(study["visits"])}
        study["pain"].sort(key=lambda r: (r["arm"], order.get(r["visit_code"], 999)))
    return [s for s in result.values() if s["pain"] or s["recruitment"]]
