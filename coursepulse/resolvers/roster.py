"""What instructors see: the course roster and course statistics."""

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import (
    ENROLLED_STATUSES,
    Course,
    Enrollment,
    EnrollmentStatus,
    Lesson,
    LessonCompletion,
    User,
)
from coursepulse.resolvers.access import staff_course
from coursepulse.resolvers.errors import InvalidInput
from coursepulse.resolvers.validation import clean_text
from coursepulse.resolvers.viewer import Viewer

MAX_PER_PAGE = 100
SEARCH_MAX = 100


class StudentOrder(StrEnum):
    ENROLLED_AT = "enrolled_at"
    LAST_ACCESSED = "last_accessed"
    PROGRESS = "progress"
    DISPLAY_NAME = "display_name"


@dataclass(frozen=True, slots=True)
class RosterRow:
    enrollment: Enrollment
    user: User


@dataclass(frozen=True, slots=True)
class RosterPage:
    course: Course
    rows: list[RosterRow]
    total: int
    per_page: int
    page: int

    @property
    def total_pages(self) -> int:
        return (self.total + self.per_page - 1) // self.per_page


def _sort_key(order_by: StudentOrder) -> ColumnElement:  # type: ignore[type-arg]
    if order_by is StudentOrder.LAST_ACCESSED:
        return Enrollment.last_accessed_at  # type: ignore[return-value]
    if order_by is StudentOrder.PROGRESS:
        # Within one course total_lessons is constant: completed lessons order like progress.
        return Enrollment.completed_lessons  # type: ignore[return-value]
    if order_by is StudentOrder.DISPLAY_NAME:
        return func.lower(User.display_name)
    return Enrollment.enrolled_at  # type: ignore[return-value]


async def course_students(
    session: AsyncSession,
    viewer: Viewer | None,
    course_id: int,
    *,
    page: int = 1,
    per_page: int = 20,
    order_by: StudentOrder = StudentOrder.ENROLLED_AT,
    descending: bool = True,
    search: str | None = None,
) -> RosterPage:
    """One page of enrolled students, ordered with the enrolment id as the tie-break.

    perPage above 100 is capped at 100; page or perPage below 1 is `invalid_input`.
    Students who never accessed the course sort last in both directions.
    """
    course = await staff_course(session, viewer, course_id)
    if page < 1:
        raise InvalidInput("page must be 1 or more", field="page")
    if per_page < 1:
        raise InvalidInput("perPage must be 1 or more", field="perPage")
    per_page = min(per_page, MAX_PER_PAGE)

    conditions = [
        Enrollment.course_id == course_id,
        Enrollment.status.in_(ENROLLED_STATUSES),  # type: ignore[attr-defined]
    ]
    if search is not None and (
        needle := clean_text(search, field="search", max_length=SEARCH_MAX, required=False)
    ):
        needle = needle.lower()
        conditions.append(
            or_(
                func.lower(User.username).contains(needle, autoescape=True),
                func.lower(User.display_name).contains(needle, autoescape=True),
            )
        )

    counting = select(func.count()).select_from(Enrollment)
    if len(conditions) > 2:
        # Searching names needs the users; otherwise the count is an index range.
        counting = counting.join(User, User.id == Enrollment.user_id)
    total = await session.scalar(counting.where(*conditions))
    key = _sort_key(order_by)
    direction = key.desc() if descending else key.asc()
    tie = Enrollment.id.desc() if descending else Enrollment.id.asc()  # type: ignore[union-attr]
    rows = await session.execute(
        select(Enrollment, User)
        .join(User, User.id == Enrollment.user_id)
        .where(*conditions)
        .order_by(direction.nulls_last(), tie)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return RosterPage(
        course=course,
        rows=[RosterRow(enrollment, user) for enrollment, user in rows],
        total=total or 0,
        per_page=per_page,
        page=page,
    )


@dataclass(frozen=True, slots=True)
class LessonStat:
    lesson: Lesson
    completed_count: int
    completion_rate: float


@dataclass(frozen=True, slots=True)
class CourseStats:
    course_id: int
    enrolled_count: int
    active_count: int
    completed_count: int
    average_progress: float
    completion_rate: float
    lessons: list[LessonStat]


async def course_stats(session: AsyncSession, viewer: Viewer | None, course_id: int) -> CourseStats:
    """Counts, mean progress and per-lesson completion over enrolled (not unenrolled) students."""
    course = await staff_course(session, viewer, course_id)
    total = course.total_lessons
    enrolled = Enrollment.status.in_(ENROLLED_STATUSES)  # type: ignore[attr-defined]
    per_student = (Enrollment.completed_lessons * 100) // total if total else 0
    counts = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(Enrollment.status == EnrollmentStatus.COMPLETED),
                func.coalesce(func.avg(per_student), 0),
            ).where(Enrollment.course_id == course_id, enrolled)
        )
    ).one()
    enrolled_count, completed_count, average = int(counts[0]), int(counts[1]), float(counts[2])
    per_lesson = await session.execute(
        select(Lesson, func.count(Enrollment.id))
        .outerjoin(LessonCompletion, LessonCompletion.lesson_id == Lesson.id)
        .outerjoin(
            Enrollment,
            (Enrollment.id == LessonCompletion.enrollment_id) & enrolled,
        )
        .where(Lesson.course_id == course_id)
        .group_by(Lesson.id)
        .order_by(Lesson.position)
    )
    lessons = [
        LessonStat(
            lesson=lesson,
            completed_count=count,
            completion_rate=count / enrolled_count if enrolled_count else 0.0,
        )
        for lesson, count in per_lesson
    ]
    return CourseStats(
        course_id=course_id,
        enrolled_count=enrolled_count,
        active_count=enrolled_count - completed_count,
        completed_count=completed_count,
        average_progress=round(average, 2),
        completion_rate=completed_count / enrolled_count if enrolled_count else 0.0,
        lessons=lessons,
    )
