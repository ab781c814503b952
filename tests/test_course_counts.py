"""The stored count of a course's students (`course_counts`), which a roster's total reads:
it follows every enrolment change, under concurrency too, and the migration fills it."""

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient
from sqlalchemy import text

from coursepulse.models.db import Database
from coursepulse.models.migrate import migrate, schema_engine
from tests.conftest import Account, School, error_codes, graphql, make_user

ENROLL = "mutation($c: ID!) { enroll(courseId: $c) { message } }"
UNENROLL = "mutation($c: ID!) { unenroll(courseId: $c) { message } }"
COMPLETE = (
    "mutation($c: ID!, $l: ID!) { completeLesson(courseId: $c, lessonId: $l) { __typename } }"
)
TOTAL = "query($c: ID!) { courseStudents(courseId: $c, perPage: 1) { total totalPages } }"


async def stored_and_counted(db: Database, course_id: int) -> tuple[int, int]:
    """The stored count of the course's students, and a count of its enrolled rows."""
    async with db.read() as tx:
        stored = await tx.scalar(
            text("SELECT enrolled_students FROM course_counts WHERE course_id = :c"), c=course_id
        )
        counted = await tx.scalar(
            text(
                "SELECT COUNT(*) FROM enrollments WHERE course_id = :c"
                " AND status IN ('active', 'completed')"
            ),
            c=course_id,
        )
    return int(stored or 0), int(counted or 0)


async def roster_total(client: TestClient, school: School) -> int:
    body = await graphql(client, TOTAL, {"c": str(school.course_id)}, as_=school.instructor)
    assert "errors" not in body, body
    page = body["data"]["courseStudents"]
    assert page["totalPages"] == page["total"]  # one student a page
    return int(page["total"])


async def test_the_count_follows_enrolling_leaving_returning_and_finishing(
    client: TestClient, db: Database, school: School
) -> None:
    course = {"c": str(school.course_id)}
    assert await roster_total(client, school) == 0
    students = [school.student, school.other_student]
    students += [await make_user(db, f"learner{number}") for number in range(3)]
    for student in students:
        assert "errors" not in await graphql(client, ENROLL, course, as_=student)
    assert await roster_total(client, school) == 5
    # A finished student is still on the roster; one who left is not, until they return.
    for lesson_id in school.lesson_ids:
        await graphql(client, COMPLETE, {**course, "l": str(lesson_id)}, as_=students[0])
    await graphql(client, UNENROLL, course, as_=students[1])
    await graphql(client, UNENROLL, course, as_=students[2])
    assert await roster_total(client, school) == 3
    assert await stored_and_counted(db, school.course_id) == (3, 3)
    await graphql(client, ENROLL, course, as_=students[1])
    # Refused changes count nothing: enrolling twice, leaving twice.
    assert error_codes(await graphql(client, ENROLL, course, as_=students[1])) == [
        "already_enrolled"
    ]
    assert error_codes(await graphql(client, UNENROLL, course, as_=students[2])) == ["not_enrolled"]
    assert await roster_total(client, school) == 4
    assert await stored_and_counted(db, school.course_id) == (4, 4)


async def test_concurrent_enrolments_and_double_clicks_are_counted_once_each(
    client: TestClient, db: Database, school: School
) -> None:
    course = {"c": str(school.course_id)}
    learners: list[Account] = [await make_user(db, f"crowd{number}") for number in range(12)]
    # Every learner clicks "enroll" twice at once, all learners together.
    answers = await asyncio.gather(
        *(graphql(client, ENROLL, course, as_=learner) for learner in learners for _ in (1, 2))
    )
    refused = [answer for answer in answers if "errors" in answer]
    assert len(refused) == len(learners)
    assert all(error_codes(answer) == ["already_enrolled"] for answer in refused)
    assert await stored_and_counted(db, school.course_id) == (12, 12)
    # Half of them leave, each with a double click, while the others enrol elsewhere.
    answers = await asyncio.gather(
        *(
            graphql(client, UNENROLL, course, as_=learner)
            for learner in learners[:6]
            for _ in (1, 2)
        )
    )
    assert sum("errors" in answer for answer in answers) == 6
    assert await stored_and_counted(db, school.course_id) == (6, 6)
    assert await roster_total(client, school) == 6


async def test_the_migration_counts_the_students_already_enrolled(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await migrate(url, "0010")
    engine = schema_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (id, username, display_name, role, password_hash,"
                    " created_at) VALUES (1, 'a', 'A', 'student', 'x', '2026-01-01 00:00:00'),"
                    " (2, 'b', 'B', 'student', 'x', '2026-01-01 00:00:00'),"
                    " (3, 'c', 'C', 'student', 'x', '2026-01-01 00:00:00')"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO courses (id, slug, title, status, total_lessons, created_at,"
                    " updated_at, sequential) VALUES"
                    " (1, 'one', 'One', 'published', 0, '2026-01-01 00:00:00',"
                    " '2026-01-01 00:00:00', 0),"
                    " (2, 'two', 'Two', 'published', 0, '2026-01-01 00:00:00',"
                    " '2026-01-01 00:00:00', 0)"
                )
            )
            for user_id, status in ((1, "active"), (2, "completed"), (3, "unenrolled")):
                await connection.execute(
                    text(
                        "INSERT INTO enrollments (user_id, course_id, status, enrolled_at,"
                        " time_spent_seconds, completed_lessons) VALUES"
                        " (:u, 1, :s, '2026-01-01 00:00:00', 0, 0)"
                    ),
                    {"u": user_id, "s": status},
                )
        await migrate(url)
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text("SELECT course_id, enrolled_students FROM course_counts ORDER BY 1")
                )
            ).all()
        assert [tuple(row) for row in rows] == [(1, 2)]  # course 2 has no students, no row
    finally:
        await engine.dispose()
