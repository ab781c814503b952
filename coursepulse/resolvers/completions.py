"""Completing and un-completing lessons: exactly once, counters kept in the same transaction."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select

from coursepulse.models import Lesson, LessonCompletion, ProgressEventKind, utcnow
from coursepulse.models.rows import CompletionRow, CourseRow, EnrollmentRow, LessonRow
from coursepulse.models.sql import Query
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers import gates
from coursepulse.resolvers.access import is_course_staff
from coursepulse.resolvers.enrollments import learning_enrollment, save_enrollment
from coursepulse.resolvers.errors import NotFound
from coursepulse.resolvers.lookups import next_after_change, next_lesson_id
from coursepulse.resolvers.outbox import append_event
from coursepulse.resolvers.progress import ProgressRecord, settle
from coursepulse.resolvers.viewer import Viewer, require_viewer

_COMPLETIONS = LessonCompletion.__table__
_LESSONS = Lesson.__table__

_OTHER_NEXT = _LESSONS.alias("other_next")
#: The lesson, if it belongs to the course, with the enrolment's completion of it (or None)
#: and the next lesson among the others (or None): what the change and its answer need.
_LESSON_AND_COMPLETION = Query(
    select(_LESSONS, _COMPLETIONS, _OTHER_NEXT)
    .select_from(
        _LESSONS.outerjoin(
            _COMPLETIONS,
            (_COMPLETIONS.c.lesson_id == _LESSONS.c.id)
            & (_COMPLETIONS.c.enrollment_id == bindparam("enrollment_id")),
        ).outerjoin(
            _OTHER_NEXT,
            _OTHER_NEXT.c.id
            == next_lesson_id(
                bindparam("course_id"), bindparam("enrollment_id"), excluding=_LESSONS.c.id
            ),
        )
    )
    .where(_LESSONS.c.id == bindparam("lesson_id"), _LESSONS.c.course_id == bindparam("course_id"))
)
_ADD_COMPLETION = Query(
    insert(_COMPLETIONS).values(
        enrollment_id=bindparam("enrollment_id"),
        lesson_id=bindparam("lesson_id"),
        completed_at=bindparam("at"),
    )
)
_REMOVE_COMPLETION = Query(delete(_COMPLETIONS).where(_COMPLETIONS.c.id == bindparam("row_id")))


@dataclass(frozen=True, slots=True)
class LessonChange:
    """The outcome of completeLesson / incompleteLesson."""

    message: str
    lesson_id: int
    completed_at: datetime | None
    already_completed: bool
    progress: ProgressRecord
    #: The first lesson not yet completed after the change, read in its transaction.
    next_lesson: LessonRow | None


@dataclass(frozen=True, slots=True)
class _LessonAction:
    """What a completion change starts from, read under the enrolment's lock."""

    course: CourseRow
    enrollment: EnrollmentRow
    lesson: LessonRow
    #: The enrolment's completion of the lesson, if any.
    done: CompletionRow | None
    #: The next lesson among the course's other lessons (`next_lesson_id` excluding it).
    other_next: LessonRow | None

    def change(
        self,
        message: str,
        completed_at: datetime | None,
        progress: ProgressRecord,
        *,
        complete: bool,
        already_completed: bool = False,
    ) -> LessonChange:
        """The outcome, the lesson being `complete` or not afterwards."""
        following = next_after_change(self.lesson, complete, self.other_next)
        return LessonChange(
            message, self.lesson.id, completed_at, already_completed, progress, following
        )


async def _lesson_action(
    tx: Transaction, viewer: Viewer | None, course_id: int, lesson_id: int
) -> _LessonAction:
    """Course, locked active enrolment (`learning_enrollment`), the lesson, its completion
    and the next of the other lessons, in two statements. A lesson of another course is
    `not_found`."""
    _viewer, course, enrollment = await learning_enrollment(tx, viewer, course_id)
    found = await tx.first(
        _LESSON_AND_COMPLETION,
        lesson_id=lesson_id,
        course_id=course_id,
        enrollment_id=enrollment.id,
    )
    if found is None:
        raise NotFound(f"Lesson {lesson_id} not found in course {course_id}")
    lesson, done, other_next = found
    return _LessonAction(course, enrollment, lesson, done, other_next)


async def _save(
    tx: Transaction, enrollment: EnrollmentRow, course: CourseRow, now: datetime
) -> tuple[EnrollmentRow, bool]:
    """Settle the status from the new counter and store it; True when the course got done."""
    standing = settle(enrollment, course.total_lessons, now)
    saved = enrollment._replace(
        status=standing.status,
        completed_at=standing.completed_at,
        last_accessed_at=now,
    )
    await save_enrollment(tx, saved)
    return saved, standing.just_completed


async def complete_lesson(
    tx: Transaction, viewer: Viewer | None, course_id: int, lesson_id: int
) -> LessonChange:
    """Mark a lesson complete, exactly once; a second call changes nothing. A lesson that
    is not open yet (gates.py) is `lesson_locked`, except for the course's staff."""
    action = await _lesson_action(tx, viewer, course_id, lesson_id)
    course, enrollment, lesson, existing = (
        action.course,
        action.enrollment,
        action.lesson,
        action.done,
    )
    if (
        existing is None
        and gates.may_lock(course, [lesson])
        and not await is_course_staff(tx, require_viewer(viewer), course_id)
    ):
        await gates.require_open(tx, course, enrollment, lesson, utcnow())
    if existing is not None:
        return action.change(
            "Lesson already marked as complete",
            existing.completed_at,
            ProgressRecord(enrollment, course),
            complete=True,
            already_completed=True,
        )
    now = utcnow()
    await tx.execute(_ADD_COMPLETION, enrollment_id=enrollment.id, lesson_id=lesson_id, at=now)
    enrollment = enrollment._replace(completed_lessons=enrollment.completed_lessons + 1)
    enrollment, course_completed = await _save(tx, enrollment, course, now)
    kinds = [ProgressEventKind.LESSON_COMPLETED]
    if course_completed:
        kinds.append(ProgressEventKind.COURSE_COMPLETED)
    for kind in kinds:
        await append_event(
            tx,
            kind=kind,
            enrollment=enrollment,
            total_lessons=course.total_lessons,
            occurred_at=now,
            lesson_id=lesson_id if kind == ProgressEventKind.LESSON_COMPLETED else None,
        )
    return action.change(
        "Lesson marked as complete", now, ProgressRecord(enrollment, course), complete=True
    )


async def incomplete_lesson(
    tx: Transaction, viewer: Viewer | None, course_id: int, lesson_id: int
) -> LessonChange:
    """Undo a completion; a lesson that is not complete is left as it is."""
    action = await _lesson_action(tx, viewer, course_id, lesson_id)
    course, enrollment, existing = action.course, action.enrollment, action.done
    if existing is None:
        return action.change(
            "Lesson is not marked as complete",
            None,
            ProgressRecord(enrollment, course),
            complete=False,
        )
    now = utcnow()
    await tx.execute(_REMOVE_COMPLETION, row_id=existing.id)
    enrollment = enrollment._replace(completed_lessons=max(0, enrollment.completed_lessons - 1))
    enrollment, _ = await _save(tx, enrollment, course, now)
    await append_event(
        tx,
        kind=ProgressEventKind.LESSON_INCOMPLETED,
        enrollment=enrollment,
        total_lessons=course.total_lessons,
        occurred_at=now,
        lesson_id=lesson_id,
    )
    return action.change(
        "Lesson marked as incomplete", None, ProgressRecord(enrollment, course), complete=False
    )
