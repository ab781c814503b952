"""roster indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 19:19:31.292824
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollments_course_enrolled_at'))
        batch_op.drop_index(batch_op.f('ix_enrollments_course_last_accessed'))
        batch_op.create_index('ix_enrollments_roster_enrolled_at', ['course_id', 'enrolled_at', 'id'], unique=False)
        batch_op.create_index('ix_enrollments_roster_last_accessed', ['course_id', 'last_accessed_at', 'id'], unique=False)
        batch_op.create_index('ix_enrollments_roster_progress', ['course_id', 'completed_lessons', 'id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollments_roster_progress')
        batch_op.drop_index('ix_enrollments_roster_last_accessed')
        batch_op.drop_index('ix_enrollments_roster_enrolled_at')
        batch_op.create_index(batch_op.f('ix_enrollments_course_last_accessed'), ['course_id', 'status', 'last_accessed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollments_course_enrolled_at'), ['course_id', 'status', 'enrolled_at', 'id'], unique=False)


