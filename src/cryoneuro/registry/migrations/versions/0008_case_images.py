"""A patient's image and segmentation per procedure, for the planning workspace (issue 18
item 1; models/images.py says what is stored).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("procedure_id", sa.Integer(), nullable=False),
        sa.Column("image_format", sa.String(length=20), nullable=False),
        sa.Column("image_upload_name", sa.String(length=200), nullable=False),
        sa.Column("image_upload_sha256", sa.String(length=64), nullable=False),
        sa.Column("segmentation_format", sa.String(length=20), nullable=False),
        sa.Column("segmentation_upload_name", sa.String(length=200), nullable=False),
        sa.Column("segmentation_upload_sha256", sa.String(length=64), nullable=False),
        sa.Column("image_size", sa.Integer(), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=False),
        sa.Column("segmentation_size", sa.Integer(), nullable=False),
        sa.Column("segmentation_sha256", sa.String(length=64), nullable=False),
        sa.Column("segmentation", sa.LargeBinary(), nullable=False),
        sa.Column("geometry", sa.JSON(), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("proposed_roles", sa.JSON(), nullable=False),
        sa.Column("accepted_roles", sa.JSON(), nullable=True),
        sa.Column("accepted_by", sa.String(length=80), nullable=True),
        sa.Column("deidentified", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["procedure_id"],
            ["procedure.id"],
            name=op.f("fk_case_images_procedure_id_procedure"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_images")),
        sa.UniqueConstraint("procedure_id", name=op.f("uq_case_images_procedure_id")),
    )


def downgrade() -> None:
    op.drop_table("case_images")
