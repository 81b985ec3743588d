"""Participant self-report (ePRO) links, contact addresses, safety alerts, the reminder log
and site notification addresses (issue 14; models/epro.py says why each exists).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 02:15:20.811972
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_notification",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_site_notification_site_id_site")
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_site_notification")),
    )
    op.create_table(
        "participant_contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("email_encrypted", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_participant_contact_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participant_contact")),
        sa.UniqueConstraint("participant_id", name=op.f("uq_participant_contact_participant_id")),
    )
    op.create_table(
        "epro_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("visit_code", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=80), nullable=True),
        sa.Column("first_opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("followup_visit_id", sa.Integer(), nullable=True),
        sa.Column("draft", sa.JSON(), nullable=False),
        sa.Column("change_since_procedure", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ["followup_visit_id"],
            ["followup_visit.id"],
            name=op.f("fk_epro_link_followup_visit_id_followup_visit"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_epro_link_participant_id_participant"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_epro_link")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_epro_link_token_hash")),
    )
    with op.batch_alter_table("epro_link", schema=None) as batch_op:
        batch_op.create_index(
            "ix_epro_link_participant_visit", ["participant_id", "visit_code"], unique=False
        )

    op.create_table(
        "epro_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("visit_code", sa.String(length=40), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["link_id"], ["epro_link.id"], name=op.f("fk_epro_alert_link_id_epro_link")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_epro_alert_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_epro_alert_site_id_site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_epro_alert")),
        sa.UniqueConstraint("link_id", name=op.f("uq_epro_alert_link_id")),
    )
    with op.batch_alter_table("epro_alert", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_epro_alert_participant_id"), ["participant_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_epro_alert_site_id"), ["site_id"], unique=False)

    op.create_table(
        "reminder_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("visit_code", sa.String(length=40), nullable=True),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('due', 'overdue', 'digest')", name=op.f("ck_reminder_log_kind")
        ),
        sa.ForeignKeyConstraint(
            ["link_id"], ["epro_link.id"], name=op.f("fk_reminder_log_link_id_epro_link")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_reminder_log_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_reminder_log_site_id_site")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_log")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_reminder_log_dedup_key")),
    )


def downgrade() -> None:
    op.drop_table("reminder_log")
    with op.batch_alter_table("epro_alert", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_epro_alert_site_id"))
        batch_op.drop_index(batch_op.f("ix_epro_alert_participant_id"))

    op.drop_table("epro_alert")
    with op.batch_alter_table("epro_link", schema=None) as batch_op:
        batch_op.drop_index("ix_epro_link_participant_visit")

    op.drop_table("epro_link")
    op.drop_table("participant_contact")
    op.drop_table("site_notification")
