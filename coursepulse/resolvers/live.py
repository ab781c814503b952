"""Who may follow which live progress, and reading the event log to replay it."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import ProgressEvent
from coursepulse.resolvers.access import staff_course, visible_course
from coursepulse.resolvers.viewer import Viewer, require_viewer

REPLAY_BATCH = 500


async def authorize_own_progress(
    session: AsyncSession, viewer: Viewer | None, course_id: int
) -> int:
    """The user id whose events the viewer may follow in the course: their own."""
    viewer = require_viewer(viewer)
    await visible_course(session, viewer, course_id)
    return viewer.user_id


async def authorize_course_activity(
    session: AsyncSession, viewer: Viewer | None, course_id: int
) -> None:
    """Every student's events of a course are for its instructors and admins."""
    await staff_course(session, viewer, course_id)


async def events_after(
    session: AsyncSession,
    course_id: int,
    after_id: int,
    *,
    user_id: int | None = None,
    limit: int = REPLAY_BATCH,
) -> list[ProgressEvent]:
    """Logged events of the course (of one user, if given) with an id above `after_id`."""
    query = select(ProgressEvent).where(
        ProgressEvent.course_id == course_id,
        ProgressEvent.id > after_id,  # type: ignore[operator]
    )
    if user_id is not None:
        query = query.where(ProgressEvent.user_id == user_id)
    return list(await session.scalars(query.order_by(ProgressEvent.id).limit(limit)))
