"""Who may see and change what: course visibility and course staff."""

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import (
    ENROLLED_STATUSES,
    Course,
    CourseInstructor,
    CourseStatus,
    Enrollment,
    Role,
)
from coursepulse.models.reads import Query, ReadTransaction, one_of
from coursepulse.models.rows import CourseRow
from coursepulse.models.writes import SessionTransaction
from coursepulse.resolvers.errors import Forbidden, NotFound
from coursepulse.resolvers.viewer import Viewer, require_viewer


async def is_course_staff(session: AsyncSession, viewer: Viewer | None, course_id: int) -> bool:
    """True for admins and for the course's instructors (in the session's transaction)."""
    return await is_course_staff_reading(SessionTransaction(session), viewer, course_id)


_INSTRUCTORS = CourseInstructor.__table__
_ENROLLMENTS = Enrollment.__table__
_IS_INSTRUCTOR = Query(
    select(_INSTRUCTORS.c.user_id).where(
        _INSTRUCTORS.c.course_id == bindparam("course_id"),
        _INSTRUCTORS.c.user_id == bindparam("user_id"),
    )
)
_IS_ENROLLED = Query(
    select(_ENROLLMENTS.c.id).where(
        _ENROLLMENTS.c.course_id == bindparam("course_id"),
        _ENROLLMENTS.c.user_id == bindparam("user_id"),
        one_of(_ENROLLMENTS.c.status, ENROLLED_STATUSES),
    )
)


async def is_course_staff_reading(
    reads: ReadTransaction, viewer: Viewer | None, course_id: int
) -> bool:
    """True for admins and for the course's instructors."""
    if viewer is None:
        return False
    if viewer.is_admin:
        return True
    found = await reads.first(_IS_INSTRUCTOR, course_id=course_id, user_id=viewer.user_id)
    return found is not None


async def can_see_course_reading(
    reads: ReadTransaction, viewer: Viewer | None, course: Course | CourseRow
) -> bool:
    """Published courses are public; others are seen by their staff and enrolled students."""
    if course.status == CourseStatus.PUBLISHED:
        return True
    if viewer is None:
        return False
    if await is_course_staff_reading(reads, viewer, course.id):  # type: ignore[arg-type]
        return True
    enrolled = await reads.first(_IS_ENROLLED, course_id=course.id, user_id=viewer.user_id)
    return enrolled is not None


_COURSES = Course.__table__
#: A course row by id, for the lean read path.
COURSE_BY_ID = Query(select(_COURSES).where(_COURSES.c.id == bindparam("course_id")))


async def visible_course_reading(
    reads: ReadTransaction, viewer: Viewer | None, course_id: int
) -> CourseRow | None:
    """The course if it exists and the viewer may see it (`visible_course`), else None."""
    row = await reads.first(COURSE_BY_ID, course_id=course_id)
    course = CourseRow(*row) if row is not None else None
    if course is None or not await can_see_course_reading(reads, viewer, course):
        return None
    return course


async def staff_course_reading(
    reads: ReadTransaction, viewer: Viewer | None, course_id: int
) -> CourseRow:
    """`staff_course` on a lean read transaction (read-only operations)."""
    viewer = require_viewer(viewer)
    course = await visible_course_reading(reads, viewer, course_id)
    if course is None:
        raise NotFound(f"Course {course_id} not found")
    if not await is_course_staff_reading(reads, viewer, course_id):
        raise Forbidden("Only the course's instructors and admins may do this")
    return course


async def can_see_course(session: AsyncSession, viewer: Viewer | None, course: Course) -> bool:
    """`can_see_course_reading`, in the session's transaction."""
    return await can_see_course_reading(SessionTransaction(session), viewer, course)


async def get_course(
    session: AsyncSession, course_id: int, *, lock: bool = False, share: bool = False
) -> Course | None:
    """The course row; `lock` takes a row lock (FOR UPDATE, or FOR SHARE with `share`)."""
    query = select(Course).where(Course.id == course_id).execution_options(populate_existing=True)
    if lock:
        query = query.with_for_update(read=share)
    return await session.scalar(query)


async def visible_course(
    session: AsyncSession,
    viewer: Viewer | None,
    course_id: int,
    *,
    lock: bool = False,
    share: bool = False,
) -> Course:
    """The course if it exists and the viewer may see it, else `not_found`."""
    course = await get_course(session, course_id, lock=lock, share=share)
    if course is None or not await can_see_course(session, viewer, course):
        raise NotFound(f"Course {course_id} not found")
    return course


async def staff_course(
    session: AsyncSession, viewer: Viewer | None, course_id: int, *, lock: bool = False
) -> Course:
    """The course for authoring or instructor views: `not_found`, or `forbidden` for non-staff."""
    viewer = require_viewer(viewer)
    course = await visible_course(session, viewer, course_id, lock=lock)
    if not await is_course_staff(session, viewer, course_id):
        raise Forbidden("Only the course's instructors and admins may do this")
    return course


def require_author(viewer: Viewer | None) -> Viewer:
    """The viewer if instructor or admin (who may create courses), else `forbidden`."""
    viewer = require_viewer(viewer)
    if viewer.role not in (Role.INSTRUCTOR, Role.ADMIN):
        raise Forbidden("Only instructors and admins may create courses")
    return viewer


def require_admin(viewer: Viewer | None) -> Viewer:
    viewer = require_viewer(viewer)
    if not viewer.is_admin:
        raise Forbidden("Only admins may do this")
    return viewer
