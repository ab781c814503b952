"""Starting a course over: a reset of one student's progress, with its audit trail."""

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import bindparam, delete, insert, select

from coursepulse.models import (
    ENROLLED_STATUSES,
    EnrollmentStatus,
    LessonCompletion,
    LessonTime,
    ProgressEventKind,
    ProgressReset,
    ResetCompletion,
    utcnow,
)
from coursepulse.models.rows import ProgressResetRow
from coursepulse.models.sql import Query, in_ids
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers.access import can_see_course, get_course, is_course_staff
from coursepulse.resolvers.enrollments import ENROLLMENT_FOR_UPDATE, save_enrollment
from coursepulse.resolvers.errors import Forbidden, NotEnrolled, NotFound
from coursepulse.resolvers.outbox import append_event
from coursepulse.resolvers.progress import ProgressRecord
from coursepulse.resolvers.validation import clean_text
from coursepulse.resolvers.viewer import Viewer, require_viewer

#: Characters a reset's reason may have.
REASON_MAX = 500

_RESETS = ProgressReset.__table__
_COMPLETIONS = LessonCompletion.__table__
_ARCHIVED = ResetCompletion.__table__
_LESSON_TIMES = LessonTime.__table__

_ADD_RESET = Query(
    insert(_RESETS)
    .values(
        enrollment_id=bindparam("enrollment_id"),
        course_id=bindparam("course_id"),
        user_id=bindparam("user_id"),
        reset_at=bindparam("at"),
        reset_by=bindparam("reset_by"),
        reason=bindparam("reason"),
        previous_completed_lessons=bindparam("previous_completed_lessons"),
        previous_progress_percentage=bindparam("previous_progress_percentage"),
        previous_time_spent_seconds=bindparam("previous_time_spent_seconds"),
        previous_completed_at=bindparam("previous_completed_at"),
    )
    .returning(_RESETS.c.id)
)
#: The enrolment's completions, kept as the reset's history...
_ARCHIVE_COMPLETIONS = Query(
    insert(_ARCHIVED).from_select(
        ["reset_id", "enrollment_id", "lesson_id", "completed_at"],
        select(
            bindparam("reset_id", type_=_ARCHIVED.c.reset_id.type),
            _COMPLETIONS.c.enrollment_id,
            _COMPLETIONS.c.lesson_id,
            _COMPLETIONS.c.completed_at,
        )
        .where(_COMPLETIONS.c.enrollment_id == bindparam("enrollment_id"))
        .order_by(_COMPLETIONS.c.id),
    ),
    unbounded=True,
)
#: ...then taken out of the live progress, with the time per lesson.
_REMOVE_COMPLETIONS = Query(
    delete(_COMPLETIONS).where(_COMPLETIONS.c.enrollment_id == bindparam("enrollment_id")),
    unbounded=True,
)
_REMOVE_LESSON_TIMES = Query(
    delete(_LESSON_TIMES).where(_LESSON_TIMES.c.enrollment_id == bindparam("enrollment_id"))
)
_RESETS_BY_ENROLLMENT = Query(
    select(_RESETS).where(in_ids(_RESETS.c.enrollment_id, "ids")).order_by(_RESETS.c.id.desc()),
    unbounded=True,
)


async def reset_progress(
    tx: Transaction,
    viewer: Viewer | None,
    course_id: int,
    user_id: int | None = None,
    reason: str | None = None,
) -> ProgressRecord:
    """Start the course over for a student: the viewer's own progress, or `user_id`'s for
    the course's staff and admins.

    Completions leave the live progress (kept as the reset's history), the enrolment is
    ACTIVE with nothing done, no time and no completion date, and a PROGRESS_RESET event
    is logged, in one transaction. The reset keeps who, when, why and what was there. An
    issued certificate stays valid. A reset with nothing done yet is recorded too.
    """
    viewer = require_viewer(viewer)
    target = viewer.user_id if user_id is None else user_id
    # Share-locked like every learner action: lesson-set changes wait for the reset.
    course = await get_course(tx, course_id, lock=True, share=True)
    if course is None or (
        target != viewer.user_id and not await can_see_course(tx, viewer, course)
    ):
        raise NotFound(f"Course {course_id} not found")
    if target != viewer.user_id and not await is_course_staff(tx, viewer, course_id):
        raise Forbidden("Only the course's instructors and admins may reset another student")
    cleaned = (
        clean_text(reason, field="reason", max_length=REASON_MAX, required=False) or None
        if reason is not None
        else None
    )
    # The enrolment row is locked: a completion (or another reset) waits, or goes first.
    enrollment = await tx.first(ENROLLMENT_FOR_UPDATE, user_id=target, course_id=course_id)
    if enrollment is None or enrollment.status not in ENROLLED_STATUSES:
        if target != viewer.user_id:
            raise NotEnrolled("This student is not enrolled in this course")
        if not await can_see_course(tx, viewer, course):
            raise NotFound(f"Course {course_id} not found")
        raise NotEnrolled()
    before = ProgressRecord(enrollment, course)
    now = utcnow()
    reset_id = await tx.scalar(
        _ADD_RESET,
        enrollment_id=enrollment.id,
        course_id=course_id,
        user_id=target,
        at=now,
        reset_by=viewer.user_id,
        reason=cleaned,
        previous_completed_lessons=enrollment.completed_lessons,
        previous_progress_percentage=before.percentage,
        previous_time_spent_seconds=enrollment.time_spent_seconds,
        previous_completed_at=enrollment.completed_at,
    )
    await tx.execute(_ARCHIVE_COMPLETIONS, enrollment_id=enrollment.id, reset_id=reset_id)
    await tx.execute(_REMOVE_COMPLETIONS, enrollment_id=enrollment.id)
    await tx.execute(_REMOVE_LESSON_TIMES, enrollment_id=enrollment.id)
    enrollment = enrollment._replace(
        status=EnrollmentStatus.ACTIVE,
        completed_lessons=0,
        time_spent_seconds=0,
        completed_at=None,
    )
    await save_enrollment(tx, enrollment)
    await append_event(
        tx,
        kind=ProgressEventKind.PROGRESS_RESET,
        enrollment=enrollment,
        total_lessons=course.total_lessons,
        occurred_at=now,
    )
    return ProgressRecord(enrollment, course)


async def resets_by_enrollment(
    tx: Transaction, enrollment_ids: Sequence[int]
) -> dict[int, list[ProgressResetRow]]:
    """Each enrolment's resets, newest first, by enrolment id."""
    grouped: dict[int, list[ProgressResetRow]] = defaultdict(list)
    for reset in await tx.all(_RESETS_BY_ENROLLMENT, ids=enrollment_ids):
        grouped[reset.enrollment_id].append(reset)
    return grouped
