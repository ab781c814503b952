"""The catalogue and its authoring: courses, lessons and instructors."""

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from coursepulse.models import (
    Course,
    CourseInstructor,
    CourseStatus,
    Enrollment,
    EnrollmentStatus,
    Lesson,
    LessonCompletion,
    ProgressEvent,
    ProgressEventKind,
    User,
    utcnow,
)
from coursepulse.models.access import AccessChange, AccessNotice, note_access_change
from coursepulse.models.rows import CourseRow, LessonRow
from coursepulse.models.sql import Query
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers.access import require_author, staff_course
from coursepulse.resolvers.errors import InvalidInput, NotFound
from coursepulse.resolvers.gates import MAX_AVAILABLE_AFTER_DAYS
from coursepulse.resolvers.lookups import lessons_by_course
from coursepulse.resolvers.outbox import EVENT_COLUMNS, append_event, append_events
from coursepulse.resolvers.validation import clean_text
from coursepulse.resolvers.viewer import Viewer
from coursepulse.resolvers.webhooks import switch_off_webhooks_of

TITLE_MAX = 200
SLUG_MAX = 120
DESCRIPTION_MAX = 20_000
_SLUG_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class CourseChanges:
    """Fields of updateCourse; None leaves a field as it is."""

    title: str | None = None
    slug: str | None = None
    description: str | None = None
    status: CourseStatus | None = None
    sequential: bool | None = None


#: A lesson setting left as it is by `update_lesson` (None clears it).
UNCHANGED: Any = object()


@dataclass(frozen=True, slots=True)
class LessonChanges:
    """Fields of updateLesson: UNCHANGED leaves a field as it is; None clears a date."""

    title: str | None = None
    available_after_days: int | None = UNCHANGED
    available_at: datetime | None = UNCHANGED


def slugify(title: str) -> str:
    """A URL slug made from a title: 'Intro to Web Dev!' -> 'intro-to-web-dev'."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:SLUG_MAX].strip("-") or "course"


def _clean_slug(slug: str) -> str:
    slug = clean_text(slug, field="slug", max_length=SLUG_MAX)
    if not _SLUG_RE.fullmatch(slug):
        raise InvalidInput(
            "slug may hold lowercase letters, digits and single dashes", field="slug"
        )
    return slug


_COURSES = Course.__table__
_TAUGHT = CourseInstructor.__table__
_USERS = User.__table__
_LESSONS = Lesson.__table__
_ENROLLMENTS = Enrollment.__table__
_COMPLETIONS = LessonCompletion.__table__

_ACTIVE = str(EnrollmentStatus.ACTIVE)
_COMPLETED = str(EnrollmentStatus.COMPLETED)

# ---- statements --------------------------------------------------------------------------

_PUBLISHED = _COURSES.c.status == str(CourseStatus.PUBLISHED)
_ALL_COURSES = Query(select(_COURSES).order_by(_COURSES.c.id), unbounded=True)
_PUBLISHED_COURSES = Query(
    select(_COURSES).where(_PUBLISHED).order_by(_COURSES.c.id), unbounded=True
)
_PUBLISHED_OR_TAUGHT = Query(
    select(_COURSES)
    .where(
        or_(
            _PUBLISHED,
            _COURSES.c.id.in_(
                select(_TAUGHT.c.course_id).where(_TAUGHT.c.user_id == bindparam("user_id"))
            ),
        )
    )
    .order_by(_COURSES.c.id),
    unbounded=True,
)
#: The id of the course that has a slug (slugs are unique: one at most).
_SLUG_OWNER = Query(select(_COURSES.c.id).where(_COURSES.c.slug == bindparam("slug")))
_ADD_COURSE = Query(
    insert(_COURSES)
    .values(
        slug=bindparam("new_slug"),
        title=bindparam("new_title"),
        description=bindparam("new_description"),
        status=bindparam("new_status"),
        total_lessons=0,
        created_at=bindparam("at"),
        updated_at=bindparam("at"),
        sequential=bindparam("new_sequential"),
    )
    .returning(_COURSES)
)
_SAVE_COURSE = Query(
    update(_COURSES)
    .where(_COURSES.c.id == bindparam("row_id"))
    .values(
        slug=bindparam("new_slug"),
        title=bindparam("new_title"),
        description=bindparam("new_description"),
        status=bindparam("new_status"),
        updated_at=bindparam("at"),
        sequential=bindparam("new_sequential"),
    )
    .returning(_COURSES)
)
#: A lesson-set change: the course's new lesson count and change time.
_TOUCH_COURSE = Query(
    update(_COURSES)
    .where(_COURSES.c.id == bindparam("row_id"))
    .values(total_lessons=bindparam("new_total"), updated_at=bindparam("at"))
    .returning(_COURSES)
)
_USER_EXISTS = Query(select(_USERS.c.id).where(_USERS.c.id == bindparam("user_id")))
_TEACHES = Query(
    select(_TAUGHT.c.user_id).where(
        _TAUGHT.c.course_id == bindparam("course_id"), _TAUGHT.c.user_id == bindparam("user_id")
    )
)
_ADD_INSTRUCTOR = Query(
    insert(_TAUGHT).values(course_id=bindparam("course_id"), user_id=bindparam("user_id"))
)
_REMOVE_INSTRUCTOR = Query(
    delete(_TAUGHT).where(
        _TAUGHT.c.course_id == bindparam("course_id"), _TAUGHT.c.user_id == bindparam("user_id")
    )
)
_COUNT_INSTRUCTORS = Query(
    select(func.count()).select_from(_TAUGHT).where(_TAUGHT.c.course_id == bindparam("course_id"))
)
_LESSON = Query(select(_LESSONS).where(_LESSONS.c.id == bindparam("lesson_id")))
_LESSON_OF_COURSE = Query(
    select(_LESSONS).where(
        _LESSONS.c.id == bindparam("lesson_id"), _LESSONS.c.course_id == bindparam("course_id")
    )
)
_LESSON_IDS = Query(select(_LESSONS.c.id).where(_LESSONS.c.course_id == bindparam("course_id")))
#: Make room at a position: the lessons from there on move one down.
_SHIFT_DOWN = Query(
    update(_LESSONS)
    .where(
        _LESSONS.c.course_id == bindparam("course_id"),
        _LESSONS.c.position >= bindparam("from_position"),
    )
    .values(position=_LESSONS.c.position + 1)
)
#: Close the gap of a removed lesson: the lessons after it move one up.
_SHIFT_UP = Query(
    update(_LESSONS)
    .where(
        _LESSONS.c.course_id == bindparam("course_id"),
        _LESSONS.c.position > bindparam("after_position"),
    )
    .values(position=_LESSONS.c.position - 1)
)
_ADD_LESSON = Query(
    insert(_LESSONS)
    .values(
        course_id=bindparam("course_id"),
        title=bindparam("new_title"),
        position=bindparam("new_position"),
        available_after_days=bindparam("new_available_after_days"),
        available_at=bindparam("new_available_at"),
    )
    .returning(_LESSONS)
)
_RENAME_LESSON = Query(
    update(_LESSONS)
    .where(_LESSONS.c.id == bindparam("row_id"))
    .values(title=bindparam("new_title"))
    .returning(_LESSONS)
)
_SAVE_LESSON = Query(
    update(_LESSONS)
    .where(_LESSONS.c.id == bindparam("row_id"))
    .values(
        title=bindparam("new_title"),
        available_after_days=bindparam("new_available_after_days"),
        available_at=bindparam("new_available_at"),
    )
    .returning(_LESSONS)
)
_REMOVE_LESSON = Query(delete(_LESSONS).where(_LESSONS.c.id == bindparam("row_id")))
#: Who completed the lesson being removed counts one completed lesson less.
_UNCOUNT_LESSON = Query(
    update(_ENROLLMENTS)
    .where(
        _ENROLLMENTS.c.id.in_(
            select(_COMPLETIONS.c.enrollment_id).where(
                _COMPLETIONS.c.lesson_id == bindparam("lesson_id")
            )
        )
    )
    .values(completed_lessons=_ENROLLMENTS.c.completed_lessons - 1),
    unbounded=True,
)
_REMOVE_LESSON_COMPLETIONS = Query(
    delete(_COMPLETIONS).where(_COMPLETIONS.c.lesson_id == bindparam("lesson_id")),
    unbounded=True,
)
#: The status rule (progress.settled) when a course gains a lesson, or loses its last one:
#: no enrolment has completed it.
_REOPEN_COMPLETED = Query(
    update(_ENROLLMENTS)
    .where(
        _ENROLLMENTS.c.course_id == bindparam("course_id"),
        _ENROLLMENTS.c.status == _COMPLETED,
    )
    .values(status=_ACTIVE, completed_at=null()),
    unbounded=True,
)
#: The status rule (progress.settled) when a non-empty course (`total` lessons) loses one:
#: the active enrolments with every lesson complete have completed it, now. Gives them.
_COMPLETE_FINISHED = Query(
    update(_ENROLLMENTS)
    .where(
        _ENROLLMENTS.c.course_id == bindparam("course_id"),
        _ENROLLMENTS.c.status == _ACTIVE,
        _ENROLLMENTS.c.completed_lessons >= bindparam("total"),
    )
    .values(status=_COMPLETED, completed_at=bindparam("at"))
    .returning(_ENROLLMENTS),
    unbounded=True,
)

_EVENTS = ProgressEvent.__table__
_COUNT = _ENROLLMENTS.c.completed_lessons
_OLD_TOTAL = bindparam("old_total", type_=Integer())
_NEW_TOTAL = bindparam("new_total", type_=Integer())
#: Whether the enrolment completed the lesson being deleted.
_HAD_LESSON = (
    select(_COMPLETIONS.c.enrollment_id)
    .where(
        _COMPLETIONS.c.enrollment_id == _ENROLLMENTS.c.id,
        _COMPLETIONS.c.lesson_id == bindparam("lesson_id"),
    )
    .exists()
)


def _percentage(count: ColumnElement[int], total: ColumnElement[int] | None) -> ColumnElement[int]:
    """progress.progress_percentage in SQL: floor(100 * count / total), 0 without lessons."""
    return literal(0, Integer()) if total is None else (count * 100) // total


def _recalculated(
    changed: ColumnElement[bool], count: ColumnElement[int], *, lessons_left: bool
) -> Query:
    """One PROGRESS_RECALCULATED event per enrolment of the course for which `changed`
    holds, with its new numbers (`count` of `new_total` lessons), in enrolment order."""
    new_total = _NEW_TOTAL if lessons_left else None
    return Query(
        insert(_EVENTS)
        .from_select(
            list(EVENT_COLUMNS),
            select(
                literal(str(ProgressEventKind.PROGRESS_RECALCULATED)),
                bindparam("at", type_=_EVENTS.c.occurred_at.type),
                _ENROLLMENTS.c.course_id,
                _ENROLLMENTS.c.user_id,
                null(),
                _percentage(count, new_total),
                count,
                _NEW_TOTAL,
            )
            .where(_ENROLLMENTS.c.course_id == bindparam("course_id"), changed)
            .order_by(_ENROLLMENTS.c.id),
        )
        .returning(_EVENTS.c.kind),
        unbounded=True,
    )


#: A lesson added to a course of `old_total` lessons (none, or some): who finished it has
#: not any more, and the percentage of who started moves (counts stay).
_ADDED_TO_EMPTY = _recalculated(_ENROLLMENTS.c.status == _COMPLETED, _COUNT, lessons_left=True)
_ADDED = _recalculated(
    or_(
        _ENROLLMENTS.c.status == _COMPLETED,
        _percentage(_COUNT, _OLD_TOTAL) != _percentage(_COUNT, _NEW_TOTAL),
    ),
    _COUNT,
    lessons_left=True,
)
#: A lesson deleted (before the counts change): who completed it counts one less; the
#: percentage moves; who had only it left has completed the course (with lessons left),
#: or who had completed the course is active again (without).
_NEW_COUNT = _COUNT - case((_HAD_LESSON, 1), else_=0)
_DELETED = _recalculated(
    or_(
        _HAD_LESSON,
        _percentage(_COUNT, _OLD_TOTAL) != _percentage(_NEW_COUNT, _NEW_TOTAL),
        (_ENROLLMENTS.c.status == _ACTIVE) & (_NEW_COUNT >= _NEW_TOTAL),
    ),
    _NEW_COUNT,
    lessons_left=True,
)
_DELETED_LAST = _recalculated(
    or_(_HAD_LESSON, _ENROLLMENTS.c.status == _COMPLETED), _NEW_COUNT, lessons_left=False
)

# ---- reads ---------------------------------------------------------------------------------


async def list_courses(tx: Transaction, viewer: Viewer | None) -> list[CourseRow]:
    """Published courses, plus the drafts and archives the viewer teaches (all, for admins)."""
    if viewer is None:
        return await tx.all(_PUBLISHED_COURSES)
    if viewer.is_admin:
        return await tx.all(_ALL_COURSES)
    return await tx.all(_PUBLISHED_OR_TAUGHT, user_id=viewer.user_id)


async def course_lessons(tx: Transaction, course_id: int) -> list[LessonRow]:
    """The course's lessons in course order (no access check: for callers that made one)."""
    return (await lessons_by_course(tx, [course_id])).get(course_id, [])


# ---- courses -------------------------------------------------------------------------------


async def _slug_taken(tx: Transaction, slug: str, *, except_id: int | None = None) -> bool:
    owner = await tx.scalar(_SLUG_OWNER, slug=slug)
    return owner is not None and owner != except_id


async def _unique_slug(tx: Transaction, base: str) -> str:
    slug, counter = base, 2
    while await _slug_taken(tx, slug):
        suffix = f"-{counter}"
        slug = base[: SLUG_MAX - len(suffix)] + suffix
        counter += 1
    return slug


async def create_course(
    tx: Transaction,
    viewer: Viewer | None,
    *,
    title: str,
    slug: str | None = None,
    description: str | None = None,
    status: CourseStatus = CourseStatus.DRAFT,
    sequential: bool = False,
) -> CourseRow:
    """A new course taught by its creator (an instructor or admin): the course's row."""
    viewer = require_author(viewer)
    title = clean_text(title, field="title", max_length=TITLE_MAX)
    if slug is None:
        slug = await _unique_slug(tx, slugify(title))
    else:
        slug = _clean_slug(slug)
        if await _slug_taken(tx, slug):
            raise InvalidInput("slug is already in use", field="slug")
    if description is not None:
        description = clean_text(
            description, field="description", max_length=DESCRIPTION_MAX, required=False
        )
    try:
        course: CourseRow = await tx.first(
            _ADD_COURSE,
            new_slug=slug,
            new_title=title,
            new_description=description,
            new_status=str(status),
            new_sequential=sequential,
            at=utcnow(),
        )
    except IntegrityError as error:  # a concurrent author took the slug meanwhile
        raise InvalidInput("slug is already in use", field="slug") from error
    await tx.execute(_ADD_INSTRUCTOR, course_id=course.id, user_id=viewer.user_id)
    return course


async def update_course(
    tx: Transaction, viewer: Viewer | None, course_id: int, changes: CourseChanges
) -> CourseRow:
    """Change title, slug, description or status (publishing is status PUBLISHED).

    Gives the course's row as stored.
    """
    course = await staff_course(tx, viewer, course_id, lock=True)
    title, slug, description, status = (
        course.title,
        course.slug,
        course.description,
        course.status,
    )
    if changes.title is not None:
        title = clean_text(changes.title, field="title", max_length=TITLE_MAX)
    if changes.slug is not None:
        slug = _clean_slug(changes.slug)
        if await _slug_taken(tx, slug, except_id=course_id):
            raise InvalidInput("slug is already in use", field="slug")
    if changes.description is not None:
        description = clean_text(
            changes.description, field="description", max_length=DESCRIPTION_MAX, required=False
        )
    if changes.status is not None:
        status = changes.status
    sequential = course.sequential if changes.sequential is None else changes.sequential
    try:
        return await tx.first(
            _SAVE_COURSE,
            row_id=course_id,
            new_slug=slug,
            new_title=title,
            new_description=description,
            new_status=str(status),
            new_sequential=sequential,
            at=utcnow(),
        )
    except IntegrityError as error:  # a concurrent author took the slug meanwhile
        raise InvalidInput("slug is already in use", field="slug") from error


# ---- instructors ---------------------------------------------------------------------------


async def _require_user(tx: Transaction, user_id: int) -> None:
    if await tx.first(_USER_EXISTS, user_id=user_id) is None:
        raise NotFound(f"User {user_id} not found")


async def add_instructor(
    tx: Transaction, viewer: Viewer | None, course_id: int, user_id: int
) -> CourseRow:
    """Make a user an instructor of the course (idempotent); the course's row."""
    course = await staff_course(tx, viewer, course_id, lock=True)
    await _require_user(tx, user_id)
    if await tx.first(_TEACHES, course_id=course_id, user_id=user_id) is None:
        await tx.execute(_ADD_INSTRUCTOR, course_id=course_id, user_id=user_id)
    return course


async def remove_instructor(
    tx: Transaction, viewer: Viewer | None, course_id: int, user_id: int
) -> CourseRow:
    """Take a user off the course's instructors (who may: as `add_instructor`); the course's row.

    Removing someone who does not teach the course changes nothing; the last
    instructor stays (`invalid_input`: add another first), so a course always has
    staff besides the admins. The removed user's live views of the course's
    activity end (an access notice, heard once this commits).
    """
    course = await staff_course(tx, viewer, course_id, lock=True)
    await _require_user(tx, user_id)
    if await tx.first(_TEACHES, course_id=course_id, user_id=user_id) is None:
        return course
    instructors = await tx.scalar(_COUNT_INSTRUCTORS, course_id=course_id)
    if (instructors or 0) <= 1:
        raise InvalidInput(
            "the course's last instructor cannot be removed: add another first", field="userId"
        )
    await tx.execute(_REMOVE_INSTRUCTOR, course_id=course_id, user_id=user_id)
    await switch_off_webhooks_of(tx, user_id)
    note_access_change(tx, AccessNotice(AccessChange.COURSE_ROLE, user_id, course_id))
    return course


# ---- lessons -------------------------------------------------------------------------------


async def add_lesson(
    tx: Transaction,
    viewer: Viewer | None,
    course_id: int,
    *,
    title: str,
    order: int | None = None,
    available_after_days: int | None = None,
    available_at: datetime | None = None,
) -> LessonRow:
    """Insert a lesson at `order` (appended by default); completed students become active.
    `available_after_days` and `available_at` drip-feed it (gates.py).

    Gives the new lesson's row.
    """
    course = await staff_course(tx, viewer, course_id, lock=True)
    title = clean_text(title, field="title", max_length=TITLE_MAX)
    _check_after_days(available_after_days)
    _check_available_at(available_at)
    total = course.total_lessons
    position = total + 1 if order is None else order
    if not 1 <= position <= total + 1:
        raise InvalidInput(f"order must be between 1 and {total + 1}", field="order")
    await tx.execute(_SHIFT_DOWN, course_id=course_id, from_position=position)
    lesson: LessonRow = await tx.first(
        _ADD_LESSON,
        course_id=course_id,
        new_title=title,
        new_position=position,
        new_available_after_days=available_after_days,
        new_available_at=available_at,
    )
    now = utcnow()
    await tx.execute(_TOUCH_COURSE, row_id=course_id, new_total=total + 1, at=now)
    # Every student whose numbers move hears it (before their status changes below).
    recalculated = _ADDED if total else _ADDED_TO_EMPTY
    await append_events(
        tx,
        recalculated,
        course_id=course_id,
        old_total=total,
        new_total=total + 1,
        at=now,
    )
    # A new lesson is incomplete for everyone: nobody has finished the course any more.
    await tx.execute(_REOPEN_COMPLETED, course_id=course_id)
    return lesson


async def _staff_lesson(
    tx: Transaction, viewer: Viewer | None, lesson_id: int
) -> tuple[CourseRow, LessonRow]:
    """The lesson and its course, the course locked for authoring.

    The lesson is read again once the course is locked: a concurrent change
    (a double-clicked delete, a reorder) may have moved or removed it meanwhile.
    """
    found = await tx.first(_LESSON, lesson_id=lesson_id)
    if found is None:
        raise NotFound(f"Lesson {lesson_id} not found")
    course = await staff_course(tx, viewer, found.course_id, lock=True)
    lesson = await tx.first(_LESSON_OF_COURSE, lesson_id=lesson_id, course_id=course.id)
    if lesson is None:
        raise NotFound(f"Lesson {lesson_id} not found")
    return course, lesson


async def rename_lesson(
    tx: Transaction, viewer: Viewer | None, lesson_id: int, title: str
) -> LessonRow:
    """Give a lesson a new title (course staff only); the renamed lesson's row."""
    _course, lesson = await _staff_lesson(tx, viewer, lesson_id)
    title = clean_text(title, field="title", max_length=TITLE_MAX)
    return await tx.first(_RENAME_LESSON, row_id=lesson.id, new_title=title)


def _check_available_at(moment: datetime | None) -> None:
    if moment is not None and moment.tzinfo is None:
        raise InvalidInput(
            "availableAt needs a time zone offset, e.g. 2030-01-01T09:00:00+00:00",
            field="availableAt",
        )


def _check_after_days(days: int | None) -> None:
    if days is not None and not 0 <= days <= MAX_AVAILABLE_AFTER_DAYS:
        raise InvalidInput(
            f"availableAfterDays must be between 0 and {MAX_AVAILABLE_AFTER_DAYS}",
            field="availableAfterDays",
        )


async def update_lesson(
    tx: Transaction, viewer: Viewer | None, lesson_id: int, changes: LessonChanges
) -> LessonRow:
    """Change a lesson's title or when it opens (course staff only): the lesson's row."""
    _course, lesson = await _staff_lesson(tx, viewer, lesson_id)
    title = lesson.title
    if changes.title is not None:
        title = clean_text(changes.title, field="title", max_length=TITLE_MAX)
    after_days = lesson.available_after_days
    if changes.available_after_days is not UNCHANGED:
        _check_after_days(changes.available_after_days)
        after_days = changes.available_after_days
    at = lesson.available_at
    if changes.available_at is not UNCHANGED:
        _check_available_at(changes.available_at)
        at = changes.available_at
    return await tx.first(
        _SAVE_LESSON,
        row_id=lesson.id,
        new_title=title,
        new_available_after_days=after_days,
        new_available_at=at,
    )


async def delete_lesson(tx: Transaction, viewer: Viewer | None, lesson_id: int) -> CourseRow:
    """Remove a lesson and recompute every student's counts and status without it.

    Gives the course's row with its new lesson count.
    """
    course, lesson = await _staff_lesson(tx, viewer, lesson_id)
    course_id = course.id
    now = utcnow()
    # Every student whose numbers move hears it, computed before the counts change.
    left = course.total_lessons - 1
    await append_events(
        tx,
        _DELETED if left else _DELETED_LAST,
        course_id=course_id,
        lesson_id=lesson_id,
        old_total=course.total_lessons,
        new_total=left,
        at=now,
    )
    await tx.execute(_UNCOUNT_LESSON, lesson_id=lesson_id)
    await tx.execute(_REMOVE_LESSON_COMPLETIONS, lesson_id=lesson_id)
    await tx.execute(_REMOVE_LESSON, row_id=lesson_id)
    await tx.execute(_SHIFT_UP, course_id=course_id, after_position=lesson.position)
    total = course.total_lessons - 1
    course = await tx.first(_TOUCH_COURSE, row_id=course_id, new_total=total, at=now)
    if total > 0:
        # Students whose only missing lesson was this one have now completed the course:
        # a COURSE_COMPLETED moment each, logged like any other.
        finished = await tx.all(_COMPLETE_FINISHED, course_id=course_id, total=total, at=now)
        for enrollment in sorted(finished, key=lambda row: row.id):
            await append_event(
                tx,
                kind=ProgressEventKind.COURSE_COMPLETED,
                enrollment=enrollment,
                total_lessons=total,
                occurred_at=now,
            )
    else:
        await tx.execute(_REOPEN_COMPLETED, course_id=course_id)
    return course


async def reorder_lessons(
    tx: Transaction, viewer: Viewer | None, course_id: int, lesson_ids: list[int]
) -> CourseRow:
    """Put the lessons in the given order; the list must name each lesson exactly once.

    Gives the course's row.
    """
    course = await staff_course(tx, viewer, course_id, lock=True)
    current = {row.id for row in await tx.all(_LESSON_IDS, course_id=course_id)}
    if len(lesson_ids) != len(set(lesson_ids)):
        raise InvalidInput("lessonIds lists a lesson more than once", field="lessonIds")
    if set(lesson_ids) != current:
        missing = sorted(current - set(lesson_ids))
        foreign = sorted(set(lesson_ids) - current)
        raise InvalidInput(
            f"lessonIds must list every lesson of the course exactly once"
            f" (missing: {missing}, not in this course: {foreign})",
            field="lessonIds",
        )
    if lesson_ids:
        # One statement for the whole order (its text depends on the number of lessons).
        positions = {lesson_id: index for index, lesson_id in enumerate(lesson_ids, 1)}
        await tx.execute(
            update(_LESSONS)
            .where(_LESSONS.c.course_id == course_id)
            .values(position=case(positions, value=_LESSONS.c.id, else_=_LESSONS.c.position))
        )
    return await tx.first(
        _TOUCH_COURSE, row_id=course_id, new_total=course.total_lessons, at=utcnow()
    )
