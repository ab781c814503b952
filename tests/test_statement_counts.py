"""SQL statements per operation stay few and do not grow with the data (no query per row)."""

from pathlib import Path

from aiohttp.test_utils import TestClient

from coursepulse.models.db import Database
from coursepulse.resolvers import completions, enrollments
from tests.conftest import Account, School, StatementCounter, graphql, make_course, make_user

PROGRESS_BAR = """query($c: ID!) { courseProgress(courseId: $c) {
  progressPercentage completedLessons totalLessons timeSpent lastAccessed } }"""
#: The player's progress bar with its "up next" (the benchmark's progress read).
PROGRESS_NEXT = """query($c: ID!, $u: ID) { courseProgress(courseId: $c, userId: $u) {
  courseId userId status progressPercentage completedLessons totalLessons timeSpent
  lastAccessed startedAt completedAt nextLesson { id title order } } }"""
PROGRESS_FULL = """query($c: ID!, $u: ID) { courseProgress(courseId: $c, userId: $u) {
  progressPercentage timeSpent certificateUrl nextLesson { id title order }
  lessons { lesson { id } completed completedAt } course { title } student { displayName } } }"""
MY_COURSES = """{ myCourses { courseId progressPercentage nextLesson { id }
  lessons { completed } course { title instructors { displayName } } } }"""
OPERATIONS = Path(__file__).resolve().parent.parent / "graphql" / "operations"
#: What the player sends when a video ends: the bar, the status and the next lesson.
COMPLETE = (OPERATIONS / "CompleteLesson.graphql").read_text()
INCOMPLETE = (OPERATIONS / "IncompleteLesson.graphql").read_text()
ROSTER = """query($c: ID!, $n: Int!) {
  courseStudents(courseId: $c, perPage: $n, orderBy: PROGRESS) {
    total nodes { username progressPercentage progress { nextLesson { id } } } } }"""


async def count(
    client: TestClient,
    counter: StatementCounter,
    query: str,
    variables: dict[str, object],
    account: Account,
) -> int:
    """Statements one request issues, after a warm-up request has cached the credentials."""
    await graphql(client, query, variables, as_=account)
    counter.statements.clear()
    counter.transactions = 0
    with counter:
        body = await graphql(client, query, variables, as_=account)
    assert "errors" not in body, body
    return counter.count


async def first_lesson_done(db: Database, school: School) -> None:
    """The student, enrolled, has completed the course's first lesson."""
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
        await completions.complete_lesson(
            tx, school.student.viewer, school.course_id, school.lesson_ids[0]
        )


async def test_a_progress_bar_read_is_one_statement(
    client: TestClient, school: School, count_statements: StatementCounter, db: Database
) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
    variables = {"c": str(school.course_id)}
    assert await count(client, count_statements, PROGRESS_BAR, variables, school.student) == 1


async def test_a_progress_read_with_the_next_lesson_is_one_statement(
    client: TestClient, school: School, count_statements: StatementCounter, db: Database
) -> None:
    await first_lesson_done(db, school)
    for variables, account in (
        ({"c": str(school.course_id), "u": None}, school.student),
        ({"c": str(school.course_id), "u": str(school.student.id)}, school.admin),
    ):
        assert await count(client, count_statements, PROGRESS_NEXT, variables, account) == 1
        body = await graphql(client, PROGRESS_NEXT, variables, as_=account)
        assert body["data"]["courseProgress"]["nextLesson"]["id"] == str(school.lesson_ids[1])


async def test_a_full_progress_read_is_a_fixed_handful(
    client: TestClient, school: School, count_statements: StatementCounter, db: Database
) -> None:
    await first_lesson_done(db, school)
    own = {"c": str(school.course_id), "u": None}
    # course+enrolment, lessons, completions, certificate, student
    assert await count(client, count_statements, PROGRESS_FULL, own, school.student) == 5
    as_admin = {"c": str(school.course_id), "u": str(school.student.id)}
    assert await count(client, count_statements, PROGRESS_FULL, as_admin, school.admin) == 5


async def test_my_courses_cost_does_not_grow_with_the_number_of_courses(
    client: TestClient, school: School, count_statements: StatementCounter, db: Database
) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
    one = await count(client, count_statements, MY_COURSES, {}, school.student)
    for number in range(3):
        course_id, _ = await make_course(db, school.instructor, title=f"Course {number}")
        async with db.write() as tx:
            await enrollments.enroll(tx, school.student.viewer, course_id)
    four = await count(client, count_statements, MY_COURSES, {}, school.student)
    assert one == four


async def test_a_roster_page_of_100_costs_what_a_page_of_20_does(
    client: TestClient, school: School, count_statements: StatementCounter, db: Database
) -> None:
    for number in range(110):
        student = await make_user(db, f"learner{number:03d}")
        async with db.write() as tx:
            await enrollments.enroll(tx, student.viewer, school.course_id)
    small = await count(
        client, count_statements, ROSTER, {"c": str(school.course_id), "n": 20}, school.instructor
    )
    large = await count(
        client, count_statements, ROSTER, {"c": str(school.course_id), "n": 100}, school.instructor
    )
    assert small == large


async def test_completing_and_undoing_a_lesson_is_one_transaction_of_few_statements(
    client: TestClient, school: School, count_statements: StatementCounter, db: Database
) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
    variables = {"courseId": str(school.course_id), "lessonId": str(school.lesson_ids[0])}
    # course with the locked enrolment, lesson with its completion and the next of the
    # others, the change, the counters, the event (with its course lock on PostgreSQL);
    # NOTIFY on PostgreSQL.
    expected = 6 if db.dialect == "postgresql" else 5
    await graphql(client, "{ me { id } }", as_=school.student)  # caches the credentials
    for document in (COMPLETE, INCOMPLETE, COMPLETE):
        count_statements.statements.clear()
        count_statements.transactions = 0
        with count_statements:
            body = await graphql(client, document, variables, as_=school.student)
        assert "errors" not in body, body
        assert count_statements.transactions == 1, count_statements.statements
        assert count_statements.count == expected, count_statements.statements
