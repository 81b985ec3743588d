"""Recruitment counts and visits due/overdue (the study dashboard)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cryoneuro.registry.auth import Actor
from cryoneuro.registry.models import (
    AdverseEvent,
    FollowUpVisit,
    Participant,
    Procedure,
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


def dashboard(
    session: Session, actor: Actor, today: dt.date | None = None, limit: int = LIST_LIMIT
) -> dict[str, Any]:
    """Counts per study and site plus the list of visits due or overdue at the actor's sites.

    Built from a handful of aggregate queries (participants, first procedure dates, visit codes
    done, event counts) rather than loading every participant's records: at 10,000
    participants the per-object version took seconds (benchmarks/registry_load.py).
    """
    today = today or dt.date.today()
    scope_ids = _scope_ids(actor)
    studies = {s.id: s for s in session.query(Study)}
    sites = {s.id: s for s in session.query(Site)}
    # recruitment and totals are GROUP BY counts; only participants who are enrolled and have
    # had a procedure (day 0) can have visits due, so only they are fetched row by row
    recruitment_rows = session.execute(
        select(Participant.study_id, Participant.site_id, func.count())
        .where(Participant.id.in_(scope_ids))
        .group_by(Participant.study_id, Participant.site_id)
    ).all()
    followed = session.execute(
        select(
            Participant.id,
            Participant.study_id,
            Participant.study_number,
            func.min(Procedure.procedure_date),
        )
        .join(Procedure, Procedure.participant_id == Participant.id)
        .where(Participant.id.in_(scope_ids), Participant.status == "enrolled")
        .group_by(Participant.id, Participant.study_id, Participant.study_number)
        .order_by(Participant.id)
    ).all()
    done: dict[int, set[str]] = {}
    if followed:
        enrolled_ids = (
            select(Procedure.participant_id)
            .join(Participant, Participant.id == Procedure.participant_id)
            .where(Participant.id.in_(scope_ids), Participant.status == "enrolled")
        )
        for pid, code in session.execute(
            select(FollowUpVisit.participant_id, FollowUpVisit.visit_code).where(
                FollowUpVisit.participant_id.in_(enrolled_ids)
            )
        ):
            done.setdefault(pid, set()).add(code)
        # a visit recorded as not done (with its reason) is neither due nor overdue (issue 14)
        for pid, code in session.execute(
            select(VisitNotDone.participant_id, VisitNotDone.visit_code).where(
                VisitNotDone.participant_id.in_(enrolled_ids)
            )
        ):
            done.setdefault(pid, set()).add(code)

    def count(model, *where) -> int:
        return int(
            session.scalar(
                select(func.count())
                .select_from(model)
                .where(model.participant_id.in_(scope_ids), *where)
            )
            or 0
        )

    totals = {
        "participants": int(sum(n for _, _, n in recruitment_rows)),
        "procedures": count(Procedure),
        "followup_visits": count(FollowUpVisit),
        "adverse_events": count(AdverseEvent),
        "serious_adverse_events": count(AdverseEvent, AdverseEvent.serious.is_(True)),
    }
    recruitment: Counter[tuple[str, str]] = Counter()
    for study_id, site_id, n in recruitment_rows:
        recruitment[(studies[study_id].code, sites[site_id].code)] += int(n)
    due, overdue, n_due, n_overdue = _open_windows(followed, studies, done, today, limit)
    return {
        "totals": {**totals, "visits_due": n_due, "visits_overdue": n_overdue},
        "recruitment": [
            {"study": s, "site": site, "participants": n}
            for (s, site), n in sorted(recruitment.items())
        ],
        "visits_due": due,
        "visits_overdue": overdue,
    }


def _open_windows(
    followed: list, studies: dict[int, Study], done: dict[int, set[str]], today: dt.date, limit: int
) -> tuple[list, list, int, int]:
    """Due and overdue visit windows of every followed participant, as arrays.

    The same rule as :func:`visit_status`, evaluated for all participants × visit definitions
    at once with NumPy (a Python loop over 10,000 participants × 6 visits dominated the
    dashboard's time under load); dictionaries are built only for the ``limit`` most urgent
    of each kind. Returns (due, overdue, number due, number overdue).
    """
    if not followed:
        return [], [], 0, 0
    pids = np.array([row[0] for row in followed], dtype=np.int64)
    study_ids = np.array([row[1] for row in followed], dtype=np.int64)
    day0 = np.array([row[3].toordinal() for row in followed], dtype=np.int64)
    number = {row[0]: row[2] for row in followed}
    now = today.toordinal()
    # visits done, as one sorted id array per visit code (a vectorised membership test)
    by_code: dict[str, list[int]] = {}
    for pid, codes in done.items():
        for code in codes:
            by_code.setdefault(code, []).append(pid)
    done_by_code = {code: np.array(ids, dtype=np.int64) for code, ids in by_code.items()}
    empty = np.zeros(0, dtype=np.int64)
    kinds, rows, defs, opens_all, closes_all = [], [], [], [], []
    for study_id in np.unique(study_ids):
        in_study = np.flatnonzero(study_ids == study_id)
        for definition in studies[int(study_id)].visits:
            target = day0[in_study] + definition.day
            opens = target - definition.window_before_days
            closes = target + definition.window_after_days
            have = np.isin(pids[in_study], done_by_code.get(definition.code, empty))
            state = np.where(have, 0, np.where(now > closes, 2, np.where(now >= opens, 1, 0)))
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
    out: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for code in (1, 2):
        sel = np.flatnonzero(kind == code)
        order = sel[np.lexsort((pids[row[sel]], closes[sel]))][:limit]
        for i in order:
            pid = int(pids[row[i]])
            definition = defs[i]
            out[code].append(
                {
                    "participant_id": pid,
                    "study_number": number[pid],
                    "visit_code": definition.code,
                    "label": definition.label,
                    "status": "due" if code == 1 else "overdue",
                    "window_opens": dt.date.fromordinal(int(opens[i])).isoformat(),
                    "window_closes": dt.date.fromordinal(int(closes[i])).isoformat(),
                }
            )
    return out[1], out[2], int((kind == 1).sum()), int((kind == 2).sum())


def _scope_ids(actor: Actor) -> Any:
    scope = select(Participant.id)
    if not actor.all_sites:
        scope = scope.where(Participant.site_id.in_(actor.site_ids or {-1}))
    return scope.scalar_subquery()


def mean_ci(
    n: int, total: float, total_sq: float, level: float = 0.95
) -> tuple[float, float | None, float | None]:
    """Mean and t-based confidence interval from a count, sum and sum of squares."""
    mean = total / n
    if n < 2:
        return mean, None, None
    from scipy.stats import t

    variance = max((total_sq - n * mean * mean) / (n - 1), 0.0)
    half = float(t.ppf(0.5 + level / 2, n - 1)) * (variance / n) ** 0.5
    return mean, mean - half, mean + half


BLINDED_ARM = "blinded"


def outcome_summary(session: Session, actor: Actor) -> list[dict[str, Any]]:
    """Per study: mean pain (NRS 0–10) by visit with 95 % CI per arm, and cumulative
    recruitment over time per site — at the actor's sites.

    Pain is the stored score ``scores.nrs.pain`` (from :mod:`cryoneuro.instruments` via the
    bridge). Both come from GROUP BY queries (count, sum, sum of squares per study × arm ×
    visit; participants per study × site × enrolment date): no participant objects are loaded,
    so the cost grows with the number of groups, not of participants.
    """
    scope_ids = _scope_ids(actor)
    pain = FollowUpVisit.scores["nrs"]["pain"].as_float()
    pain_rows = session.execute(
        select(
            Participant.study_id,
            Participant.arm_code,
            FollowUpVisit.visit_code,
            func.count(pain),
            func.sum(pain),
            func.sum(pain * pain),
        )
        .join(Participant, Participant.id == FollowUpVisit.participant_id)
        .where(FollowUpVisit.participant_id.in_(scope_ids))
        .group_by(Participant.study_id, Participant.arm_code, FollowUpVisit.visit_code)
    ).all()
    enrol_rows = session.execute(
        select(Participant.study_id, Participant.site_id, Participant.enrolment_date, func.count())
        .where(Participant.id.in_(scope_ids))
        .group_by(Participant.study_id, Participant.site_id, Participant.enrolment_date)
        .order_by(Participant.enrolment_date)
    ).all()
    studies = {s.id: s for s in session.scalars(select(Study).order_by(Study.code))}
    sites = {s.id: s.code for s in session.scalars(select(Site))}
    result: dict[int, dict[str, Any]] = {}
    for study in studies.values():
        arms = {a.code: a.label for a in study.arms}
        result[study.id] = {
            "study": study.code,
            "title": study.title,
            "design": study.design,
            "visits": [{"code": v.code, "label": v.label, "day": v.day} for v in study.visits],
            "arms": arms,
            "pain": [],
            "recruitment": {},
        }
    pooled: dict[tuple[int, str], list[float]] = {}
    for study_id, _arm, visit_code, n, total, total_sq in pain_rows:
        if n and study_id in studies and actor.blinded(studies[study_id]):
            # a blinded role sees pain pooled over the arms (sums of n, x and x² add up)
            acc = pooled.setdefault((study_id, visit_code), [0, 0.0, 0.0])
            acc[0] += int(n)
            acc[1] += float(total)
            acc[2] += float(total_sq)
    pain_rows = [r for r in pain_rows if not (r[0] in studies and actor.blinded(studies[r[0]]))]
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
    for study_id, site_id, day, n in enrol_rows:
        series = result[study_id]["recruitment"].setdefault(sites[site_id], [])
        previous = series[-1][1] if series else 0
        series.append(
            (day.isoformat() if hasattr(day, "isoformat") else str(day), previous + int(n))
        )
    for study in result.values():
        order = {v["code"]: i for i, v in enumerate(study["visits"])}
        study["pain"].sort(key=lambda r: (r["arm"], order.get(r["visit_code"], 999)))
    return [s for s in result.values() if s["pain"] or s["recruitment"]]
