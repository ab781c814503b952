"""Completing and un-completing lessons: the hottest change, on the lean write path.

The rules run on a `WriteTransaction` (models/writes.py): the service's own lean
transaction (`Database.change`), or an ORM session's transaction when a caller is
already inside `Database.write()` (the demo loader, tests that set up a school).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import (
    ENROLLED_STATUSES,
    Course,
    Enrollment,
    Lesson,
    LessonCompletion,
    ProgressEventKind,
    utcnow,
)
from coursepulse.models.db import EVENT_COURSES
from coursepulse.models.reads import Query
from coursepulse.models.rows import CompletionRow, CourseRow, EnrollmentRow
from coursepulse.models.writes import SessionTransaction, WriteTransaction
from coursepulse.resolvers.access import can_see_course_reading
from coursepulse.resolvers.errors import NotEnrolled, NotFound
from coursepulse.resolvers.events import append_event_writing
from coursepulse.resolvers.progress import ProgressRecord, settled
from coursepulse.resolvers.viewer import Viewer, require_viewer

_COURSES = Course.__table__
_ENROLLMENTS = Enrollment.__table__
_LESSONS = Lesson.__table__
_COMPLETIONS = LessonCompletion.__table__

#: Share-locked: lesson-set changes (which lock the course for update) wait for this one.
_COURSE = Query(
    select(_COURSES).where(_COURSES.c.id == bindparam("course_id")).with_for_update(read=True)
)
_ENROLLMENT = Query(
    select(_ENROLLMENTS)
    .where(
        _ENROLLMENTS.c.user_id == bindparam("user_id"),
        _ENROLLMENTS.c.course_id == bindparam("course_id"),
    )
    .with_for_update()
)
_LESSON = Query(
    select(_LESSONS.c.id).where(
        _LESSONS.c.id == bindparam("lesson_id"), _LESSONS.c.course_id == bindparam("course_id")
    )
)
_COMPLETION = Query(
    select(_COMPLETIONS).where(
        _COMPLETIONS.c.enrollment_id == bindparam("enrollment_id"),
        _COMPLETIONS.c.lesson_id == bindparam("lesson_id"),
    )
)
_ADD_COMPLETION = Query(
    insert(_COMPLETIONS).values(
        enrollment_id=bindparam("enrollment_id"),
        lesson_id=bindparam("lesson_id"),
        completed_at=bindparam("at"),
    )
)
_REMOVE_COMPLETION = Query(delete(_COMPLETIONS).where(_COMPLETIONS.c.id == bindparam("row_id")))
_SAVE_PROGRESS = Query(
    update(_ENROLLMENTS)
    .where(_ENROLLMENTS.c.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        completed_at=bindparam("new_completed_at"),
        last_accessed_at=bindparam("new_last_accessed_at"),
        completed_lessons=bindparam("new_completed_lessons"),
    )
)
_COURSE_COLUMNS = len(_COURSES.columns)


@dataclass(frozen=True, slots=True)
class LessonChange:
    """The outcome of completeLesson / incompleteLesson."""

    message: str
    lesson_id: int
    completed_at: datetime | None
    already_completed: bool
    progress: ProgressRecord


async def _lesson_action(
    transaction: WriteTransaction, viewer: Viewer | None, course_id: int, lesson_id: int
) -> tuple[CourseRow, EnrollmentRow, CompletionRow | None]:
    """Course (share-locked), locked active enrolment, and the lesson's completion if any.

    A course the viewer cannot see is `not_found`; no active enrolment is `not_enrolled`;
    a lesson of another course is `not_found`.
    """
    viewer = require_viewer(viewer)
    course_row = await transaction.first(_COURSE, course_id=course_id)
    if course_row is None:
        raise NotFound(f"Course {course_id} not found")
    course = CourseRow(*course_row)
    found = await transaction.first(_ENROLLMENT, user_id=viewer.user_id, course_id=course_id)
    enrollment = EnrollmentRow(*found) if found is not None else None
    if enrollment is None or enrollment.status not in ENROLLED_STATUSES:
        if not await can_see_course_reading(transaction, viewer, course):
            raise NotFound(f"Course {course_id} not found")
        raise NotEnrolled()
    if await transaction.first(_LESSON, lesson_id=lesson_id, course_id=course_id) is None:
        raise NotFound(f"Lesson {lesson_id} not found in course {course_id}")
    done = await transaction.first(_COMPLETION, enrollment_id=enrollment.id, lesson_id=lesson_id)
    return course, enrollment, CompletionRow(*done) if done is not None else None


async def _save(
    transaction: WriteTransaction, enrollment: EnrollmentRow, course: CourseRow, now: datetime
) -> tuple[EnrollmentRow, bool]:
    """Settle the status from the new counter and store it; True when the course got done."""
    standing = settled(
        enrollment.status,
        enrollment.completed_at,
        enrollment.completed_lessons,
        course.total_lessons,
        now,
    )
    saved = replace(
        enrollment,
        status=standing.status,
        completed_at=standing.completed_at,
        last_accessed_at=now,
    )
    await transaction.execute(
        _SAVE_PROGRESS,
        row_id=saved.id,
        new_status=str(saved.status),
        new_completed_at=saved.completed_at,
        new_last_accessed_at=saved.last_accessed_at,
        new_completed_lessons=saved.completed_lessons,
    )
    return saved, standing.just_completed


async def _complete(
    transaction: WriteTransaction, viewer: Viewer | None, course_id: int, lesson_id: int
) -> LessonChange:
    course, enrollment, existing = await _lesson_action(transaction, viewer, course_id, lesson_id)
    if existing is not None:
        return LessonChange(
            "Lesson already marked as complete",
            lesson_id,
            existing.completed_at,
            already_completed=True,
            progress=ProgressRecord(enrollment, course),
        )
    now = utcnow()
    await transaction.execute(
        _ADD_COMPLETION, enrollment_id=enrollment.id, lesson_id=lesson_id, at=now
    )
    enrollment = replace(enrollment, completed_lessons=enrollment.completed_lessons + 1)
    enrollment, course_completed = await _save(transaction, enrollment, course, now)
    kinds = [ProgressEventKind.LESSON_COMPLETED]
    if course_completed:
        kinds.append(ProgressEventKind.COURSE_COMPLETED)
    for kind in kinds:
        await append_event_writing(
            transaction,
            kind=kind,
            enrollment=enrollment,
            total_lessons=course.total_lessons,
            occurred_at=now,
            lesson_id=lesson_id if kind == ProgressEventKind.LESSON_COMPLETED else None,
        )
    return LessonChange(
        "Lesson marked as complete",
        lesson_id,
        now,
        already_completed=False,
        progress=ProgressRecord(enrollment, course),
    )


async def _incomplete(
    transaction: WriteTransaction, viewer: Viewer | None, course_id: int, lesson_id: int
) -> LessonChange:
    course, enrollment, existing = await _lesson_action(transaction, viewer, course_id, lesson_id)
    if existing is None:
        return LessonChange(
            "Lesson is not marked as complete",
            lesson_id,
            None,
            already_completed=False,
            progress=ProgressRecord(enrollment, course),
        )
    now = utcnow()
    await transaction.execute(_REMOVE_COMPLETION, row_id=existing.id)
    enrollment = replace(enrollment, completed_lessons=max(0, enrollment.completed_lessons - 1))
    enrollment, _ = await _save(transaction, enrollment, course, now)
    await append_event_writing(
        transaction,
        kind=ProgressEventKind.LESSON_INCOMPLETED,
        enrollment=enrollment,
        total_lessons=course.total_lessons,
        occurred_at=now,
        lesson_id=lesson_id,
    )
    return LessonChange(
        "Lesson marked as incomplete",
        lesson_id,
        None,
        already_completed=False,
        progress=ProgressRecord(enrollment, course),
    )


Action = Callable[[WriteTransaction, Viewer | None, int, int], Awaitable[LessonChange]]


async def _within_session(
    session: AsyncSession, act: Action, viewer: Viewer | None, course_id: int, lesson_id: int
) -> LessonChange:
    """The change inside the caller's ORM write transaction, announced when it commits."""
    transaction = SessionTransaction(session)
    change = await act(transaction, viewer, course_id, lesson_id)
    session.info.setdefault(EVENT_COURSES, set()).update(transaction.event_courses)
    return change


async def complete_lesson(
    where: AsyncSession | WriteTransaction, viewer: Viewer | None, course_id: int, lesson_id: int
) -> LessonChange:
    """Mark a lesson complete, exactly once; a second call changes nothing."""
    if isinstance(where, AsyncSession):
        return await _within_session(where, _complete, viewer, course_id, lesson_id)
    return await _complete(where, viewer, course_id, lesson_id)


async def incomplete_lesson(
    where: AsyncSession | WriteTransaction, viewer: Viewer | None, course_id: int, lesson_id: int
) -> LessonChange:
    """Undo a completion; a lesson that is not complete is left as it is."""
    if isinstance(where, AsyncSession):
        return await _within_session(where, _incomplete, viewer, course_id, lesson_id)
    return await _incomplete(where, viewer, course_id, lesson_id)
