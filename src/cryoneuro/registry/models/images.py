"""A patient's image and segmentation attached to a procedure, for the planning workspace.

Why one row per procedure: the workspace plans one case (one image, one segmentation on its
grid) per procedure; a new upload replaces it (with a reason, audited as any edit). Stored in
the database like the plan bundle (models/files.py), so a database backup holds them.

What is stored is the **canonical** form made at upload (registry/services/case_images.py):
the image as gzip NIfTI (a DICOM series is converted, so no DICOM header is kept) and the
segmentation as a 3D Slicer ``.seg.nrrd`` on the image's grid (named segments, whatever the
upload's format), plus what the upload was (format, original name, SHA-256 of the uploaded
bytes) and which DICOM attributes were removed. The audit trail records every column except
the bytes (SHA-256 and sizes are recorded, the content redacted).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from cryoneuro.registry.models.base import Base, utcnow


class CaseImages(Base):
    """The image + segmentation of a procedure (``procedure_id`` unique)."""

    __tablename__ = "case_images"
    __audit_redact__ = frozenset({"image", "segmentation"})

    id: Mapped[int] = mapped_column(primary_key=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedure.id"), unique=True)
    #: The upload as sent: format ("nifti", "nrrd", "dicom-series", "slicer-seg", "dicom-seg",
    #: "label-map"), original file name, size and SHA-256 of the uploaded bytes.
    image_format: Mapped[str] = mapped_column(String(20))
    image_upload_name: Mapped[str] = mapped_column(String(200))
    image_upload_sha256: Mapped[str] = mapped_column(String(64))
    segmentation_format: Mapped[str] = mapped_column(String(20))
    segmentation_upload_name: Mapped[str] = mapped_column(String(200))
    segmentation_upload_sha256: Mapped[str] = mapped_column(String(64))
    #: The stored (canonical) files: image.nii.gz and segmentation.seg.nrrd.
    image_size: Mapped[int] = mapped_column(Integer)
    image_sha256: Mapped[str] = mapped_column(String(64))
    image: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, deferred=True)
    segmentation_size: Mapped[int] = mapped_column(Integer)
    segmentation_sha256: Mapped[str] = mapped_column(String(64))
    segmentation: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, deferred=True)
    #: Image grid: shape, spacing_mm, origin_mm, direction (LPS, as ITK).
    geometry: Mapped[dict] = mapped_column(JSON, default=dict)
    #: Segment names in file order, and the roles proposed from their names.
    segments: Mapped[list] = mapped_column(JSON, default=list)
    proposed_roles: Mapped[dict] = mapped_column(JSON, default=dict)
    #: The roles a user accepted (segment name → role, tissue or "ignore"); None until then.
    accepted_roles: Mapped[dict | None] = mapped_column(JSON)
    accepted_by: Mapped[str | None] = mapped_column(String(80))
    #: A nerve centreline corrected by a user (LPS mm, proximal → distal); None: the one
    #: extracted from the nerve segment is used.
    centreline_mm: Mapped[list | None] = mapped_column(JSON)
    centreline_by: Mapped[str | None] = mapped_column(String(80))
    #: DICOM attributes removed from the upload (keywords), empty for non-DICOM uploads.
    deidentified: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
