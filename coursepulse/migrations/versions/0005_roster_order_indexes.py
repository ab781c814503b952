"""roster order indexes: by name, and by last access with never-accessed last

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_users_display_name_lower", "users", [sa.text("lower(display_name)"), "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_enrollments_roster_last_accessed_desc",
            "enrollments",
            ["course_id", sa.text("last_accessed_at DESC NULLS LAST"), sa.text("id DESC")],
        )
    else:
        op.create_index(
            "ix_enrollments_roster_never_accessed",
            "enrollments",
            ["course_id", sa.text("(last_accessed_at IS NULL)"), "last_accessed_at", "id"],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_enrollments_roster_last_accessed_desc", table_name="enrollments")
    else:
        op.drop_index("ix_enrollments_roster_never_accessed", table_name="enrollments")
    op.drop_index("ix_users_display_name_lower", table_name="users")
