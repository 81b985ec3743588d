"""Where to put the needle(s): approaches, the planner's score, a continuous search and the grid.

Why: a radiologist chooses the approach (dorsal or plantar for a Morton's neuroma, posterior
or distal for a stump, oblique when a bone is in the way, or in the plane of an ultrasound
probe) and then the entry point and depth. The original planner tried 24 fixed points on a
vertical line; this module searches the entry direction, aim point and depth continuously.

Approach (:class:`Approach`): an ``axis`` (unit vector from the target towards the skin, i.e.
from the needle's tip towards its handle), the largest tilt of the needle from that axis, and
optionally an ultrasound plane (a point and a normal): the needle then lies *in* that plane
(its direction is perpendicular to the normal and its aim point is in the plane), as in an
in-plane ultrasound-guided puncture.

Candidate parameters, each scaled to [0, 1] with 0.5 the neutral value: needle tilt (signed;
and azimuth over half a turn, without a plane), two
lateral offsets of the aim point from the neuroma centre (one in a plane), the shift of the
active part along the needle, the protocol option (gas × freeze of the preset), and for two
probes their spacing (and the direction of their separation). The needle's entry is where its
line leaves the planning region; the trajectory check (trajectory.py) refuses a path that
crosses bone or an artery or does not enter through the skin — such a candidate is scored
:data:`REFUSED` without a simulation.

Search (:func:`continuous_search`): the centre of the unit cube, a scrambled Sobol sample
(scipy.stats.qmc; Owen 1998 scrambling, deterministic seed), then Nelder–Mead (scipy.optimize)
restarted from the best sampled point and from the centre (half the local budget each; initial
simplex a quarter of each range), each evaluation a full 3D simulation on the coarse grid;
the best few are confirmed at 0.5 mm by the caller (pipeline.py). Nelder–Mead needs no
gradient (each score is a simulation) and copes with the score's steps better than a gradient
method would.

Score (:func:`score`, higher is better), in the order of the original ranking: feasible (block,
skin above 0 °C, clear path) ≫ the policy (``reversible-block``: no neurotmesis risk;
``neuroma-ablation``: the fraction of the neuroma at or below the neurotmesis threshold) ≫ a
complete block ≫ the skin margin (−140 to +50 °C) and, without a block, how far the best nerve
section is from −20 °C ≫ a shorter freeze.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize
from scipy.stats import qmc

from cryoneuro.errors import GeometryError, InputError

POLICIES = ("reversible-block", "neuroma-ablation")
#: Score of a candidate whose needle path is refused (never simulated).
REFUSED = -1.0e5
#: Search ranges: lateral offset of the aim point from the neuroma centre (± mm), shift of the
#: active part's centre along the needle (± mm), spacing of two probes (mm; 17G probes are
#: placed 5–15 mm apart, so that their iceballs merge: *check*, planning convention).
LATERAL_MM = 3.0
SHIFT_MM = 4.0
#: For longer active parts the depth range grows with them: ± this fraction of the active
#: length (the neuroma then stays inside the active part: 0.4 × 20 mm = ± 8 mm for the 20 mm
#: needle of Cazzato 2016, so its freezing zone can be kept away from the entry's skin).
SHIFT_FRACTION_OF_ACTIVE = 0.4


def shift_range_mm(active_length_mm: float) -> float:
    """The ± depth range of the active part's centre for a needle of this active length."""
    return max(SHIFT_MM, SHIFT_FRACTION_OF_ACTIVE * active_length_mm)


SPACING_MM = (5.0, 12.0)
#: Default budget: Sobol points and Nelder–Mead evaluations (about the old grid's 24).
N_SOBOL = 16
N_LOCAL = 16


@dataclass(frozen=True)
class Approach:
    """Allowed needle directions: within ``max_tilt_deg`` of ``axis`` (target → skin), and in
    the plane (``plane_point_mm``, ``plane_normal``) when one is given."""

    name: str
    axis: tuple[float, float, float]
    max_tilt_deg: float = 0.0
    plane_point_mm: tuple[float, float, float] | None = None
    plane_normal: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        a = np.asarray(self.axis, float)
        if a.shape != (3,) or not np.isfinite(a).all() or np.linalg.norm(a) == 0:
            raise InputError(f"approach '{self.name}': axis must be a non-zero 3-vector")
        object.__setattr__(self, "axis", tuple(a / np.linalg.norm(a)))
        if not 0.0 <= self.max_tilt_deg <= 89.0:
            raise InputError(
                f"approach '{self.name}': max_tilt_deg must be in [0, 89] (got {self.max_tilt_deg})"
            )
        if (self.plane_point_mm is None) != (self.plane_normal is None):
            raise InputError(
                f"approach '{self.name}': give both plane_point_mm and plane_normal, or neither"
            )
        if self.plane_normal is not None:
            n = np.asarray(self.plane_normal, float)
            if n.shape != (3,) or np.linalg.norm(n) == 0:
                raise InputError(
                    f"approach '{self.name}': plane_normal must be a non-zero 3-vector"
                )
            n = n / np.linalg.norm(n)
            object.__setattr__(self, "plane_normal", tuple(n))
            in_plane = a / np.linalg.norm(a) - (a @ n) / np.linalg.norm(a) * n
            if np.linalg.norm(in_plane) < 1e-6:
                raise InputError(
                    f"approach '{self.name}': the axis is perpendicular to the ultrasound plane; "
                    "no needle direction in the plane is near it"
                )
            tilt = math.degrees(math.acos(min(1.0, float(np.linalg.norm(in_plane)))))
            if tilt > self.max_tilt_deg + 1e-9:
                raise InputError(
                    f"approach '{self.name}': the ultrasound plane is {tilt:.0f}° from the "
                    f"axis, more than max_tilt_deg = {self.max_tilt_deg:g}; tilt the plane or "
                    "allow more tilt"
                )

    @property
    def planar(self) -> bool:
        return self.plane_normal is not None

    def describe(self) -> dict:
        return {
            "name": self.name,
            "axis": [round(float(v), 4) for v in self.axis],
            "max_tilt_deg": self.max_tilt_deg,
            "plane_point_mm": None
            if self.plane_point_mm is None
            else [float(v) for v in self.plane_point_mm],
            "plane_normal": None
            if self.plane_normal is None
            else [float(v) for v in self.plane_normal],
        }


#: Named approaches of the bundled phantoms (their frames: anatomy/phantoms.py). Morton's
#: forefoot: z plantar → dorsal, y proximal → distal. Stump: y anterior → posterior, z proximal →
#: distal. "top": the original planner's vertical needle from the top of the region.
_S2 = 1.0 / math.sqrt(2.0)
NAMED_APPROACHES: dict[str, dict[str, Approach]] = {
    "morton_forefoot": {
        "dorsal": Approach("dorsal", (0.0, 0.0, 1.0), 20.0),
        "plantar": Approach("plantar", (0.0, 0.0, -1.0), 20.0),
        # from the web space along the interspace, about 20° above the plantar plane: the
        # needle lies along the nerve (Cazzato 2016's "inter-metatarsal approach")
        "oblique": Approach(
            "oblique (from the web space along the interspace)", (0.0, 0.94, 0.342), 25.0
        ),
    },
    "amputation_stump": {
        "distal": Approach("distal (through the stump end)", (0.0, 0.0, 1.0), 20.0),
        "posterior": Approach("posterior", (0.0, 1.0, 0.0), 20.0),
        "oblique": Approach("oblique (postero-distal)", (0.0, _S2, _S2), 30.0),
    },
}
TOP = Approach("top (vertical, the original planner's)", (0.0, 0.0, 1.0), 0.0)


def approach_for(phantom_name: str, approach: str | Approach | None) -> Approach:
    """An :class:`Approach` from a name ("top", or one of the phantom's named approaches)."""
    if isinstance(approach, Approach):
        return approach
    if approach is None or approach == "top":
        return TOP
    named = NAMED_APPROACHES.get(phantom_name, {})
    if approach not in named:
        known = ", ".join(["top", *named])
        raise InputError(
            f"approach '{approach}' is not known for '{phantom_name}' (known: {known}); "
            "or give an axis (and optionally an ultrasound plane)"
        )
    return named[approach]


#: The skin margin's range in the score (°C). The floor is low enough that the score still
#: tells a −60 °C skin from a −120 °C one (with a floor at −50 °C, every long-needle candidate
#: of the Cazzato protocol scored the same and the search could not move towards a safer skin:
#: measured on the Morton oblique and plantar approaches, 2026-12-01), and high enough that a
#: complete block (+200) still outranks any skin margin without one (200 − 140 > 50).
SKIN_MARGIN_FLOOR_C = -140.0
SKIN_MARGIN_CAP_C = 50.0


def score(candidate, policy: str = "reversible-block") -> float:
    """The planner's score of a simulated candidate (module docstring); higher is better."""
    if policy not in POLICIES:
        raise InputError(f"policy must be one of {POLICIES} (got '{policy}')")
    prof = candidate.profile
    if policy == "reversible-block":
        pol = 0.0 if prof.neurotmesis_risk else 1.0
    else:
        pol = float(candidate.target_neurotmesis)
    s = 1.0e4 * bool(candidate.feasible) + 1.0e3 * pol + 200.0 * bool(prof.complete_block)
    margin = candidate.skin_margin_c
    s += float(
        np.clip(
            margin if np.isfinite(margin) else SKIN_MARGIN_CAP_C,
            SKIN_MARGIN_FLOOR_C,
            SKIN_MARGIN_CAP_C,
        )
    )
    if not prof.complete_block:
        ok = np.isfinite(prof.warmest_c) & (
            prof.eligible if prof.eligible is not None else np.ones(len(prof.warmest_c), bool)
        )
        best = float(prof.warmest_c[ok].min()) if ok.any() else 37.0
        s -= 0.5 * float(np.clip(best - prof.axonotmesis_c, 0.0, 100.0))
    freeze = (
        sum(p.duration_s for p in candidate.spec.phases if p.kind == "freeze")
        if (candidate.spec is not None)
        else 2 * candidate.freeze_s
    )
    return s - freeze / 1000.0


# --- candidate geometry ------------------------------------------------------------------------
def _basis(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``d`` (and to each other)."""
    ref = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(d, ref)
    u /= np.linalg.norm(u)
    return u, np.cross(d, u)


def _rotate(v: np.ndarray, k: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation of ``v`` about the unit axis ``k``."""
    return (
        v * math.cos(angle) + np.cross(k, v) * math.sin(angle) + k * (k @ v) * (1 - math.cos(angle))
    )


@dataclass
class Layout:
    """The names and order of the search parameters for one approach, probe count, options."""

    approach: Approach
    n_probes: int
    n_options: int
    names: list[str] = field(default_factory=list)
    #: ± depth range of the active part's centre along the needle (mm)
    shift_mm: float = SHIFT_MM

    def __post_init__(self) -> None:
        a = self.approach
        names = []
        if a.max_tilt_deg > 0:
            names += ["tilt"] if a.planar else ["tilt", "azimuth"]
        names += ["offset_a"] if a.planar else ["offset_a", "offset_b"]
        names += ["shift"]
        if self.n_options > 1:
            names += ["option"]
        if self.n_probes == 2:
            names += ["spacing"] if a.planar else ["spacing", "separation_angle"]
        self.names = names

    @property
    def dim(self) -> int:
        return len(self.names)

    def decode(self, x: np.ndarray, target: np.ndarray) -> dict:
        """Unit-cube point → direction (tip→handle), probe centres (mm), option index."""
        v = dict(zip(self.names, np.clip(np.asarray(x, float), 0.0, 1.0), strict=True))
        a = self.approach
        axis = np.asarray(a.axis)
        tilt_max = math.radians(a.max_tilt_deg)
        if a.planar:
            n = np.asarray(a.plane_normal)
            d0 = axis - (axis @ n) * n
            d0 /= np.linalg.norm(d0)
            d = _rotate(d0, n, (2 * v.get("tilt", 0.5) - 1) * tilt_max)
            lateral = np.cross(n, d)
            p0 = np.asarray(a.plane_point_mm)
            aim = target - ((target - p0) @ n) * n  # the neuroma centre projected into the plane
            aim = aim + (2 * v["offset_a"] - 1) * LATERAL_MM * lateral
            sep = lateral
        else:
            u, w = _basis(axis)
            # signed tilt: 0.5 is along the axis; the azimuth then needs only half a turn
            tilt = (2 * v.get("tilt", 0.5) - 1) * tilt_max
            az = math.pi * v.get("azimuth", 0.0)
            d = math.cos(tilt) * axis + math.sin(tilt) * (math.cos(az) * u + math.sin(az) * w)
            e1, e2 = _basis(d)
            aim = (
                target
                + (2 * v["offset_a"] - 1) * LATERAL_MM * e1
                + (2 * v["offset_b"] - 1) * LATERAL_MM * e2
            )
            phi = math.pi * v.get("separation_angle", 0.0)
            sep = math.cos(phi) * e1 + math.sin(phi) * e2
        centre = aim + (2 * v["shift"] - 1) * self.shift_mm * d
        option = min(int(v.get("option", 0.0) * self.n_options), self.n_options - 1)
        if self.n_probes == 2:
            spacing = SPACING_MM[0] + v["spacing"] * (SPACING_MM[1] - SPACING_MM[0])
            centres = [centre - 0.5 * spacing * sep, centre + 0.5 * spacing * sep]
        else:
            spacing = 0.0
            centres = [centre]
        tilt_deg = math.degrees(math.acos(float(np.clip(d @ axis, -1.0, 1.0))))
        return {
            "direction": d,
            "centres": centres,
            "option": option,
            "offset_mm": float(np.linalg.norm(aim - target)),
            "shift_mm": float((2 * v["shift"] - 1) * self.shift_mm),
            "tilt_deg": tilt_deg,
            "spacing_mm": spacing,
        }


def entry_point(centre: np.ndarray, direction: np.ndarray, lo, hi, inset_mm: float = 0.25):
    """Where the needle line ``centre + t·direction`` (t > 0) leaves the box [lo, hi], moved
    ``inset_mm`` back inside (the needle enters the region there, in air above the skin)."""
    t_exit = math.inf
    for a in range(3):
        if direction[a] > 1e-12:
            t_exit = min(t_exit, (hi[a] - centre[a]) / direction[a])
        elif direction[a] < -1e-12:
            t_exit = min(t_exit, (lo[a] - centre[a]) / direction[a])
    if not math.isfinite(t_exit) or t_exit <= inset_mm:
        raise GeometryError("the needle's centre is outside the planning region")
    return centre + (t_exit - inset_mm) * direction


# --- the search ----------------------------------------------------------------------------------
@dataclass
class Evaluation:
    x: np.ndarray
    score: float
    candidate: object | None  # None when refused
    spec: object | None
    trajectories: list
    reason: str = ""


def continuous_search(
    evaluate,
    dim: int,
    *,
    n_sobol: int = N_SOBOL,
    n_local: int = N_LOCAL,
    seed: int = 0,
    progress=None,
) -> list[Evaluation]:
    """Sobol sample then Nelder–Mead from the best point; ``evaluate(x) -> Evaluation``.

    Every evaluation is kept (memoised by the point rounded to 1e-4), in the order made.
    """
    seen: dict[tuple, Evaluation] = {}
    done: list[Evaluation] = []

    def run(x) -> Evaluation:
        key = tuple(np.round(np.clip(x, 0.0, 1.0), 4))
        if key not in seen:
            ev = evaluate(np.asarray(key))
            seen[key] = ev
            done.append(ev)
            if progress:
                progress(len(done), ev)
        return seen[key]

    if dim == 0:
        run(np.zeros(0))
        return done
    m = max(1, math.ceil(math.log2(max(n_sobol, 1))))
    sample = qmc.Sobol(d=dim, scramble=True, seed=seed).random_base2(m)[:n_sobol]
    # the centre of the cube first: the needle along the approach's axis through the neuroma
    # centre, no shift (the original grid's first point)
    for x in [np.full(dim, 0.5), *sample]:
        run(x)
    if n_local > 0:
        # Nelder–Mead restarts from the best sampled point and from the centre (the neutral
        # needle), each with half the budget and an initial simplex a quarter of each range
        best = max(done, key=lambda e: e.score)
        starts = [best.x] + ([done[0].x] if not np.array_equal(best.x, done[0].x) else [])
        share = [n_local // len(starts) + (i < n_local % len(starts)) for i in range(len(starts))]
        for x0, budget in zip(starts, share, strict=True):
            _nelder_mead(run, done, np.asarray(x0, float), budget, dim)
    return done


def _nelder_mead(run, done: list, x0: np.ndarray, budget: int, dim: int) -> None:
    """Nelder–Mead (scipy) from ``x0`` for at most ``budget`` new evaluations."""
    start = len(done)
    floor = run(x0).score

    def f(x):
        if len(done) - start >= budget:
            return -floor  # budget spent: flat, Nelder–Mead stops
        return -run(x).score

    step = 0.25
    simplex = [x0] + [
        np.clip(x0 + (step if x0[i] <= 0.75 else -step) * np.eye(dim)[i], 0, 1) for i in range(dim)
    ]
    optimize.minimize(
        f,
        x0,
        method="Nelder-Mead",
        bounds=[(0.0, 1.0)] * dim,
        options={
            "maxfev": budget + dim + 1,
            "initial_simplex": np.array(simplex),
            "xatol": 0.01,
            "fatol": 0.01,
        },
    )


def grid_points(offsets_mm, shifts_mm) -> list[tuple[float, float]]:
    """The original planner's grid: lateral offsets (along x) × shifts along the needle."""
    return [(o, s) for o in offsets_mm for s in shifts_mm]
