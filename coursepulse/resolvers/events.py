"""Appending to the progress event log, in the transaction of the change it records."""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import Enrollment, ProgressEvent, ProgressEventKind
from coursepulse.resolvers.progress import progress_percentage


def append_event(
    session: AsyncSession,
    *,
    kind: ProgressEventKind,
    enrollment: Enrollment,
    total_lessons: int,
    occurred_at: datetime,
    lesson_id: int | None = None,
) -> ProgressEvent:
    """Add an event with the enrolment's progress snapshot; flushed with the change."""
    event = ProgressEvent(
        kind=kind,
        occurred_at=occurred_at,
        course_id=enrollment.course_id,
        user_id=enrollment.user_id,
        lesson_id=lesson_id,
        progress_percentage=progress_percentage(enrollment.completed_lessons, total_lessons),
        completed_lessons=enrollment.completed_lessons,
        total_lessons=total_lessons,
    )
    session.add(event)
    return event
