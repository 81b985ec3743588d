"""Issue 14 bar, in real headless Chromium at a phone viewport (390 × 844): a reminder e-mail is
captured by a local SMTP server (aiosmtpd), its link opens the questionnaire without log-in,
the participant answers pain (by keyboard only) and EQ-5D-5L; the stored scores equal
`cryoneuro score` run as a separate process, appear on the staff participant page and in the
tidy export, and the link is refused when used again. Accessibility: Playwright's ARIA
snapshot of the form must give every control an accessible name, every radio group a named
group, and every target at least 44 × 44 CSS px.

Uses the browser fixtures of test_registry_browser.py (Debian's chromium, never downloaded).
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

import httpx
from epro_helpers import SmtpCapture, link_in, seed_due_participant, set_site_digest, smtp_settings
from registry_helpers import PASSWORD
from test_registry_browser import ARGS, _chromium

from cryoneuro.registry.services.reminders import SmtpMailer, send_reminders

EQ_PROFILE = {  # → profile 21321
    "mobility": 2,
    "self_care": 1,
    "usual_activities": 3,
    "pain_discomfort": 2,
    "anxiety_depression": 1,
}
EQ_VAS = 72
PAIN = 4
CONTROL_ROLES = ("radio", "textbox", "button", "checkbox", "combobox", "spinbutton")
#: A node of an ARIA snapshot: ``- role "name"``, YAML-quoted when the name has a colon.
CONTROL_LINE = re.compile(r"\s*- '?(\w+)(.*)$")


def _cli_scores(*args: str) -> dict:
    """`cryoneuro score ... --json` in its own process: the independent expectation."""
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cryoneuro.cli import main; main()",
            "score",
            *args,
            "--json",
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    return json.loads(run.stdout)["scores"]


def _unnamed_controls(snapshot: str) -> list[str]:
    """Lines of an ARIA snapshot that are form controls without an accessible name."""
    bad = []
    for line in snapshot.splitlines():
        match = CONTROL_LINE.match(line)
        if (
            match
            and match.group(1) in CONTROL_ROLES
            and not match.group(2).lstrip().startswith('"')
        ):
            bad.append(line.strip())
    return bad


def test_reminder_link_to_scores_on_a_phone(registry, live_server, tmp_path) -> None:
    pid = seed_due_participant(registry)
    set_site_digest(registry)
    with SmtpCapture() as smtp:
        settings = smtp_settings(registry, smtp).model_copy(
            update={"public_base_url": live_server.url}
        )
        report = send_reminders(registry.factory, settings, SmtpMailer.from_settings(settings))
        messages = smtp.messages
    assert [e["kind"] for e in report.sent] == ["due", "digest"]
    invite = next(m for m in messages if m["To"] == "patient@example.test")
    url = link_in(invite)
    assert url.startswith(live_server.url + "/epro/")

    with _chromium(ARGS) as browser:
        context = browser.new_context(viewport={"width": 390, "height": 844})
        page = context.new_page()
        page.set_default_timeout(15_000)
        response = page.goto(url)
        assert response is not None
        assert response.status == 200
        assert page.get_attribute("html", "lang") == "en"
        # mobile-first: nothing wider than the phone
        assert page.evaluate("document.documentElement.scrollWidth") <= 390

        # accessibility: every control named, every radio group a named group, 44 px targets
        snapshot = page.locator("form").aria_snapshot()
        assert _unnamed_controls(snapshot) == []
        roles = [CONTROL_LINE.match(line) for line in snapshot.splitlines()]
        n_controls = sum(1 for m in roles if m and m.group(1) in CONTROL_ROLES)
        n_inputs = page.locator(
            "form input:not([type=hidden]), form button, form select, form textarea"
        ).count()
        assert n_controls == n_inputs  # the snapshot saw every control
        assert 'group "How bad has the pain from your neuroma been' in snapshot
        fieldsets = page.locator("fieldset").count()
        assert fieldsets == page.locator("fieldset > legend").count()
        assert (
            page.locator("input[type=radio]").count()
            == page.locator("fieldset input[type=radio]").count()
        )
        for box in page.locator(".option, .actions button, input[inputmode=numeric]").evaluate_all(
            "els => els.map(e => { const r = e.getBoundingClientRect(); "
            "return [r.width, r.height]; })"
        ):
            assert box[0] >= 44
            assert box[1] >= 44

        # keyboard only: Tab into the pain scale, Space selects 0, arrows move to PAIN
        page.locator("body").focus()
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.name") == "answers.nrs.pain":
                break
        else:
            raise AssertionError("Tab never reached the pain question")
        page.keyboard.press("Space")
        for _ in range(PAIN):
            page.keyboard.press("ArrowRight")
        assert page.locator(f"[id='answers.nrs.pain-{PAIN}']").is_checked()

        # EQ-5D-5L by tapping the labels, the EQ VAS typed, and the change question
        for item, level in EQ_PROFILE.items():
            page.locator(f"label[for='answers.eq5d5l.{item}-{level}']").click()
        page.fill("[id='answers.eq5d5l.vas']", str(EQ_VAS))
        page.get_by_label("About the same").check()
        page.click("#submit-answers")
        page.wait_for_selector("#epro-title")
        assert "Thank you" in page.inner_text("#epro-title")

        # the link is spent
        again = page.goto(url)
        assert again is not None
        assert again.status == 410
        assert "already been sent" in page.inner_text("#epro-message")
        context.close()

        # staff view: the participant page shows the scores
        staff = browser.new_context()
        page = staff.new_page()
        page.goto(live_server.url + "/login")
        page.fill("#username", "nurse")
        page.fill("#password", PASSWORD)
        page.click("#submit")
        page.wait_for_url(live_server.url + "/")
        page.goto(f"{live_server.url}/participants/{pid}")
        visits = page.inner_text("#visits")
        staff.close()

    profile = "".join(str(EQ_PROFILE[k]) for k in EQ_PROFILE)
    expected_eq = _cli_scores("eq5d5l", profile, f"vas={EQ_VAS}")
    expected_nrs = _cli_scores("nrs", f"pain={PAIN}")
    assert expected_eq["profile"] == "21321"
    assert "w2" in visits
    for measure in ("index_england", "index_uk_2026", "index_uk_crosswalk", "vas"):
        assert f"'{measure}': {expected_eq[measure]!r}" in visits
    assert f"'pain': {expected_nrs['pain']!r}" in visits

    # the tidy export (statistician) carries the same scores
    with httpx.Client(base_url=live_server.url) as http:
        login = http.post("/api/login", json={"username": "stats", "password": PASSWORD})
        assert login.status_code == 200
        scores_csv = http.get("/api/exports/tidy/scores.csv")
        assert scores_csv.status_code == 200
    rows = [
        r
        for r in csv.DictReader(io.StringIO(scores_csv.text))
        if r["visit_code"] == "w2" and r["kind"] == "score"
    ]
    found = {(r["instrument"], r["measure"]): r["value"] for r in rows}
    for measure in ("index_england", "index_uk_2026", "index_uk_crosswalk", "vas"):
        assert float(found[("eq5d5l", measure)]) == expected_eq[measure]
    assert float(found[("nrs", "pain")]) == expected_nrs["pain"]
