"""study time: 64-bit totals, time per lesson, the activity allowance, the last ACTIVITY event

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # SQLite's INTEGER is 64-bit already.
        op.alter_column(
            "enrollments",
            "time_spent_seconds",
            type_=sa.BigInteger(),
            existing_type=sa.Integer(),
            existing_nullable=False,
        )
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("activity_credited_to", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("last_activity_event_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "lesson_times",
        sa.Column("enrollment_id", BIG_ID, nullable=False),
        sa.Column("lesson_id", BIG_ID, nullable=False),
        sa.Column("seconds", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_lesson_times_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lesson_id"],
            ["lessons.id"],
            name=op.f("fk_lesson_times_lesson_id_lessons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("enrollment_id", "lesson_id", name=op.f("pk_lesson_times")),
    )
    op.create_index(op.f("ix_lesson_times_lesson_id"), "lesson_times", ["lesson_id"])
    # The last ACTIVITY event of each enrolment, from the log (coalescing reads it from now on).
    op.execute(
        """
        UPDATE enrollments SET last_activity_event_at = (
            SELECT max(progress_events.occurred_at) FROM progress_events
            WHERE progress_events.user_id = enrollments.user_id
              AND progress_events.course_id = enrollments.course_id
              AND progress_events.kind = 'activity'
        )
        """
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_lesson_times_lesson_id"), table_name="lesson_times")
    op.drop_table("lesson_times")
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_column("last_activity_event_at")
        batch_op.drop_column("activity_credited_to")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "enrollments",
            "time_spent_seconds",
            type_=sa.Integer(),
            existing_type=sa.BigInteger(),
            existing_nullable=False,
        )
