"""progress resets: the audit trail, and the completions a reset took out as history

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 23:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _cascade(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "progress_resets",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("enrollment_id", BIG_ID, nullable=False),
        sa.Column("course_id", BIG_ID, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("reset_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reset_by", BIG_ID, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("previous_completed_lessons", sa.Integer(), nullable=False),
        sa.Column("previous_progress_percentage", sa.Integer(), nullable=False),
        sa.Column("previous_time_spent_seconds", BIG_ID, nullable=False),
        sa.Column("previous_completed_at", sa.DateTime(timezone=True), nullable=True),
        _cascade("progress_resets", "enrollment_id", "enrollments"),
        _cascade("progress_resets", "course_id", "courses"),
        _cascade("progress_resets", "user_id", "users"),
        _cascade("progress_resets", "reset_by", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_progress_resets")),
    )
    op.create_index(
        op.f("ix_progress_resets_enrollment_id"), "progress_resets", ["enrollment_id"]
    )
    op.create_table(
        "reset_completions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("reset_id", BIG_ID, nullable=False),
        sa.Column("enrollment_id", BIG_ID, nullable=False),
        sa.Column("lesson_id", BIG_ID, nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        _cascade("reset_completions", "reset_id", "progress_resets"),
        _cascade("reset_completions", "enrollment_id", "enrollments"),
        _cascade("reset_completions", "lesson_id", "lessons"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reset_completions")),
    )
    op.create_index(op.f("ix_reset_completions_reset_id"), "reset_completions", ["reset_id"])
    op.create_index(op.f("ix_reset_completions_lesson_id"), "reset_completions", ["lesson_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_reset_completions_lesson_id"), table_name="reset_completions")
    op.drop_index(op.f("ix_reset_completions_reset_id"), table_name="reset_completions")
    op.drop_table("reset_completions")
    op.drop_index(op.f("ix_progress_resets_enrollment_id"), table_name="progress_resets")
    op.drop_table("progress_resets")
