"""Tissue property library: unfrozen and frozen thermal properties, latent heat, perfusion.

The thermal engine works with *volumetric* properties (:class:`ThermalProperties`); the library
builds them from the mass-specific values that tissue databases publish.

Model (per tissue, a two-phase material with a mushy range):

* unfrozen: conductivity ``k_u`` and volumetric heat capacity ``C_u = rho * c``;
* frozen: the tissue water turns to ice. With water mass fraction ``w`` we use the
  linear mixing rule of Choi & Bischof (2010, Cryobiology 60:52–70, eqs. 3–4)
  ``k_f = k_u + w (k_ice - k_water)`` and ``c_f = c - w (c_water - c_ice)``; ice
  ``k = 2.22 W/m/K``, ``c = 2.05 kJ/kg/K``; water ``k = 0.60``, ``c = 4.18`` (CRC Handbook);
* latent heat ``L = rho * w * 334 kJ/kg`` (docs/domain-facts.md; latent heat of fusion of water);
* phase change spread linearly over ``[t_solidus, t_liquidus]`` (tissue: −8 to −1 °C,
  docs/domain-facts.md after Rabin & Shitzer 1998, J Biomech Eng 120:32; water-like gels −0.5 to 0
  °C);
* Pennes perfusion ``omega_b rho_b c_b`` in W/m³/K and metabolic heat in W/m³, both applied only
  to the unfrozen (liquid) fraction.

Sources of the unfrozen values: the IT'IS tissue property database (Hasgall et al.,
DOI 10.13099/VIP21000-04-0); muscle, skin and bone as listed in docs/domain-facts.md; fat, nerve,
tendon/ligament and blood vessel wall are IT'IS v4 averages. Perfusion in the database is a
heat-transfer rate in ml/min/kg, converted with ``rho_b c_b = 1050 * 3617 J/m³/K``. Frozen
properties below about −40 °C are poorly known (Choi & Bischof 2010): every value here is a
parameter that a case file can override and an uncertainty sweep can vary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from cryoneuro.errors import InputError

#: Latent heat of fusion of water, J/kg (CRC Handbook).
LATENT_HEAT_WATER_J_PER_KG = 334e3
K_ICE, K_WATER = 2.22, 0.60  # W/m/K at 0 °C (CRC Handbook)
C_ICE, C_WATER = 2050.0, 4180.0  # J/kg/K (CRC Handbook)
#: Volumetric heat capacity of blood, J/m³/K (IT'IS: rho 1050 kg/m³, c 3617 J/kg/K).
RHO_C_BLOOD = 1050.0 * 3617.0


@dataclass(frozen=True)
class ThermalProperties:
    """Volumetric thermal properties of one material, as the engine uses them (SI, °C)."""

    name: str
    k_unfrozen: float  # W/m/K
    k_frozen: float  # W/m/K
    c_unfrozen: float  # J/m³/K
    c_frozen: float  # J/m³/K
    latent: float  # J/m³
    t_liquidus: float  # °C, freezing starts
    t_solidus: float  # °C, fully frozen
    perfusion: float = 0.0  # W/m³/K (omega_b rho_b c_b), unfrozen fraction only
    metabolism: float = 0.0  # W/m³, unfrozen fraction only
    source: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float | int) and not math.isfinite(value):
                raise InputError(f"tissue '{self.name}': {f.name} is {value}; give a finite number")
        for key in ("k_unfrozen", "k_frozen", "c_unfrozen", "c_frozen"):
            if getattr(self, key) <= 0:
                raise InputError(
                    f"tissue '{self.name}': {key} must be positive (got {getattr(self, key)})"
                )
        for key in ("latent", "perfusion", "metabolism"):
            if getattr(self, key) < 0:
                raise InputError(
                    f"tissue '{self.name}': {key} must be >= 0 (got {getattr(self, key)})"
                )
        if not self.t_solidus < self.t_liquidus:
            raise InputError(
                f"tissue '{self.name}': t_solidus ({self.t_solidus} C) must be below "
                f"t_liquidus ({self.t_liquidus} C)"
            )

    def with_overrides(self, **overrides: float) -> ThermalProperties:
        """A copy with some properties replaced (unknown names are an error)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InputError(
                f"unknown tissue propert{'ies' if len(unknown) > 1 else 'y'} {unknown}; "
                f"known: {sorted(known - {'name', 'source'})}"
            )
        changes: dict[str, Any] = dict(overrides)
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def alpha_frozen(self) -> float:
        """Thermal diffusivity of the frozen material, m²/s."""
        return self.k_frozen / self.c_frozen

    @property
    def alpha_unfrozen(self) -> float:
        return self.k_unfrozen / self.c_unfrozen


def from_mass_properties(
    name: str,
    *,
    density: float,
    specific_heat: float,
    conductivity: float,
    water_fraction: float,
    perfusion_ml_min_kg: float = 0.0,
    metabolism_w_kg: float = 0.0,
    t_liquidus: float = -1.0,
    t_solidus: float = -8.0,
    source: str = "",
) -> ThermalProperties:
    """Build volumetric two-phase properties from database (mass-specific) values.

    ``perfusion_ml_min_kg`` is the IT'IS heat-transfer rate; it becomes
    ``omega_b rho_b c_b = HTR[ml/min/kg] * 1e-6 / 60 * density * RHO_C_BLOOD`` in W/m³/K.
    """
    if not 0.0 <= water_fraction <= 1.0:
        raise InputError(f"tissue '{name}': water_fraction must be in [0, 1]")
    k_f = conductivity + water_fraction * (K_ICE - K_WATER)
    c_f = specific_heat - water_fraction * (C_WATER - C_ICE)
    omega = perfusion_ml_min_kg * 1e-6 / 60.0 * density  # 1/s
    return ThermalProperties(
        name=name,
        k_unfrozen=conductivity,
        k_frozen=k_f,
        c_unfrozen=density * specific_heat,
        c_frozen=density * c_f,
        latent=density * water_fraction * LATENT_HEAT_WATER_J_PER_KG,
        t_liquidus=t_liquidus,
        t_solidus=t_solidus,
        perfusion=omega * RHO_C_BLOOD,
        metabolism=metabolism_w_kg * density,
        source=source,
    )


_ITIS = "IT'IS database v4 (Hasgall et al., doi:10.13099/VIP21000-04-0)"


def _perfusion_ml_min_kg(w_per_m3k: float, density: float) -> float:
    """Inverse of the conversion above, for values that docs/domain-facts.md gives in W/m³/K."""
    return w_per_m3k / RHO_C_BLOOD / density * 60.0 / 1e-6


#: The bundled library. Keys are the names used in case files and label maps.
TISSUES: dict[str, ThermalProperties] = {
    "muscle": from_mass_properties(
        "muscle",
        density=1050,
        specific_heat=3639,
        conductivity=0.56,
        water_fraction=0.75,
        perfusion_ml_min_kg=_perfusion_ml_min_kg(3240, 1050),
        metabolism_w_kg=0.91,
        source=_ITIS + " as in docs/domain-facts.md; water fraction 0.75",
    ),
    "skin": from_mass_properties(
        "skin",
        density=1125,
        specific_heat=3500,
        conductivity=0.42,
        water_fraction=0.65,
        perfusion_ml_min_kg=_perfusion_ml_min_kg(8065, 1125),
        metabolism_w_kg=1.65,
        source=_ITIS + " as in docs/domain-facts.md; water fraction 0.65",
    ),
    "bone": from_mass_properties(
        "bone",
        density=1990,
        specific_heat=1300,
        conductivity=0.40,
        water_fraction=0.15,
        perfusion_ml_min_kg=_perfusion_ml_min_kg(3400, 1990),
        metabolism_w_kg=0.15,
        source=_ITIS + " (cortical) as in docs/domain-facts.md; water fraction 0.15",
    ),
    "fat": from_mass_properties(
        "fat",
        density=911,
        specific_heat=2348,
        conductivity=0.21,
        water_fraction=0.20,
        perfusion_ml_min_kg=33.0,
        metabolism_w_kg=0.51,
        source=_ITIS + " (fat); water fraction 0.20",
    ),
    "nerve": from_mass_properties(
        "nerve",
        density=1075,
        specific_heat=3613,
        conductivity=0.49,
        water_fraction=0.70,
        perfusion_ml_min_kg=159.0,
        metabolism_w_kg=1.0,
        source=_ITIS + " (nerve); water fraction 0.70",
    ),
    "tendon": from_mass_properties(
        "tendon",
        density=1142,
        specific_heat=3432,
        conductivity=0.46,
        water_fraction=0.62,
        perfusion_ml_min_kg=29.0,
        metabolism_w_kg=0.3,
        source=_ITIS + " (tendon/ligament); water fraction 0.62",
    ),
    "blood_vessel": from_mass_properties(
        "blood_vessel",
        density=1102,
        specific_heat=3306,
        conductivity=0.46,
        water_fraction=0.70,
        perfusion_ml_min_kg=150.0,
        metabolism_w_kg=1.0,
        source=_ITIS + " (blood vessel wall); water fraction 0.70",
    ),
    # Flowing blood in a lumen: modelled as a strong Pennes sink towards arterial temperature
    # (an effective perfusion of 1e6 W/m³/K ≈ a 0.3 s exchange time), the usual lumped
    # treatment of large vessels in cryoablation planning (e.g. Rossmann & Haemmerich 2014,
    # Crit Rev Biomed Eng 42:467).
    "blood": ThermalProperties(
        name="blood",
        k_unfrozen=0.52,
        k_frozen=2.0,
        c_unfrozen=1050 * 3617,
        c_frozen=1050 * 1950,
        latent=1050 * 0.8 * LATENT_HEAT_WATER_J_PER_KG,
        t_liquidus=-0.6,
        t_solidus=-8.0,
        perfusion=1.0e6,
        metabolism=0.0,
        source=_ITIS + " (blood); flow as effective perfusion",
    ),
    # Agar/water gel phantoms: water and ice properties (CRC Handbook), 98 % water,
    # narrow mushy range (docs/domain-facts.md), no perfusion.
    "gel": ThermalProperties(
        name="gel",
        k_unfrozen=0.60,
        k_frozen=2.22,
        c_unfrozen=4.18e6,
        c_frozen=1000 * 2050.0,
        latent=0.98 * 1000 * LATENT_HEAT_WATER_J_PER_KG,
        t_liquidus=0.0,
        t_solidus=-0.5,
        source="water/ice, CRC Handbook; 98 % water agar gel",
    ),
}
# Air around the body: its real conductivity (0.026 W/m/K, CRC Handbook) makes the skin surface
# nearly adiabatic. Its heat capacity is raised to tissue scale (1 MJ/m³/K instead of 1.2 kJ) so
# that it does not set the explicit time step; with this conductivity the heat air stores or
# passes is negligible either way. No latent heat, no perfusion.
TISSUES["air"] = ThermalProperties(
    name="air",
    k_unfrozen=0.026,
    k_frozen=0.026,
    c_unfrozen=1.0e6,
    c_frozen=1.0e6,
    latent=0.0,
    t_liquidus=-150.0,
    t_solidus=-151.0,
    source="CRC Handbook (air k); capacity raised, see comment",
)
TISSUES["tendon_ligament"] = replace(TISSUES["tendon"], name="tendon_ligament")
TISSUES["gel_phantom"] = replace(TISSUES["gel"], name="gel_phantom")


def get_tissue(name: str) -> ThermalProperties:
    """Look up a bundled tissue by name (case-insensitive, '-' or ' ' for '_')."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return TISSUES[key]
    except KeyError:
        raise InputError(
            f"unknown tissue '{name}'; choose one of {sorted(TISSUES)} or give a table of "
            "properties"
        ) from None


def tissue_from_mapping(
    spec: str | Mapping[str, Any], *, name: str = "custom"
) -> ThermalProperties:
    """A tissue from a case file: a library name, or a table of volumetric properties.

    A table may name a ``base`` library tissue and override some of its properties; without a
    base, every property except perfusion and metabolism must be given.
    """
    if isinstance(spec, str):
        return get_tissue(spec)
    spec = dict(spec)
    base = spec.pop("base", None)
    spec.pop("name", None)
    for key, value in spec.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InputError(f"tissue '{name}': {key} must be a number (got {value!r})")
    values = {k: float(v) for k, v in spec.items()}
    if base is not None:
        return replace(get_tissue(str(base)).with_overrides(**values), name=name)
    required = [
        "k_unfrozen",
        "k_frozen",
        "c_unfrozen",
        "c_frozen",
        "latent",
        "t_liquidus",
        "t_solidus",
    ]
    missing = [k for k in required if k not in values]
    if missing:
        raise InputError(
            f"tissue '{name}': missing {missing}; give them or set base = \"muscle\" (or another "
            "library tissue) to start from"
        )
    known = set(required) | {"perfusion", "metabolism"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(
            f"tissue '{name}': unknown propert{'ies' if len(unknown) > 1 else 'y'} "
            f"{unknown}; known: {sorted(known)}"
        )
    return ThermalProperties(name=name, source="case file", **values)
