"""The HTTP front door: authentication, error shape, bad input, masking, CORS, probes."""

import base64
import hashlib
import logging
import re
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy import text as sa_text

from coursepulse.app import create_app
from coursepulse.models import CourseStatus, Enrollment, Lesson
from coursepulse.models.db import Database
from coursepulse.resolvers import users
from coursepulse.schema.shared_events import SharedEventExecutor
from coursepulse.settings import Settings
from tests.conftest import (
    Account,
    School,
    StatementCounter,
    error_codes,
    graphql,
    make_course,
)

# The contract's error codes and the HTTP status each one stands for.
CONTRACT_STATUS = {
    "unauthenticated": 401,
    "invalid_credentials": 401,
    "forbidden": 403,
    "not_found": 404,
    "invalid_input": 400,
    "not_enrolled": 403,
    "already_enrolled": 400,
    "course_not_complete": 400,
    "rate_limited": 429,
    "internal_error": 500,
}

ME = "{ me { id username role } }"
ME_ID = "{ me { id } }"
COURSES = "{ courses { id title status } }"
COURSE = "query Course($id: ID!) { course(id: $id) { id title totalLessons } }"
MY_COURSES = "{ myCourses { courseId } }"
ENROLL = "mutation Enroll($c: ID!) { enroll(courseId: $c) { message } }"
COMPLETE_LESSON = """
mutation Complete($c: ID!, $l: ID!) {
  completeLesson(courseId: $c, lessonId: $l) { message progressPercentage }
}"""
RECORD_ACTIVITY = """
mutation Activity($c: ID!, $s: Int!) { recordActivity(courseId: $c, seconds: $s) { timeSpent } }"""
CREATE_COURSE = """
mutation Create($title: String!) { createCourse(input: {title: $title}) { id title } }"""
ADD_LESSON = """
mutation Add($c: ID!, $title: String!) { addLesson(courseId: $c, input: {title: $title}) { id } }"""
RENAME_LESSON = """
mutation Rename($id: ID!, $title: String!) { renameLesson(id: $id, title: $title) { title } }"""
COURSE_STUDENTS = """
query Roster($c: ID!, $perPage: Int!) {
  courseStudents(courseId: $c, perPage: $perPage) { total }
}"""

# Statements that turn credentials into a user: never needed again while cached.
CREDENTIAL_LOOKUP = re.compile(r"api_tokens|users\.username\s*=", re.IGNORECASE)


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def post(
    client: TestClient, query: str, variables: dict[str, Any] | None = None, **kw: Any
) -> ClientResponse:
    return await client.post("/graphql", json={"query": query, "variables": variables or {}}, **kw)


async def new_token(db: Database, account: Account) -> str:
    async with db.write() as tx:
        return await users.create_token(tx, account.username, "tests")


async def enrollment_count(db: Database) -> int:
    async with db.read() as tx:
        return int(await tx.scalar(select(func.count()).select_from(Enrollment)) or 0)


async def lesson_titles(db: Database, course_id: int) -> list[str]:
    async with db.read() as tx:
        rows = await tx.scalars(
            select(Lesson.title).where(Lesson.course_id == course_id).order_by(Lesson.position)
        )
        return list(rows)


def assert_contract_errors(body: dict[str, Any]) -> None:
    """Every error names a contract code and the status that code stands for."""
    assert body.get("errors"), body
    for error in body["errors"]:
        code = error["extensions"]["code"]
        assert code in CONTRACT_STATUS, error
        assert error["extensions"]["status"] == CONTRACT_STATUS[code], error
        assert error["message"], error


# ---- authentication ---------------------------------------------------------------------


async def test_http_basic_authenticates_the_user(client: TestClient, school: School) -> None:
    body = await graphql(client, ME, as_=school.student)

    assert body["data"]["me"] == {
        "id": str(school.student.id),
        "username": "john_doe",
        "role": "STUDENT",
    }


async def test_bearer_token_authenticates_its_owner(
    client: TestClient, db: Database, school: School
) -> None:
    token = await new_token(db, school.instructor)

    response = await post(client, ME, headers={"Authorization": f"Bearer {token}"})

    assert response.status == 200
    assert (await response.json())["data"]["me"]["username"] == "instructor"


async def test_anonymous_reads_the_published_catalogue(
    client: TestClient, db: Database, school: School
) -> None:
    draft_id, _ = await make_course(
        db, school.instructor, title="Unfinished Draft", status=CourseStatus.DRAFT
    )

    me = await graphql(client, ME)
    catalogue = await graphql(client, COURSES)
    course = await graphql(client, COURSE, {"id": str(school.course_id)})

    assert me == {"data": {"me": None}}
    assert [c["id"] for c in catalogue["data"]["courses"]] == [str(school.course_id)]
    assert str(draft_id) not in {c["id"] for c in catalogue["data"]["courses"]}
    assert course["data"]["course"] == {
        "id": str(school.course_id),
        "title": "Introduction to Web Development",
        "totalLessons": 4,
    }


async def test_operations_needing_a_user_answer_unauthenticated(
    client: TestClient, db: Database, school: School
) -> None:
    course = {"c": str(school.course_id)}
    for query, variables in [
        (MY_COURSES, {}),
        ("query($c: ID!) { courseProgress(courseId: $c) { status } }", course),
        (ENROLL, course),
        (CREATE_COURSE, {"title": "Anonymous course"}),
    ]:
        body = await graphql(client, query, variables)

        assert error_codes(body) == ["unauthenticated"], query
        assert body["errors"][0]["extensions"]["status"] == 401
    assert await enrollment_count(db) == 0
    assert len((await graphql(client, COURSES, as_=school.admin))["data"]["courses"]) == 1


async def test_a_pages_script_gets_the_401_without_the_browsers_login_dialog(
    client: TestClient, school: School
) -> None:
    headers = {**basic("john_doe", "not the password"), "X-Requested-With": "XMLHttpRequest"}
    response = await post(client, ME, headers=headers)

    assert response.status == 401
    assert "WWW-Authenticate" not in response.headers
    assert error_codes(await response.json()) == ["invalid_credentials"]


async def test_wrong_password_and_unknown_user_get_the_same_401(
    client: TestClient, school: School
) -> None:
    wrong_password = await post(client, ME, headers=basic("john_doe", "not the password"))
    unknown_user = await post(client, ME, headers=basic("nobody_here", "not the password"))

    for response in (wrong_password, unknown_user):
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    first, second = await wrong_password.json(), await unknown_user.json()
    assert first == second
    assert error_codes(first) == ["invalid_credentials"]
    assert first["errors"][0]["extensions"]["status"] == 401


async def test_an_unknown_bearer_token_is_rejected(client: TestClient, school: School) -> None:
    response = await post(client, ME, headers={"Authorization": "Bearer cp_not-a-real-token"})

    assert response.status == 401
    assert error_codes(await response.json()) == ["invalid_credentials"]


MALFORMED_AUTHORIZATION = [
    "Basic !!!not-base64!!!",
    "Basic " + base64.b64encode(b"no-colon-here").decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    "Basic",
    "Bearer",
    "Bearer    ",
    "Digest username=john_doe",
    "Token abc",
    "john_doe:correct horse battery",
]


async def test_malformed_credentials_get_401_never_500(client: TestClient, school: School) -> None:
    for authorization in MALFORMED_AUTHORIZATION:
        response = await post(client, ME, headers={"Authorization": authorization})

        assert response.status == 401, (authorization, await response.text())
        body = await response.json()
        assert error_codes(body) == ["invalid_credentials"], authorization
        assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
async def test_a_verified_credential_is_not_looked_up_again(
    client: TestClient,
    db: Database,
    school: School,
    count_statements: StatementCounter,
    scheme: str,
) -> None:
    # Given a credential the service has not seen yet
    if scheme == "basic":
        headers = school.student.auth
    else:
        headers = {"Authorization": f"Bearer {await new_token(db, school.student)}"}

    # When the same header is sent twice
    with count_statements:
        first = await post(client, ME_ID, headers=headers)
        assert first.status == 200
        assert (await first.json())["data"]["me"] == {"id": str(school.student.id)}
    first_statements = list(count_statements.statements)
    count_statements.statements.clear()
    with count_statements:
        second = await post(client, ME_ID, headers=headers)
        assert (await second.json())["data"]["me"] == {"id": str(school.student.id)}
    second_statements = list(count_statements.statements)

    # Then the first request looked the credential up and the second did not
    assert any(CREDENTIAL_LOOKUP.search(s) for s in first_statements), first_statements
    assert len(second_statements) < len(first_statements)
    assert not [s for s in second_statements if CREDENTIAL_LOOKUP.search(s)]


async def test_a_failed_credential_is_not_cached(
    client: TestClient, school: School, count_statements: StatementCounter
) -> None:
    headers = basic("john_doe", "not the password")
    assert (await post(client, ME_ID, headers=headers)).status == 401

    with count_statements:
        assert (await post(client, ME_ID, headers=headers)).status == 401

    assert any(CREDENTIAL_LOOKUP.search(s) for s in count_statements.statements)


# ---- error shape ------------------------------------------------------------------------


async def test_every_error_carries_a_contract_code_and_status(
    client: TestClient, school: School
) -> None:
    course = {"c": str(school.course_id)}
    lesson = {"c": str(school.course_id), "l": str(school.lesson_ids[0])}
    failures = [
        await graphql(client, MY_COURSES),  # unauthenticated
        await graphql(client, COURSE, {"id": "abc"}),  # invalid_input
        await graphql(client, ENROLL, {"c": "999999"}, as_=school.student),  # not_found
        await graphql(client, COMPLETE_LESSON, lesson, as_=school.student),  # not_enrolled
        await graphql(client, COURSE_STUDENTS, {**course, "perPage": 5}, as_=school.student),
        await graphql(client, "{ nope }"),  # validation
    ]
    await graphql(client, ENROLL, course, as_=school.student)
    failures.append(await graphql(client, ENROLL, course, as_=school.student))

    for body in failures:
        assert_contract_errors(body)
    assert [error_codes(body)[0] for body in failures] == [
        "unauthenticated",
        "invalid_input",
        "not_found",
        "not_enrolled",
        "forbidden",
        "invalid_input",
        "already_enrolled",
    ]


INVALID_DOCUMENTS = [
    "{ me { id ",
    "{ me { nope } }",
    "{ unknownField }",
    "query { courses }",
    "{ }",
    "mutation { }",
    "{ me { } }",
    "{ ...Unknown }",
    "{ me { ...F } } fragment F on User { ...G }",
    "query A { me { id } } query A { me { id } }",
    "subscription { nothing }",
]


async def test_syntax_and_validation_errors_are_invalid_input(client: TestClient) -> None:
    for document in INVALID_DOCUMENTS:
        response = await post(client, document)

        assert response.status < 500, document
        body = await response.json()
        assert error_codes(body), document
        assert set(error_codes(body)) == {"invalid_input"}, (document, body)
        assert_contract_errors(body)


WRONGLY_TYPED_VARIABLES = [
    (RECORD_ACTIVITY, {"c": "1", "s": "sixty"}),
    (RECORD_ACTIVITY, {"c": "1", "s": 1.5}),
    (RECORD_ACTIVITY, {"c": "1", "s": True}),
    (RECORD_ACTIVITY, {"c": "1"}),
    (COURSE, {"id": {"nested": 1}}),
    (COURSE, {"id": None}),
    (COURSE, {"id": [1]}),
    (COURSE_STUDENTS, {"c": "1", "perPage": [1]}),
]


async def test_variables_of_the_wrong_type_are_invalid_input(
    client: TestClient, db: Database, school: School
) -> None:
    for query, variables in WRONGLY_TYPED_VARIABLES:
        response = await post(client, query, variables, headers=school.student.auth)

        assert response.status < 500, variables
        body = await response.json()
        assert error_codes(body) == ["invalid_input"], (variables, body)
        assert_contract_errors(body)


# ---- bad input --------------------------------------------------------------------------


NOT_NUMBERS = ["abc", "1.5", "-1", "", " ", "1e3", "0x10", "+1", "1 2", "\u0661\u0662"]


async def test_ids_that_are_not_numbers_are_invalid_input(
    client: TestClient, db: Database, school: School
) -> None:
    for bad_id in NOT_NUMBERS:
        read = await graphql(client, COURSE, {"id": bad_id}, as_=school.student)
        write = await graphql(client, ENROLL, {"c": bad_id}, as_=school.student)
        lesson = await graphql(
            client, COMPLETE_LESSON, {"c": str(school.course_id), "l": bad_id}, as_=school.student
        )

        for body in (read, write, lesson):
            assert error_codes(body) == ["invalid_input"], (bad_id, body)
            assert_contract_errors(body)
    assert await enrollment_count(db) == 0


NO_ROW_HAS = [
    "99999999999999999999999",
    "9223372036854775807",
    "9223372036854775808",
    "2147483648",
    "0",
    "9" * 5000,
]


async def test_ids_no_row_can_have_are_not_found(
    client: TestClient, db: Database, school: School
) -> None:
    # Given a student enrolled in the course
    await graphql(client, ENROLL, {"c": str(school.course_id)}, as_=school.student)

    for huge_id in NO_ROW_HAS:
        # When they name objects by ids no row can have
        read = await graphql(client, COURSE, {"id": huge_id}, as_=school.student)
        write = await graphql(client, ENROLL, {"c": huge_id}, as_=school.student)
        lesson = await graphql(
            client, COMPLETE_LESSON, {"c": str(school.course_id), "l": huge_id}, as_=school.student
        )
        rename = await graphql(
            client, RENAME_LESSON, {"id": huge_id, "title": "Renamed"}, as_=school.instructor
        )

        # Then nothing is found, and nothing crashes
        # (`course(id:)` is nullable: an absent course is null, or a not_found error)
        assert (read.get("data") or {}).get("course") is None, huge_id[:30]
        assert set(error_codes(read)) <= {"not_found"}, (huge_id[:30], read)
        for body in (write, lesson, rename):
            assert error_codes(body) == ["not_found"], (huge_id[:30], body)
            assert_contract_errors(body)
    assert await enrollment_count(db) == 1
    assert await lesson_titles(db, school.course_id) == [f"Lesson {n}" for n in range(1, 5)]


async def test_int_arguments_beyond_32_bits_are_invalid_input(
    client: TestClient, school: School
) -> None:
    course = {"c": str(school.course_id)}
    await graphql(client, ENROLL, course, as_=school.student)

    for seconds in (2**31, -(2**31) - 1, 99999999999999, 10**400):
        body = await graphql(client, RECORD_ACTIVITY, {**course, "s": seconds}, as_=school.student)
        inline = await graphql(
            client,
            f'mutation {{ recordActivity(courseId: "{school.course_id}", seconds: {seconds}) '
            "{ timeSpent } }",
            as_=school.student,
        )
        roster = await graphql(
            client, COURSE_STUDENTS, {**course, "perPage": seconds}, as_=school.instructor
        )

        for result in (body, inline, roster):
            assert error_codes(result) == ["invalid_input"], (seconds, result)
    progress = await graphql(
        client,
        "query($c: ID!) { courseProgress(courseId: $c) { timeSpentSeconds } }",
        course,
        as_=school.student,
    )
    assert progress["data"]["courseProgress"]["timeSpentSeconds"] == 0


async def test_empty_titles_are_refused_and_nothing_is_written(
    client: TestClient, db: Database, school: School
) -> None:
    before = await graphql(client, COURSES, as_=school.instructor)

    for title in ("", "   ", "\n\t"):
        created = await graphql(client, CREATE_COURSE, {"title": title}, as_=school.instructor)
        added = await graphql(
            client, ADD_LESSON, {"c": str(school.course_id), "title": title}, as_=school.instructor
        )
        renamed = await graphql(
            client,
            RENAME_LESSON,
            {"id": str(school.lesson_ids[0]), "title": title},
            as_=school.instructor,
        )

        for body in (created, added, renamed):
            assert error_codes(body) == ["invalid_input"], (title, body)
            assert_contract_errors(body)
    assert await graphql(client, COURSES, as_=school.instructor) == before
    assert await lesson_titles(db, school.course_id) == [f"Lesson {n}" for n in range(1, 5)]


MALFORMED_JSON = [b'{"query": "{ me { id } }", ', b"", b"{", b"\xff\xfe", b"{'query': 1}", b"nan"]


async def test_malformed_json_body_is_a_400_with_a_code(client: TestClient) -> None:
    for data in MALFORMED_JSON:
        response = await client.post(
            "/graphql", data=data, headers={"Content-Type": "application/json"}
        )

        assert response.status == 400, (data, await response.text())
        assert response.content_type == "application/json"
        body = await response.json()
        assert error_codes(body) == ["invalid_input"], data
        assert body["errors"][0]["extensions"]["status"] == 400


WRONG_CONTENT_TYPES = [
    (b"{ me { id } }", "text/plain"),
    (b'{"query": "{ me { id } }"}', "text/plain"),
    (b"<query/>", "application/xml"),
    (b"query=%7B+me+%7B+id+%7D+%7D", "application/x-www-form-urlencoded"),
    (b'{"query": "{ me { id } }"}', "multipart/form-data; boundary=x"),
]


async def test_a_wrong_content_type_is_a_4xx_with_a_code(client: TestClient) -> None:
    for data, content_type in WRONG_CONTENT_TYPES:
        response = await client.post("/graphql", data=data, headers={"Content-Type": content_type})

        assert 400 <= response.status < 500, (content_type, await response.text())
        assert response.content_type == "application/json"
        body = await response.json()
        assert error_codes(body), content_type
        assert body["errors"][0]["extensions"]["status"] == response.status


MISSING_QUERY = [
    {},
    {"variables": {}},
    {"query": None},
    {"query": ""},
    {"query": 42},
    {"query": ["{ me { id } }"]},
    {"query": ME_ID, "variables": "not an object"},
    {"query": ME_ID, "variables": [1]},
    [1, 2],
    [],
    "{ me { id } }",
    42,
    None,
    True,
]


async def test_a_missing_or_malformed_query_is_a_400_with_a_code(client: TestClient) -> None:
    for payload in MISSING_QUERY:
        response = await client.post("/graphql", json=payload)

        assert response.status == 400, (payload, await response.text())
        body = await response.json()
        assert error_codes(body) == ["invalid_input"], payload


async def test_a_mutation_over_get_is_refused_and_writes_nothing(
    client: TestClient, db: Database, school: School
) -> None:
    response = await client.get(
        "/graphql",
        params={"query": f'mutation {{ enroll(courseId: "{school.course_id}") {{ message }} }}'},
        headers={**school.student.auth, "Accept": "application/json"},
    )

    assert 400 <= response.status < 500
    assert error_codes(await response.json())
    assert await enrollment_count(db) == 0


async def test_a_query_over_get_still_works(client: TestClient, school: School) -> None:
    response = await client.get(
        "/graphql", params={"query": ME_ID}, headers={**school.student.auth, "Accept": "*/*"}
    )

    assert response.status == 200
    assert (await response.json())["data"]["me"] == {"id": str(school.student.id)}


# ---- internal errors --------------------------------------------------------------------


async def test_an_unexpected_failure_is_masked_and_logged(
    client: TestClient, db: Database, school: School, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an enrolled student and a database that lost a table behind the service's back
    course = {"c": str(school.course_id), "l": str(school.lesson_ids[0])}
    await graphql(client, ENROLL, course, as_=school.student)
    if db.dialect == "sqlite":
        break_it, repair = "DROP TABLE lesson_completions", None
    else:  # the PostgreSQL database is shared by the session: put the table back afterwards
        break_it = "ALTER TABLE lesson_completions RENAME TO lesson_completions_away"
        repair = "ALTER TABLE lesson_completions_away RENAME TO lesson_completions"
    async with db.write() as tx:
        await tx.execute(sa_text(break_it))
    try:
        # When the student completes a lesson
        with caplog.at_level(logging.ERROR):
            response = await post(client, COMPLETE_LESSON, course, headers=school.student.auth)
            body = await response.json()
    finally:
        if repair:
            async with db.write() as tx:
                await tx.execute(sa_text(repair))

    # Then the answer is a masked internal_error with a request id
    assert error_codes(body) == ["internal_error"]
    error = body["errors"][0]
    assert error["extensions"]["status"] == 500
    request_id = error["extensions"]["requestId"]
    assert request_id
    assert request_id == response.headers["X-Request-ID"]
    text = str(body)
    for leak in ("Traceback", "sqlite", "SELECT", "INSERT", "lesson_completions", "asyncpg"):
        assert leak.lower() not in text.lower(), text
    # And it is logged with the same request id, with the real cause for the operator
    logged = [
        r for r in caplog.records if r.levelno >= logging.ERROR and request_id in r.getMessage()
    ]
    assert logged, [r.getMessage() for r in caplog.records]
    assert any(r.exc_info for r in logged)


# ---- request ids, CORS, probes, GraphiQL ------------------------------------------------


async def test_every_response_carries_a_request_id(client: TestClient) -> None:
    first = await post(client, ME_ID)
    second = await client.get("/healthz")
    failed = await post(client, ME_ID, headers=basic("john_doe", "wrong password"))

    ids = [r.headers.get("X-Request-ID") for r in (first, second, failed)]
    assert all(ids), ids
    assert len(set(ids)) == 3


async def test_a_sane_client_request_id_is_echoed_and_an_insane_one_replaced(
    client: TestClient,
) -> None:
    sane = await post(client, ME_ID, headers={"X-Request-ID": "spa-7f3c-0001"})
    too_long = await post(client, ME_ID, headers={"X-Request-ID": "x" * 500})

    assert sane.headers["X-Request-ID"] == "spa-7f3c-0001"
    assert too_long.headers["X-Request-ID"]
    assert too_long.headers["X-Request-ID"] != "x" * 500


async def test_cors_preflight_from_the_spa_is_allowed(client: TestClient) -> None:
    response = await client.options(
        "/graphql",
        headers={
            "Origin": "http://spa.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )

    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "http://spa.example"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


async def test_cors_actual_request_from_the_spa_is_allowed(client: TestClient) -> None:
    response = await post(client, ME_ID, headers={"Origin": "http://spa.example"})

    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://spa.example"


async def test_cors_refuses_a_foreign_origin(client: TestClient) -> None:
    preflight = await client.options(
        "/graphql",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    actual = await post(client, ME_ID, headers={"Origin": "http://evil.example"})

    assert preflight.status == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Origin" not in actual.headers


async def test_health_and_readiness_with_the_database_up(client: TestClient) -> None:
    health = await client.get("/healthz")
    ready = await client.get("/readyz")

    assert health.status == 200
    assert ready.status == 200
    assert (await ready.json())["database"] == "up"


async def test_readiness_is_503_when_the_database_is_unreachable() -> None:
    # The process must come up without its database (an orchestrator restarts it otherwise,
    # in a loop) and tell load balancers it is not ready yet.
    settings = Settings(database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    app = create_app(settings)

    async with TestClient(TestServer(app)) as unreachable:
        health = await unreachable.get("/healthz")
        ready = await unreachable.get("/readyz")
        body = await ready.json()

    assert health.status == 200
    assert ready.status == 503
    assert body["database"] == "down"
    assert "127.0.0.1" not in str(body)


async def test_browsers_get_the_graphiql_explorer(client: TestClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})

    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert "graphiql" in page.lower()


async def test_every_file_of_the_graphiql_page_comes_from_the_service(client: TestClient) -> None:
    # When a browser opens GraphiQL
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    page = await response.text()

    # Then the page allows only the service's own origin
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "http" not in policy
    # And every script and stylesheet it loads is one of ours, matching its integrity hash
    references = re.findall(r'(?:src|href)="([^"]+)" integrity="([^"]+)"', page)
    assert len(references) == 7
    assert "https://" not in page
    assert "http://" not in page
    for url, integrity in references:
        assert url.startswith("/assets/")
        asset = await client.get(url)
        assert asset.status == 200, url
        content = await asset.read()
        digest = base64.b64encode(hashlib.sha384(content).digest()).decode()
        assert integrity == f"sha384-{digest}"
        assert "immutable" in asset.headers["Cache-Control"]
        assert asset.content_type in {"text/javascript", "text/css"}
        assert asset.headers["Content-Encoding"] == "gzip"  # aiohttp's client accepts it


async def test_page_files_go_uncompressed_to_clients_that_do_not_accept_gzip(
    client: TestClient,
) -> None:
    page = await (await client.get("/graphql", headers={"Accept": "text/html"})).text()
    url, integrity = re.findall(r'src="([^"]+)" integrity="([^"]+)"', page)[0]

    response = await client.get(url, headers={"Accept-Encoding": "identity"})

    assert response.status == 200
    assert "Content-Encoding" not in response.headers
    assert response.headers["Vary"] == "Accept-Encoding"
    digest = base64.b64encode(hashlib.sha384(await response.read()).digest()).decode()
    assert integrity == f"sha384-{digest}"


async def test_only_the_pinned_graphiql_files_are_served(client: TestClient) -> None:
    for path in (
        "/assets/0/graphiql.min.js",
        "/assets/x/manifest.json",
        "/assets/x/..%2F..%2Fapp.py",
    ):
        response = await client.get(path)
        assert response.status == 404, path


async def test_graphiql_switched_off_serves_neither_page_nor_files(
    serve: Any, settings: Settings
) -> None:
    on = await serve(settings)
    page = await (await on.get("/graphql", headers={"Accept": "text/html"})).text()
    script = re.findall(r'src="([^"]+)"', page)[0]
    off = await serve(settings.model_copy(update={"graphiql": False}))

    response = await off.get("/graphql", headers={"Accept": "text/html"})
    assert response.status != 200 or "graphiql" not in (await response.text()).lower()
    assert (await off.get(script)).status == 404


async def test_an_unexpected_failure_outside_any_field_is_masked_too(
    client: TestClient,
    school: School,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the executor itself fails, before any field is resolved
    def broken(self: SharedEventExecutor, serially: bool | None = None) -> None:
        raise RuntimeError("executor state went wrong")

    monkeypatch.setattr(SharedEventExecutor, "execute_operation", broken)

    # When a student asks for anything
    with caplog.at_level(logging.ERROR):
        body = await graphql(client, "{ courses { id } }", as_=school.student)

    # Then the answer is a masked internal_error, not the exception's text as bad input
    assert error_codes(body) == ["internal_error"]
    assert body["errors"][0]["extensions"]["requestId"]
    assert "executor state" not in str(body)
    assert any("executor state went wrong" in r.exc_text for r in caplog.records if r.exc_text)
