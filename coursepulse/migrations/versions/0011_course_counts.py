"""stored count of each course's enrolled students (the roster's total)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "course_counts",
        sa.Column("course_id", _ID, nullable=False),
        sa.Column("enrolled_students", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_course_counts_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("course_id", name=op.f("pk_course_counts")),
    )
    # Every course's students as they are: active or completed enrolments.
    op.execute(
        "INSERT INTO course_counts (course_id, enrolled_students)"
        " SELECT course_id, COUNT(*) FROM enrollments"
        " WHERE status IN ('active', 'completed') GROUP BY course_id"
    )


def downgrade() -> None:
    op.drop_table("course_counts")
