"""What students do: enrol, leave, complete lessons, study, and read their progress."""

from functools import cache

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import (
    ENROLLED_STATUSES,
    Course,
    CourseStatus,
    Enrollment,
    EnrollmentStatus,
    Lesson,
    LessonCompletion,
    ProgressEventKind,
    utcnow,
)
from coursepulse.models.reads import Query, ReadTransaction, one_of
from coursepulse.models.rows import CourseRow, EnrollmentRow
from coursepulse.resolvers.access import (
    can_see_course_reading,
    get_course,
    is_course_staff_reading,
    visible_course,
)
from coursepulse.resolvers.errors import AlreadyEnrolled, Forbidden, NotEnrolled, NotFound
from coursepulse.resolvers.events import append_event, recent_activity_event
from coursepulse.resolvers.progress import ProgressRecord, settle_status
from coursepulse.resolvers.validation import check_range
from coursepulse.resolvers.viewer import Viewer, require_viewer

MAX_ACTIVITY_SECONDS = 3600


async def _enrollment(
    session: AsyncSession, user_id: int, course_id: int, *, lock: bool = False
) -> Enrollment | None:
    query = (
        select(Enrollment)
        .where(Enrollment.user_id == user_id, Enrollment.course_id == course_id)
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def learning_enrollment(
    session: AsyncSession, viewer: Viewer | None, course_id: int
) -> tuple[Viewer, Course, Enrollment]:
    """Viewer, course and locked active enrolment for a learner action.

    A course the viewer cannot see is `not_found`; no active enrolment is `not_enrolled`.
    The course is share-locked so lesson-set changes wait for the action to finish.
    """
    viewer = require_viewer(viewer)
    course = await get_course(session, course_id, lock=True, share=True)
    if course is None:
        raise NotFound(f"Course {course_id} not found")
    enrollment = await _enrollment(session, viewer.user_id, course_id, lock=True)
    if enrollment is None or enrollment.status not in ENROLLED_STATUSES:
        await visible_course(session, viewer, course_id)
        raise NotEnrolled()
    return viewer, course, enrollment


async def _lesson_of(session: AsyncSession, course_id: int, lesson_id: int) -> Lesson:
    lesson = await session.get(Lesson, lesson_id)
    if lesson is None or lesson.course_id != course_id:
        raise NotFound(f"Lesson {lesson_id} not found in course {course_id}")
    return lesson


async def enroll(session: AsyncSession, viewer: Viewer | None, course_id: int) -> ProgressRecord:
    """Enrol the viewer in a published course; re-enrolling restores kept progress."""
    viewer = require_viewer(viewer)
    course = await visible_course(session, viewer, course_id, lock=True, share=True)
    if course.status != CourseStatus.PUBLISHED:
        raise Forbidden("Enrolment is open only in published courses")
    now = utcnow()
    enrollment = await _enrollment(session, viewer.user_id, course_id, lock=True)
    if enrollment is not None and enrollment.status in ENROLLED_STATUSES:
        raise AlreadyEnrolled()
    if enrollment is None:
        enrollment = Enrollment(user_id=viewer.user_id, course_id=course_id, enrolled_at=now)
        session.add(enrollment)
    enrollment.status = EnrollmentStatus.ACTIVE
    enrollment.last_accessed_at = now
    settle_status(enrollment, course.total_lessons, now)
    if enrollment.status == EnrollmentStatus.COMPLETED:
        # Restored with every lesson done: it was completed when its last lesson was.
        enrollment.completed_at = await session.scalar(
            select(func.max(LessonCompletion.completed_at)).where(
                LessonCompletion.enrollment_id == enrollment.id
            )
        )
    try:
        await session.flush()
    except IntegrityError as error:
        # A concurrent request (a double click) enrolled the same student first.
        raise AlreadyEnrolled() from error
    await append_event(
        session,
        kind=ProgressEventKind.ENROLLED,
        enrollment=enrollment,
        total_lessons=course.total_lessons,
        occurred_at=now,
    )
    await session.flush()
    return ProgressRecord(enrollment, course)


async def unenroll(session: AsyncSession, viewer: Viewer | None, course_id: int) -> int:
    """Leave a course, keeping the progress; returns the course id."""
    _viewer, course, enrollment = await learning_enrollment(session, viewer, course_id)
    now = utcnow()
    enrollment.status = EnrollmentStatus.UNENROLLED
    enrollment.completed_at = None
    enrollment.last_accessed_at = now
    await append_event(
        session,
        kind=ProgressEventKind.UNENROLLED,
        enrollment=enrollment,
        total_lessons=course.total_lessons,
        occurred_at=now,
    )
    await session.flush()
    return course_id


async def record_activity(
    session: AsyncSession,
    viewer: Viewer | None,
    course_id: int,
    seconds: int,
    lesson_id: int | None = None,
) -> ProgressRecord:
    """Add study time (1..3600 seconds per call) and mark the course as accessed now."""
    check_range(seconds, field="seconds", low=1, high=MAX_ACTIVITY_SECONDS)
    _viewer, course, enrollment = await learning_enrollment(session, viewer, course_id)
    if lesson_id is not None:
        await _lesson_of(session, course_id, lesson_id)
    now = utcnow()
    enrollment.time_spent_seconds += seconds
    enrollment.last_accessed_at = now
    # Heartbeats arrive every few seconds: subscribers hear at most one per interval.
    if not await recent_activity_event(session, enrollment, now):
        await append_event(
            session,
            kind=ProgressEventKind.ACTIVITY,
            enrollment=enrollment,
            total_lessons=course.total_lessons,
            occurred_at=now,
            lesson_id=lesson_id,
        )
    await session.flush()
    return ProgressRecord(enrollment, course)


_COURSES = Course.__table__
_ENROLLMENTS = Enrollment.__table__
_COURSE_WITH_ENROLLMENT = Query(
    select(_COURSES, _ENROLLMENTS)
    .select_from(
        _COURSES.outerjoin(
            _ENROLLMENTS,
            (_ENROLLMENTS.c.course_id == _COURSES.c.id)
            & (_ENROLLMENTS.c.user_id == bindparam("user_id")),
        )
    )
    .where(_COURSES.c.id == bindparam("course_id"))
)
_COURSE_COLUMNS = len(_COURSES.columns)
_ENROLLMENT_COLUMNS = len(_ENROLLMENTS.columns)


async def course_progress(
    reads: ReadTransaction, viewer: Viewer | None, course_id: int, user_id: int | None = None
) -> ProgressRecord:
    """The viewer's progress, or another student's for the course's staff.

    The common case (a published course, or the viewer's own enrolment) is one
    statement: the course joined with the enrolment.
    """
    viewer = require_viewer(viewer)
    target = viewer.user_id if user_id is None else user_id
    row = await reads.first(_COURSE_WITH_ENROLLMENT, course_id=course_id, user_id=target)
    if row is None:
        raise NotFound(f"Course {course_id} not found")
    course = CourseRow(*row[:_COURSE_COLUMNS])
    enrollment = EnrollmentRow(*row[_COURSE_COLUMNS:]) if row[_COURSE_COLUMNS] is not None else None
    enrolled = enrollment is not None and enrollment.status in ENROLLED_STATUSES
    if (
        course.status != CourseStatus.PUBLISHED
        and not (target == viewer.user_id and enrolled)
        and not await can_see_course_reading(reads, viewer, course)
    ):
        raise NotFound(f"Course {course_id} not found")
    if target != viewer.user_id and not await is_course_staff_reading(reads, viewer, course_id):
        raise Forbidden("Only the course's instructors and admins may see other students' progress")
    if enrollment is None or not enrolled:
        if target == viewer.user_id:
            raise NotEnrolled()
        raise NotEnrolled("This student is not enrolled in this course")
    return ProgressRecord(enrollment, course)


@cache
def _my_courses_query(statuses: tuple[str, ...]) -> Query:
    return Query(
        select(_ENROLLMENTS, _COURSES)
        .join(_COURSES, _COURSES.c.id == _ENROLLMENTS.c.course_id)
        .where(
            _ENROLLMENTS.c.user_id == bindparam("user_id"),
            one_of(_ENROLLMENTS.c.status, statuses),
        )
        .order_by(_ENROLLMENTS.c.enrolled_at.desc(), _ENROLLMENTS.c.id.desc())
    )


async def my_courses(
    reads: ReadTransaction, viewer: Viewer | None, status: EnrollmentStatus | None = None
) -> list[ProgressRecord]:
    """The viewer's enrolments with their courses, most recently enrolled first."""
    viewer = require_viewer(viewer)
    statuses = ENROLLED_STATUSES if status is None else (status,)
    rows = await reads.all(
        _my_courses_query(tuple(str(item) for item in statuses)), user_id=viewer.user_id
    )
    return [
        ProgressRecord(
            EnrollmentRow(*row[:_ENROLLMENT_COLUMNS]), CourseRow(*row[_ENROLLMENT_COLUMNS:])
        )
        for row in rows
    ]
