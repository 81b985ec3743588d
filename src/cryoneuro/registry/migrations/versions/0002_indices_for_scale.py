"""Indices for a registry at multi-centre scale (issue 7): dashboard, day 0, audit history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_participant_site_status", "participant", ["site_id", "status"])
    op.create_index("ix_procedure_participant_date", "procedure",
                    ["participant_id", "procedure_date"])
    op.create_index("ix_audit_entry_table_row", "audit_entry", ["table_name", "row_id"])
    op.create_index("ix_audit_entry_occurred_at", "audit_entry", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_entry_occurred_at", table_name="audit_entry")
    op.drop_index("ix_audit_entry_table_row", table_name="audit_entry")
    op.drop_index("ix_procedure_participant_date", table_name="procedure")
    op.drop_index("ix_participant_site_status", table_name="participant")
