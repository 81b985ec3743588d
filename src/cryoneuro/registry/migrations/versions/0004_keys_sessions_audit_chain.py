"""Key fingerprint and settings table, server-side sessions, audit chain and audit site.

- ``registry_setting``: the key fingerprint (keys.py) and the audit chain's start and head;
- ``user_session``: server-side log-in sessions (revocable);
- ``audit_entry.site_id``: the site an entry concerns (audit reads are scoped by site);
- ``study.test_study``: NHS test-range numbers only in test studies;
- ``study.blinded_roles``: roles kept blind to allocation;
- ``audit_entry.entry_hash``: HMAC chain over the trail (audit.py). Entries written before
  this migration keep a NULL hash and are reported by ``cryoneuro audit verify`` as
  predating the chain.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_setting",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_registry_setting")),
    )
    op.create_table(
        "user_session",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"],
                                name=op.f("fk_user_session_user_id_app_user")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_user_session")),
    )
    op.create_index(op.f("ix_user_session_user_id"), "user_session", ["user_id"])
    # plain ADD COLUMN (no table rebuild), so the append-only triggers of 0001 stay in place
    op.add_column("audit_entry", sa.Column("site_id", sa.Integer(), nullable=True))
    op.add_column("audit_entry", sa.Column("entry_hash", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_audit_entry_site_id"), "audit_entry", ["site_id"])
    op.add_column("study", sa.Column("test_study", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.add_column("study", sa.Column("blinded_roles", sa.JSON(), nullable=False,
                                     server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("study") as batch_op:
        batch_op.drop_column("test_study")
        batch_op.drop_column("blinded_roles")
    op.drop_index(op.f("ix_audit_entry_site_id"), table_name="audit_entry")
    with op.batch_alter_table("audit_entry") as batch_op:
        batch_op.drop_column("entry_hash")
        batch_op.drop_column("site_id")
    if op.get_bind().dialect.name == "sqlite":  # the batch rebuild dropped 0001's triggers
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER IF NOT EXISTS audit_entry_no_{verb.lower()} BEFORE {verb} "
                       "ON audit_entry BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only'); END")
    op.drop_index(op.f("ix_user_session_user_id"), table_name="user_session")
    op.drop_table("user_session")
    op.drop_table("registry_setting")
