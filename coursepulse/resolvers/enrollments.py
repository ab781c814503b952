"""What students do: enrol, leave, study, and read their progress."""

from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from coursepulse.models import (
    ENROLLED_STATUSES,
    Course,
    CourseStatus,
    Enrollment,
    EnrollmentStatus,
    Lesson,
    LessonCompletion,
    LessonTime,
    ProgressEventKind,
    utcnow,
)
from coursepulse.models.rows import CourseRow, EnrollmentRow, LessonRow
from coursepulse.models.sql import Query, one_of
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers.access import (
    can_see_course,
    get_course,
    is_course_staff,
    visible_course,
)
from coursepulse.resolvers.course_counts import count_enrolment
from coursepulse.resolvers.errors import AlreadyEnrolled, Forbidden, NotEnrolled, NotFound
from coursepulse.resolvers.lookups import next_lesson_id
from coursepulse.resolvers.outbox import ACTIVITY_EVENT_INTERVAL_SECONDS, append_event
from coursepulse.resolvers.progress import ProgressRecord, settle
from coursepulse.resolvers.validation import check_range
from coursepulse.resolvers.viewer import Viewer, require_viewer

MAX_ACTIVITY_SECONDS = 3600
#: Study time an enrolment may have credited at once (COURSEPULSE_ACTIVITY_ALLOWANCE_SECONDS).
DEFAULT_ACTIVITY_ALLOWANCE_SECONDS = 3600
#: What a student is told when `enroll` / `unenroll` succeed.
ENROLLED_MESSAGE = "Successfully enrolled in course"
UNENROLLED_MESSAGE = "Successfully unenrolled from course"

_COURSES = Course.__table__
_ENROLLMENTS = Enrollment.__table__
_LESSONS = Lesson.__table__
_COMPLETIONS = LessonCompletion.__table__

#: The viewer's enrolment in a course, locked: their actions on it take turns.
#: An enrolment, locked for a learner action (or a reset).
ENROLLMENT_FOR_UPDATE = Query(
    select(_ENROLLMENTS)
    .where(
        _ENROLLMENTS.c.user_id == bindparam("user_id"),
        _ENROLLMENTS.c.course_id == bindparam("course_id"),
    )
    .with_for_update()
)
#: A learner action's course, share-locked so lesson-set changes wait for the action, and
#: the viewer's enrolment in it, locked: their actions on it take turns. One statement
#: when the enrolment exists; PostgreSQL takes the course's lock first (the order of the
#: locking clauses), as the statements that change a course's lessons do.
_COURSE_AND_ENROLLMENT_FOR_UPDATE = Query(
    select(_COURSES, _ENROLLMENTS)
    .join(
        _ENROLLMENTS,
        (_ENROLLMENTS.c.course_id == _COURSES.c.id)
        & (_ENROLLMENTS.c.user_id == bindparam("user_id")),
    )
    .where(_COURSES.c.id == bindparam("course_id"))
    .suffix_with("FOR SHARE OF courses FOR UPDATE OF enrollments", dialect="postgresql")
)
_LESSON_OF_COURSE = Query(
    select(_LESSONS.c.id).where(
        _LESSONS.c.id == bindparam("lesson_id"), _LESSONS.c.course_id == bindparam("course_id")
    )
)
_ADD_ENROLLMENT = Query(
    insert(_ENROLLMENTS)
    .values(
        user_id=bindparam("user_id"),
        course_id=bindparam("course_id"),
        status=bindparam("new_status"),
        enrolled_at=bindparam("at"),
        last_accessed_at=bindparam("at"),
        completed_at=None,
        time_spent_seconds=0,
        completed_lessons=0,
    )
    .returning(_ENROLLMENTS)
)
_SAVE_ENROLLMENT = Query(
    update(_ENROLLMENTS)
    .where(_ENROLLMENTS.c.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        completed_at=bindparam("new_completed_at"),
        last_accessed_at=bindparam("new_last_accessed_at"),
        time_spent_seconds=bindparam("new_time_spent_seconds"),
        completed_lessons=bindparam("new_completed_lessons"),
        activity_credited_to=bindparam("new_activity_credited_to"),
        last_activity_event_at=bindparam("new_last_activity_event_at"),
    )
)
_LAST_COMPLETION = Query(
    select(func.max(_COMPLETIONS.c.completed_at)).where(
        _COMPLETIONS.c.enrollment_id == bindparam("enrollment_id")
    )
)


async def save_enrollment(tx: Transaction, enrollment: EnrollmentRow) -> None:
    """Store an enrolment row's status, timestamps and counters."""
    await tx.execute(
        _SAVE_ENROLLMENT,
        row_id=enrollment.id,
        new_status=str(enrollment.status),
        new_completed_at=enrollment.completed_at,
        new_last_accessed_at=enrollment.last_accessed_at,
        new_time_spent_seconds=enrollment.time_spent_seconds,
        new_completed_lessons=enrollment.completed_lessons,
        new_activity_credited_to=enrollment.activity_credited_to,
        new_last_activity_event_at=enrollment.last_activity_event_at,
    )


async def learning_enrollment(
    tx: Transaction, viewer: Viewer | None, course_id: int
) -> tuple[Viewer, CourseRow, EnrollmentRow]:
    """Viewer, course and locked active enrolment for a learner action.

    A course the viewer cannot see is `not_found`; no active enrolment is `not_enrolled`.
    The course is share-locked so lesson-set changes wait for the action to finish.
    """
    viewer = require_viewer(viewer)
    found = await tx.first(
        _COURSE_AND_ENROLLMENT_FOR_UPDATE, user_id=viewer.user_id, course_id=course_id
    )
    if found is not None:
        course, enrollment = found
    else:
        course, enrollment = await get_course(tx, course_id, lock=True, share=True), None
        if course is None:
            raise NotFound(f"Course {course_id} not found")
    if enrollment is None or enrollment.status not in ENROLLED_STATUSES:
        if not await can_see_course(tx, viewer, course):
            raise NotFound(f"Course {course_id} not found")
        raise NotEnrolled()
    return viewer, course, enrollment


async def require_lesson_of(tx: Transaction, course_id: int, lesson_id: int) -> None:
    """`not_found` unless the lesson belongs to the course."""
    if await tx.first(_LESSON_OF_COURSE, lesson_id=lesson_id, course_id=course_id) is None:
        raise NotFound(f"Lesson {lesson_id} not found in course {course_id}")


async def enroll(tx: Transaction, viewer: Viewer | None, course_id: int) -> ProgressRecord:
    """Enrol the viewer in a published course; re-enrolling restores kept progress."""
    viewer = require_viewer(viewer)
    course = await visible_course(tx, viewer, course_id, lock=True, share=True)
    if course.status != CourseStatus.PUBLISHED:
        raise Forbidden("Enrolment is open only in published courses")
    now = utcnow()
    enrollment = await tx.first(ENROLLMENT_FOR_UPDATE, user_id=viewer.user_id, course_id=course_id)
    if enrollment is not None and enrollment.status in ENROLLED_STATUSES:
        raise AlreadyEnrolled()
    if enrollment is None:
        try:
            enrollment = await tx.first(
                _ADD_ENROLLMENT,
                user_id=viewer.user_id,
                course_id=course_id,
                new_status=str(EnrollmentStatus.ACTIVE),
                at=now,
            )
        except IntegrityError as error:
            # A concurrent request (a double click) enrolled the same student first.
            raise AlreadyEnrolled() from error
        assert enrollment is not None
    else:
        # Re-enrolling: the kept counters decide the status.
        enrollment = enrollment._replace(status=EnrollmentStatus.ACTIVE, last_accessed_at=now)
        standing = settle(enrollment, course.total_lessons, now)
        completed_at = standing.completed_at
        if standing.status == EnrollmentStatus.COMPLETED:
            # Restored with every lesson done: it was completed when its last lesson was.
            completed_at = await tx.scalar(_LAST_COMPLETION, enrollment_id=enrollment.id)
        enrollment = enrollment._replace(status=standing.status, completed_at=completed_at)
        await save_enrollment(tx, enrollment)
    await count_enrolment(tx, course_id, +1)
    await append_event(
        tx,
        kind=ProgressEventKind.ENROLLED,
        enrollment=enrollment,
        total_lessons=course.total_lessons,
        occurred_at=now,
    )
    return ProgressRecord(enrollment, course)


async def unenroll(tx: Transaction, viewer: Viewer | None, course_id: int) -> int:
    """Leave a course, keeping the progress; returns the course id."""
    _viewer, course, enrollment = await learning_enrollment(tx, viewer, course_id)
    now = utcnow()
    enrollment = enrollment._replace(
        status=EnrollmentStatus.UNENROLLED, completed_at=None, last_accessed_at=now
    )
    await save_enrollment(tx, enrollment)
    await count_enrolment(tx, course_id, -1)
    await append_event(
        tx,
        kind=ProgressEventKind.UNENROLLED,
        enrollment=enrollment,
        total_lessons=course.total_lessons,
        occurred_at=now,
    )
    return course_id


def credit_activity(
    credited_to: datetime | None, now: datetime, seconds: int, allowance: int
) -> tuple[int, datetime]:
    """How many of `seconds` may be credited now, and how far the credited time then
    reaches on the clock.

    Each enrolment's allowance holds at most `allowance` seconds and refills one second
    per second: it is what lies between the clock and the credited time (`credited_to`,
    never further back than `allowance` seconds). So recorded time never outruns the
    clock, however often and however much a client sends.
    """
    floor = now - timedelta(seconds=allowance)
    start = floor if credited_to is None or credited_to < floor else credited_to
    available = max(0, int((now - start).total_seconds()))
    credited = min(seconds, available)
    return credited, start + timedelta(seconds=credited)


async def record_activity(
    tx: Transaction,
    viewer: Viewer | None,
    course_id: int,
    seconds: int,
    lesson_id: int | None = None,
    *,
    allowance: int = DEFAULT_ACTIVITY_ALLOWANCE_SECONDS,
) -> ProgressRecord:
    """Add study time (1..3600 seconds per call; what the allowance holds of it, see
    `credit_activity`), to the lesson too when one is named, and mark the course as
    accessed now. A heartbeat with nothing left to credit is not an error."""
    check_range(seconds, field="seconds", low=1, high=MAX_ACTIVITY_SECONDS)
    _viewer, course, enrollment = await learning_enrollment(tx, viewer, course_id)
    if lesson_id is not None:
        await require_lesson_of(tx, course_id, lesson_id)
    now = utcnow()
    credited, credited_to = credit_activity(
        enrollment.activity_credited_to, now, seconds, allowance
    )
    # Heartbeats arrive every few seconds: subscribers hear at most one per interval.
    last_event = enrollment.last_activity_event_at
    announce = (
        last_event is None or (now - last_event).total_seconds() >= ACTIVITY_EVENT_INTERVAL_SECONDS
    )
    enrollment = enrollment._replace(
        time_spent_seconds=enrollment.time_spent_seconds + credited,
        last_accessed_at=now,
        activity_credited_to=credited_to,
        last_activity_event_at=now if announce else last_event,
    )
    await save_enrollment(tx, enrollment)
    if lesson_id is not None and credited:
        add_time = (
            _ADD_LESSON_TIME_POSTGRES if tx.dialect.name == "postgresql" else _ADD_LESSON_TIME
        )
        await tx.execute(
            add_time, enrollment_id=enrollment.id, lesson_id=lesson_id, seconds=credited
        )
    if announce:
        await append_event(
            tx,
            kind=ProgressEventKind.ACTIVITY,
            enrollment=enrollment,
            total_lessons=course.total_lessons,
            occurred_at=now,
            lesson_id=lesson_id,
        )
    return ProgressRecord(enrollment, course)


def _lesson_time_upsert(dialect_insert: Any) -> Query:
    """Add seconds to an enrolment's time on a lesson (its row made on first use)."""
    statement = dialect_insert(_LESSON_TIMES).values(
        enrollment_id=bindparam("enrollment_id"),
        lesson_id=bindparam("lesson_id"),
        seconds=bindparam("seconds"),
    )
    return Query(
        statement.on_conflict_do_update(
            index_elements=[_LESSON_TIMES.c.enrollment_id, _LESSON_TIMES.c.lesson_id],
            set_={"seconds": _LESSON_TIMES.c.seconds + statement.excluded.seconds},
        )
    )


_LESSON_TIMES = LessonTime.__table__
_ADD_LESSON_TIME = _lesson_time_upsert(sqlite_insert)
_ADD_LESSON_TIME_POSTGRES = _lesson_time_upsert(postgresql_insert)


#: A course with one user's enrolment in it (None when not enrolled): the progress read.
#: A course, a student's enrolment in it and that enrolment's next lesson, in one statement.
COURSE_WITH_ENROLLMENT = Query(
    select(_COURSES, _ENROLLMENTS, _LESSONS)
    .select_from(
        _COURSES.outerjoin(
            _ENROLLMENTS,
            (_ENROLLMENTS.c.course_id == _COURSES.c.id)
            & (_ENROLLMENTS.c.user_id == bindparam("user_id")),
        ).outerjoin(_LESSONS, _LESSONS.c.id == next_lesson_id(_COURSES.c.id, _ENROLLMENTS.c.id))
    )
    .where(_COURSES.c.id == bindparam("course_id"))
)


async def course_progress(
    tx: Transaction, viewer: Viewer | None, course_id: int, user_id: int | None = None
) -> ProgressRecord:
    """The viewer's progress, or another student's for the course's staff."""
    record, _next_lesson = await course_progress_and_next_lesson(tx, viewer, course_id, user_id)
    return record


async def course_progress_and_next_lesson(
    tx: Transaction, viewer: Viewer | None, course_id: int, user_id: int | None = None
) -> tuple[ProgressRecord, LessonRow | None]:
    """`course_progress`, with the enrolment's next lesson (None once all are complete).

    The common case (a published course, or the viewer's own enrolment) is one
    statement: the course joined with the enrolment and its next lesson.
    """
    viewer = require_viewer(viewer)
    target = viewer.user_id if user_id is None else user_id
    found = await tx.first(COURSE_WITH_ENROLLMENT, course_id=course_id, user_id=target)
    if found is None:
        raise NotFound(f"Course {course_id} not found")
    course, enrollment, following = found
    enrolled = enrollment is not None and enrollment.status in ENROLLED_STATUSES
    if (
        course.status != CourseStatus.PUBLISHED
        and not (target == viewer.user_id and enrolled)
        and not await can_see_course(tx, viewer, course)
    ):
        raise NotFound(f"Course {course_id} not found")
    if target != viewer.user_id and not await is_course_staff(tx, viewer, course_id):
        raise Forbidden("Only the course's instructors and admins may see other students' progress")
    if enrollment is None or not enrolled:
        if target == viewer.user_id:
            raise NotEnrolled()
        raise NotEnrolled("This student is not enrolled in this course")
    return ProgressRecord(enrollment, course), following


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
    tx: Transaction, viewer: Viewer | None, status: EnrollmentStatus | None = None
) -> list[ProgressRecord]:
    """The viewer's enrolments with their courses, most recently enrolled first."""
    viewer = require_viewer(viewer)
    statuses = ENROLLED_STATUSES if status is None else (status,)
    rows = await tx.all(
        _my_courses_query(tuple(str(item) for item in statuses)), user_id=viewer.user_id
    )
    return [ProgressRecord(enrollment, course) for enrollment, course in rows]
