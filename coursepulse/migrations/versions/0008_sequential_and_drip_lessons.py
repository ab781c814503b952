"""sequential courses and drip-fed lessons

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 23:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("courses", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sequential", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("lessons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("available_after_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("available_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lessons", schema=None) as batch_op:
        batch_op.drop_column("available_at")
        batch_op.drop_column("available_after_days")
    with op.batch_alter_table("courses", schema=None) as batch_op:
        batch_op.drop_column("sequential")
