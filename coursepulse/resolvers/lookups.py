"""Batched reads behind the GraphQL DataLoaders: one statement per batch of keys.

They run in the operation's read transaction and give rows (models/rows.py).
"""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.sql.selectable import ScalarSelect

from coursepulse.models import (
    Certificate,
    Course,
    CourseInstructor,
    Enrollment,
    Lesson,
    LessonCompletion,
    LessonTime,
    ProgressEvent,
    User,
)
from coursepulse.models.rows import (
    CertificateRow,
    CompletionRow,
    CourseRow,
    EnrollmentRow,
    LessonRow,
    UserRow,
)
from coursepulse.models.sql import Query, in_ids
from coursepulse.models.transactions import Transaction

USERS = User.__table__
COURSES = Course.__table__
LESSONS = Lesson.__table__
COMPLETIONS = LessonCompletion.__table__
ENROLLMENTS = Enrollment.__table__
CERTIFICATES = Certificate.__table__
INSTRUCTORS = CourseInstructor.__table__
EVENTS = ProgressEvent.__table__

_USERS_BY_ID = Query(select(USERS).where(in_ids(USERS.c.id, "ids")))
_COURSES_BY_ID = Query(select(COURSES).where(in_ids(COURSES.c.id, "ids")))
_LESSONS_BY_COURSE = Query(
    select(LESSONS)
    .where(in_ids(LESSONS.c.course_id, "ids"))
    .order_by(LESSONS.c.course_id, LESSONS.c.position)
)
_COMPLETIONS_BY_ENROLLMENT = Query(
    select(COMPLETIONS).where(in_ids(COMPLETIONS.c.enrollment_id, "ids"))
)
_LESSON_TIMES = LessonTime.__table__
_LESSON_TIMES_BY_ENROLLMENT = Query(
    select(_LESSON_TIMES.c.enrollment_id, _LESSON_TIMES.c.lesson_id, _LESSON_TIMES.c.seconds).where(
        in_ids(_LESSON_TIMES.c.enrollment_id, "ids")
    )
)
_INSTRUCTORS_BY_COURSE = Query(
    select(INSTRUCTORS, USERS)
    .join(USERS, USERS.c.id == INSTRUCTORS.c.user_id)
    .where(in_ids(INSTRUCTORS.c.course_id, "ids"))
    .order_by(INSTRUCTORS.c.course_id, USERS.c.id)
)
_LAST_EVENTS = Query(
    select(EVENTS.c.user_id, EVENTS.c.course_id, func.max(EVENTS.c.id).label("last_id"))
    .where(in_ids(EVENTS.c.user_id, "user_ids"), in_ids(EVENTS.c.course_id, "course_ids"))
    .group_by(EVENTS.c.user_id, EVENTS.c.course_id)
)
_ENROLLMENTS_OF_USER = Query(
    select(ENROLLMENTS).where(
        ENROLLMENTS.c.user_id == bindparam("user_id"),
        in_ids(ENROLLMENTS.c.course_id, "ids"),
    )
)


def next_lesson_id(
    course_id: Any, enrollment_id: Any, *, excluding: Any = None
) -> ScalarSelect[Any]:
    """The rule of the next lesson: the id of the course's first lesson in course order
    without a completion of the enrolment (NULL when all are complete).

    An expression over the given columns or parameters, so a statement can read the next
    lesson with what it reads anyway; it walks the lessons' (course, position) index and
    stops at the first lesson that the completions' unique key does not find. With
    `excluding` (a lesson id) that lesson is passed over: the next lesson whatever becomes
    of it (see `next_after_change`).
    """
    following = LESSONS.alias("following")
    conditions = [
        following.c.course_id == course_id,
        ~exists()
        .where(
            COMPLETIONS.c.enrollment_id == enrollment_id,
            COMPLETIONS.c.lesson_id == following.c.id,
        )
        .correlate_except(COMPLETIONS),
    ]
    if excluding is not None:
        conditions.append(following.c.id != excluding)
    return (
        select(following.c.id)
        .where(*conditions)
        .order_by(following.c.position)
        .limit(1)
        .correlate_except(following)
        .scalar_subquery()
    )


def next_after_change(
    lesson: LessonRow, complete: bool, other: LessonRow | None
) -> LessonRow | None:
    """The next lesson once `lesson` is complete or not (`complete`), given the next
    lesson of the others (`next_lesson_id` excluding it): the rule of `next_lesson_id`
    applied to the state after the change, without reading it again."""
    if complete or (other is not None and other.position < lesson.position):
        return other
    return lesson


_NEXT_LESSONS = Query(
    select(ENROLLMENTS, LESSONS)
    .select_from(
        ENROLLMENTS.join(
            LESSONS, LESSONS.c.id == next_lesson_id(ENROLLMENTS.c.course_id, ENROLLMENTS.c.id)
        )
    )
    .where(in_ids(ENROLLMENTS.c.id, "ids"))
)
_CERTIFICATES_BY_ENROLLMENT = Query(
    select(CERTIFICATES).where(in_ids(CERTIFICATES.c.enrollment_id, "ids"))
)


async def users_by_id(tx: Transaction, ids: Sequence[int]) -> dict[int, UserRow]:
    rows = await tx.all(_USERS_BY_ID, ids=ids)
    return {user.id: user for user in rows}


async def courses_by_id(tx: Transaction, ids: Sequence[int]) -> dict[int, CourseRow]:
    rows = await tx.all(_COURSES_BY_ID, ids=ids)
    return {course.id: course for course in rows}


async def lessons_by_course(
    tx: Transaction, course_ids: Sequence[int]
) -> dict[int, list[LessonRow]]:
    """Each course's lessons in course order."""
    grouped: dict[int, list[LessonRow]] = defaultdict(list)
    for lesson in await tx.all(_LESSONS_BY_COURSE, ids=course_ids):
        grouped[lesson.course_id].append(lesson)
    return grouped


async def next_lessons_by_enrollment(
    tx: Transaction, enrollment_ids: Sequence[int]
) -> dict[int, LessonRow]:
    """Each enrolment's next lesson (`next_lesson_id`); enrolments with every lesson
    complete are left out."""
    rows = await tx.all(_NEXT_LESSONS, ids=enrollment_ids)
    return {enrollment.id: lesson for enrollment, lesson in rows}


async def completions_by_enrollment(
    tx: Transaction, enrollment_ids: Sequence[int]
) -> dict[int, list[CompletionRow]]:
    grouped: dict[int, list[CompletionRow]] = defaultdict(list)
    for completion in await tx.all(_COMPLETIONS_BY_ENROLLMENT, ids=enrollment_ids):
        grouped[completion.enrollment_id].append(completion)
    return grouped


async def lesson_times_by_enrollment(
    tx: Transaction, enrollment_ids: Sequence[int]
) -> dict[int, dict[int, int]]:
    """Study time per lesson (lesson id: seconds) of each enrolment, by enrolment id."""
    grouped: dict[int, dict[int, int]] = defaultdict(dict)
    for enrollment_id, lesson_id, seconds in await tx.all(
        _LESSON_TIMES_BY_ENROLLMENT, ids=enrollment_ids
    ):
        grouped[enrollment_id][lesson_id] = int(seconds)
    return grouped


async def instructors_by_course(
    tx: Transaction, course_ids: Sequence[int]
) -> dict[int, list[UserRow]]:
    grouped: dict[int, list[UserRow]] = defaultdict(list)
    for teaching, user in await tx.all(_INSTRUCTORS_BY_COURSE, ids=course_ids):
        grouped[teaching.course_id].append(user)
    return grouped


async def enrollments_of_user(
    tx: Transaction, user_id: int, course_ids: Sequence[int]
) -> dict[int, EnrollmentRow]:
    """The user's enrolments (any status) in the given courses, by course id."""
    rows = await tx.all(_ENROLLMENTS_OF_USER, user_id=user_id, ids=course_ids)
    return {enrollment.course_id: enrollment for enrollment in rows}


async def last_event_ids(
    tx: Transaction, keys: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    """The newest event id of each (user id, course id) pair that has events."""
    rows = await tx.all(
        _LAST_EVENTS,
        user_ids=sorted({user_id for user_id, _ in keys}),
        course_ids=sorted({course_id for _, course_id in keys}),
    )
    return {(row.user_id, row.course_id): int(row.last_id) for row in rows}


async def certificates_by_enrollment(
    tx: Transaction, enrollment_ids: Sequence[int]
) -> dict[int, CertificateRow]:
    rows = await tx.all(_CERTIFICATES_BY_ENROLLMENT, ids=enrollment_ids)
    return {row.enrollment_id: row for row in rows}
