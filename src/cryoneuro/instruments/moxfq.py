"""MOXFQ: Manchester–Oxford Foot Questionnaire (16 items, 0–4), three domains and the Index.

Sources
-------
- Dawson J, Coffey J, Doll H, et al. A patient-based questionnaire to assess outcomes of foot
  surgery: validation in the context of surgery for hallux valgus. Qual Life Res
  2006;15(7):1211-1222. doi:10.1007/s11136-006-0061-5 — 16 items in three domains:
  walking/standing (7 items), pain (5), social interaction (4); confirmed from the abstract.
- Morley D, Jenkinson C, Doll H, et al. The Manchester–Oxford Foot Questionnaire (MOXFQ):
  development and validation of a summary index score. Bone Joint Res 2013;2(4):66-69.
  doi:10.1302/2046-3758.24.2000147 — the MOXFQ-Index, all 16 items summed and scaled 0–100.

*check*: the item → domain mapping below (walking/standing 2–8, pain 1, 11, 12, 15, 16, social
interaction 9, 10, 13, 14) is the commonly cited one; it agrees with the domain sizes of Dawson
2006 and the item wording (q1 "pain in my foot", q15 "describe the pain", q16 "pain at
night"), but the licensed user manual (Oxford University Innovation) could not be read to
confirm it. Likewise the missing-item rule is the one commonly reported from the manual.
"""

from __future__ import annotations

from typing import Any

from cryoneuro.errors import InputError
from cryoneuro.instruments.base import Instrument, Item, Measure, Scores, register

#: domain → item numbers (*check* against the user manual, see module docstring).
DOMAINS: dict[str, tuple[int, ...]] = {
    "walking_standing": (2, 3, 4, 5, 6, 7, 8),
    "pain": (1, 11, 12, 15, 16),
    "social_interaction": (9, 10, 13, 14),
}
ITEM_MAX = 4
#: At most this many unanswered items per domain are imputed (*check*, see module docstring).
MAX_MISSING_PER_DOMAIN = 1


def _domain_items(answers: dict[str, Any], numbers: tuple[int, ...]) -> list[float] | None:
    """The domain's item values with at most one missing item imputed, or None.

    Rule (as commonly reported from the MOXFQ user manual, *check*): a domain score may be
    computed when no more than one of its items is missing; the missing item takes the mean of
    the answered items of the same domain. With more missing, the domain is not scored.
    """
    answered = [float(answers[f"q{i}"]) for i in numbers if f"q{i}" in answers]
    missing = len(numbers) - len(answered)
    if missing > MAX_MISSING_PER_DOMAIN or not answered:
        return None
    mean = sum(answered) / len(answered)
    return answered + [mean] * missing


def _score(answers: dict[str, Any]) -> Scores:
    """Each domain: sum of its items / (4 × items) × 100 (Dawson 2006). Index: sum of all 16
    (imputed) items / 64 × 100 (Morley 2013), only when all three domains can be scored."""
    if not answers:
        raise InputError("moxfq: no items answered (q1–q16, each an integer 0–4)")
    out: Scores = {}
    total, complete = 0.0, True
    for domain, numbers in DOMAINS.items():
        values = _domain_items(answers, numbers)
        if values is None:
            out[domain] = None
            complete = False
            continue
        out[domain] = 100.0 * sum(values) / (ITEM_MAX * len(numbers))
        total += sum(values)
    n_items = sum(len(v) for v in DOMAINS.values())
    out["index"] = 100.0 * total / (ITEM_MAX * n_items) if complete else None
    return out


MOXFQ = register(
    Instrument(
        code="moxfq",
        label="MOXFQ (Manchester–Oxford Foot Questionnaire)",
        items=tuple(
            Item(
                f"q{i}",
                0,
                ITEM_MAX,
                required=False,
                label=f"item {i}, 0 (none of the time / no pain) – 4 (all of the time)",
            )
            for i in range(1, 17)
        ),
        measures=(
            Measure(
                "walking_standing", "Walking/standing domain 0–100 (items 2–8); higher is worse."
            ),
            Measure("pain", "Pain domain 0–100 (items 1, 11, 12, 15, 16); higher is worse."),
            Measure(
                "social_interaction",
                "Social interaction domain 0–100 (items 9, 10, 13, 14); higher is worse.",
            ),
            Measure("index", "MOXFQ-Index 0–100 over all 16 items (Morley 2013); higher is worse."),
        ),
        citation=(
            "Dawson J, et al. A patient-based questionnaire to assess outcomes of foot "
            "surgery: validation in the context of surgery for hallux valgus. Qual Life Res "
            "2006;15(7):1211-1222. Index: Morley D, et al. Bone Joint Res 2013;2(4):66-69 "
            "(doi 10.1302/2046-3758.24.2000147)."
        ),
        doi="10.1007/s11136-006-0061-5",
        notes=(
            (
                "Items are optional one by one: a domain is scored with at most one missing item "
                "(imputed as the mean of the domain's answered items), otherwise it is None; the "
                "Index needs all three domains. Mapping and rule: *check* against the user manual."
            ),
        ),
        scorer=_score,
    )
)


def score_moxfq(answers: dict[str, Any]) -> Scores:
    """The three MOXFQ domains and the MOXFQ-Index, each 0–100 (higher worse), validated."""
    return MOXFQ.score(answers)
