"""Anatomy: CT/MR image and label-map I/O (SimpleITK, LPS mm), ultrasound planes, phantoms.

``io`` (readers, :class:`Anatomy`: an image and its label map; :class:`UltrasoundPlane`) →
``labels`` (name tables, the label → tissue map) → ``patient_anatomy``
(:class:`PatientAnatomy`: a labelled anatomy with the roles the planner needs, for a patient or a
phantom) → ``phantoms`` (seeded procedural forefoot and stump phantoms) and ``patient`` (a
patient's segmentation → a :class:`PatientAnatomy`).

``Phantom``, the former name of :class:`PatientAnatomy`, still works and warns
(``DeprecationWarning``).
"""

import warnings
from typing import Any

from cryoneuro.anatomy.io import (
    AlignmentError,
    Anatomy,
    ImageReadError,
    LabelMapError,
    SpacingError,
    UltrasoundPlane,
    load_anatomy,
    read_sitk,
    read_ultrasound,
    write_anatomy,
)
from cryoneuro.anatomy.labels import (
    DEFAULT_TISSUE_MAP,
    LabelTableError,
    MissingLabelError,
    read_label_table,
)
from cryoneuro.anatomy.patient_anatomy import PatientAnatomy, load_patient_anatomy
from cryoneuro.anatomy.phantoms import amputation_stump, load_phantom, morton_forefoot

__all__ = [
    "DEFAULT_TISSUE_MAP",
    "AlignmentError",
    "Anatomy",
    "ImageReadError",
    "LabelMapError",
    "LabelTableError",
    "MissingLabelError",
    "PatientAnatomy",
    "SpacingError",
    "UltrasoundPlane",
    "amputation_stump",
    "load_anatomy",
    "load_patient_anatomy",
    "load_phantom",
    "morton_forefoot",
    "read_label_table",
    "read_sitk",
    "read_ultrasound",
    "write_anatomy",
]


def __getattr__(name: str) -> Any:
    """``Phantom``: the former name of :class:`PatientAnatomy`, kept working with a warning."""
    if name == "Phantom":
        warnings.warn(
            "cryoneuro.anatomy.Phantom is deprecated: use cryoneuro.anatomy.PatientAnatomy "
            "(the same class)",
            DeprecationWarning,
            stacklevel=2,
        )
        return PatientAnatomy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
