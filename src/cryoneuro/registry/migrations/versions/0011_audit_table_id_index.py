"""Index for the dashboard cache's stamps (issue 17 item 7): audit_entry (table_name, id).

The dashboard's cached parts are validated by the id of the newest audit entry of each table
they are computed from (services/dashboard.py). With this index each of those is an index
probe (``ORDER BY id DESC LIMIT 1`` within one table name); without it PostgreSQL walked the
trail backwards until it met an entry of a rarely written table such as visit_definition.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_entry_table_id", "audit_entry", ["table_name", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_entry_table_id", table_name="audit_entry")
