"""The catalogue and its authoring: courses, lessons and instructors."""

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import (
    Course,
    CourseInstructor,
    CourseStatus,
    Enrollment,
    EnrollmentStatus,
    Lesson,
    LessonCompletion,
    ProgressEventKind,
    User,
    utcnow,
)
from coursepulse.models.access import AccessChange, AccessNotice, note_access_change
from coursepulse.models.reads import Query, ReadTransaction
from coursepulse.models.rows import CourseRow
from coursepulse.resolvers.access import (
    get_course,
    require_author,
    staff_course,
    visible_course_reading,
)
from coursepulse.resolvers.errors import InvalidInput, NotFound
from coursepulse.resolvers.events import append_event
from coursepulse.resolvers.progress import settle_status
from coursepulse.resolvers.validation import clean_text
from coursepulse.resolvers.viewer import Viewer

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


async def _slug_taken(session: AsyncSession, slug: str, *, except_id: int | None = None) -> bool:
    query = select(Course.id).where(Course.slug == slug)
    if except_id is not None:
        query = query.where(Course.id != except_id)
    return await session.scalar(query) is not None


async def _unique_slug(session: AsyncSession, base: str) -> str:
    slug, counter = base, 2
    while await _slug_taken(session, slug):
        suffix = f"-{counter}"
        slug = base[: SLUG_MAX - len(suffix)] + suffix
        counter += 1
    return slug


async def _flush_course(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as error:
        raise InvalidInput("slug is already in use", field="slug") from error


_COURSES = Course.__table__
_TAUGHT = CourseInstructor.__table__
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


async def list_courses(reads: ReadTransaction, viewer: Viewer | None) -> list[CourseRow]:
    """Published courses, plus the drafts and archives the viewer teaches (all, for admins)."""
    if viewer is None:
        rows = await reads.all(_PUBLISHED_COURSES)
    elif viewer.is_admin:
        rows = await reads.all(_ALL_COURSES)
    else:
        rows = await reads.all(_PUBLISHED_OR_TAUGHT, user_id=viewer.user_id)
    return [CourseRow(*row) for row in rows]


async def find_course(
    reads: ReadTransaction, viewer: Viewer | None, course_id: int
) -> CourseRow | None:
    """The course if the viewer may see it, else None."""
    return await visible_course_reading(reads, viewer, course_id)


async def create_course(
    session: AsyncSession,
    viewer: Viewer | None,
    *,
    title: str,
    slug: str | None = None,
    description: str | None = None,
    status: CourseStatus = CourseStatus.DRAFT,
) -> Course:
    """A new course taught by its creator (an instructor or admin)."""
    viewer = require_author(viewer)
    title = clean_text(title, field="title", max_length=TITLE_MAX)
    if slug is None:
        slug = await _unique_slug(session, slugify(title))
    else:
        slug = _clean_slug(slug)
        if await _slug_taken(session, slug):
            raise InvalidInput("slug is already in use", field="slug")
    if description is not None:
        description = clean_text(
            description, field="description", max_length=DESCRIPTION_MAX, required=False
        )
    course = Course(title=title, slug=slug, description=description, status=status)
    session.add(course)
    await _flush_course(session)
    session.add(CourseInstructor(course_id=course.id, user_id=viewer.user_id))  # type: ignore[arg-type]
    await session.flush()
    return course


async def update_course(
    session: AsyncSession, viewer: Viewer | None, course_id: int, changes: CourseChanges
) -> Course:
    """Change title, slug, description or status (publishing is status PUBLISHED)."""
    course = await staff_course(session, viewer, course_id, lock=True)
    if changes.title is not None:
        course.title = clean_text(changes.title, field="title", max_length=TITLE_MAX)
    if changes.slug is not None:
        slug = _clean_slug(changes.slug)
        if await _slug_taken(session, slug, except_id=course_id):
            raise InvalidInput("slug is already in use", field="slug")
        course.slug = slug
    if changes.description is not None:
        course.description = clean_text(
            changes.description, field="description", max_length=DESCRIPTION_MAX, required=False
        )
    if changes.status is not None:
        course.status = changes.status
    course.updated_at = utcnow()
    await _flush_course(session)
    return course


async def add_instructor(
    session: AsyncSession, viewer: Viewer | None, course_id: int, user_id: int
) -> Course:
    """Make a user an instructor of the course (idempotent)."""
    course = await staff_course(session, viewer, course_id, lock=True)
    if await session.get(User, user_id) is None:
        raise NotFound(f"User {user_id} not found")
    if await session.get(CourseInstructor, (course_id, user_id)) is None:
        session.add(CourseInstructor(course_id=course_id, user_id=user_id))
        await session.flush()
    return course


async def remove_instructor(
    session: AsyncSession, viewer: Viewer | None, course_id: int, user_id: int
) -> Course:
    """Take a user off the course's instructors (who may: as `add_instructor`).

    Removing someone who does not teach the course changes nothing; the last
    instructor stays (`invalid_input`: add another first), so a course always has
    staff besides the admins. The removed user's live views of the course's
    activity end (an access notice, heard once this commits).
    """
    course = await staff_course(session, viewer, course_id, lock=True)
    if await session.get(User, user_id) is None:
        raise NotFound(f"User {user_id} not found")
    teaching = await session.get(CourseInstructor, (course_id, user_id))
    if teaching is None:
        return course
    instructors = await session.scalar(
        select(func.count())
        .select_from(CourseInstructor)
        .where(CourseInstructor.course_id == course_id)
    )
    if (instructors or 0) <= 1:
        raise InvalidInput(
            "the course's last instructor cannot be removed: add another first", field="userId"
        )
    await session.delete(teaching)
    await session.flush()
    note_access_change(session, AccessNotice(AccessChange.COURSE_ROLE, user_id, course_id))
    return course


async def add_lesson(
    session: AsyncSession,
    viewer: Viewer | None,
    course_id: int,
    *,
    title: str,
    order: int | None = None,
) -> Lesson:
    """Insert a lesson at `order` (appended by default); completed students become active."""
    course = await staff_course(session, viewer, course_id, lock=True)
    title = clean_text(title, field="title", max_length=TITLE_MAX)
    total = course.total_lessons
    position = total + 1 if order is None else order
    if not 1 <= position <= total + 1:
        raise InvalidInput(f"order must be between 1 and {total + 1}", field="order")
    await session.execute(
        update(Lesson)
        .where(Lesson.course_id == course_id, Lesson.position >= position)
        .values(position=Lesson.position + 1)
    )
    lesson = Lesson(course_id=course_id, title=title, position=position)
    session.add(lesson)
    course.total_lessons = total + 1
    course.updated_at = utcnow()
    # A new lesson is incomplete for everyone: nobody has finished the course any more.
    await session.execute(
        update(Enrollment)
        .where(
            Enrollment.course_id == course_id,
            Enrollment.status == EnrollmentStatus.COMPLETED,
        )
        .values(status=EnrollmentStatus.ACTIVE, completed_at=None)
    )
    await session.flush()
    return lesson


async def _staff_lesson(
    session: AsyncSession, viewer: Viewer | None, lesson_id: int
) -> tuple[Course, Lesson]:
    """The lesson and its course, the course locked for authoring.

    The lesson is read again once the course is locked: a concurrent change
    (a double-clicked delete, a reorder) may have moved or removed it meanwhile.
    """
    found = await session.get(Lesson, lesson_id)
    if found is None:
        raise NotFound(f"Lesson {lesson_id} not found")
    course = await staff_course(session, viewer, found.course_id, lock=True)
    lesson = await session.scalar(
        select(Lesson)
        .where(Lesson.id == lesson_id, Lesson.course_id == course.id)
        .execution_options(populate_existing=True)
    )
    if lesson is None:
        raise NotFound(f"Lesson {lesson_id} not found")
    return course, lesson


async def rename_lesson(
    session: AsyncSession, viewer: Viewer | None, lesson_id: int, title: str
) -> Lesson:
    _course, lesson = await _staff_lesson(session, viewer, lesson_id)
    lesson.title = clean_text(title, field="title", max_length=TITLE_MAX)
    await session.flush()
    return lesson


async def delete_lesson(session: AsyncSession, viewer: Viewer | None, lesson_id: int) -> Course:
    """Remove a lesson and recompute every student's counts and status without it."""
    course, lesson = await _staff_lesson(session, viewer, lesson_id)
    course_id = course.id
    now = utcnow()
    completed_it = select(LessonCompletion.enrollment_id).where(
        LessonCompletion.lesson_id == lesson_id
    )
    await session.execute(
        update(Enrollment)
        .where(Enrollment.id.in_(completed_it))  # type: ignore[union-attr]
        .values(completed_lessons=Enrollment.completed_lessons - 1)
    )
    await session.execute(delete(LessonCompletion).where(LessonCompletion.lesson_id == lesson_id))
    position = lesson.position
    await session.delete(lesson)
    await session.flush()
    await session.execute(
        update(Lesson)
        .where(Lesson.course_id == course_id, Lesson.position > position)
        .values(position=Lesson.position - 1)
    )
    total = course.total_lessons - 1
    course.total_lessons = total
    course.updated_at = now
    if total > 0:
        # Students whose only missing lesson was this one have now completed the course:
        # a COURSE_COMPLETED moment each, logged like any other.
        finished = await session.scalars(
            select(Enrollment)
            .where(
                Enrollment.course_id == course_id,
                Enrollment.status == EnrollmentStatus.ACTIVE,
                Enrollment.completed_lessons >= total,
            )
            .order_by(Enrollment.id)
            .execution_options(populate_existing=True)
        )
        for enrollment in finished:
            settle_status(enrollment, total, now)
            await append_event(
                session,
                kind=ProgressEventKind.COURSE_COMPLETED,
                enrollment=enrollment,
                total_lessons=total,
                occurred_at=now,
            )
    else:
        await session.execute(
            update(Enrollment)
            .where(
                Enrollment.course_id == course_id,
                Enrollment.status == EnrollmentStatus.COMPLETED,
            )
            .values(status=EnrollmentStatus.ACTIVE, completed_at=None)
        )
    await session.flush()
    return await get_course(session, course_id)  # type: ignore[return-value]


async def reorder_lessons(
    session: AsyncSession, viewer: Viewer | None, course_id: int, lesson_ids: list[int]
) -> Course:
    """Put the lessons in the given order; the list must name each lesson exactly once."""
    course = await staff_course(session, viewer, course_id, lock=True)
    current = set(await session.scalars(select(Lesson.id).where(Lesson.course_id == course_id)))
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
        await session.execute(
            update(Lesson),
            [{"id": lesson_id, "position": index} for index, lesson_id in enumerate(lesson_ids, 1)],
        )
    course.updated_at = utcnow()
    await session.flush()
    return course


async def course_lessons(session: AsyncSession, course_id: int) -> list[Lesson]:
    """The course's lessons in course order."""
    return list(
        await session.scalars(
            select(Lesson).where(Lesson.course_id == course_id).order_by(Lesson.position)
        )
    )
