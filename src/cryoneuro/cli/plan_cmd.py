"""`cryoneuro plan CASE.toml --out DIR`: plan on a patient's (or a phantom's) labelled images.

The anatomy case file::

    [anatomy]
    labels = "labels.nii.gz"          # label map (NIfTI, NRRD or a DICOM folder), relative paths
    image = "image.nii.gz"            # optional CT/MR, same grid as the labels
    label_names = "labels.json"       # Slicer .ctbl, ITK-SNAP .txt, JSON or TOML table
    tissue_map = { neuroma = "nerve" }   # label name -> tissue library (added to the defaults)

    [structures]
    target = "neuroma"
    nerve = "digital_nerve"
    skin = "skin"
    arteries = ["digital_artery"]
    bones = ["metatarsal", "phalanx"]

    [nerve]
    centreline_mm = [[24.5, 0, 11], [24.5, 27, 10], [24.5, 35, 11]]   # image (LPS) mm
    end_organ_mm = [24.5, 35, 11]
    neuroma_type = "morton"  # optional: morton (default) | stump | traumatic (relief mechanism)
    # block_proximal_to_mm = 43.6     # optional, stumps: arc length of the bulb's widest section

    [plan]                            # all optional
    search = "continuous"             # or "grid" (the original vertical grid: offsets × shifts)
    protocol = "cazzato-2016"         # a preset (planning/protocols.py); default: gases × freezes_s
    gases = ["nitrous-oxide", "argon"]
    freezes_s = [60, 120]
    offsets_mm = [0, -2.5, 2.5]       # grid only
    shifts_mm = [0, 2]                # grid only
    approach = "plantar"              # a phantom's named approach, or "top" (default)
    approach_axis = [0, 0, -1]        # or your own: target -> skin direction (image mm frame)
    max_tilt_deg = 20                 # with approach_axis
    plane_point_mm = [24.5, 27, 10]   # optional ultrasound plane: the needle lies in it
    plane_normal = [1, 0, 0]
    n_probes = 1                      # 1 or 2
    policy = "reversible-block"       # or "neuroma-ablation"
    skin = "convective"               # or "warm-saline", "adiabatic"
    skin_protection = "if-needed"     # or "never": warm saline only when the skin would freeze
    arteries = "flowing"              # or "perfused"
    artery_velocity_m_s = 0.1         # user setting (Doppler)

Or from a 3D Slicer segmentation or a DICOM SEG (docs/case-file.md), where [structures] and
[nerve] are optional (roles from the segment names, the centreline from the nerve segment)::

    [anatomy]
    segmentation = "case.seg.nrrd"    # or a DICOM SEG file, e.g. "seg.dcm"
    image = "ct/"                     # the DICOM series folder (or NIfTI/NRRD) it was drawn on
    segment_map = { "N. digitalis III" = "nerve", "Flexor" = "muscle", "Vein" = "ignore" }
    unlabelled_tissue = "fat"         # voxels inside the body in no segment

    [nerve]                           # optional here; overrides what is extracted
    end_organ_hint_mm = [24, 40, 11]  # a point near the end organ: that end is distal

See docs/case-file.md and docs/planning.md.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer
from pydantic import ConfigDict, Field, ValidationError

from cryoneuro.cli._app import app, emit_json, out, user_errors
from cryoneuro.errors import CaseFileError
from cryoneuro.input_checks import MAX_PROTOCOL_S, StrictKinds

Vec3 = tuple[float, float, float]


class _S(StrictKinds):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AnatomySpec(_S):
    labels: str | None = None
    #: a 3D Slicer .seg.nrrd or a DICOM SEG file instead of labels (anatomy.patient)
    segmentation: str | None = None
    #: segment name -> role (target, nerve, skin, artery, bone), tissue, or "ignore"
    segment_map: dict[str, str] = Field(default_factory=dict)
    unlabelled_tissue: str = "fat"
    image: str | None = None
    label_names: str | dict[str, str] | None = None
    tissue_map: dict[str, str] = Field(default_factory=dict)


class StructuresSpec(_S):
    target: str
    nerve: str
    skin: str
    arteries: list[str] = Field(default_factory=list)
    bones: list[str] = Field(default_factory=list)


class NerveSpec(_S):
    #: both required with a label map; with a segmentation extracted unless given
    centreline_mm: Annotated[list[Vec3], Field(min_length=2)] | None = None
    end_organ_mm: Vec3 | None = None
    end_organ_hint_mm: Vec3 | None = None
    #: relief mechanism and published series (cryoneuro.regrowth); the plan records it
    neuroma_type: Literal["morton", "stump", "traumatic"] = "morton"
    #: a block counts only proximal to this arc length (the bulb's widest section;
    #: injury.nerve_profile)
    block_proximal_to_mm: Annotated[float, Field(ge=0)] | None = None


class PlanSpec(_S):
    gases: list[str] = Field(default_factory=lambda: ["nitrous-oxide", "argon"])
    offsets_mm: list[float] | None = None  # grid only (default [0, -2.5, 2.5])
    shifts_mm: list[float] | None = None  # grid only (default [0, 2])
    freezes_s: list[Annotated[float, Field(gt=0)]] = Field(default_factory=lambda: [60.0, 120.0])
    #: "device": the catalogue probe's energy balance (default); "held": wall at the gas's boiling
    #: point
    drive: Literal["device", "held"] = "device"
    search: Literal["continuous", "grid"] = "continuous"
    protocol: str | None = None
    approach: str | None = None
    approach_axis: Vec3 | None = None
    max_tilt_deg: Annotated[float, Field(ge=0, le=89)] = 20.0
    plane_point_mm: Vec3 | None = None
    plane_normal: Vec3 | None = None
    n_probes: Literal[1, 2] = 1
    policy: Literal["reversible-block", "neuroma-ablation"] = "reversible-block"
    skin: Literal["convective", "warm-saline", "adiabatic"] = "convective"
    #: "if-needed": re-confirm with warm saline when the best blocking plan freezes the skin
    skin_protection: Literal["if-needed", "never"] = "if-needed"
    arteries: Literal["flowing", "perfused"] = "flowing"
    artery_velocity_m_s: Annotated[float, Field(gt=0)] = 0.1


class AnatomyCase(_S):
    anatomy: AnatomySpec
    structures: StructuresSpec | None = None
    nerve: NerveSpec = Field(default_factory=NerveSpec)
    plan: PlanSpec = Field(default_factory=PlanSpec)

    def check_sources(self, source: str) -> None:
        """One line naming the field when the anatomy's sources do not fit together."""
        a = self.anatomy
        if (a.labels is None) == (a.segmentation is None):
            raise CaseFileError(f"{source}: [anatomy] needs exactly one of labels or segmentation")
        if a.labels is not None:
            missing = [
                f
                for f, v in (
                    ("[structures]", self.structures),
                    ("nerve.centreline_mm", self.nerve.centreline_mm),
                    ("nerve.end_organ_mm", self.nerve.end_organ_mm),
                )
                if v is None
            ]
            if missing:
                raise CaseFileError(f"{source}: with anatomy.labels, give {', '.join(missing)}")
            if a.segment_map:
                raise CaseFileError(
                    f"{source}: anatomy.segment_map applies to a segmentation; with labels use "
                    "[structures] and tissue_map"
                )
        elif a.image is None:
            raise CaseFileError(
                f"{source}: with anatomy.segmentation give anatomy.image (the CT/MR it was drawn "
                "on: a DICOM series folder, NIfTI or NRRD); the plan is drawn and exported on it"
            )
        elif self.structures is not None:
            raise CaseFileError(
                f"{source}: with anatomy.segmentation, name the roles in anatomy.segment_map, "
                "not [structures]"
            )


def load_anatomy_case(path: Path):
    """Read the case and its images into a :class:`~cryoneuro.anatomy.PatientAnatomy`."""
    patient, plan = load_plan_case(path)
    return patient.phantom, plan


def load_plan_case(path: Path):
    """(:class:`~cryoneuro.anatomy.patient.PatientCase`, PlanSpec) from a case file: the phantom,
    what was decided while reading it, and the DICOM source series (if any)."""
    from cryoneuro.anatomy import load_anatomy
    from cryoneuro.anatomy.patient import PatientCase
    from cryoneuro.anatomy.patient_anatomy import PatientAnatomy
    from cryoneuro.case import _format_validation

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaseFileError(f"{path}: no such case file") from None
    except tomllib.TOMLDecodeError as exc:
        raise CaseFileError(f"{path}: not valid TOML ({exc})") from None
    try:
        case = AnatomyCase.model_validate(data)
    except ValidationError as exc:
        raise CaseFileError(_format_validation(exc, path.name)) from None
    _check_plan_limits(case.plan, path.name)  # before the images are read
    case.check_sources(path.name)
    base = path.parent
    if case.anatomy.segmentation is not None:
        return _load_segmentation_case(path, case), case.plan
    names = case.anatomy.label_names
    names = str(base / names) if isinstance(names, str) else names
    s = case.structures
    assert s is not None  # check_sources
    required = (s.target, s.nerve, s.skin, *s.arteries, *s.bones)
    anatomy = load_anatomy(
        base / case.anatomy.labels,
        base / case.anatomy.image if case.anatomy.image else None,
        names,
        required_labels=required,
    )
    if not anatomy.is_axis_aligned or max(anatomy.spacing_mm) - min(anatomy.spacing_mm) > 1e-6:
        anatomy = anatomy.resample_to(min(0.5, min(anatomy.spacing_mm) * 1.0))
    lv = anatomy.label_value
    from cryoneuro.anatomy.labels import DEFAULT_TISSUE_MAP

    phantom = PatientAnatomy(
        name=path.stem,
        anatomy=anatomy,
        neuroma_label=lv(s.target),
        nerve_label=lv(s.nerve),
        artery_labels=[lv(n) for n in s.arteries],
        skin_label=lv(s.skin),
        bone_labels=[lv(n) for n in s.bones],
        centreline_mm=np.asarray(case.nerve.centreline_mm),
        end_organ_mm=np.asarray(case.nerve.end_organ_mm),
        tissue_map={**DEFAULT_TISSUE_MAP, **case.anatomy.tissue_map},
        neuroma_type=case.nerve.neuroma_type,
        block_proximal_to_mm=case.nerve.block_proximal_to_mm,
    )
    return PatientCase(phantom, {"labels": str(case.anatomy.labels)}), case.plan


def _load_segmentation_case(path: Path, case: AnatomyCase):
    """The case from a Slicer/DICOM segmentation (:mod:`cryoneuro.anatomy.patient`)."""
    from cryoneuro.anatomy.patient import load_patient_case

    base, a, n = path.parent, case.anatomy, case.nerve
    vec = lambda v: None if v is None else np.asarray(v, float)  # noqa: E731
    return load_patient_case(
        base / a.segmentation,  # type: ignore[operator]
        name=path.stem,
        image=base / a.image if a.image else None,
        segment_map=a.segment_map,
        unlabelled_tissue=a.unlabelled_tissue,
        tissue_map=a.tissue_map,
        centreline_mm=vec(n.centreline_mm),
        end_organ_mm=vec(n.end_organ_mm),
        end_organ_hint_mm=vec(n.end_organ_hint_mm),
        neuroma_type=n.neuroma_type,
        block_proximal_to_mm=n.block_proximal_to_mm,
    )


def _check_plan_limits(plan: PlanSpec, source: str) -> None:
    """Each candidate runs freeze, passive thaw, freeze (planning.pipeline.protocol): refuse a
    freeze whose protocol exceeds input_checks.MAX_PROTOCOL_S. Refuse grid settings given to
    the continuous search, and an approach given twice."""
    from cryoneuro.planning.pipeline import THAW_S

    if plan.search == "continuous":
        for key in ("offsets_mm", "shifts_mm"):
            if getattr(plan, key) is not None:
                raise CaseFileError(
                    f'{source}: plan.{key} is used by search = "grid" only; remove it or set '
                    'search = "grid"'
                )
    if plan.approach is not None and plan.approach_axis is not None:
        raise CaseFileError(
            f"{source}: give plan.approach (a name) or plan.approach_axis, not both"
        )
    if (plan.plane_point_mm is None) != (plan.plane_normal is None) or (
        plan.plane_point_mm is not None and plan.approach_axis is None
    ):
        raise CaseFileError(
            f"{source}: an ultrasound plane needs plan.plane_point_mm, plan.plane_normal and "
            "plan.approach_axis"
        )
    if plan.protocol is not None:
        from cryoneuro.planning.protocols import PRESETS

        if plan.protocol not in PRESETS:
            raise CaseFileError(
                f"{source}: plan.protocol = '{plan.protocol}' is not a preset; choose one of "
                f"{', '.join(PRESETS)}"
            )

    longest = (MAX_PROTOCOL_S - THAW_S) / 2
    for i, freeze in enumerate(plan.freezes_s):
        if freeze > longest:
            raise CaseFileError(
                f"{source}: plan.freezes_s[{i}] = {freeze:g} s; the protocol (two freezes "
                f"and a {THAW_S:g} s thaw) must last at most {MAX_PROTOCOL_S:g} s, so a "
                f"freeze at most {longest:g} s"
            )


@app.command("plan")
@user_errors
def plan_cmd(
    case_file: Path = typer.Argument(
        ..., help="Anatomy case file (TOML); see `cryoneuro.cli.plan_cmd`."
    ),
    out_dir: Path = typer.Option(..., "--out", help="Where to write plan.json and the report."),
    json_output: bool = typer.Option(
        False, "--json", help="Print the plan as one JSON object and nothing else."
    ),
    export_seg: bool = typer.Option(
        False,
        "--export-seg",
        help="Also write the isotherms as a 3D Slicer .seg.nrrd, each probe as a .mrk.json "
        "line, and (when the image is a DICOM series) a DICOM SEG referencing it.",
    ),
) -> None:
    """Plan a neuroma cryoablation on labelled images: placement, iceball, nerve block, safety,
    relief, report."""
    from cryoneuro.cli.simulate_cmd import progress_bar
    from cryoneuro.planning.pipeline import OFFSETS_MM, SHIFTS_MM, Boundaries, plan_phantom
    from cryoneuro.planning.search import Approach

    patient, spec = load_plan_case(case_file)
    phantom = patient.phantom
    approach = spec.approach
    if spec.approach_axis is not None:
        approach = Approach(
            "case file",
            spec.approach_axis,
            spec.max_tilt_deg,
            spec.plane_point_mm,
            spec.plane_normal,
        )
    with progress_bar(not json_output) as bar:
        task = bar.add_task("planning", total=1.0)
        plan = plan_phantom(
            phantom,
            out_dir,
            gases=tuple(spec.gases),
            offsets_mm=tuple(spec.offsets_mm or OFFSETS_MM) if spec.search == "grid" else None,
            shifts_mm=tuple(spec.shifts_mm or SHIFTS_MM) if spec.search == "grid" else None,
            freezes_s=tuple(spec.freezes_s),
            drive=spec.drive,
            protocol=spec.protocol,
            search_method=spec.search,
            approach=approach,
            n_probes=spec.n_probes,
            policy=spec.policy,
            boundaries=Boundaries(
                skin=spec.skin,
                arteries=spec.arteries,
                artery_velocity_m_s=spec.artery_velocity_m_s,
            ),
            skin_protection=spec.skin_protection,
            progress=lambda f, label: bar.update(task, completed=f, description=label),
        )
    if export_seg:
        from cryoneuro.planning.export_seg import export_plan
        from cryoneuro.planning.volumes import bundle_plan

        export_plan(plan, out_dir, source_series=patient.source_series)
        bundle_plan(out_dir)  # the bundle's plan.json lists the exported files
    if json_output:
        emit_json(plan.model_dump(mode="json"))
        return
    out.print(
        (
            "[green]feasible[/green]"
            if plan.feasible
            else "[red]not feasible[/red]: " + "; ".join(plan.reasons)
        )
        + f" — report {plan.files['report_html']}"
    )
