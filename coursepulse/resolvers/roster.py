"""What instructors see: the course roster and course statistics."""

from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from sqlalchemy import ColumnElement, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import (
    ENROLLED_STATUSES,
    Enrollment,
    EnrollmentStatus,
    Lesson,
    LessonCompletion,
    User,
)
from coursepulse.models.reads import Query, ReadTransaction, one_of
from coursepulse.models.rows import CourseRow, EnrollmentRow, UserRow
from coursepulse.resolvers.access import staff_course, staff_course_reading
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
    enrollment: EnrollmentRow
    user: UserRow


@dataclass(frozen=True, slots=True)
class RosterPage:
    course: CourseRow
    rows: list[RosterRow]
    total: int
    per_page: int
    page: int

    @property
    def total_pages(self) -> int:
        return (self.total + self.per_page - 1) // self.per_page


_ENROLLMENTS = Enrollment.__table__
_USERS = User.__table__
_ENROLLMENT_COLUMNS = len(_ENROLLMENTS.columns)
#: `search` matches usernames and display names containing it, case-insensitively.
_SEARCH = or_(
    func.lower(_USERS.c.username).like(bindparam("pattern"), escape="/"),
    func.lower(_USERS.c.display_name).like(bindparam("pattern"), escape="/"),
)


def _sort_key(order_by: StudentOrder) -> ColumnElement:  # type: ignore[type-arg]
    if order_by is StudentOrder.LAST_ACCESSED:
        return _ENROLLMENTS.c.last_accessed_at
    if order_by is StudentOrder.PROGRESS:
        # Within one course total_lessons is constant: completed lessons order like progress.
        return _ENROLLMENTS.c.completed_lessons
    if order_by is StudentOrder.DISPLAY_NAME:
        return func.lower(_USERS.c.display_name)
    return _ENROLLMENTS.c.enrolled_at


@cache
def _count_query(searching: bool) -> Query:
    conditions = [
        _ENROLLMENTS.c.course_id == bindparam("course_id"),
        one_of(_ENROLLMENTS.c.status, ENROLLED_STATUSES),
    ]
    counting = select(func.count()).select_from(_ENROLLMENTS)
    if searching:
        # Searching names needs the users; otherwise the count is an index range.
        counting = counting.join(_USERS, _USERS.c.id == _ENROLLMENTS.c.user_id)
        conditions.append(_SEARCH)
    # Matching names reads every enrolment of the course: in a thread on SQLite. Without a
    # search the count is an index range, about 30 ns per enrolment.
    return Query(counting.where(*conditions), unbounded=searching)


#: Rows skipped beyond which a page no longer counts as cheap (see `_page_query`).
FAR_PAGE_OFFSET = 1000


@cache
def _page_query(
    order_by: StudentOrder, descending: bool, searching: bool, far: bool = False
) -> Query:
    """One page of the roster in one order: each shape is compiled once."""
    conditions = [
        _ENROLLMENTS.c.course_id == bindparam("course_id"),
        one_of(_ENROLLMENTS.c.status, ENROLLED_STATUSES),
    ]
    if searching:
        conditions.append(_SEARCH)
    key = _sort_key(order_by)
    direction = key.desc() if descending else key.asc()
    tie = _ENROLLMENTS.c.id.desc() if descending else _ENROLLMENTS.c.id.asc()
    # A search, a name order (no index) or a far page reads more rows than it returns:
    # in a thread on SQLite. A near page in an indexed order walks the index.
    return Query(
        select(_ENROLLMENTS, _USERS)
        .join(_USERS, _USERS.c.id == _ENROLLMENTS.c.user_id)
        .where(*conditions)
        .order_by(direction.nulls_last(), tie)
        .limit(bindparam("limit"))
        .offset(bindparam("offset")),
        unbounded=searching or far or order_by is StudentOrder.DISPLAY_NAME,
    )


def _like_pattern(needle: str) -> str:
    """`%needle%` with LIKE's wildcards in the needle taken literally (escape `/`)."""
    escaped = needle.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


async def course_students(
    reads: ReadTransaction,
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
    course = await staff_course_reading(reads, viewer, course_id)
    if page < 1:
        raise InvalidInput("page must be 1 or more", field="page")
    if per_page < 1:
        raise InvalidInput("perPage must be 1 or more", field="perPage")
    per_page = min(per_page, MAX_PER_PAGE)

    params: dict[str, object] = {"course_id": course_id}
    if search is not None and (
        needle := clean_text(search, field="search", max_length=SEARCH_MAX, required=False)
    ):
        params["pattern"] = _like_pattern(needle.lower())
    searching = "pattern" in params
    counted = await reads.first(_count_query(searching), **params)
    offset = (page - 1) * per_page
    rows = await reads.all(
        _page_query(order_by, descending, searching, offset > FAR_PAGE_OFFSET),
        **params,
        limit=per_page,
        offset=offset,
    )
    return RosterPage(
        course=course,
        rows=[
            RosterRow(
                EnrollmentRow(*row[:_ENROLLMENT_COLUMNS]), UserRow(*row[_ENROLLMENT_COLUMNS:])
            )
            for row in rows
        ],
        total=counted[0] if counted else 0,
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
