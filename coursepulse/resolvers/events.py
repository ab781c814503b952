"""Appending to the progress event log, in the transaction of the change it records."""

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import Enrollment, ProgressEvent, ProgressEventKind
from coursepulse.models.db import EVENT_COURSES
from coursepulse.models.reads import Query
from coursepulse.models.rows import EnrollmentRow
from coursepulse.models.writes import WriteTransaction
from coursepulse.resolvers.progress import progress_percentage

#: Heartbeats within this many seconds of the last ACTIVITY event add time but no event.
ACTIVITY_EVENT_INTERVAL_SECONDS = 30
#: First key of the advisory locks that order a course's events (any constant of ours).
_EVENT_LOCK_SPACE = 0x6370
#: Session.info key: courses whose event lock this transaction already holds.
_LOCKED_COURSES = "coursepulse.locked_event_courses"
_EVENT_COLUMNS = (
    "kind",
    "occurred_at",
    "course_id",
    "user_id",
    "lesson_id",
    "progress_percentage",
    "completed_lessons",
    "total_lessons",
)


def event_values(
    *,
    kind: ProgressEventKind,
    enrollment: Enrollment | EnrollmentRow,
    total_lessons: int,
    occurred_at: datetime,
    lesson_id: int | None = None,
) -> dict[str, Any]:
    """The columns of an event: the change and the enrolment's progress right after it."""
    return {
        "kind": str(kind),
        "occurred_at": occurred_at,
        "course_id": enrollment.course_id,
        "user_id": enrollment.user_id,
        "lesson_id": lesson_id,
        "progress_percentage": progress_percentage(enrollment.completed_lessons, total_lessons),
        "completed_lessons": enrollment.completed_lessons,
        "total_lessons": total_lessons,
    }


_EVENTS = ProgressEvent.__table__
_ADD_EVENT = Query(
    insert(_EVENTS).values({column: bindparam(f"event_{column}") for column in _EVENT_COLUMNS})
)
_EVENT_LOCK = Query(
    select(
        func.pg_advisory_xact_lock(
            bindparam("space", type_=Integer()), bindparam("key", type_=Integer())
        )
    )
)


async def append_event_writing(
    transaction: WriteTransaction,
    *,
    kind: ProgressEventKind,
    enrollment: EnrollmentRow,
    total_lessons: int,
    occurred_at: datetime,
    lesson_id: int | None = None,
) -> None:
    """`append_event` on a lean write transaction (the same columns and lock)."""
    course_id = enrollment.course_id
    if transaction.dialect.name == "postgresql" and course_id not in transaction.event_courses:
        await transaction.execute(
            _EVENT_LOCK, space=_EVENT_LOCK_SPACE, key=course_id % 2_147_483_647
        )
    values = event_values(
        kind=kind,
        enrollment=enrollment,
        total_lessons=total_lessons,
        occurred_at=occurred_at,
        lesson_id=lesson_id,
    )
    await transaction.execute(
        _ADD_EVENT, **{f"event_{column}": value for column, value in values.items()}
    )
    transaction.event_courses.add(course_id)


async def append_event(
    session: AsyncSession,
    *,
    kind: ProgressEventKind,
    enrollment: Enrollment,
    total_lessons: int,
    occurred_at: datetime,
    lesson_id: int | None = None,
) -> ProgressEvent:
    """Add an event with the enrolment's progress snapshot.

    On PostgreSQL the course's event lock is taken first and held until commit,
    so a course's events commit in id order: a reader that has seen id N has seen
    everything of that course below N (subscriptions resume on that).
    """
    course_id = enrollment.course_id
    locked: set[int] = session.info.setdefault(_LOCKED_COURSES, set())
    if session.bind.dialect.name == "postgresql" and course_id not in locked:
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:space, CAST(:key AS integer))"),
            {"space": _EVENT_LOCK_SPACE, "key": course_id % 2_147_483_647},
        )
        locked.add(course_id)
    event = ProgressEvent(
        **event_values(
            kind=kind,
            enrollment=enrollment,
            total_lessons=total_lessons,
            occurred_at=occurred_at,
            lesson_id=lesson_id,
        )
    )
    session.add(event)
    session.info.setdefault(EVENT_COURSES, set()).add(course_id)
    return event


async def recent_activity_event(
    session: AsyncSession, enrollment: Enrollment, now: datetime
) -> bool:
    """True when an ACTIVITY event of this enrolment is younger than the coalescing interval."""
    last = await session.scalar(
        select(func.max(ProgressEvent.occurred_at)).where(
            ProgressEvent.user_id == enrollment.user_id,
            ProgressEvent.course_id == enrollment.course_id,
            ProgressEvent.kind == ProgressEventKind.ACTIVITY,
        )
    )
    return last is not None and (now - last).total_seconds() < ACTIVITY_EVENT_INTERVAL_SECONDS
