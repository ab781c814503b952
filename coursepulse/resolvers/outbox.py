"""The outbox: appending to the progress event log, in the transaction of the change it records."""

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, func, insert, select

from coursepulse.models import ProgressEvent, ProgressEventKind
from coursepulse.models.rows import EnrollmentRow
from coursepulse.models.sql import Query
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers.progress import progress_percentage

#: Heartbeats within this many seconds of the last ACTIVITY event add time but no event.
ACTIVITY_EVENT_INTERVAL_SECONDS = 30
#: First key of the advisory locks that order a course's events (any constant of ours).
_EVENT_LOCK_SPACE = 0x6370
#: The columns of an event row the outbox writes (every one bound).
EVENT_COLUMNS = (
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
    enrollment: EnrollmentRow,
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
_EVENT_VALUES = [
    bindparam(f"event_{column}", type_=_EVENTS.c[column].type) for column in EVENT_COLUMNS
]
ADD_EVENT = Query(insert(_EVENTS).values(dict(zip(EVENT_COLUMNS, _EVENT_VALUES, strict=True))))
#: PostgreSQL: the course's event lock, then the event, in one statement. The lock's
#: subquery yields its row only once the lock is held, so the event's id is drawn after.
#: It also gives the transaction its id (if it had none) before the event's id is drawn:
#: webhook delivery relies on every event id being drawn by a transaction that has one
#: (delivery/horizon.py).
_COURSE_EVENT_LOCK = (
    select(
        func.pg_advisory_xact_lock(
            bindparam("space", type_=Integer()), bindparam("key", type_=Integer())
        ).label("locked")
    )
    # A condition, not an output: pg_current_xact_id() is stable, and an unused stable
    # output would not be computed.
    .where(func.pg_current_xact_id().is_not(None))
    .subquery("course_event_lock")
)
_LOCK_AND_ADD_EVENT = Query(
    insert(_EVENTS).from_select(
        list(EVENT_COLUMNS), select(*_EVENT_VALUES).select_from(_COURSE_EVENT_LOCK)
    )
)


async def append_event(
    tx: Transaction,
    *,
    kind: ProgressEventKind,
    enrollment: EnrollmentRow,
    total_lessons: int,
    occurred_at: datetime,
    lesson_id: int | None = None,
) -> None:
    """Add an event with the enrolment's progress snapshot; announced when `tx` commits.

    On PostgreSQL the course's event lock is taken first and held until commit,
    so a course's events commit in id order: a reader that has seen id N has seen
    everything of that course below N (subscriptions resume on that).
    """
    course_id = enrollment.course_id
    values = event_values(
        kind=kind,
        enrollment=enrollment,
        total_lessons=total_lessons,
        occurred_at=occurred_at,
        lesson_id=lesson_id,
    )
    params = {f"event_{column}": value for column, value in values.items()}
    if tx.dialect.name == "postgresql" and course_id not in tx.event_courses:
        lock = {"space": _EVENT_LOCK_SPACE, "key": course_id % 2_147_483_647}
        await tx.execute(_LOCK_AND_ADD_EVENT, **params, **lock)
    else:
        await tx.execute(ADD_EVENT, **params)
    tx.event_courses.add(course_id)
    tx.event_kinds[str(kind)] += 1


#: PostgreSQL: the course's event lock on its own (before events written in bulk).
_COURSE_EVENT_LOCK_ONLY = Query(
    select(
        func.pg_advisory_xact_lock(
            bindparam("space", type_=Integer()), bindparam("key", type_=Integer())
        )
    ).where(func.pg_current_xact_id().is_not(None))
)


async def append_events(tx: Transaction, events: Query, *, course_id: int, **params: Any) -> None:
    """Add the events an INSERT ... SELECT statement writes for the course (one statement
    however many students it concerns, RETURNING each event's kind), in the course's event
    order as `append_event`."""
    if tx.dialect.name == "postgresql" and course_id not in tx.event_courses:
        await tx.execute(
            _COURSE_EVENT_LOCK_ONLY, space=_EVENT_LOCK_SPACE, key=course_id % 2_147_483_647
        )
    kinds = await tx.scalars(events, course_id=course_id, **params)
    tx.event_courses.add(course_id)
    tx.event_kinds.update(kinds)


async def hold_course_events(tx: Transaction, course_id: int) -> None:
    """PostgreSQL: wait until the course's events being written have committed, and keep
    new ones from committing until `tx` ends: a read of the course's newest event id in
    `tx` is then final (no lower id of the course commits later). SQLite's one writer
    gives that already."""
    if tx.dialect.name == "postgresql":
        await tx.execute(
            _COURSE_EVENT_LOCK_ONLY, space=_EVENT_LOCK_SPACE, key=course_id % 2_147_483_647
        )
