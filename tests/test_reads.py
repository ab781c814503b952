"""The lean read path (models/reads.py): the same values as the ORM, one snapshot, recovery."""

import dataclasses

import pytest
from sqlalchemy import select, text

from coursepulse.models import (
    Certificate,
    Course,
    Enrollment,
    Lesson,
    LessonCompletion,
    User,
    writes,
)
from coursepulse.models.db import Database
from coursepulse.models.rows import (
    CertificateRow,
    CompletionRow,
    CourseRow,
    EnrollmentRow,
    LessonRow,
    UserRow,
)
from coursepulse.models.writes import WriteTransaction
from coursepulse.resolvers import completions, enrollments, lookups
from tests.conftest import School

ROWS_AND_TABLES = [
    (UserRow, User),
    (CourseRow, Course),
    (LessonRow, Lesson),
    (EnrollmentRow, Enrollment),
    (CompletionRow, LessonCompletion),
    (CertificateRow, Certificate),
]


@pytest.mark.parametrize(("row", "table"), ROWS_AND_TABLES)
def test_rows_have_their_tables_columns_in_order(row: type, table: type) -> None:
    fields = [field.name for field in dataclasses.fields(row)]
    assert fields == [column.name for column in table.__table__.columns]  # type: ignore[attr-defined]


async def test_rows_carry_the_values_the_orm_gives(db: Database, school: School) -> None:
    async with db.write() as session:
        await enrollments.enroll(session, school.student.viewer, school.course_id)
        await completions.complete_lesson(
            session, school.student.viewer, school.course_id, school.lesson_ids[0]
        )
    async with db.read() as session:
        course = await session.get(Course, school.course_id)
        user = await session.get(User, school.student.id)
        lessons = (
            await session.scalars(select(Lesson).where(Lesson.course_id == school.course_id))
        ).all()
        enrollment = (
            await session.scalars(select(Enrollment).where(Enrollment.user_id == school.student.id))
        ).one()
    async with db.snapshot() as reads:
        courses = await lessons_and_more(reads, school, enrollment.id)  # type: ignore[arg-type]
    rows_course, rows_user, rows_lessons, rows_enrollment, rows_done = courses
    assert course is not None
    assert user is not None
    assert dataclasses.asdict(rows_course) == course.model_dump()
    assert dataclasses.asdict(rows_user) == user.model_dump()
    assert [dataclasses.asdict(row) for row in rows_lessons] == sorted(
        (lesson.model_dump() for lesson in lessons), key=lambda item: item["position"]
    )
    assert dataclasses.asdict(rows_enrollment) == enrollment.model_dump()
    assert rows_enrollment.enrolled_at.utcoffset() is not None  # aware UTC, as the ORM gives
    assert [row.lesson_id for row in rows_done] == [school.lesson_ids[0]]


async def lessons_and_more(
    reads: object, school: School, enrollment_id: int
) -> tuple[CourseRow, UserRow, list[LessonRow], EnrollmentRow, list[CompletionRow]]:
    courses = await lookups.courses_by_id(reads, [school.course_id, 999_999])  # type: ignore[arg-type]
    users = await lookups.users_by_id(reads, [school.student.id])  # type: ignore[arg-type]
    lessons = await lookups.lessons_by_course(reads, [school.course_id])  # type: ignore[arg-type]
    mine = await lookups.enrollments_of_user(reads, school.student.id, [school.course_id])  # type: ignore[arg-type]
    done = await lookups.completions_by_enrollment(reads, [enrollment_id])  # type: ignore[arg-type]
    assert set(courses) == {school.course_id}
    return (
        courses[school.course_id],
        users[school.student.id],
        lessons[school.course_id],
        mine[school.course_id],
        done[enrollment_id],
    )


async def test_an_empty_id_list_finds_nothing(db: Database, school: School) -> None:
    async with db.snapshot() as reads:
        assert await lookups.courses_by_id(reads, []) == {}
        assert await lookups.lessons_by_course(reads, []) == {}


async def test_a_read_transaction_sees_one_snapshot(db: Database, school: School) -> None:
    async with db.write() as session:
        await enrollments.enroll(session, school.student.viewer, school.course_id)
    async with db.snapshot() as reads:
        before = await enrollments.course_progress(reads, school.student.viewer, school.course_id)
        async with db.write() as session:
            await completions.complete_lesson(
                session, school.student.viewer, school.course_id, school.lesson_ids[0]
            )
        during = await enrollments.course_progress(reads, school.student.viewer, school.course_id)
        done = await lookups.completions_by_enrollment(reads, [before.enrollment.id])
    assert before.enrollment.completed_lessons == during.enrollment.completed_lessons == 0
    assert done == {}
    async with db.snapshot() as reads:
        after = await enrollments.course_progress(reads, school.student.viewer, school.course_id)
    assert after.enrollment.completed_lessons == 1


async def test_read_transactions_cannot_write(db: Database, school: School) -> None:
    async with db.snapshot() as reads:
        fetch = reads._fetch  # the driver call itself, past the SELECT-only API
        with pytest.raises(Exception, match=r"(?i)read.only|readonly|query_only"):
            await fetch("DELETE FROM lessons", ())
    async with db.read() as session:
        assert await session.scalar(select(Lesson.id).limit(1)) is not None


async def test_a_connection_the_server_dropped_is_replaced_unnoticed(
    db: Database, school: School
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: a SQLite file has no server to drop the connection")
    async with db.snapshot() as reads:
        backend = (await reads._fetch("SELECT pg_backend_pid()", ()))[0][0]
    async with db.engine.connect() as connection:
        await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    async with db.snapshot() as reads:
        found = await lookups.courses_by_id(reads, [school.course_id])
        backend_now = (await reads._fetch("SELECT pg_backend_pid()", ()))[0][0]
    assert set(found) == {school.course_id}
    assert backend_now != backend


async def test_a_write_connection_the_server_dropped_is_replaced_unnoticed(
    db: Database, school: School
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: a SQLite file has no server to drop the connection")
    viewer = school.student.viewer
    async with db.write() as session:
        await enrollments.enroll(session, viewer, school.course_id)

    async def backend(transaction: WriteTransaction) -> int:
        assert isinstance(transaction, writes._PostgresWrite)
        return transaction.connection.get_server_pid()

    before = await db.change(backend)
    async with db.engine.connect() as connection:
        await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before})
    change = await db.change(
        lambda transaction: completions.complete_lesson(
            transaction, viewer, school.course_id, school.lesson_ids[0]
        )
    )
    assert change.message == "Lesson marked as complete"
    assert await db.change(backend) != before


async def test_an_ended_read_transaction_refuses_further_statements(
    db: Database, school: School
) -> None:
    async with db.snapshot() as reads:
        assert await lookups.courses_by_id(reads, [school.course_id])
    with pytest.raises(RuntimeError, match="ended"):
        await lookups.courses_by_id(reads, [school.course_id])
