"""Races and hostile input found in review: each answers clearly and leaves the data whole."""

import asyncio
import base64
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from coursepulse.models import Course, Enrollment, Lesson, LessonCompletion
from coursepulse.models.db import Database
from coursepulse.resolvers import completions, enrollments, lookups
from coursepulse.resolvers.viewer import Viewer
from tests.conftest import School, StatementCounter, error_codes, graphql

DELETE_LESSON = "mutation($id: ID!) { deleteLesson(id: $id) { totalLessons } }"
CREATE_COURSE = (
    "mutation($t: String!, $d: String) { createCourse(input: {title: $t, description: $d}) { id } }"
)
ROSTER_SEARCH = "query($c: ID!, $s: String) { courseStudents(courseId: $c, search: $s) { total } }"
CERTIFICATE = "query($c: ID!) { certificate(courseId: $c) { certificateId } }"
UNENROLL = "mutation($c: ID!) { unenroll(courseId: $c) { message } }"


async def test_a_double_clicked_lesson_delete_removes_it_once(
    client: TestClient, school: School, db: Database
) -> None:
    lesson_id = str(school.lesson_ids[1])
    first, second = await asyncio.gather(
        graphql(client, DELETE_LESSON, {"id": lesson_id}, as_=school.instructor),
        graphql(client, DELETE_LESSON, {"id": lesson_id}, as_=school.instructor),
    )
    outcomes = sorted([error_codes(first), error_codes(second)])
    assert outcomes == [[], ["not_found"]]
    async with db.read() as tx:
        course = await tx.first(select(Course).where(Course.id == school.course_id))
        positions = list(
            await tx.scalars(
                select(Lesson.position)
                .where(Lesson.course_id == school.course_id)
                .order_by(Lesson.position)
            )
        )
    assert course is not None
    assert course.total_lessons == 3
    assert positions == [1, 2, 3]


async def test_nul_and_control_characters_are_invalid_input_on_every_database(
    client: TestClient, school: School, db: Database
) -> None:
    for variables in ({"t": "a\u0000b"}, {"t": "ok", "d": "bad\u0000description"}):
        body = await graphql(client, CREATE_COURSE, variables, as_=school.instructor)
        assert error_codes(body) == ["invalid_input"], body
    body = await graphql(
        client, ROSTER_SEARCH, {"c": str(school.course_id), "s": "a\u0000"}, as_=school.instructor
    )
    assert error_codes(body) == ["invalid_input"]
    async with db.read() as tx:
        assert await tx.scalar(select(func.count()).select_from(Course)) == 1


async def test_a_username_with_nul_is_refused_as_invalid_credentials(client: TestClient) -> None:
    token = base64.b64encode(b"john\x00doe:whatever-password").decode()
    response = await client.post(
        "/graphql", json={"query": "{ me { id } }"}, headers={"Authorization": f"Basic {token}"}
    )
    assert response.status == 401
    assert (await response.json())["errors"][0]["extensions"]["code"] == "invalid_credentials"


async def test_a_student_who_left_keeps_the_certificate_issued_to_them(
    client: TestClient, school: School, db: Database
) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
        for lesson_id in school.lesson_ids:
            await completions.complete_lesson(
                tx, school.student.viewer, school.course_id, lesson_id
            )
    course = {"c": str(school.course_id)}
    issued = await graphql(client, CERTIFICATE, course, as_=school.student)
    number = issued["data"]["certificate"]["certificateId"]
    await graphql(client, UNENROLL, course, as_=school.student)
    again = await graphql(client, CERTIFICATE, course, as_=school.student)
    assert again["data"]["certificate"]["certificateId"] == number
    stranger = await graphql(client, CERTIFICATE, course, as_=school.other_student)
    assert error_codes(stranger) == ["not_enrolled"]


LESSON_TITLES = "query($c: ID!) { course(id: $c) { lessons { title } } }"
RENAME = 'mutation($id: ID!) { renameLesson(id: $id, title: "Renamed") { title } }'


async def test_queries_over_one_websocket_see_changes_made_in_between(
    client: TestClient, school: School
) -> None:
    variables = {"c": str(school.course_id)}
    websocket = await client.ws_connect("/graphql", protocols=["graphql-transport-ws"])
    await websocket.send_json(
        {
            "type": "connection_init",
            "payload": {"Authorization": school.instructor.auth["Authorization"]},
        }
    )
    assert (await websocket.receive_json(timeout=5))["type"] == "connection_ack"

    async def titles(operation_id: str) -> list[str]:
        await websocket.send_json(
            {
                "id": operation_id,
                "type": "subscribe",
                "payload": {"query": LESSON_TITLES, "variables": variables},
            }
        )
        message = await websocket.receive_json(timeout=5)
        assert message["type"] == "next", message
        assert (await websocket.receive_json(timeout=5))["type"] == "complete"
        return [lesson["title"] for lesson in message["payload"]["data"]["course"]["lessons"]]

    assert (await titles("1"))[0] == "Lesson 1"
    body = await graphql(client, RENAME, {"id": str(school.lesson_ids[0])}, as_=school.instructor)
    assert "errors" not in body, body
    assert (await titles("2"))[0] == "Renamed"
    await websocket.close()


async def test_many_queries_at_once_over_one_websocket_each_get_their_answer(
    client: TestClient, db: Database, school: School
) -> None:
    # Given one websocket of the instructor's dashboard
    websocket = await client.ws_connect("/graphql", protocols=["graphql-transport-ws"])
    await websocket.send_json(
        {
            "type": "connection_init",
            "payload": {"Authorization": school.instructor.auth["Authorization"]},
        }
    )
    assert (await websocket.receive_json(timeout=5))["type"] == "connection_ack"

    # When it sends more queries at once than there are pooled read connections
    count = db.read_connections * 3
    for number in range(count):
        await websocket.send_json(
            {
                "id": str(number),
                "type": "subscribe",
                "payload": {
                    "query": LESSON_TITLES,
                    "variables": {"c": str(school.course_id)},
                },
            }
        )

    # Then every one of them is answered with its own complete read
    answers: dict[str, list[str]] = {}
    completed: set[str] = set()
    while len(completed) < count:
        message = await websocket.receive_json(timeout=10)
        if message["type"] == "next":
            assert "errors" not in message["payload"], message
            lessons = message["payload"]["data"]["course"]["lessons"]
            answers[message["id"]] = [lesson["title"] for lesson in lessons]
        else:
            assert message["type"] == "complete", message
            completed.add(message["id"])
    await websocket.close()
    assert len(answers) == count
    assert all(titles[0] == "Lesson 1" for titles in answers.values())


async def test_read_transactions_beyond_the_connections_wait_and_get_a_freed_one(
    db: Database, school: School
) -> None:
    async def begun() -> Any:
        scope = db.read()
        tx = await scope.__aenter__()
        await lookups.courses_by_id(tx, [school.course_id])
        return scope, tx

    held = [await begun() for _ in range(db.read_connections)]
    # Given every connection is in use, a further reader waits
    waiting = asyncio.ensure_future(begun())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    # When one transaction ends, the waiter gets its connection
    scope, _tx = held.pop()
    await scope.__aexit__(None, None, None)
    held.append(await asyncio.wait_for(waiting, 5))
    # And when a connection breaks instead, its slot still goes to the next waiter
    waiting = asyncio.ensure_future(begun())
    await asyncio.sleep(0.05)
    scope, tx = held.pop()
    connection = tx._connection
    if db.dialect == "postgresql":
        connection.terminate()
    else:
        connection.close()
    await scope.__aexit__(None, None, None)
    held.append(await asyncio.wait_for(waiting, 5))
    for scope, _tx in held:
        await scope.__aexit__(None, None, None)
    # Then the database still answers
    async with db.read() as tx:
        assert await lookups.courses_by_id(tx, [school.course_id])


REST_ENROLL = "/wp-json/fluent-community/v2/courses/{id}/enroll"


async def test_another_site_cannot_post_with_the_browsers_credentials(
    client: TestClient, school: School, db: Database
) -> None:
    path = REST_ENROLL.format(id=school.course_id)
    headers = school.student.auth
    for hostile in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = await client.post(path, headers={**headers, **hostile})
        assert response.status == 403
        assert (await response.json())["code"] == "forbidden"
    graphql_post = await client.post(
        "/graphql",
        json={"query": f"mutation {{ enroll(courseId: {school.course_id}) {{ message }} }}"},
        headers={**headers, "Origin": "http://evil.example"},
    )
    assert graphql_post.status == 403
    async with db.read() as tx:
        enrolled = await tx.scalar(
            select(func.count())
            .select_from(Enrollment)
            .where(Enrollment.user_id == school.student.id)
        )
    assert enrolled == 0
    own_origin = f"http://{client.host}:{client.port}"
    response = await client.post(path, headers={**headers, "Origin": own_origin})
    assert response.status == 200, await response.text()
    spa = await client.post(
        REST_ENROLL.format(id=school.course_id).replace("enroll", "unenroll"),
        headers={**headers, "Origin": "http://spa.example"},
    )
    assert spa.status == 200


async def test_a_burst_of_requests_with_new_credentials_checks_the_password_once(
    client: TestClient, school: School, count_statements: StatementCounter
) -> None:
    with count_statements:
        bodies = await asyncio.gather(
            *(graphql(client, "{ me { username } }", as_=school.other_student) for _ in range(8))
        )
    assert all(body["data"]["me"]["username"] == "jane_roe" for body in bodies)
    lookups = [sql for sql in count_statements.statements if "users.username =" in sql]
    assert len(lookups) == 1


async def test_two_processes_completing_and_studying_at_once_lose_nothing(
    db: Database, database_url: str, school: School
) -> None:
    # Given a second service process on the same database, and two enrolled students
    other = Database.from_url(database_url)
    students = [school.student, school.other_student]
    async with db.write() as tx:
        for account in students:
            await enrollments.enroll(tx, account.viewer, school.course_id)

    async def complete_every_lesson(database: Database, viewer: Viewer) -> None:
        for lesson_id in school.lesson_ids:
            async with database.write() as tx:
                await completions.complete_lesson(tx, viewer, school.course_id, lesson_id)

    async def study(database: Database, viewer: Viewer) -> None:
        for _ in range(4):
            async with database.write() as tx:
                await enrollments.record_activity(tx, viewer, school.course_id, 60)

    # When each process completes lessons for one student while studying time is added
    # for the other
    try:
        await asyncio.gather(
            complete_every_lesson(db, students[0].viewer),
            complete_every_lesson(other, students[1].viewer),
            study(other, students[0].viewer),
            study(db, students[1].viewer),
        )
    finally:
        await other.dispose()

    # Then every change is there, once
    async with db.read() as tx:
        rows = await tx.scalars(select(Enrollment).where(Enrollment.course_id == school.course_id))
        completed = await tx.scalar(select(func.count()).select_from(LessonCompletion))
    assert sorted((row.completed_lessons, row.status, row.time_spent_seconds) for row in rows) == [
        (4, "completed", 240),
        (4, "completed", 240),
    ]
    assert completed == 8
