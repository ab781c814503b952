"""What instructors see: the course roster and course statistics."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, literal, or_, select, true

from coursepulse.models import (
    ENROLLED_STATUSES,
    Course,
    Enrollment,
    EnrollmentStatus,
    Lesson,
    LessonCompletion,
    LessonTime,
    User,
)
from coursepulse.models.rows import CourseRow, EnrollmentRow, LessonRow
from coursepulse.models.sql import Query, nulls_last, one_of, outer_first
from coursepulse.models.transactions import Transaction
from coursepulse.models.types import utcnow
from coursepulse.resolvers.access import INSTRUCTS, require_staff, staff_course
from coursepulse.resolvers.course_counts import (
    COURSE_WITH_STUDENTS,
    COURSES_WITH_COUNTS,
    course_row,
    course_with_students,
)
from coursepulse.resolvers.errors import InvalidInput
from coursepulse.resolvers.subscriptions import last_event_id
from coursepulse.resolvers.validation import clean_text
from coursepulse.resolvers.viewer import Viewer, require_viewer

MAX_PER_PAGE = 100
SEARCH_MAX = 100
#: The most days of inactivity a roster filter may ask for (a century).
MAX_INACTIVE_DAYS = 36_500
#: Days without a learner action after which an ACTIVE student counts as at risk.
AT_RISK_DAYS = 14


class StudentOrder(StrEnum):
    ENROLLED_AT = "enrolled_at"
    LAST_ACCESSED = "last_accessed"
    PROGRESS = "progress"
    DISPLAY_NAME = "display_name"


class RosterUser(NamedTuple):
    """What a roster shows of a student's account (never their email or password hash)."""

    id: int
    username: str
    display_name: str
    avatar: str | None


class RosterRow(NamedTuple):
    """One student of the roster: their enrolment and their account (a tuple: a page
    makes one per student)."""

    enrollment: EnrollmentRow
    user: RosterUser


@dataclass(frozen=True, slots=True)
class RosterPage:
    """One page of a course's roster, with the total of students matching."""

    course: CourseRow
    rows: list[RosterRow]
    total: int
    per_page: int
    page: int

    @property
    def total_pages(self) -> int:
        return (self.total + self.per_page - 1) // self.per_page


_COURSES = Course.__table__
_ENROLLMENTS = Enrollment.__table__
_USERS = User.__table__
_LESSONS = Lesson.__table__
_COMPLETIONS = LessonCompletion.__table__
#: Students on the roster: active or completed, not unenrolled.
_ENROLLED = one_of(_ENROLLMENTS.c.status, ENROLLED_STATUSES)
#: A learner's last action in the course: their last access, else their enrolment.
_LAST_ACTION = func.coalesce(_ENROLLMENTS.c.last_accessed_at, _ENROLLMENTS.c.enrolled_at)
#: No learner action since `idle_since` (`inactiveDays`, and at risk in the statistics).
_IDLE = bindparam("idle_since", type_=_ENROLLMENTS.c.enrolled_at.type) >= _LAST_ACTION
#: `search` matches usernames and display names containing it, case-insensitively.
_SEARCH = or_(
    func.lower(_USERS.c.username).like(bindparam("pattern"), escape="/"),
    func.lower(_USERS.c.display_name).like(bindparam("pattern"), escape="/"),
)


#: What each roster order sorts by, each key with whether its NULLs sort last: each order
#: is a walk down one index (models/tables.py). The tie-break is the enrolment id, or the
#: user id for names (the index is on users; a student has one enrolment per course, so
#: either is unique). Students who never opened the course sort last in both directions.
#: Within one course total_lessons is constant: completed lessons order like progress.
_ORDER_KEYS: dict[StudentOrder, tuple[tuple[ColumnElement[Any], bool], ...]] = {
    StudentOrder.LAST_ACCESSED: (
        (_ENROLLMENTS.c.last_accessed_at, True),
        (_ENROLLMENTS.c.id, False),
    ),
    StudentOrder.PROGRESS: ((_ENROLLMENTS.c.completed_lessons, False), (_ENROLLMENTS.c.id, False)),
    StudentOrder.DISPLAY_NAME: ((func.lower(_USERS.c.display_name), False), (_USERS.c.id, False)),
    StudentOrder.ENROLLED_AT: ((_ENROLLMENTS.c.enrolled_at, False), (_ENROLLMENTS.c.id, False)),
}


def _ordered(
    keys: Sequence[tuple[ColumnElement[Any], bool]], descending: bool
) -> list[ColumnElement[Any]]:
    """The ORDER BY terms for these keys (see `_ORDER_KEYS`) in one direction."""
    return [
        nulls_last(key, descending=descending)
        if last
        else (key.desc() if descending else key.asc())
        for key, last in keys
    ]


def _conditions(searching: bool, status: bool, idle: bool) -> list[ColumnElement[bool]]:
    """Who a roster lists: the course's enrolled students, or those of one `status`; with
    a name `search`; with no learner action since `idle_since`."""
    conditions = [
        _ENROLLMENTS.c.course_id == bindparam("course_id"),
        _ENROLLMENTS.c.status == bindparam("status") if status else _ENROLLED,
    ]
    if searching:
        conditions.append(_SEARCH)
    if idle:
        conditions.append(_IDLE)
    return conditions


@cache
def _count_query(searching: bool, status: bool = False, idle: bool = False) -> Query:
    counting = select(func.count()).select_from(_ENROLLMENTS)
    if searching:
        # Searching names needs the users; otherwise the count is an index range.
        counting = counting.join(_USERS, _USERS.c.id == _ENROLLMENTS.c.user_id)
    # Matching names or times reads every enrolment of the course: in a thread on SQLite.
    # Otherwise the count is an index range (by status: ix_enrollments_course_progress),
    # cheap enough for the event loop (see bench/).
    return Query(counting.where(*_conditions(searching, status, idle)), unbounded=searching or idle)


#: Rows skipped beyond which a page no longer counts as cheap (see `_page_query`).
FAR_PAGE_OFFSET = 1000


@cache
def _page_query(
    order_by: StudentOrder,
    descending: bool,
    searching: bool,
    far: bool = False,
    status: bool = False,
    idle: bool = False,
) -> Query:
    """One page of the roster in one order: each shape is compiled once."""
    # A search, a time filter, a name order (no index) or a far page reads more rows than
    # it returns: in a thread on SQLite. A near page in an indexed order walks the index,
    # checking the status (and the time) of each enrolment on the way.
    return Query(
        _page_select(order_by, descending, searching, status, idle),
        unbounded=searching or far or idle or status or order_by is StudentOrder.DISPLAY_NAME,
        plan_per_run=_plans_per_run(order_by),
    )


def _plans_per_run(order_by: StudentOrder) -> bool:
    """Whether a page in this order needs a plan made for its course: by name, a large
    course walks its students down the name index, a small one sorts its own."""
    return order_by is StudentOrder.DISPLAY_NAME


def _page_select(
    order_by: StudentOrder, descending: bool, searching: bool, status: bool, idle: bool
) -> Select[Any]:
    """The statement of a roster page (`_page_query`)."""
    return (
        select(_ENROLLMENTS, *_STUDENT)
        .select_from(
            outer_first(_USERS, _ENROLLMENTS, _USERS.c.id == _ENROLLMENTS.c.user_id)
            if order_by is StudentOrder.DISPLAY_NAME
            else _ENROLLMENTS.join(_USERS, _USERS.c.id == _ENROLLMENTS.c.user_id)
        )
        .where(*_conditions(searching, status, idle))
        .order_by(*_ordered(_ORDER_KEYS[order_by], descending))
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


@cache
def _course_page_query(order_by: StudentOrder, descending: bool) -> Query:
    """The course, its count of students, whether the viewer (`user_id`) instructs it,
    and a near page of its whole roster, in one statement (`_course_page`).

    The page is `_page_query`'s statement, carrying its order's keys so that the rows
    joined to the course (none when the page is empty) keep the page's order; the course
    is read by key, so what is sorted again is the page alone.
    """
    keys = _ORDER_KEYS[order_by]
    page = (
        _page_select(order_by, descending, False, False, False)
        .add_columns(*(key.label(f"order_key_{number}") for number, (key, _) in enumerate(keys)))
        .subquery("page")
    )
    page_keys = [(page.c[f"order_key_{number}"], last) for number, (_, last) in enumerate(keys)]
    return Query(
        select(
            *COURSE_WITH_STUDENTS,
            INSTRUCTS.label("instructs"),
            *(column.label(f"page_{column.key}") for column in page.c),
        )
        .select_from(COURSES_WITH_COUNTS.outerjoin(page, true()))
        .where(_COURSES.c.id == bindparam("course_id"))
        .order_by(*_ordered(page_keys, descending)),
        plan_per_run=_plans_per_run(order_by),
    )


#: The account columns a roster row shows, after the enrolment's (see `_roster_row`).
_STUDENT = (
    _USERS.c.username.label("student_username"),
    _USERS.c.display_name.label("student_display_name"),
    _USERS.c.avatar.label("student_avatar"),
)
_ENROLLMENT_WIDTH = len(_ENROLLMENTS.columns)
_ROW_WIDTH = _ENROLLMENT_WIDTH + len(_STUDENT)
#: Engines on which a page without filters is read with its course in one statement
#: (`_course_page`): on PostgreSQL each statement is a round trip, and a lone statement
#: needs no BEGIN or ROLLBACK. SQLite runs a statement as a call in this process, where the
#: course's columns, repeated on every row of the page, cost more than a statement of its own.
_ONE_STATEMENT_PAGES = frozenset({"postgresql"})
#: Where a page's columns start in `_course_page_query`'s rows.
_PAGE_START = len(COURSE_WITH_STUDENTS) + 1


def _roster_row(row: Any, start: int = 0) -> RosterRow:
    """A page statement's row (from its column `start` on) as the enrolment and the
    student's account."""
    enrollment = EnrollmentRow._make(row[start : start + _ENROLLMENT_WIDTH])
    username, display_name, avatar = row[start + _ENROLLMENT_WIDTH : start + _ROW_WIDTH]
    return RosterRow(enrollment, RosterUser(enrollment.user_id, username, display_name, avatar))


def _like_pattern(needle: str) -> str:
    """`%needle%` with LIKE's wildcards in the needle taken literally (escape `/`)."""
    escaped = needle.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


async def course_students(
    tx: Transaction,
    viewer: Viewer | None,
    course_id: int,
    *,
    page: int = 1,
    per_page: int = 20,
    order_by: StudentOrder = StudentOrder.ENROLLED_AT,
    descending: bool = True,
    search: str | None = None,
    status: EnrollmentStatus | None = None,
    inactive_days: int | None = None,
) -> RosterPage:
    """One page of enrolled students, ordered with the enrolment id as the tie-break.

    perPage above 100 is capped at 100; page or perPage below 1 is `invalid_input`.
    Students who never accessed the course sort last in both directions. `status` lists
    the students of that status instead (UNENROLLED: those who left); `inactive_days`
    only those with no learner action (an access, or the enrolment for a student who
    never acted) for at least that many days.
    """
    offset = (page - 1) * per_page
    if (
        search is None
        and status is None
        and inactive_days is None
        and page >= 1
        and 1 <= per_page <= MAX_PER_PAGE
        and offset <= FAR_PAGE_OFFSET
        and tx.dialect.name in _ONE_STATEMENT_PAGES
    ):
        return await _course_page(tx, viewer, course_id, order_by, descending, page, per_page)
    course, students, params, shape = await _scope(
        tx, viewer, course_id, search, status, inactive_days
    )
    if page < 1:
        raise InvalidInput("page must be 1 or more", field="page")
    if per_page < 1:
        raise InvalidInput("perPage must be 1 or more", field="perPage")
    per_page = min(per_page, MAX_PER_PAGE)
    if shape == (False, False, False):
        counted = students  # stored: no walk of the course's enrolments
    else:
        counted = await tx.scalar(_count_query(*shape), **params)
    offset = (page - 1) * per_page
    rows = await tx.all(
        _page_query(
            order_by,
            descending,
            shape[0],
            offset > FAR_PAGE_OFFSET,
            status=shape[1],
            idle=shape[2],
        ),
        **params,
        limit=per_page,
        offset=offset,
    )
    return RosterPage(
        course=course,
        rows=[_roster_row(row) for row in rows],
        total=counted or 0,
        per_page=per_page,
        page=page,
    )


async def _course_page(
    tx: Transaction,
    viewer: Viewer | None,
    course_id: int,
    order_by: StudentOrder,
    descending: bool,
    page: int,
    per_page: int,
) -> RosterPage:
    """`course_students` without filters, for a near page: what `_scope` and the page
    read, in one statement."""
    viewer = require_viewer(viewer)
    rows = await tx.all(
        _course_page_query(order_by, descending),
        course_id=course_id,
        user_id=viewer.user_id,
        limit=per_page,
        offset=(page - 1) * per_page,
    )
    found, students = course_row(rows[0] if rows else None)
    instructs = bool(rows[0].instructs) if rows else False
    course = await require_staff(tx, viewer, course_id, found, instructs=instructs)
    return RosterPage(
        course=course,
        rows=[_roster_row(row, _PAGE_START) for row in rows if row.page_id is not None],
        total=students,
        per_page=per_page,
        page=page,
    )


async def _scope(
    tx: Transaction,
    viewer: Viewer | None,
    course_id: int,
    search: str | None,
    status: EnrollmentStatus | None,
    inactive_days: int | None,
) -> tuple[CourseRow, int, dict[str, object], tuple[bool, bool, bool]]:
    """The course (for its staff only) and its count of students, the statements'
    parameters for these filters, and which filters apply (search, status, inactivity)."""
    viewer = require_viewer(viewer)
    found, students = await course_with_students(tx, course_id)
    course = await require_staff(tx, viewer, course_id, found)
    params: dict[str, object] = {"course_id": course_id}
    if search is not None and (
        needle := clean_text(search, field="search", max_length=SEARCH_MAX, required=False)
    ):
        params["pattern"] = _like_pattern(needle.lower())
    if status is not None:
        params["status"] = str(status)
    if inactive_days is not None:
        params["idle_since"] = idle_since(inactive_days)
    return (
        course,
        students,
        params,
        ("pattern" in params, "status" in params, "idle_since" in params),
    )


#: Students read per statement when the whole filtered roster is exported.
EXPORT_BATCH = 500


async def all_students(
    tx: Transaction,
    viewer: Viewer | None,
    course_id: int,
    *,
    order_by: StudentOrder = StudentOrder.ENROLLED_AT,
    descending: bool = True,
    search: str | None = None,
    status: EnrollmentStatus | None = None,
    inactive_days: int | None = None,
) -> tuple[CourseRow, list[RosterRow]]:
    """The course and every student its roster lists with these filters, in the roster's
    order (an export: read in batches of EXPORT_BATCH, all in the caller's snapshot)."""
    course, _, params, shape = await _scope(tx, viewer, course_id, search, status, inactive_days)
    query = _page_query(order_by, descending, shape[0], True, status=shape[1], idle=shape[2])
    students: list[RosterRow] = []
    while True:
        rows = await tx.all(query, **params, limit=EXPORT_BATCH, offset=len(students))
        students.extend(_roster_row(row) for row in rows)
        if len(rows) < EXPORT_BATCH:
            return course, students


def idle_since(inactive_days: int) -> datetime:
    """The moment before which a last action is `inactive_days` old; `invalid_input`
    outside 0..MAX_INACTIVE_DAYS."""
    if not 0 <= inactive_days <= MAX_INACTIVE_DAYS:
        raise InvalidInput(
            f"inactiveDays must be between 0 and {MAX_INACTIVE_DAYS}", field="inactiveDays"
        )
    return utcnow() - timedelta(days=inactive_days)


@dataclass(frozen=True, slots=True)
class LessonStat:
    """How many enrolled students completed a lesson, and which share of them; how many
    got this far (completed it or any later lesson)."""

    lesson: LessonRow
    completed_count: int
    completion_rate: float
    reached_count: int
    #: Mean study time on the lesson over enrolled students who spent any (0 when none).
    average_time_spent_seconds: float


@dataclass(frozen=True, slots=True)
class CourseStats:
    """A course's statistics over its enrolled (not unenrolled) students."""

    course_id: int
    enrolled_count: int
    active_count: int
    completed_count: int
    average_progress: float
    completion_rate: float
    lessons: list[LessonStat]
    last_event_id: int
    #: ACTIVE students with no learner action for AT_RISK_DAYS or more.
    at_risk_count: int


@cache
def _counts_query(has_lessons: bool) -> Query:
    """Enrolled and completed students of a course and their mean floored percentage."""
    per_student = (
        (_ENROLLMENTS.c.completed_lessons * 100) // bindparam("total", type_=Integer())
        if has_lessons
        else literal(0)
    )
    return Query(
        select(
            func.count().label("enrolled"),
            func.count()
            .filter(_ENROLLMENTS.c.status == str(EnrollmentStatus.COMPLETED))
            .label("completed"),
            func.coalesce(func.avg(per_student), 0).label("average"),
            func.count()
            .filter(_ENROLLMENTS.c.status == str(EnrollmentStatus.ACTIVE), _IDLE)
            .label("at_risk"),
        ).where(_ENROLLMENTS.c.course_id == bindparam("course_id"), _ENROLLED),
        unbounded=True,
    )


_LATER = _LESSONS.alias("later")
#: Each enrolled student's furthest lesson: the highest position they completed.
_FURTHEST = (
    select(
        _COMPLETIONS.c.enrollment_id.label("enrollment_id"),
        func.max(_LATER.c.position).label("position"),
    )
    .join(_LATER, _LATER.c.id == _COMPLETIONS.c.lesson_id)
    .join(_ENROLLMENTS, (_ENROLLMENTS.c.id == _COMPLETIONS.c.enrollment_id) & _ENROLLED)
    .where(_LATER.c.course_id == bindparam("course_id"))
    .group_by(_COMPLETIONS.c.enrollment_id)
    .subquery("furthest")
)
_LESSON_TIMES = LessonTime.__table__
#: Each lesson's id with its mean study time over enrolled students who spent any.
_TIME_PER_LESSON = Query(
    select(_LESSON_TIMES.c.lesson_id, func.avg(_LESSON_TIMES.c.seconds).label("average"))
    .join(_LESSONS, _LESSONS.c.id == _LESSON_TIMES.c.lesson_id)
    .join(_ENROLLMENTS, (_ENROLLMENTS.c.id == _LESSON_TIMES.c.enrollment_id) & _ENROLLED)
    .where(_LESSONS.c.course_id == bindparam("course_id"), _LESSON_TIMES.c.seconds > 0)
    .group_by(_LESSON_TIMES.c.lesson_id),
    unbounded=True,
)
#: Each lesson's id with how many enrolled students got that far (the drop-off funnel).
_REACHED = Query(
    select(_LESSONS.c.id, func.count(_FURTHEST.c.enrollment_id).label("reached_count"))
    .select_from(_LESSONS.outerjoin(_FURTHEST, _FURTHEST.c.position >= _LESSONS.c.position))
    .where(_LESSONS.c.course_id == bindparam("course_id"))
    .group_by(_LESSONS.c.id),
    unbounded=True,
)

#: Each lesson of a course with how many enrolled students completed it, in course order.
_PER_LESSON = Query(
    select(_LESSONS, func.count(_ENROLLMENTS.c.id).label("completed_count"))
    .outerjoin(_COMPLETIONS, _COMPLETIONS.c.lesson_id == _LESSONS.c.id)
    .outerjoin(_ENROLLMENTS, (_ENROLLMENTS.c.id == _COMPLETIONS.c.enrollment_id) & _ENROLLED)
    .where(_LESSONS.c.course_id == bindparam("course_id"))
    .group_by(_LESSONS.c.id)
    .order_by(_LESSONS.c.position),
    unbounded=True,
)


async def course_stats(tx: Transaction, viewer: Viewer | None, course_id: int) -> CourseStats:
    """Counts, mean progress and per-lesson completion over enrolled (not unenrolled) students."""
    course = await staff_course(tx, viewer, course_id)
    newest_event_id = await last_event_id(tx, course_id)
    total = course.total_lessons
    params = {"total": total} if total else {}
    counts = await tx.first(
        _counts_query(bool(total)),
        course_id=course_id,
        idle_since=idle_since(AT_RISK_DAYS),
        **params,
    )
    assert counts is not None  # an aggregate without GROUP BY gives one row
    enrolled_count, completed_count = int(counts.enrolled), int(counts.completed)
    average = float(counts.average)
    reached = {
        row.id: int(row.reached_count) for row in await tx.all(_REACHED, course_id=course_id)
    }
    time_rows = await tx.all(_TIME_PER_LESSON, course_id=course_id)
    times = {row.lesson_id: float(row.average) for row in time_rows}
    lessons: list[LessonStat] = []
    for row in await tx.all(_PER_LESSON, course_id=course_id):
        lesson = LessonRow(**{field: getattr(row, field) for field in LessonRow._fields})
        lessons.append(
            LessonStat(
                lesson=lesson,
                completed_count=row.completed_count,
                completion_rate=row.completed_count / enrolled_count if enrolled_count else 0.0,
                reached_count=reached.get(lesson.id, 0),
                average_time_spent_seconds=round(times.get(lesson.id, 0.0), 2),
            )
        )
    return CourseStats(
        course_id=course_id,
        enrolled_count=enrolled_count,
        active_count=enrolled_count - completed_count,
        completed_count=completed_count,
        average_progress=round(average, 2),
        completion_rate=completed_count / enrolled_count if enrolled_count else 0.0,
        lessons=lessons,
        last_event_id=newest_event_id,
        at_risk_count=int(counts.at_risk),
    )
