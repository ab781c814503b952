"""Subscription rules: who may follow which live progress, and reading the log to replay it."""

from sqlalchemy import ColumnElement, and_, bindparam, func, select, tuple_

from coursepulse.models import ProgressEvent
from coursepulse.models.rows import ProgressEventRow
from coursepulse.models.sql import Query
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers.access import staff_course, visible_course
from coursepulse.resolvers.viewer import Viewer, require_viewer

REPLAY_BATCH = 500

_EVENTS = ProgressEvent.__table__


def course_events_after(course_id: str, after_id: str) -> ColumnElement[bool]:
    """The course's events after an id (parameters of these names), spelled so that even
    PostgreSQL's generic plan walks (course_id, id) from the id: with `id > :after` it may
    walk every course's events from there and keep this course's."""
    return and_(
        _EVENTS.c.course_id == bindparam(course_id),
        tuple_(_EVENTS.c.course_id, _EVENTS.c.id)
        > tuple_(bindparam(course_id), bindparam(after_id)),
    )


_AFTER = select(_EVENTS).where(course_events_after("course_id", "after_id"))
_EVENTS_AFTER = Query(_AFTER.order_by(_EVENTS.c.id).limit(bindparam("batch")))
_USER_EVENTS_AFTER = Query(
    _AFTER.where(_EVENTS.c.user_id == bindparam("user_id"))
    .order_by(_EVENTS.c.id)
    .limit(bindparam("batch"))
)
_LAST_EVENT_ID = Query(
    select(func.coalesce(func.max(_EVENTS.c.id), 0)).where(
        _EVENTS.c.course_id == bindparam("course_id")
    )
)


async def authorize_own_progress(tx: Transaction, viewer: Viewer | None, course_id: int) -> int:
    """The user id whose events the viewer may follow in the course: their own."""
    viewer = require_viewer(viewer)
    await visible_course(tx, viewer, course_id)
    return viewer.user_id


async def authorize_course_activity(tx: Transaction, viewer: Viewer | None, course_id: int) -> None:
    """Every student's events of a course are for its instructors and admins."""
    await staff_course(tx, viewer, course_id)


async def events_after(
    tx: Transaction,
    course_id: int,
    after_id: int,
    *,
    user_id: int | None = None,
    limit: int = REPLAY_BATCH,
) -> list[ProgressEventRow]:
    """Logged events of the course (of one user, if given) with an id above `after_id`,
    oldest first, at most `limit`."""
    if user_id is None:
        return await tx.all(_EVENTS_AFTER, course_id=course_id, after_id=after_id, batch=limit)
    return await tx.all(
        _USER_EVENTS_AFTER, course_id=course_id, after_id=after_id, user_id=user_id, batch=limit
    )


async def last_event_id(tx: Transaction, course_id: int) -> int:
    """The id of the course's newest logged event; 0 when it has none."""
    return int(await tx.scalar(_LAST_EVENT_ID, course_id=course_id) or 0)
