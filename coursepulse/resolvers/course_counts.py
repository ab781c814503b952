"""The stored count of a course's students (`course_counts`), kept by enrolment changes.

A roster's total without filters is read from it: one row by key, where counting the
enrolments walks every one of them (thousands on a popular course) on every page.
"""

from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql import Executable

from coursepulse.models import ENROLLED_STATUSES, Course, CourseCount, Enrollment
from coursepulse.models.rows import CourseRow
from coursepulse.models.sql import Query, one_of
from coursepulse.models.transactions import Transaction

_COUNTS = CourseCount.__table__
_COURSES = Course.__table__
_ENROLLMENTS = Enrollment.__table__


#: A course's columns followed by its count of students (None before its first student).
COURSE_WITH_STUDENTS = (*_COURSES.c, _COUNTS.c.enrolled_students)
#: The courses with their counts, for statements that read both (see `course_row`).
COURSES_WITH_COUNTS = _COURSES.outerjoin(_COUNTS, _COUNTS.c.course_id == _COURSES.c.id)
_COURSE_WIDTH = len(_COURSES.columns)
_COURSE_WITH_STUDENTS = Query(
    select(*COURSE_WITH_STUDENTS)
    .select_from(COURSES_WITH_COUNTS)
    .where(_COURSES.c.id == bindparam("course_id"))
)


def _change_query(dialect_insert: Any) -> Query:
    """Add `change` to a course's count (its row made on first use); the row's lock
    queues concurrent enrolments in the course until their commits."""
    statement = dialect_insert(_COUNTS).values(
        course_id=bindparam("course_id"), enrolled_students=bindparam("change")
    )
    return Query(
        statement.on_conflict_do_update(
            index_elements=[_COUNTS.c.course_id],
            set_={
                "enrolled_students": _COUNTS.c.enrolled_students
                + statement.excluded.enrolled_students
            },
        )
    )


_CHANGE = {"sqlite": _change_query(sqlite_insert), "postgresql": _change_query(postgresql_insert)}


async def course_with_students(tx: Transaction, course_id: int) -> tuple[CourseRow | None, int]:
    """The course row (None when there is none) and its count of students, in one read."""
    return course_row(await tx.first(_COURSE_WITH_STUDENTS, course_id=course_id))


def course_row(row: Any) -> tuple[CourseRow | None, int]:
    """The course and its count of students from a row that starts with
    `COURSE_WITH_STUDENTS` (None and 0 for no row)."""
    if row is None:
        return None, 0
    return CourseRow._make(row[:_COURSE_WIDTH]), int(row[_COURSE_WIDTH] or 0)


async def count_enrolment(tx: Transaction, course_id: int, change: int) -> None:
    """Record that `change` students (+1 enrolled, -1 left) joined the course's roster;
    in the transaction that changes the enrolment."""
    await tx.execute(_CHANGE[tx.dialect.name], course_id=course_id, change=change)


def recount() -> list[Executable]:
    """Statements that set every course's count from its enrolments (after rows were
    written directly, as the benchmark's dataset is)."""
    return [
        _COUNTS.delete(),
        insert(_COUNTS).from_select(
            ["course_id", "enrolled_students"],
            select(_ENROLLMENTS.c.course_id, func.count())
            .where(one_of(_ENROLLMENTS.c.status, ENROLLED_STATUSES))
            .group_by(_ENROLLMENTS.c.course_id),
        ),
    ]
