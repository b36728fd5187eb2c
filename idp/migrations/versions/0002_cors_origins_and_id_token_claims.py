"""clients: extra CORS origins and the profile/email claims in ID tokens

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowed_cors_origins", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("claims_in_id_token", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("claims_in_id_token")
        batch_op.drop_column("allowed_cors_origins")
