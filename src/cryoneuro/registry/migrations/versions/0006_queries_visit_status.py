"""Data queries, visits not done, item-level missing codes and protocol deviations (issue 14).

- ``data_query`` and ``data_query_step``: a monitor's query on one field of one record and its
  thread (raise, correct, explain, close, re-open);
- ``visit_not_done``: a scheduled visit that did not take place, with its reason;
- ``missing_item``: an instrument item without a value, with its HL7 DataAbsentReason code;
- ``protocol_deviation``: departures from the protocol by category.

New tables only (no change to existing ones), so this revision does not depend on any other
revision's tables beyond 0001's (participant, site, app_user, followup_visit).

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01 02:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_query",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("record_type", sa.String(length=30), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("value_at_raise", sa.JSON(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("raised_by_id", sa.Integer(), nullable=True),
        sa.Column("raised_by", sa.String(length=80), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "record_type IN ('participant', 'neuroma', 'procedure', 'followup_visit', 'adverse_event')",
            name=op.f("ck_data_query_record_type"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'answered', 'closed')", name=op.f("ck_data_query_status")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_data_query_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(
            ["raised_by_id"], ["app_user.id"], name=op.f("fk_data_query_raised_by_id_app_user")
        ),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_data_query_site_id_site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_query")),
    )
    with op.batch_alter_table("data_query", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_data_query_participant_id"), ["participant_id"], unique=False
        )
        batch_op.create_index(
            "ix_data_query_raised_by_status", ["raised_by_id", "status"], unique=False
        )
        batch_op.create_index("ix_data_query_site_status", ["site_id", "status"], unique=False)

    op.create_table(
        "protocol_deviation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("deviation_date", sa.Date(), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("visit_code", sa.String(length=40), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "category IN ('eligibility', 'visit_window', 'procedure', 'consent', 'other')",
            name=op.f("ck_protocol_deviation_category"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_protocol_deviation_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protocol_deviation")),
    )
    with op.batch_alter_table("protocol_deviation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_protocol_deviation_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "visit_not_done",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("visit_code", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("reason_text", sa.Text(), nullable=False),
        sa.Column("recorded_date", sa.Date(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "reason IN ('lost_to_follow_up', 'withdrew', 'died', 'unable', 'other')",
            name=op.f("ck_visit_not_done_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_visit_not_done_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_not_done")),
        sa.UniqueConstraint(
            "participant_id", "visit_code", name=op.f("uq_visit_not_done_participant_id")
        ),
    )
    with op.batch_alter_table("visit_not_done", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_visit_not_done_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "data_query_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("old_value", sa.JSON(), nullable=True),
        sa.Column("new_value", sa.JSON(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('raise', 'correct', 'explain', 'close', 'reopen')",
            name=op.f("ck_data_query_step_action"),
        ),
        sa.ForeignKeyConstraint(
            ["query_id"], ["data_query.id"], name=op.f("fk_data_query_step_query_id_data_query")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_data_query_step_site_id_site")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_data_query_step_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_query_step")),
    )
    with op.batch_alter_table("data_query_step", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_query_step_query_id"), ["query_id"], unique=False)

    op.create_table(
        "missing_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("instrument", sa.String(length=40), nullable=False),
        sa.Column("item", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.CheckConstraint(
            "code IN ('not-asked', 'asked-declined', 'asked-unknown', 'not-applicable', 'unknown')",
            name=op.f("ck_missing_item_code"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_missing_item_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"],
            ["followup_visit.id"],
            name=op.f("fk_missing_item_visit_id_followup_visit"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_missing_item")),
        sa.UniqueConstraint(
            "visit_id", "instrument", "item", name=op.f("uq_missing_item_visit_id")
        ),
    )
    with op.batch_alter_table("missing_item", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_missing_item_visit_id"), ["visit_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("missing_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_missing_item_visit_id"))

    op.drop_table("missing_item")
    with op.batch_alter_table("data_query_step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_query_step_query_id"))

    op.drop_table("data_query_step")
    with op.batch_alter_table("visit_not_done", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visit_not_done_participant_id"))

    op.drop_table("visit_not_done")
    with op.batch_alter_table("protocol_deviation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_protocol_deviation_participant_id"))

    op.drop_table("protocol_deviation")
    with op.batch_alter_table("data_query", schema=None) as batch_op:
        batch_op.drop_index("ix_data_query_site_status")
        batch_op.drop_index("ix_data_query_raised_by_status")
        batch_op.drop_index(batch_op.f("ix_data_query_participant_id"))

    op.drop_table("data_query")
