"""Which lessons are open to a student: sequential courses and drip-fed lessons.

A lesson is locked while it is not complete and either the course is sequential and a
lesson before it is not complete, or a date opens it later: `available_at` (one moment
for everyone) or `available_after_days` after the student's enrolment. The course's
instructors and admins are never locked out (they preview). A completed lesson is open:
undoing an earlier lesson does not undo or lock the later ones.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select

from coursepulse.models import Lesson, LessonCompletion, Role
from coursepulse.models.rows import CourseRow, EnrollmentRow, LessonRow, UserRow
from coursepulse.models.sql import Query
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers.errors import LessonLocked

#: The most days after enrolment a lesson may wait (ten years).
MAX_AVAILABLE_AFTER_DAYS = 3650


@dataclass(frozen=True, slots=True)
class Gate:
    """Whether a lesson is locked for a student, and when a date opens it (if one does)."""

    locked: bool
    unlocks_at: datetime | None = None


OPEN = Gate(locked=False)


def may_lock(course: CourseRow, lessons: Iterable[LessonRow]) -> bool:
    """Whether anything in the course can be locked (else every lesson is open)."""
    return bool(course.sequential) or any(_has_date(lesson) for lesson in lessons)


def _has_date(lesson: LessonRow) -> bool:
    return lesson.available_at is not None or lesson.available_after_days is not None


def opens_at(lesson: LessonRow, enrolled_at: datetime) -> datetime | None:
    """When the lesson's dates open it for a student enrolled at `enrolled_at` (None: no date)."""
    moments = []
    if lesson.available_at is not None:
        moments.append(lesson.available_at)
    if lesson.available_after_days is not None:
        moments.append(enrolled_at + timedelta(days=lesson.available_after_days))
    return max(moments) if moments else None


def lesson_gates(
    course: CourseRow,
    lessons: Sequence[LessonRow],
    completed: set[int],
    enrolled_at: datetime,
    now: datetime,
) -> dict[int, Gate]:
    """Each lesson's gate for one student (`lessons` in course order)."""
    gates: dict[int, Gate] = {}
    all_before_done = True
    for lesson in lessons:
        done = lesson.id in completed
        gates[lesson.id] = _gate(
            done, bool(course.sequential) and not all_before_done, lesson, enrolled_at, now
        )
        all_before_done = all_before_done and done
    return gates


def _gate(
    done: bool, waits_for_earlier: bool, lesson: LessonRow, enrolled_at: datetime, now: datetime
) -> Gate:
    if done:
        return OPEN
    opening = opens_at(lesson, enrolled_at)
    dated = opening is not None and now < opening
    if not (dated or waits_for_earlier):
        return OPEN
    return Gate(locked=True, unlocks_at=opening if dated else None)


def previews(student: UserRow | None, instructors: Iterable[UserRow]) -> bool:
    """Whether the student is of the course's staff (an admin, or one of its instructors):
    staff preview, and no lesson is ever locked for them."""
    if student is None:
        return False
    return student.role == Role.ADMIN or any(user.id == student.id for user in instructors)


def student_gates(
    course: CourseRow,
    lessons: Sequence[LessonRow],
    completed: set[int],
    enrollment: EnrollmentRow,
    student: UserRow | None,
    instructors: Iterable[UserRow],
    now: datetime,
) -> dict[int, Gate]:
    """Each lesson's gate for the enrolment's student (`lesson_gates`); none for staff."""
    if previews(student, instructors):
        return {}
    return lesson_gates(course, lessons, completed, enrollment.enrolled_at, now)


_LESSONS = Lesson.__table__
_COMPLETIONS = LessonCompletion.__table__
#: How many lessons before a position the enrolment has not completed.
_EARLIER_NOT_DONE = Query(
    select(func.count())
    .select_from(_LESSONS)
    .where(
        _LESSONS.c.course_id == bindparam("course_id"),
        _LESSONS.c.position < bindparam("position"),
        ~select(_COMPLETIONS.c.id)
        .where(
            _COMPLETIONS.c.lesson_id == _LESSONS.c.id,
            _COMPLETIONS.c.enrollment_id == bindparam("enrollment_id"),
        )
        .exists(),
    )
)


async def require_open(
    tx: Transaction,
    course: CourseRow,
    enrollment: EnrollmentRow,
    lesson: LessonRow,
    now: datetime,
) -> None:
    """Raise `lesson_locked` unless the (incomplete) lesson is open to the enrolment."""
    if not (course.sequential or _has_date(lesson)):
        return
    waits = bool(course.sequential) and bool(
        await tx.scalar(
            _EARLIER_NOT_DONE,
            course_id=course.id,
            position=lesson.position,
            enrollment_id=enrollment.id,
        )
    )
    gate = _gate(False, waits, lesson, enrollment.enrolled_at, now)
    if not gate.locked:
        return
    if gate.unlocks_at is not None:
        raise LessonLocked(
            f"This lesson opens on {gate.unlocks_at.isoformat()}",
            unlocks_at=gate.unlocks_at.isoformat(),
        )
    raise LessonLocked("Complete the lessons before this one first")
