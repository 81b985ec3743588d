"""Freeze protocols from the literature as named presets, each with its source sentence.

Why: a radiologist plans with a protocol that was used on patients (a device class, a gas, the
freeze and thaw times), not with whatever grid of durations a program happens to try. Each
preset names the catalogue device (``data/devices.toml``: its geometry and energy balance
drive the probe wall, docs/probe.md), the phases, the published sentences it rests on, and
what the source leaves open (an assumption, said so). Sources are listed in docs/planning.md.

A preset may offer several gases and freeze durations (``options``); the planner's search
chooses among them (:mod:`cryoneuro.planning.search`). A fixed published protocol offers one.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryoneuro.errors import InputError
from cryoneuro.thermal import Phase


@dataclass(frozen=True)
class ProtocolPreset:
    """A named protocol: device class, the (gas, freeze) options, and how phases are built."""

    name: str
    device: str  # catalogue model (data/devices.toml)
    options: tuple[tuple[str, float], ...]  # (gas, freeze_s) choices
    cycles: int  # freeze cycles
    thaw_s: float  # thaw between (and, for a single cycle, after) the freezes
    thaw_kind: str  # "thaw-passive" or "thaw-active"
    source: str
    source_text: str
    assumptions: str = ""
    final_thaw: bool = False  # a thaw after the last freeze (e.g. to free the probe)

    def phases(self, freeze_s: float) -> list[Phase]:
        out: list[Phase] = []
        for c in range(self.cycles):
            out.append(Phase("freeze", freeze_s))
            if c < self.cycles - 1 or self.final_thaw:
                out.append(Phase(self.thaw_kind, self.thaw_s))
        return out

    def describe(self) -> dict:
        return {
            "name": self.name,
            "device": self.device,
            "options": [{"gas": g, "freeze_s": f} for g, f in self.options],
            "cycles": self.cycles,
            "thaw_s": self.thaw_s,
            "thaw_kind": self.thaw_kind,
            "source": self.source,
            "source_text": self.source_text,
            "assumptions": self.assumptions,
        }


PRESETS: dict[str, ProtocolPreset] = {
    "cazzato-2016": ProtocolPreset(
        name="cazzato-2016",
        device="argon-17G-seed-class",
        options=(("argon", 150.0),),
        cycles=1,
        thaw_s=30.0,
        thaw_kind="thaw-active",
        final_thaw=True,
        source=(
            "Cazzato et al. 2016, Cardiovasc Intervent Radiol 39:1491 (Morton's neuroma, "
            "MR-guided), as summarised by NICE (IPG747 consultation, summary of key evidence, "
            "https://nice.org.uk/consultations/1849/4/summary-of-key-evidence-on-percutaneous-"
            "image-guided-cryoablation-of-peripheral-neuroma-for-chronic)"
        ),
        source_text=(
            "After a small skin incision, a 2-cm active tip cryoprobe (Ice-Seed, Galil Medical "
            "Inc., US) was advanced into the centre of the lesion using an inter-metatarsal "
            "approach. A single therapeutic freezing cycle lasting 150 seconds was done, and "
            "ice-ball growth was monitored throughout the procedure. [...] Finally, a short "
            "thawing cycle was applied to enable cryoprobe withdrawal."
        ),
        assumptions=(
            "argon (the Ice-Seed is an argon/helium J-T needle); the 'short thawing cycle' is "
            "modelled as a 30 s active (helium) thaw: its length is not given. The 90 s "
            "re-freeze after a repositioning is not modelled."
        ),
    ),
    "prologo-2017": ProtocolPreset(
        name="prologo-2017",
        device="argon-17G-sphere-class",
        options=(("argon", 60.0), ("argon", 120.0)),
        cycles=2,
        thaw_s=30.0,
        thaw_kind="thaw-passive",
        source=(
            "Prologo et al. 2017, J Vasc Interv Radiol (phantom limb pain, CT-guided), "
            "ClinicalTrials.gov NCT02366832 (https://clinicaltrials.gov/ct2/show/NCT02366832)"
        ),
        source_text=(
            "Under CT guidance, the corresponding nerve will be targeted with a 17g probe. "
            "Two freeze-thaw cycles will be undertaken."
        ),
        assumptions=(
            "the freeze and thaw durations are not given in the registration: 60 or 120 s "
            "freezes with a 30 s passive thaw are the planner's choices"
        ),
    ),
    "planner-double-freeze": ProtocolPreset(
        name="planner-double-freeze",
        device="argon-17G-sphere-class",
        options=tuple((g, f) for g in ("nitrous-oxide", "argon") for f in (60.0, 120.0)),
        cycles=2,
        thaw_s=30.0,
        thaw_kind="thaw-passive",
        source="planning convention of cryoneuro (docs/planning.md): two freeze-thaw cycles "
        "after Prologo 2017 with freezes short enough for a 25 mm forefoot",
        source_text="",
        assumptions="nitrous oxide is run through the 17G argon needle's energy balance "
        "(scaled, docs/probe.md)",
    ),
}
DEFAULT_PRESET = "planner-double-freeze"


def get_preset(name: str) -> ProtocolPreset:
    try:
        return PRESETS[str(name).strip().lower()]
    except KeyError:
        raise InputError(f"unknown protocol '{name}'; choose one of {', '.join(PRESETS)}") from None


def custom_preset(
    gases, freezes_s, *, device: str, thaw_s: float = 30.0, cycles: int = 2
) -> ProtocolPreset:
    """A user's own (gas × freeze) set run as freeze–passive thaw cycles (a user setting)."""
    opts = tuple((str(g), float(f)) for g in gases for f in freezes_s)
    if not opts:
        raise InputError("give at least one gas and one freeze duration")
    return ProtocolPreset(
        name="custom",
        device=device,
        options=opts,
        cycles=cycles,
        thaw_s=thaw_s,
        thaw_kind="thaw-passive",
        source="user setting",
        source_text="",
    )
