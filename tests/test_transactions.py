"""The one data path (models/): transactions, rows read by name, one snapshot, recovery."""

import asyncio
import contextlib

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from coursepulse.models import (
    Certificate,
    Course,
    Enrollment,
    Lesson,
    LessonCompletion,
    ProgressEvent,
    User,
    postgres,
    utcnow,
)
from coursepulse.models.db import Database
from coursepulse.models.rows import (
    CertificateRow,
    CompletionRow,
    CourseRow,
    EnrollmentRow,
    LessonRow,
    ProgressEventRow,
    UserRow,
)
from coursepulse.resolvers import completions, enrollments, lookups
from tests.conftest import School

ROWS_AND_TABLES = [
    (UserRow, User),
    (CourseRow, Course),
    (LessonRow, Lesson),
    (EnrollmentRow, Enrollment),
    (CompletionRow, LessonCompletion),
    (ProgressEventRow, ProgressEvent),
    (CertificateRow, Certificate),
]
COURSES = Course.__table__
ENROLLMENTS = Enrollment.__table__
LESSONS = Lesson.__table__


@pytest.mark.parametrize(("row", "table"), ROWS_AND_TABLES)
def test_a_row_type_has_its_tables_columns(row: type, table: type) -> None:
    assert list(row._fields) == [column.key for column in table.__table__.columns]  # type: ignore[attr-defined]


async def test_rows_are_read_by_name_with_their_types(db: Database, school: School) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
        await completions.complete_lesson(
            tx, school.student.viewer, school.course_id, school.lesson_ids[0]
        )
    async with db.read() as tx:
        course = await tx.first(select(COURSES).where(COURSES.c.id == school.course_id))
        pair = await tx.first(
            select(COURSES, ENROLLMENTS)
            .join(ENROLLMENTS, ENROLLMENTS.c.course_id == COURSES.c.id)
            .where(COURSES.c.id == school.course_id)
        )
        title = await tx.scalar(select(COURSES.c.title).where(COURSES.c.id == school.course_id))
        labelled = await tx.first(
            select(COURSES.c.id.label("course"), ENROLLMENTS.c.id.label("enrollment")).join(
                ENROLLMENTS, ENROLLMENTS.c.course_id == COURSES.c.id
            )
        )
    assert isinstance(course, CourseRow)
    assert course.title == title == "Introduction to Web Development"
    assert course.total_lessons == 4
    assert course.created_at.utcoffset() is not None  # aware UTC on both databases
    joined_course, enrollment = pair
    assert joined_course == course
    assert isinstance(enrollment, EnrollmentRow)
    assert (enrollment.user_id, enrollment.completed_lessons) == (school.student.id, 1)
    assert enrollment.enrolled_at.utcoffset() is not None
    assert (labelled.course, labelled.enrollment) == (course.id, enrollment.id)


async def test_an_outer_join_that_finds_nothing_gives_none(db: Database, school: School) -> None:
    async with db.read() as tx:
        course, enrollment = await tx.first(
            select(COURSES, ENROLLMENTS)
            .outerjoin(ENROLLMENTS, ENROLLMENTS.c.course_id == COURSES.c.id)
            .where(COURSES.c.id == school.course_id)
        )
    assert course.id == school.course_id
    assert enrollment is None


async def test_columns_with_one_name_must_be_labelled(db: Database, school: School) -> None:
    async with db.read() as tx:
        with pytest.raises(ValueError, match="label"):
            await tx.all(
                select(COURSES.c.id, LESSONS.c.id).join(
                    LESSONS, LESSONS.c.course_id == COURSES.c.id
                )
            )


async def test_an_empty_id_list_finds_nothing(db: Database, school: School) -> None:
    async with db.read() as tx:
        assert await lookups.courses_by_id(tx, []) == {}
        assert await lookups.lessons_by_course(tx, []) == {}


async def test_a_read_transaction_sees_one_snapshot(db: Database, school: School) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
    async with db.read() as reads:
        before = await enrollments.course_progress(reads, school.student.viewer, school.course_id)
        async with db.write() as tx:
            await completions.complete_lesson(
                tx, school.student.viewer, school.course_id, school.lesson_ids[0]
            )
        during = await enrollments.course_progress(reads, school.student.viewer, school.course_id)
        done = await lookups.completions_by_enrollment(reads, [before.enrollment.id])
    assert before.enrollment.completed_lessons == during.enrollment.completed_lessons == 0
    assert done == {}
    async with db.read() as reads:
        after = await enrollments.course_progress(reads, school.student.viewer, school.course_id)
    assert after.enrollment.completed_lessons == 1


async def test_a_read_transaction_cannot_write(db: Database, school: School) -> None:
    with pytest.raises(Exception, match=r"(?i)read.only|readonly|query_only"):
        async with db.read() as tx:
            await tx.execute(text("DELETE FROM lessons"))
    async with db.read() as tx:
        assert await tx.scalar(select(LESSONS.c.id).limit(1)) is not None


async def test_a_failed_write_leaves_nothing_behind(db: Database, school: School) -> None:
    async def enroll_then_fail() -> None:
        async with db.write() as tx:
            await enrollments.enroll(tx, school.student.viewer, school.course_id)
            raise RuntimeError("refused halfway")

    with pytest.raises(RuntimeError, match="refused"):
        await enroll_then_fail()
    async with db.read() as tx:
        assert await tx.scalar(select(ENROLLMENTS.c.id)) is None
        assert await tx.scalar(select(ProgressEvent.__table__.c.id)) is None


async def test_a_broken_constraint_is_an_integrity_error(db: Database, school: School) -> None:
    now = utcnow()
    with pytest.raises(IntegrityError):
        async with db.write() as tx:
            await tx.execute(
                insert(COURSES).values(
                    slug="introduction-to-web-development",  # taken by the school's course
                    title="Again",
                    status="draft",
                    total_lessons=0,
                    created_at=now,
                    updated_at=now,
                )
            )


async def test_a_connection_the_server_dropped_is_replaced_unnoticed(
    db: Database, school: School
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: a SQLite file has no server to drop the connection")
    pid = text("SELECT pg_backend_pid() AS pid")
    administrator = Database(db.url)  # another process's connection ends ours
    try:
        for writing in (False, True):
            door = db.write if writing else db.read
            async with door() as tx:
                backend = await tx.scalar(pid)
            async with administrator.write() as tx:
                await tx.execute(text(f"SELECT pg_terminate_backend({int(backend)})"))
            async with door() as tx:
                found = await lookups.courses_by_id(tx, [school.course_id])
                backend_now = await tx.scalar(pid)
            assert set(found) == {school.course_id}
            assert backend_now != backend
    finally:
        await administrator.dispose()


async def test_a_connection_given_back_serves_the_next_transaction_until_it_idles_too_long(
    db: Database, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite keeps its own connections")
    pid = text("SELECT pg_backend_pid() AS pid")
    driver = db._driver
    assert isinstance(driver, postgres.PostgresDriver)
    # one connection given back and taken again by reads and writes alike
    backends = set()
    for door in (db.read, db.write, db.read):
        async with door() as tx:
            backends.add(await tx.scalar(pid))
    assert len(backends) == 1
    pool = await driver.pool()
    assert (pool.get_size(), pool.get_idle_size()) == (1, 0)  # kept by the service

    # one kept too long goes back to asyncpg's pool (which closes it after its idle time)
    monkeypatch.setattr(postgres, "IDLE_SECONDS", 0.0)
    async with db.read() as tx:
        await tx.scalar(pid)
    assert (pool.get_size(), pool.get_idle_size()) == (1, 1)

    # every so often one goes back to the pool, whose own checks then apply
    monkeypatch.setattr(postgres, "IDLE_SECONDS", 60.0)
    monkeypatch.setattr(postgres, "POOL_RETURN_EVERY", 3)
    idle_in_pool = []
    for _ in range(3):
        async with db.read() as tx:
            await tx.scalar(pid)
        idle_in_pool.append(pool.get_idle_size())
    assert sorted(idle_in_pool) == [0, 0, 1]
    monkeypatch.setattr(postgres, "POOL_RETURN_EVERY", 1000)

    # closing lets go of the kept connections: it does not wait for them
    monkeypatch.setattr(postgres, "IDLE_SECONDS", 60.0)
    async with db.read() as tx:
        await tx.scalar(pid)
    assert pool.get_idle_size() == 0
    await asyncio.wait_for(db.dispose(), 10)
    assert pool.is_closing()


async def test_an_ended_transaction_refuses_further_statements(
    db: Database, school: School
) -> None:
    async with db.read() as tx:
        assert await lookups.courses_by_id(tx, [school.course_id])
    with pytest.raises(RuntimeError, match="ended"):
        await lookups.courses_by_id(tx, [school.course_id])


async def test_an_operation_cancelled_at_any_point_leaves_the_pool_clean(
    db: Database, school: School
) -> None:
    """A websocket closing cancels its operations wherever they are: in BEGIN, a statement,
    COMMIT. No connection may go back to the pool inside a transaction (the driver then
    warns and the next user would inherit it), and the next transactions work."""
    loop = asyncio.get_running_loop()
    reports: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reports.append(str(context["message"])))

    async def operation(writing: bool) -> None:
        async with db.write() if writing else db.read() as tx:
            await lookups.courses_by_id(tx, [school.course_id])
            await lookups.lessons_by_course(tx, [school.course_id])

    try:
        for writing in (False, True):
            for steps in range(40):  # cancelled after 0, 1, 2 ... turns of the event loop
                task = asyncio.create_task(operation(writing))
                for _ in range(steps):
                    await asyncio.sleep(0)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        async with db.read() as tx:
            assert set(await lookups.courses_by_id(tx, [school.course_id])) == {school.course_id}
    finally:
        loop.set_exception_handler(previous)
    assert reports == []
