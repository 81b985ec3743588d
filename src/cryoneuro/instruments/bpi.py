"""BPI short form: Brief Pain Inventory pain severity and pain interference (0–10).

Source: Cleeland CS. The Brief Pain Inventory User Guide. Houston (TX): MD Anderson Cancer
Center; 2009. Cleeland CS, Ryan KM. Pain assessment: global use of the Brief Pain Inventory.
Ann Acad Med Singap 1994;23(2):129-138 (PMID 8080219).

- Severity: mean of worst, least, average and now (items 3–6), each 0–10.
- Interference: mean of the seven interference items (9A–G), each 0–10; the user guide allows
  it when more than half (at least 4 of 7) are answered, otherwise it is not scored (None).
"""

from __future__ import annotations

from typing import Any

from cryoneuro.instruments.base import Instrument, Item, Measure, Scores, register

SEVERITY_ITEMS = ("worst", "least", "average", "now")
INTERFERENCE_ITEMS = (
    "general_activity",
    "mood",
    "walking",
    "work",
    "relations",
    "sleep",
    "enjoyment",
)
#: Fewest interference items that may be averaged (Cleeland BPI user guide: > 50 % of 7).
MIN_INTERFERENCE_ITEMS = 4


def _score(answers: dict[str, Any]) -> Scores:
    """Severity = mean of the four severity items; interference = mean of the answered
    interference items when at least 4 of 7 are answered, else None (Cleeland 2009)."""
    severity = sum(answers[k] for k in SEVERITY_ITEMS) / len(SEVERITY_ITEMS)
    given = [answers[k] for k in INTERFERENCE_ITEMS if k in answers]
    interference = (sum(given) / len(given)) if len(given) >= MIN_INTERFERENCE_ITEMS else None
    return {
        "severity": float(severity),
        "interference": None if interference is None else float(interference),
    }


BPI = register(
    Instrument(
        code="bpi",
        label="Brief Pain Inventory (short form)",
        items=(
            *(
                Item(k, 0, 10, label=f"pain {k}, 0 (no pain) – 10 (worst imaginable)")
                for k in SEVERITY_ITEMS
            ),
            *(
                Item(
                    k,
                    0,
                    10,
                    required=False,
                    label=f"interference with {k.replace('_', ' ')}, 0 (none) – 10 (complete)",
                )
                for k in INTERFERENCE_ITEMS
            ),
        ),
        measures=(
            Measure(
                "severity", "Pain severity 0–10, mean of worst/least/average/now; higher is worse."
            ),
            Measure(
                "interference",
                "Pain interference 0–10, mean of the answered interference "
                "items (None with fewer than 4 of 7); higher is worse.",
            ),
        ),
        citation=(
            "Cleeland CS. The Brief Pain Inventory User Guide. MD Anderson Cancer Center, "
            "2009; Cleeland CS, Ryan KM. Ann Acad Med Singap 1994;23(2):129-138."
        ),
        doi=None,
        scorer=_score,
    )
)


def score_bpi(answers: dict[str, Any]) -> Scores:
    """BPI severity and interference (0–10, higher worse), validated."""
    return BPI.score(answers)
