"""ePRO pages: the participant's questionnaire (no log-in: the one-time link is the key) and
the staff pages for links, contact address, safety alerts and completion (issue 14).

The participant's routes take nothing from the request but the token and the answers: the
participant and the visit come from the link (services/epro.py), so a link can only ever
write its own visit. Refusals (unknown, expired, revoked, used) are pages with 404/410.
The participant's pages are built for phones and assistive technology: one column, a
``label`` for every input, ``fieldset``/``legend`` for every radio group, native radios (so
arrow keys and space work), 44 px targets, errors in text beside the field and linked by
``aria-describedby``, and nothing conveyed by colour alone.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cryoneuro.instruments import Item
from cryoneuro.registry.auth import WRITE_ROLES
from cryoneuro.registry.db import transaction
from cryoneuro.registry.errors import ConflictError, RegistryInputError
from cryoneuro.registry.instruments_bridge import INSTRUMENT_LABELS, ITEM_SPECS
from cryoneuro.registry.models import EproAlert, Participant, Study
from cryoneuro.registry.models.epro import CHANGE_SINCE_PROCEDURE
from cryoneuro.registry.services import epro, epro_site
from cryoneuro.registry.services.participants import get_participant
from cryoneuro.web.deps import FormDep, PageActor, SessionDep, SettingsDep, sessionmaker_for_writes
from cryoneuro.web.pages import render

router = APIRouter(include_in_schema=False)

# --- what the participant reads ---------------------------------------------------------------
# Descriptive labels in plain English. The licensed wording of EQ-5D-5L (EuroQol) and MOXFQ
# (Oxford University Innovation) is not reproduced here: a study that holds the licence puts
# it in its patient information; the item codes and response levels are what is scored.
PAIN_0_10 = ("0 = no pain", "10 = worst pain imaginable")
EQ_LEVELS = {
    1: "No problems",
    2: "Slight problems",
    3: "Moderate problems",
    4: "Severe problems",
    5: "Unable / extreme problems",
}
MOXFQ_LEVELS = {
    0: "None of the time / no pain",
    1: "Rarely / very mild",
    2: "Some of the time / mild",
    3: "Most of the time / moderate",
    4: "All of the time / severe",
}
QUESTION_TEXT: dict[str, dict[str, str]] = {
    "nrs": {"pain": "How bad has the pain from your neuroma been over the last week?"},
    "eq5d5l": {
        "mobility": "Walking about: how are you today?",
        "self_care": "Washing or dressing yourself: how are you today?",
        "usual_activities": "Usual activities (work, study, housework, family or leisure): "
        "how are you today?",
        "pain_discomfort": "Pain or discomfort: how much do you have today?",
        "anxiety_depression": "Anxiety or depression: how much do you have today?",
        "vas": "How good or bad is your health today? 0 is the worst health you can imagine, "
        "100 the best.",
    },
    "moxfq": {
        f"q{i}": f"Foot question {i} of 16 (see your questionnaire sheet)" for i in range(1, 17)
    },
    "stump": {
        "residual_limb_pain": "Pain in the stump (residual limb) over the last week",
        "phantom_pain": "Phantom pain (pain felt in the missing part) over the last week",
        "phantom_episodes_per_day": "How many episodes of phantom pain do you have a day?",
        "phantom_episode_duration_min": "How long does a phantom pain episode usually last "
        "(minutes)?",
    },
    "bpi": {
        "worst": "Your pain at its worst in the last 24 hours",
        "least": "Your pain at its least in the last 24 hours",
        "average": "Your pain on average",
        "now": "Your pain right now",
        "general_activity": "How much has pain interfered with your general activity?",
        "mood": "How much has pain interfered with your mood?",
        "walking": "How much has pain interfered with your walking?",
        "work": "How much has pain interfered with your normal work?",
        "relations": "How much has pain interfered with your relations with other people?",
        "sleep": "How much has pain interfered with your sleep?",
        "enjoyment": "How much has pain interfered with your enjoyment of life?",
    },
    "mobility": {
        "walking_distance_m": "How far can you walk before pain stops you (metres)?",
        "walking_time_min": "How long does that walk take you (minutes)?",
        "aid": "What do you usually use to help you walk?",
    },
}
INSTRUMENT_TITLES = {
    "nrs": "Your pain",
    "eq5d5l": "Your health today",
    "moxfq": "Your foot",
    "stump": "Stump and phantom pain",
    "bpi": "Pain in the last 24 hours",
    "mobility": "Walking",
}
CHANGE_LABELS = {
    "much_better": "Much better",
    "a_little_better": "A little better",
    "about_the_same": "About the same",
    "a_little_worse": "A little worse",
    "much_worse": "Much worse",
}
#: Radio groups with at most this many options; wider ranges are number inputs.
MAX_RADIO = 11
#: Plain words for choice codes (the codes are the instrument's: mobility.AIDS).
CHOICE_LABELS = {
    "none": "Nothing",
    "stick": "A walking stick",
    "crutches": "Crutches",
    "frame": "A walking frame",
    "wheelchair": "A wheelchair",
}


def _question(code: str, spec: Item) -> dict[str, Any]:
    """One question for the template: text, input kind and the labelled options (ranges and
    choices are the instrument's own item, via instruments_bridge.py)."""
    item, required = spec.name, spec.required
    name = f"answers.{code}.{item}"
    text = QUESTION_TEXT.get(code, {}).get(item) or INSTRUMENT_LABELS.get(code, code) + f" {item}"
    if spec.kind == "choice":
        options = [
            (c, CHOICE_LABELS.get(c, c.replace("_", " ").capitalize())) for c in spec.choices
        ]
        return {
            "name": name,
            "id": name,
            "text": text,
            "kind": "radio",
            "options": options,
            "hint": "",
            "required": required,
        }
    lo, hi = int(spec.min or 0), int(spec.max or 0)
    if spec.kind != "integer" or hi - lo + 1 > MAX_RADIO:
        noun = "A whole number" if spec.kind == "integer" else "A number"
        return {
            "name": name,
            "id": name,
            "text": text,
            "kind": "number",
            "hint": f"{noun} from {spec.min:g} to {spec.max:g}",
            "inputmode": "numeric" if spec.kind == "integer" else "decimal",
            "required": required,
        }
    if code == "eq5d5l":
        options = [(str(v), f"{v}: {EQ_LEVELS[v]}") for v in range(lo, hi + 1)]
        hint = ""
    elif code == "moxfq":
        options = [(str(v), f"{v}: {MOXFQ_LEVELS[v]}") for v in range(lo, hi + 1)]
        hint = ""
    else:
        options = [(str(v), str(v)) for v in range(lo, hi + 1)]
        ends = (
            ("0 = no interference", "10 = complete interference")
            if code == "bpi" and item not in ("worst", "least", "average", "now")
            else PAIN_0_10
        )
        hint = f"{ends[0]}, {ends[1]}"
    return {
        "name": name,
        "id": name,
        "text": text,
        "kind": "radio",
        "options": options,
        "hint": hint,
        "required": required,
    }


def _sections(opened: epro.OpenLink) -> list[dict[str, Any]]:
    sections = []
    for code, requested in opened.instruments:
        questions = [_question(code, spec) for spec in ITEM_SPECS[code].values()]
        sections.append(
            {
                "code": code,
                "title": INSTRUMENT_TITLES.get(code, INSTRUMENT_LABELS.get(code, code)),
                "instrument": INSTRUMENT_LABELS.get(code, code),
                "requested": requested,
                "questions": questions,
            }
        )
    return sections


def _form_page(
    request: Request,
    opened: epro.OpenLink,
    token: str,
    *,
    values: dict[str, dict[str, str]],
    change: str | None,
    errors: dict[str, str] | None = None,
    safety: str = "",
    saved: bool = False,
    status: int = 200,
) -> HTMLResponse:
    flat = {f"answers.{c}.{i}": v for c, items in values.items() for i, v in items.items()}
    return render(
        request,
        "epro_form.html",
        status=status,
        token=token,
        visit=opened.definition,
        sections=_sections(opened),
        values=flat,
        change=change,
        change_options=[(c, CHANGE_LABELS[c]) for c in CHANGE_SINCE_PROCEDURE],
        errors=errors or {},
        safety=safety,
        saved=saved,
        expires=opened.link.expires_at.date().isoformat(),
    )


def _refused(request: Request, exc: epro.EproLinkError) -> HTMLResponse:
    return render(
        request, "epro_message.html", status=exc.status_code, title=exc.title, message=str(exc)
    )


# --- staff pages (before /epro/{token}, which would otherwise match them) ---------------------


@router.get("/epro/completion", response_class=HTMLResponse)
def completion_page(request: Request, session: SessionDep, actor: PageActor) -> HTMLResponse:
    """ePRO completion by site and visit, with the open safety alerts."""
    alerts = epro_site.open_alerts(session, actor)
    numbers = {
        p.id: p.study_number
        for p in session.query(Participant).filter(
            Participant.id.in_([a.participant_id for a in alerts] or [-1])
        )
    }
    return render(
        request,
        "epro_completion.html",
        actor=actor,
        rows=epro_site.completion(session, actor),
        alerts=[(a, numbers.get(a.participant_id, "")) for a in alerts],
        can_write=actor.role in WRITE_ROLES,
    )


@router.get("/participants/{participant_id}/epro", response_class=HTMLResponse)
def participant_epro(
    request: Request, participant_id: int, session: SessionDep, actor: PageActor
) -> HTMLResponse:
    return _staff_page(request, session, actor, participant_id)


def _staff_page(
    request: Request,
    session: Any,
    actor: Any,
    participant_id: int,
    *,
    new_url: str = "",
    status: int = 200,
    error: str = "",
) -> HTMLResponse:
    participant = get_participant(session, actor, participant_id)
    links = epro_site.participant_links(session, actor, participant.id)
    alerts = list(
        session.query(EproAlert)
        .filter(EproAlert.participant_id == participant.id)
        .order_by(EproAlert.id)
    )
    study = session.get(Study, participant.study_id)
    return render(
        request,
        "epro_staff.html",
        status=status,
        actor=actor,
        p=participant,
        links=[(link, epro_site.link_status(link)) for link in links],
        alerts=alerts,
        visits=[v for v in study.visits if v.day > 0] if study else [],
        has_contact=epro_site.has_contact(session, participant.id),
        can_write=actor.role in WRITE_ROLES,
        new_url=new_url,
        error=error,
    )


@router.post("/participants/{participant_id}/epro/contact", response_class=HTMLResponse)
def set_contact(
    request: Request,
    participant_id: int,
    data: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    actor: PageActor,
) -> Response:
    try:
        epro_site.set_contact_email(session, settings, actor, participant_id, data.get("email", ""))
    except RegistryInputError as exc:
        session.rollback()
        return _staff_page(request, session, actor, participant_id, status=422, error=str(exc))
    session.commit()
    return RedirectResponse(f"/participants/{participant_id}/epro", status_code=303)


@router.post("/participants/{participant_id}/epro/links", response_class=HTMLResponse)
def new_link(
    request: Request,
    participant_id: int,
    data: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    actor: PageActor,
) -> Response:
    """Issue a link for a visit and show it once (to give the participant in clinic)."""
    _link, token = epro.issue_link(
        session, settings, actor, participant_id, data.get("visit_code", "")[:40]
    )
    url = epro.link_url(settings, token)
    session.commit()
    return _staff_page(request, session, actor, participant_id, new_url=url)


@router.post("/epro/links/{link_id}/revoke")
def revoke(
    request: Request, link_id: int, data: FormDep, session: SessionDep, actor: PageActor
) -> Response:
    link = epro.revoke_link(session, actor, link_id, data.get("reason", ""))
    participant_id = link.participant_id
    session.commit()
    return RedirectResponse(f"/participants/{participant_id}/epro", status_code=303)


@router.post("/epro/alerts/{alert_id}/acknowledge")
def acknowledge(
    request: Request, alert_id: int, data: FormDep, session: SessionDep, actor: PageActor
) -> Response:
    alert = epro_site.acknowledge_alert(session, actor, alert_id)
    participant_id = alert.participant_id
    session.commit()
    back = data.get("back", "")
    return RedirectResponse(
        "/epro/completion" if back == "completion" else f"/participants/{participant_id}/epro",
        status_code=303,
    )


# --- the participant's questionnaire ----------------------------------------------------------


@router.get("/epro/{token}", response_class=HTMLResponse)
def questionnaire(
    request: Request, token: str, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    try:
        opened = epro.open_link(session, settings, token)
    except epro.EproLinkError as exc:
        return _refused(request, exc)
    if opened.link.first_opened_at is None:  # recorded in a short write of its own (a GET)
        with transaction(sessionmaker_for_writes(request)) as writer:
            again = epro.open_link(writer, settings, token)
            epro.mark_opened(writer, again)
    return _form_page(
        request,
        opened,
        token,
        values=opened.link.draft or {},
        change=opened.link.change_since_procedure,
    )


@router.post("/epro/{token}", response_class=HTMLResponse)
def answer(
    request: Request, token: str, data: FormDep, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """Save (resumable) or submit; the safety message shows whenever an answer is high-risk."""
    try:
        opened = epro.open_link(session, settings, token)
    except epro.EproLinkError as exc:
        return _refused(request, exc)
    result = epro.save_draft(session, settings, opened, data)
    session.commit()
    safety = settings.epro_safety_message if result.high_risk else ""
    if data.get("action") != "submit":
        return _form_page(
            request,
            opened,
            token,
            values=result.draft,
            change=result.change,
            errors=result.errors,
            safety=safety,
            saved=not result.errors,
            status=422 if result.errors else 200,
        )
    try:
        opened = epro.open_link(session, settings, token)
        visit = epro.submit(session, settings, opened, result)
    except epro.EproLinkError as exc:  # used or recorded by the clinic a moment ago
        session.rollback()
        return _refused(request, exc)
    except ConflictError:
        session.rollback()
        return _refused(
            request,
            epro.EproLinkError(
                "Your clinic has already recorded this follow-up visit. Thank you.",
                409,
                "Already recorded",
            ),
        )
    except RegistryInputError as exc:
        session.rollback()
        errors = dict(result.errors)
        errors.setdefault(exc.field or "form", str(exc))
        return _form_page(
            request,
            opened,
            token,
            values=result.draft,
            change=result.change,
            errors=errors,
            safety=safety,
            status=422,
        )
    session.commit()
    return render(
        request,
        "epro_message.html",
        title="Thank you: your answers have been sent",
        message=f"Your answers for the {opened.definition.label} follow-up are recorded "
        f"(reference {visit.id}). You can close this page; the link will not work again.",
        safety=safety,
    )
