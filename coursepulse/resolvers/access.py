"""Who may see and change what: course visibility and course staff."""

from sqlalchemy import bindparam, exists, select

from coursepulse.models import (
    ENROLLED_STATUSES,
    Course,
    CourseInstructor,
    CourseStatus,
    Enrollment,
    Role,
)
from coursepulse.models.rows import CourseRow
from coursepulse.models.sql import Query, one_of
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers.errors import Forbidden, NotFound
from coursepulse.resolvers.viewer import Viewer, require_viewer

_COURSES = Course.__table__
_INSTRUCTORS = CourseInstructor.__table__
_ENROLLMENTS = Enrollment.__table__
#: The viewer (`user_id`) is one of the course's (`course_id`) instructors.
_INSTRUCTS = (
    _INSTRUCTORS.c.course_id == bindparam("course_id"),
    _INSTRUCTORS.c.user_id == bindparam("user_id"),
)
_IS_INSTRUCTOR = Query(select(_INSTRUCTORS.c.user_id).where(*_INSTRUCTS))
#: The same as a column of another statement (a roster page reads it with the course).
INSTRUCTS = exists().where(*_INSTRUCTS)
_IS_ENROLLED = Query(
    select(_ENROLLMENTS.c.id).where(
        _ENROLLMENTS.c.course_id == bindparam("course_id"),
        _ENROLLMENTS.c.user_id == bindparam("user_id"),
        one_of(_ENROLLMENTS.c.status, ENROLLED_STATUSES),
    )
)
_COURSE = select(_COURSES).where(_COURSES.c.id == bindparam("course_id"))
_COURSE_BY_ID = Query(_COURSE)
#: Locked for update: lesson-set changes and authoring take turns on the course.
_COURSE_FOR_UPDATE = Query(_COURSE.with_for_update())
#: Share-locked: learner actions run together, and lesson-set changes wait for them.
_COURSE_FOR_SHARE = Query(_COURSE.with_for_update(read=True))


async def is_course_staff(
    tx: Transaction, viewer: Viewer | None, course_id: int, *, instructs: bool | None = None
) -> bool:
    """True for admins and for the course's instructors (`instructs`: whether the viewer
    instructs it, when read already with `INSTRUCTS`)."""
    if viewer is None:
        return False
    if viewer.is_admin:
        return True
    if instructs is not None:
        return instructs
    found = await tx.first(_IS_INSTRUCTOR, course_id=course_id, user_id=viewer.user_id)
    return found is not None


async def can_see_course(
    tx: Transaction, viewer: Viewer | None, course: CourseRow, *, instructs: bool | None = None
) -> bool:
    """Published courses are public; others are seen by their staff and enrolled students
    (`instructs` as for `is_course_staff`)."""
    if course.status == CourseStatus.PUBLISHED:
        return True
    if viewer is None:
        return False
    if await is_course_staff(tx, viewer, course.id, instructs=instructs):
        return True
    enrolled = await tx.first(_IS_ENROLLED, course_id=course.id, user_id=viewer.user_id)
    return enrolled is not None


async def get_course(
    tx: Transaction, course_id: int, *, lock: bool = False, share: bool = False
) -> CourseRow | None:
    """The course row; `lock` takes a row lock (FOR UPDATE, or FOR SHARE with `share`)."""
    if lock:
        return await tx.first(
            _COURSE_FOR_SHARE if share else _COURSE_FOR_UPDATE, course_id=course_id
        )
    return await tx.first(_COURSE_BY_ID, course_id=course_id)


async def course_if_visible(
    tx: Transaction,
    viewer: Viewer | None,
    course_id: int,
    *,
    lock: bool = False,
    share: bool = False,
) -> CourseRow | None:
    """The course if it exists and the viewer may see it, else None."""
    course = await get_course(tx, course_id, lock=lock, share=share)
    if course is None or not await can_see_course(tx, viewer, course):
        return None
    return course


async def visible_course(
    tx: Transaction,
    viewer: Viewer | None,
    course_id: int,
    *,
    lock: bool = False,
    share: bool = False,
) -> CourseRow:
    """The course if it exists and the viewer may see it, else `not_found`."""
    course = await course_if_visible(tx, viewer, course_id, lock=lock, share=share)
    if course is None:
        raise NotFound(f"Course {course_id} not found")
    return course


async def staff_course(
    tx: Transaction, viewer: Viewer | None, course_id: int, *, lock: bool = False
) -> CourseRow:
    """The course for authoring or instructor views: `not_found`, or `forbidden` for non-staff."""
    viewer = require_viewer(viewer)
    return await require_staff(tx, viewer, course_id, await get_course(tx, course_id, lock=lock))


async def require_staff(
    tx: Transaction,
    viewer: Viewer,
    course_id: int,
    course: CourseRow | None,
    *,
    instructs: bool | None = None,
) -> CourseRow:
    """`staff_course`'s checks on a course row read already (a roster reads it with its
    count of students, and whether the viewer `instructs` it): `not_found`, or
    `forbidden` for non-staff."""
    if course is None or not await can_see_course(tx, viewer, course, instructs=instructs):
        raise NotFound(f"Course {course_id} not found")
    if not await is_course_staff(tx, viewer, course_id, instructs=instructs):
        raise Forbidden("Only the course's instructors and admins may do this")
    return course


def require_author(viewer: Viewer | None) -> Viewer:
    """The viewer if instructor or admin (who may create courses), else `forbidden`."""
    viewer = require_viewer(viewer)
    if viewer.role not in (Role.INSTRUCTOR, Role.ADMIN):
        raise Forbidden("Only instructors and admins may create courses")
    return viewer


def require_admin(viewer: Viewer | None) -> Viewer:
    """The viewer if admin, else `forbidden`."""
    viewer = require_viewer(viewer)
    if not viewer.is_admin:
        raise Forbidden("Only admins may do this")
    return viewer
