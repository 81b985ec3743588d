"""What the evidence synthesis pools and how: outcomes, scales, τ² methods and defaults.

Why a module of its own: the computation (:mod:`cryoneuro.analysis.meta`), the figures
(:mod:`cryoneuro.analysis.meta_plots`) and the report (:mod:`cryoneuro.analysis.meta_io`) all
name the same outcomes and methods; keeping them here lets each of those import them without
importing one another. The definitions and sources are in :mod:`cryoneuro.analysis.meta`.
"""

from __future__ import annotations

from typing import Any

Z975 = 1.959963984540054
R_DEFAULT = 0.5
R_SENSITIVITY = (0.2, 0.5, 0.8)
CONTINUITY = 0.5
METHODS = ("dl", "pm", "reml")
METHOD_LABEL = {
    "fe": "fixed effect",
    "dl": "DerSimonian–Laird",
    "pm": "Paule–Mandel",
    "reml": "REML",
}

#: Analysis outcomes: which CSV outcome codes each pools and on which scale.
OUTCOMES: dict[str, dict[str, Any]] = {
    "pain": {
        "codes": ("pain_nrs", "pain_vas"),
        "kind": "change",
        "label": "Pain (0–10 NRS or VAS), mean change from baseline",
    },
    "pain_nrs": {
        "codes": ("pain_nrs",),
        "kind": "change",
        "label": "Pain NRS (0–10), mean change from baseline",
    },
    "pain_vas": {
        "codes": ("pain_vas",),
        "kind": "change",
        "label": "Pain VAS (0–10), mean change from baseline",
    },
    "pain_md": {
        "codes": ("pain_md",),
        "kind": "difference",
        "label": "Pain (0–10), difference in change, cryoablation − control (RCT)",
    },
    "responder": {
        "codes": ("responder",),
        "kind": "proportion",
        "label": "Responders (pain relief as defined by each study), proportion",
    },
    "complication": {
        "codes": ("complication",),
        "kind": "proportion",
        "label": "Procedure-related complications, proportion",
    },
}
#: Outcomes analysed when none is asked for ("pain" already holds the NRS and VAS rows).
DEFAULT_OUTCOMES = ("pain", "pain_md", "responder", "complication")


MEASURES: dict[str, tuple[str, str, bool]] = {
    "RR": ("log risk ratio", "risk ratio", True),
    "OR": ("log odds ratio", "odds ratio", True),
    "RD": ("risk difference", "risk difference", False),
    "GEN": ("effect", "effect", False),
}


def natural(disp: dict[str, float], key: str, default: float) -> float:
    """A pooled value on the natural scale (proportion or ratio) when there is one."""
    return disp.get(f"{key}_proportion", disp.get(f"{key}_natural", default))
