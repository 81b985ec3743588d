"""A labelled anatomy to plan on: :class:`PatientAnatomy`, for a patient or a phantom.

Why a class of its own: the planner needs more than an image and a label map (the role of each
label, the nerve's centreline, its end organ, the kind of neuroma); a patient's case
(:mod:`cryoneuro.anatomy.patient`, the ``plan`` case file) and the procedural phantoms
(:mod:`cryoneuro.anatomy.phantoms`) produce the same thing. It was called ``Phantom`` before a
patient's anatomy could be read; that name remains as a deprecated alias.

On disk (:meth:`PatientAnatomy.write`, :func:`load_patient_anatomy`): ``image.nii.gz``,
``labels.nii.gz``, ``labels.json`` and ``phantom.json`` (the roles; the file name is kept so that
folders written before the rename still load).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryoneuro.anatomy.io import Anatomy, load_anatomy, write_anatomy
from cryoneuro.anatomy.labels import DEFAULT_TISSUE_MAP


@dataclass
class PatientAnatomy:
    """A labelled anatomy ready to plan: image and label map, the role of each label, the nerve
    centreline and its end organ.

    The same class holds a patient's anatomy (read from a segmentation by
    :mod:`cryoneuro.anatomy.patient` or a case file) and a procedural phantom
    (:mod:`cryoneuro.anatomy.phantoms`); the planner (:func:`cryoneuro.planning.pipeline.plan`)
    takes either.

    Attributes
    ----------
    name : str
        The case's name (recorded in the plan).
    anatomy : cryoneuro.anatomy.io.Anatomy
        The image (HU for CT) and the label map on one grid (mm, LPS).
    neuroma_label, nerve_label, skin_label : int
        The labels of the neuroma (the target), the nerve and the skin.
    artery_labels, bone_labels : list of int
        The labels of arteries (heat sinks, protected) and bones.
    centreline_mm : numpy.ndarray, shape (n, 3)
        The nerve centreline in the frame of ``anatomy`` (mm), proximal to distal.
    end_organ_mm : numpy.ndarray, shape (3,)
        The nearest point the nerve supplies (mm): the distance regrowth must cover for the pain
        to return (:mod:`cryoneuro.regrowth`).
    """

    name: str
    anatomy: Anatomy
    neuroma_label: int
    nerve_label: int
    artery_labels: list[int]
    skin_label: int
    bone_labels: list[int]
    centreline_mm: np.ndarray
    end_organ_mm: np.ndarray
    notes: str = ""
    tissue_map: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TISSUE_MAP))
    #: "morton" (an interdigital neuroma: the nerve still supplies its end organ), "stump" or
    #: "traumatic" (no end organ: the pain comes from the neuroma itself); chooses the relief
    #: mechanism (:mod:`cryoneuro.regrowth`) and the published series it is checked against.
    neuroma_type: str = "morton"
    #: Arc length (mm along the centreline) of a bulb neuroma's widest section: a block counts
    #: only proximal to or through it (:func:`cryoneuro.injury.nerve_profile`). None: no limit.
    block_proximal_to_mm: float | None = None
    #: How a patient's case was read (segment roles, overlaps, centreline; anatomy.patient):
    #: recorded in the plan's inputs. Empty for the procedural phantoms.
    record: dict = field(default_factory=dict)

    def write(self, out_dir: str | Path) -> Path:
        """Write ``image.nii.gz``, ``labels.nii.gz``, ``labels.json`` and ``phantom.json``."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        write_anatomy(self.anatomy, d / "image.nii.gz", d / "labels.nii.gz")
        (d / "labels.json").write_text(
            json.dumps({str(k): v for k, v in self.anatomy.label_names.items()}, indent=1),
            encoding="utf-8",
        )
        meta = {
            "name": self.name,
            "neuroma_label": self.neuroma_label,
            "nerve_label": self.nerve_label,
            "artery_labels": self.artery_labels,
            "skin_label": self.skin_label,
            "bone_labels": self.bone_labels,
            "centreline_mm": np.round(self.centreline_mm, 4).tolist(),
            "end_organ_mm": np.round(self.end_organ_mm, 4).tolist(),
            "notes": self.notes,
            "tissue_map": self.tissue_map,
            "neuroma_type": self.neuroma_type,
            "block_proximal_to_mm": self.block_proximal_to_mm,
            "coordinates": "phantom frame, mm, origin at the volume corner",
        }
        (d / "phantom.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        return d


def load_patient_anatomy(directory: str | Path) -> PatientAnatomy:
    """Read an anatomy written by :meth:`PatientAnatomy.write`."""
    d = Path(directory)
    meta = json.loads((d / "phantom.json").read_text(encoding="utf-8"))
    anat = load_anatomy(d / "labels.nii.gz", d / "image.nii.gz", d / "labels.json")
    return PatientAnatomy(
        name=meta["name"],
        anatomy=anat,
        neuroma_label=meta["neuroma_label"],
        nerve_label=meta["nerve_label"],
        artery_labels=meta["artery_labels"],
        skin_label=meta["skin_label"],
        bone_labels=meta["bone_labels"],
        centreline_mm=np.asarray(meta["centreline_mm"], float),
        end_organ_mm=np.asarray(meta["end_organ_mm"], float),
        notes=meta.get("notes", ""),
        tissue_map=meta.get("tissue_map", dict(DEFAULT_TISSUE_MAP)),
        neuroma_type=meta.get("neuroma_type", "morton"),
        block_proximal_to_mm=meta.get("block_proximal_to_mm"),
    )
