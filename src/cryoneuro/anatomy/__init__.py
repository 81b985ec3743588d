"""Anatomy: CT/MR image and label-map I/O (SimpleITK, LPS mm), ultrasound planes, phantoms.

``io`` (readers, :class:`Anatomy`, :class:`UltrasoundPlane`) → ``labels`` (name tables, the
label → tissue map) → ``phantoms`` (seeded procedural forefoot and stump phantoms).
"""

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
from cryoneuro.anatomy.phantoms import Phantom, amputation_stump, load_phantom, morton_forefoot

__all__ = [
    "DEFAULT_TISSUE_MAP",
    "AlignmentError",
    "Anatomy",
    "ImageReadError",
    "LabelMapError",
    "LabelTableError",
    "MissingLabelError",
    "Phantom",
    "SpacingError",
    "UltrasoundPlane",
    "amputation_stump",
    "load_anatomy",
    "load_phantom",
    "morton_forefoot",
    "read_label_table",
    "read_sitk",
    "read_ultrasound",
    "write_anatomy",
]
