"""Recruitment counts and visits due/overdue (the study dashboard)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlalchemy.orm import Session

from cryoneuro.registry.auth import Actor
from cryoneuro.registry.models import Site, Study, VisitDefinition
from cryoneuro.registry.services.participants import list_participants


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
    """Counts per study and site plus the list of visits due or overdue at the actor's sites."""
    today = today or dt.date.today()
    participants = list_participants(session, actor, with_records=True)
    studies = {s.id: s for s in session.query(Study)}
    sites = {s.id: s for s in session.query(Site)}
    recruitment: Counter[tuple[str, str]] = Counter()
    visits: list[dict[str, Any]] = []
    totals = Counter()
    for p in participants:
        study, site = studies[p.study_id], sites[p.site_id]
        recruitment[(study.code, site.code)] += 1
        totals["participants"] += 1
        totals["procedures"] += len(p.procedures)
        totals["adverse_events"] += len(p.adverse_events)
        totals["serious_adverse_events"] += sum(e.serious for e in p.adverse_events)
        totals["followup_visits"] += len(p.visits)
        if not p.procedures or p.status != "enrolled":
            continue
        day0 = p.procedures[0].procedure_date
        done = {v.visit_code for v in p.visits}
        for definition in study.visits:
            status, opens, closes = visit_status(definition, day0, definition.code in done, today)
            if status in ("due", "overdue"):
                visits.append({"participant_id": p.id, "study_number": p.study_number,
                               "visit_code": definition.code, "label": definition.label,
                               "status": status, "window_opens": opens.isoformat(),
                               "window_closes": closes.isoformat()})
    return {
        "totals": {k: totals.get(k, 0) for k in ("participants", "procedures", "followup_visits",
                                                  "adverse_events", "serious_adverse_events")},
        "recruitment": [{"study": s, "site": site, "participants": n}
                        for (s, site), n in sorted(recruitment.items())],
        "visits_due": [v for v in visits if v["status"] == "due"],
        "visits_overdue": [v for v in visits if v["status"] == "overdue"],
    }
