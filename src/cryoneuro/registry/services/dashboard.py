"""Recruitment counts and visits due/overdue (the study dashboard)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

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
)


def visit_status(definition: VisitDefinition, day0: dt.date, done: bool,
                 today: dt.date) -> tuple[str, dt.date, dt.date]:
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


def dashboard(session: Session, actor: Actor, today: dt.date | None = None) -> dict[str, Any]:
    """Counts per study and site plus the list of visits due or overdue at the actor's sites.

    Built from a handful of aggregate queries (participants, first procedure dates, visit codes
    done, event counts) rather than loading every participant's records: at 10,000
    participants the per-object version took seconds (benchmarks/registry_load.py).
    """
    today = today or dt.date.today()
    scope = select(Participant.id)
    if not actor.all_sites:
        scope = scope.where(Participant.site_id.in_(actor.site_ids or {-1}))
    scope_ids = scope.scalar_subquery()
    people = session.execute(
        select(Participant.id, Participant.study_id, Participant.site_id, Participant.status,
               Participant.study_number).where(Participant.id.in_(scope_ids)).order_by(Participant.id)).all()
    studies = {s.id: s for s in session.query(Study)}
    sites = {s.id: s for s in session.query(Site)}
    first_procedure = dict(session.execute(
        select(Procedure.participant_id, func.min(Procedure.procedure_date))
        .where(Procedure.participant_id.in_(scope_ids)).group_by(Procedure.participant_id)).all())
    done: dict[int, set[str]] = {}
    for pid, code in session.execute(select(FollowUpVisit.participant_id, FollowUpVisit.visit_code)
                                     .where(FollowUpVisit.participant_id.in_(scope_ids))):
        done.setdefault(pid, set()).add(code)

    def count(model, *where) -> int:
        return int(session.scalar(select(func.count()).select_from(model)
                                  .where(model.participant_id.in_(scope_ids), *where)) or 0)

    totals = {"participants": len(people), "procedures": count(Procedure),
              "followup_visits": count(FollowUpVisit), "adverse_events": count(AdverseEvent),
              "serious_adverse_events": count(AdverseEvent, AdverseEvent.serious.is_(True))}
    recruitment: Counter[tuple[str, str]] = Counter()
    visits: list[dict[str, Any]] = []
    for pid, study_id, site_id, status, study_number in people:
        study = studies[study_id]
        recruitment[(study.code, sites[site_id].code)] += 1
        day0 = first_procedure.get(pid)
        if day0 is None or status != "enrolled":
            continue
        codes = done.get(pid, set())
        for definition in study.visits:
            state, opens, closes = visit_status(definition, day0, definition.code in codes, today)
            if state in ("due", "overdue"):
                visits.append({"participant_id": pid, "study_number": study_number,
                               "visit_code": definition.code, "label": definition.label,
                               "status": state, "window_opens": opens.isoformat(),
                               "window_closes": closes.isoformat()})
    return {
        "totals": totals,
        "recruitment": [{"study": s, "site": site, "participants": n}
                        for (s, site), n in sorted(recruitment.items())],
        "visits_due": [v for v in visits if v["status"] == "due"],
        "visits_overdue": [v for v in visits if v["status"] == "overdue"],
    }


def _scope_ids(actor: Actor) -> Any:
    scope = select(Participant.id)
    if not actor.all_sites:
        scope = scope.where(Participant.site_id.in_(actor.site_ids or {-1}))
    return scope.scalar_subquery()


def mean_ci(n: int, total: float, total_sq: float, level: float = 0.95
            ) -> tuple[float, float | None, float | None]:
    """Mean and t-based confidence interval from a count, sum and sum of squares."""
    mean = total / n
    if n < 2:
        return mean, None, None
    from scipy.stats import t

    variance = max((total_sq - n * mean * mean) / (n - 1), 0.0)
    half = float(t.ppf(0.5 + level / 2, n - 1)) * (variance / n) ** 0.5
    return mean, mean - half, mean + half


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
        select(Participant.study_id, Participant.arm_code, FollowUpVisit.visit_code,
               func.count(pain), func.sum(pain), func.sum(pain * pain))
        .join(Participant, Participant.id == FollowUpVisit.participant_id)
        .where(FollowUpVisit.participant_id.in_(scope_ids))
        .group_by(Participant.study_id, Participant.arm_code, FollowUpVisit.visit_code)).all()
    enrol_rows = session.execute(
        select(Participant.study_id, Participant.site_id, Participant.enrolment_date,
               func.count())
        .where(Participant.id.in_(scope_ids))
        .group_by(Participant.study_id, Participant.site_id, Participant.enrolment_date)
        .order_by(Participant.enrolment_date)).all()
    studies = {s.id: s for s in session.scalars(select(Study).order_by(Study.code))}
    sites = {s.id: s.code for s in session.scalars(select(Site))}
    result: dict[int, dict[str, Any]] = {}
    for study in studies.values():
        arms = {a.code: a.label for a in study.arms}
        result[study.id] = {"study": study.code, "title": study.title, "design": study.design,
                            "visits": [{"code": v.code, "label": v.label, "day": v.day}
                                       for v in study.visits],
                            "arms": arms, "pain": [], "recruitment": {}}
    for study_id, arm, visit_code, n, total, total_sq in pain_rows:
        if not n or study_id not in result:
            continue
        mean, lo, hi = mean_ci(int(n), float(total), float(total_sq))
        study = result[study_id]
        arm_label = (study["arms"].get(arm, arm) if arm else
                     ("all participants" if study["design"] != "rct" else "not randomised"))
        study["pain"].append({"arm": arm or "", "arm_label": arm_label, "visit_code": visit_code,
                              "n": int(n), "mean": mean, "ci_low": lo, "ci_high": hi})
    for study_id, site_id, day, n in enrol_rows:
        series = result[study_id]["recruitment"].setdefault(sites[site_id], [])
        previous = series[-1][1] if series else 0
        series.append((day.isoformat() if hasattr(day, "isoformat") else str(day),
                       previous + int(n)))
    for study in result.values():
        order = {v["code"]: i for i, v in enumerate(study["visits"])}
        study["pain"].sort(key=lambda r: (r["arm"], order.get(r["visit_code"], 999)))
    return [s for s in result.values() if s["pain"] or s["recruitment"]]
