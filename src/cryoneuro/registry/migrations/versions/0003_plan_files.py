"""Plan files attached to a procedure (the plan bundle: plan.json, report, NIfTI volumes).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 12:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plan_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("procedure_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["procedure_id"], ["procedure.id"],
                                name=op.f("fk_plan_file_procedure_id_procedure")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_file")),
        sa.UniqueConstraint("procedure_id", "name", name=op.f("uq_plan_file_procedure_id")),
    )
    with op.batch_alter_table("plan_file", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_file_procedure_id"), ["procedure_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("plan_file", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_file_procedure_id"))
    op.drop_table("plan_file")
