"""back-channel logout: client registration fields, the clients each session signed into, the outbox

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backchannel_logout_uri", sa.String(length=2048), nullable=True))
        batch_op.add_column(
            sa.Column("backchannel_logout_session_required", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "session_clients",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.client_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["sid"], ["login_sessions.sid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sid", "client_id"),
    )
    op.create_table(
        "logout_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("sid", sa.String(length=64), nullable=True),
        sa.Column("sub", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("claim", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.client_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("logout_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_logout_deliveries_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_logout_deliveries_client_id"), ["client_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("logout_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logout_deliveries_client_id"))
        batch_op.drop_index("ix_logout_deliveries_due")
    op.drop_table("logout_deliveries")
    op.drop_table("session_clients")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("backchannel_logout_session_required")
        batch_op.drop_column("backchannel_logout_uri")
