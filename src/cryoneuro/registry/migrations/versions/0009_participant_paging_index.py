"""Index for the participant list in pages (issue 17 item 7): (site_id, id).

The dashboard and ``GET /api/participants?limit=&offset=`` list a site's participants in id
order, a page at a time. With only (site_id, status) PostgreSQL read every participant of the
site and sorted them for each page (a bitmap heap scan of 5,000 rows and a top-N sort at
10,000 participants, benchmarks/registry_load.py --mix pages); with (site_id, id) a page is
an index scan that stops after offset + limit entries.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 06:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_participant_site_id_id", "participant", ["site_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_participant_site_id_id", table_name="participant")
