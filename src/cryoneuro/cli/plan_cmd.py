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
    gases = ["nitrous-oxide", "argon"]
    offsets_mm = [0, -2.5, 2.5]
    shifts_mm = [0, 2]
    freezes_s = [60, 120]
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
    labels: str
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
    centreline_mm: Annotated[list[Vec3], Field(min_length=2)]
    end_organ_mm: Vec3
    #: relief mechanism and published series (cryoneuro.regrowth); the plan records it
    neuroma_type: Literal["morton", "stump", "traumatic"] = "morton"
    #: a block counts only proximal to this arc length (the bulb's widest section;
    #: injury.nerve_profile)
    block_proximal_to_mm: Annotated[float, Field(ge=0)] | None = None


class PlanSpec(_S):
    gases: list[str] = Field(default_factory=lambda: ["nitrous-oxide", "argon"])
    offsets_mm: list[float] = Field(default_factory=lambda: [0.0, -2.5, 2.5])
    shifts_mm: list[float] = Field(default_factory=lambda: [0.0, 2.0])
    freezes_s: list[Annotated[float, Field(gt=0)]] = Field(default_factory=lambda: [60.0, 120.0])
    #: "device": the catalogue probe's energy balance (default); "held": wall at the gas's boiling
    #: point
    drive: Literal["device", "held"] = "device"


class AnatomyCase(_S):
    anatomy: AnatomySpec
    structures: StructuresSpec
    nerve: NerveSpec
    plan: PlanSpec = Field(default_factory=PlanSpec)


def load_anatomy_case(path: Path):
    """Read the case and its images into a :class:`~cryoneuro.anatomy.phantoms.Phantom`."""
    from cryoneuro.anatomy import load_anatomy
    from cryoneuro.anatomy.phantoms import Phantom
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
    base = path.parent
    names = case.anatomy.label_names
    names = str(base / names) if isinstance(names, str) else names
    s = case.structures
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

    phantom = Phantom(
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
    return phantom, case.plan


def _check_plan_limits(plan: PlanSpec, source: str) -> None:
    """Each candidate runs freeze, passive thaw, freeze (planning.pipeline.protocol): refuse a
    freeze whose protocol exceeds input_checks.MAX_PROTOCOL_S."""
    from cryoneuro.planning.pipeline import THAW_S

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
) -> None:
    """Plan a neuroma cryoablation on labelled images: placement, iceball, nerve block, safety,
    relief, report."""
    from cryoneuro.cli.simulate_cmd import progress_bar
    from cryoneuro.planning.pipeline import plan_phantom

    phantom, spec = load_anatomy_case(case_file)
    with progress_bar(not json_output) as bar:
        task = bar.add_task("planning", total=1.0)
        plan = plan_phantom(
            phantom,
            out_dir,
            gases=tuple(spec.gases),
            offsets_mm=tuple(spec.offsets_mm),
            shifts_mm=tuple(spec.shifts_mm),
            freezes_s=tuple(spec.freezes_s),
            drive=spec.drive,
            progress=lambda f, label: bar.update(task, completed=f, description=label),
        )
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
