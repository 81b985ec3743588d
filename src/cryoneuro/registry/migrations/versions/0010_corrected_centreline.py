"""A user-corrected nerve centreline on a procedure's images (issue 18 item 2).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_images") as batch:
        batch.add_column(sa.Column("centreline_mm", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("centreline_by", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case_images") as batch:
        batch.drop_column("centreline_by")
        batch.drop_column("centreline_mm")
