"""The plan's warnings: each rule with its meaning and either its source or "user setting".

Why: a warning a clinician cannot trace is noise ("needle passes 1.8 mm from artery (< 3 mm)":
who chose 3 mm, and why?), and a wrong one is worse ("bone frozen" at −3 °C, inside the
tissue's mushy range; "artery frozen −54 °C" with blood modelled to stop once frozen). Every
warning here names its rule; :data:`RULES` says what the rule means, what is clinically
tolerated, and where its threshold comes from — a published source, or a *user setting* with
its default and the reason for it. docs/planning.md lists the same table.

Freezing state (:func:`freezing_state`): tissue freezes over a mushy range (tissue.py: ice
starts at the liquidus, −1 °C for the library's tissues, and the tissue is completely frozen
at the solidus, −8 °C; Rabin & Shitzer 1998). A structure whose minimum lies in that range is
**partially frozen**, below it **frozen**, above it **not frozen**.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryoneuro import injury
from cryoneuro.thermal import boundaries as bd

CVIR_2024 = (
    "Safety and Efficacy of Percutaneous Morton Neuroma Cryoneurolysis Under Ultrasound "
    "Guidance, Cardiovasc Intervent Radiol 2024 (PMID 38438685)"
)


@dataclass(frozen=True)
class Rule:
    id: str
    meaning: str
    basis: str  # "source" or "user setting"
    reference: str  # the source, or the default and the reason for it

    def tag(self) -> str:
        return f"[{self.id}; {self.basis}: {self.reference}]"


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "skin-cold",
            "ice in the skin: cold injury (frostbite, chilblain-type lesions)",
            "user setting",
            "limit 0 °C by default (no ice in the skin); skin cold injury is a reported "
            f"complication: two chilblain-type lesions (CIRSE grade 2) in {CVIR_2024}",
        ),
        Rule(
            "skin-protection",
            "the plan relies on warm saline (or warm water-soaked gauze) on the skin over the "
            "iceball: without it the skin freezes; if the skin cannot be warmed, the plan is "
            "not safe as shown",
            "source",
            "'External skin warming is a critical technique for cutaneous protection when "
            "performing cryoablation of superficial tumors' (Bode, Heithaus, Prologo, CIO "
            "2021-22 poster); 'Warm compress, saline and CO2 have shortcomings in protecting "
            "the skin' (pneumodissection series, Eur Radiol 2016)",
        ),
        Rule(
            "bone-cold",
            "bone partially or completely frozen: reported, not forbidden",
            "user setting",
            "no limit by default; a bone insufficiency fracture (CIRSE grade 2) was reported "
            f"after Morton's neuroma cryoneurolysis in {CVIR_2024}",
        ),
        Rule(
            "artery-wall-cold",
            "tissue at an artery's wall freezes while its blood keeps flowing: tolerated "
            "clinically — flow limits how far ice penetrates the wall and arteries next to "
            "ice rarely occlude; small or non-flowing vessels may thrombose",
            "source",
            "'Cryoablation effects on coronary arteries and veins' (cardiac cryoablation "
            "textbook chapter, thoracickey.com; primary: Aoyama et al.; *check*); no "
            "temperature limit by default (user setting)",
        ),
        Rule(
            "artery-lumen-freezes",
            "the blood would cool to its freezing point across the frozen segment: the model's "
            "open, flowing lumen is then not valid (the vessel may freeze and occlude)",
            "source",
            "mixing-cup energy balance ΔT = Q / (ρ c V̇) with blood properties of the IT'IS "
            "database; blood freezes from −0.6 °C (tissue.py)",
        ),
        Rule(
            "artery-clearance",
            "the needle passes close to an artery: risk of puncture and bleeding",
            "user setting",
            "3 mm by default, about two 17G needle diameters: a planning margin for needle "
            "deflection and targeting error, not a published threshold",
        ),
        Rule(
            "bone-clearance",
            "the needle passes close to bone",
            "user setting",
            "3 mm by default (as for arteries): a planning margin, not a published threshold",
        ),
        Rule(
            "neurotmesis",
            "part of the nerve reaches the neurotmesis range: the sheaths may be injured and "
            "the block may not be reversible (neuroma risk)",
            "source",
            f"≤ {injury.NEUROTMESIS_C:g} °C, Ilfeld, Preciado & Trescot 2016, Expert Rev Med "
            "Devices 13:713 (*check*; cryoneuro.injury)",
        ),
        Rule(
            "device-model",
            "the device energy balance is used outside what it was validated on",
            "source",
            "docs/validation.md (Littrup 2009 calibration and the held-out probe sizes)",
        ),
    )
}


def freezing_state(min_c: float, liquidus_c: float, solidus_c: float) -> str:
    """ "not frozen" above the liquidus, "partially frozen" in the mushy range, else "frozen"."""
    if not np.isfinite(min_c) or min_c > liquidus_c:
        return "not frozen"
    if min_c > solidus_c:
        return "partially frozen"
    return "frozen"


def mushy_range(level, mask: np.ndarray) -> tuple[float, float]:
    """Freezing onset (highest liquidus) and complete freezing (lowest solidus) of the tissues
    under ``mask`` on a planner Level."""
    present = np.unique(level.labels[mask]) if mask.any() else []
    mats = [level.materials[int(m)] for m in present if int(m) < len(level.materials)]
    if not mats:
        return -1.0, -8.0
    return max(m.t_liquidus for m in mats), min(m.t_solidus for m in mats)


def _state_text(name: str, min_c: float, liq: float, sol: float) -> str:
    state = freezing_state(min_c, liq, sol)
    return (
        f"{name}: minimum {min_c:.1f} °C — {state} (ice from {liq:g} °C, completely frozen at "
        f"{sol:g} °C)"
    )


def plan_warnings(
    best, level, *, boundaries, vessel_info: dict, trajectories, protection: dict | None = None
) -> list[str]:
    """All warnings of the chosen candidate, each ending with its rule tag (id; basis; ref).
    ``protection``: the planner's skin-protection record (warned about when applied)."""
    out: list[str] = []
    masks = {k: m & best.result.tissue_mask for k, m in level.structures.items()}
    for s in best.safety:
        mask = masks.get(s.name)
        if mask is None or not mask.any():
            continue
        liq, sol = mushy_range(level, mask)
        if s.name == "skin" and s.limit_c is not None and s.min_c <= s.limit_c:
            out.append(
                _state_text("skin", s.min_c, liq, sol)
                + f", at or below the limit {s.limit_c:g} °C "
                + RULES["skin-cold"].tag()
            )
        elif s.name == "bone" and s.min_c <= liq:
            out.append(_state_text("bone", s.min_c, liq, sol) + " " + RULES["bone-cold"].tag())
        elif s.name == "artery" and s.min_c <= liq:
            if boundaries.arteries == "flowing":
                out.append(
                    _state_text("tissue at the artery wall", s.min_c, liq, sol)
                    + "; the lumen stays open and flowing in the model "
                    f"(blood at {bd.BLOOD_C_IN:g} °C, film h = "
                    f"{vessel_info.get('h_w_m2k', float('nan')):.0f} W/m²/K, "
                    f"{vessel_info.get('velocity_m_s', float('nan')):g} m/s) "
                    + RULES["artery-wall-cold"].tag()
                )
            else:
                out.append(
                    _state_text("artery", s.min_c, liq, sol)
                    + "; blood modelled as a perfusion sink that stops once frozen "
                    "(arteries = 'perfused'): use 'flowing' for a vessel that keeps flowing "
                    + RULES["artery-wall-cold"].tag()
                )
    if protection and protection.get("applied"):
        out.append(
            "skin protection needed: warm saline on the skin within "
            f"{boundaries.saline_radius_mm:g} mm of the entry, held at {boundaries.saline_c:g} °C "
            f"in the model; without it the skin reaches "
            f"{protection['unprotected_skin_min_c']:.1f} °C, with it "
            f"{protection['protected_skin_min_c']:.1f} °C " + RULES["skin-protection"].tag()
        )
    drop = blood_temperature_drop(best, vessel_info)
    if drop is not None and drop >= bd.BLOOD_C_IN - bd.BLOOD_FREEZING_ONSET_C:
        out.append(
            f"the blood would cool by {drop:.0f} K across the frozen segment "
            + RULES["artery-lumen-freezes"].tag()
        )
    if best.policy == "reversible-block" and best.profile.neurotmesis_risk:
        coldest = np.nanmin(best.profile.coldest_c)
        out.append(
            f"nerve: coldest point {coldest:.0f} °C, in the neurotmesis range; under the "
            "'reversible-block' policy this is penalised — choose 'neuroma-ablation' if "
            "intended " + RULES["neurotmesis"].tag()
        )
    for t in trajectories:
        for w in t.warnings:
            rule = "bone-clearance" if " bone " in f" {w} " else "artery-clearance"
            out.append(f"{w} {RULES[rule].tag()}")
    return out


def blood_temperature_drop(best, vessel_info: dict) -> float | None:
    """Mixing-cup cooling of the blood (K) by the heat it gave during the freezes, or None."""
    heat = (best.boundary_heat_j or {}).get("flowing blood")
    flow = vessel_info.get("flow_ml_s") if vessel_info else None
    if heat is None or not flow:
        return None
    freeze_s = sum(p.duration_s for p in best.result.phases if p.kind == "freeze") or 1.0
    # heat flowed from the blood into the tissue: the reservoir's collected heat is negative
    return bd.blood_temperature_drop_c(max(-heat, 0.0) / freeze_s, flow)
