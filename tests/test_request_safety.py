"""Requests that must not change anything, races on first issue, and malformed input.

Each case was found by trying the service as an attacker would: a cross-site GET that
issued a certificate, concurrent first certificate requests answering 500 on PostgreSQL,
input that answered 500 instead of 400, and a path that forged an access-log line.
"""

import asyncio
import json
import logging
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from coursepulse.models import Certificate
from coursepulse.models.db import Database
from coursepulse.resolvers import completions, enrollments
from tests.conftest import Account, School, error_codes, graphql

CERTIFICATE = "query($c: ID!) { certificate(courseId: $c) { certificateId } }"
REST = "/wp-json/fluent-community/v2"


async def finish_course(db: Database, school: School, account: Account) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, account.viewer, school.course_id)
        for lesson_id in school.lesson_ids:
            await completions.complete_lesson(tx, account.viewer, school.course_id, lesson_id)


async def certificates_of(db: Database, account: Account) -> int:
    async with db.read() as tx:
        count = await tx.scalar(
            select(func.count()).select_from(Certificate).where(Certificate.user_id == account.id)
        )
    return count or 0


async def test_thirty_first_certificate_requests_at_once_get_one_number(
    client: TestClient, db: Database, school: School
) -> None:
    # Given a student who just finished the course
    await finish_course(db, school, school.student)

    # When the page asks for the certificate thirty times at once
    bodies = await asyncio.gather(
        *(
            graphql(client, CERTIFICATE, {"c": str(school.course_id)}, as_=school.student)
            for _ in range(30)
        )
    )

    # Then every answer carries the one certificate issued
    assert [error_codes(body) for body in bodies] == [[]] * 30, bodies
    numbers = {body["data"]["certificate"]["certificateId"] for body in bodies}
    assert len(numbers) == 1
    assert await certificates_of(db, school.student) == 1


async def test_graphql_over_get_returns_an_issued_certificate_but_never_issues_one(
    client: TestClient, db: Database, school: School
) -> None:
    await finish_course(db, school, school.student)
    url = (
        "/graphql?query="
        + quote(CERTIFICATE)
        + "&variables="
        + quote(json.dumps({"c": str(school.course_id)}))
    )

    # A GET (an <img src> on another site would send one) issues nothing
    response = await client.get(url, headers=school.student.auth)
    body = await response.json()
    assert error_codes(body) == ["forbidden"], body
    assert "POST" in body["errors"][0]["message"]
    assert await certificates_of(db, school.student) == 0

    # The POST issues it; a GET then returns that same certificate
    issued = await graphql(client, CERTIFICATE, {"c": str(school.course_id)}, as_=school.student)
    number = issued["data"]["certificate"]["certificateId"]
    again = await (await client.get(url, headers=school.student.auth)).json()
    assert again["data"]["certificate"]["certificateId"] == number


async def test_graphql_over_get_before_completion_still_says_how_far_the_student_is(
    client: TestClient, db: Database, school: School
) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
    url = (
        "/graphql?query="
        + quote(CERTIFICATE)
        + "&variables="
        + quote(json.dumps({"c": str(school.course_id)}))
    )
    body = await (await client.get(url, headers=school.student.auth)).json()
    assert error_codes(body) == ["course_not_complete"]


async def test_rest_certificate_get_issues_for_the_site_itself_but_not_for_another_site(
    client: TestClient, db: Database, school: School
) -> None:
    await finish_course(db, school, school.student)
    path = f"{REST}/courses/{school.course_id}/certificate"

    for hostile in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}):
        response = await client.get(path, headers={**school.student.auth, **hostile})
        assert response.status == 403
        assert (await response.json())["code"] == "forbidden"
    assert await certificates_of(db, school.student) == 0

    # The seed's get-or-generate: a GET from a script (no Origin) issues it
    response = await client.get(path, headers=school.student.auth)
    assert response.status == 200, await response.text()
    number = (await response.json())["data"]["certificate_id"]
    assert await certificates_of(db, school.student) == 1

    # Once issued, even a cross-site read returns it (reading changes nothing)
    response = await client.get(
        path, headers={**school.student.auth, "Sec-Fetch-Site": "cross-site"}
    )
    assert response.status == 200
    assert (await response.json())["data"]["certificate_id"] == number


MALFORMED_BODIES = {
    "invalid UTF-8": b'{"query": "{ me { id } }\xff"}',
    "JSON nested beyond the recursion limit": (
        b'{"query": "{ me { id } }", "variables": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    ),
    "a lone surrogate in a variable": (
        b'{"query": "query($s: String) { courseStudents(courseId: 1, search: $s) { total } }",'
        b' "variables": {"s": "\\ud800"}}'
    ),
    "a lone low surrogate in the document": b'{"query": "{ me { id } } # \\udc00"}',
}


@pytest.mark.parametrize("case", sorted(MALFORMED_BODIES))
async def test_a_malformed_graphql_body_is_invalid_input(
    client: TestClient, school: School, case: str
) -> None:
    response = await client.post(
        "/graphql",
        data=MALFORMED_BODIES[case],
        headers={**school.instructor.auth, "Content-Type": "application/json"},
    )
    assert response.status == 400, await response.text()
    assert error_codes(await response.json()) == ["invalid_input"]


async def test_a_surrogate_pair_is_a_character_like_any_other(
    client: TestClient, school: School
) -> None:
    response = await client.post(
        "/graphql",
        data=(
            b'{"query": "query($s: String) { courseStudents(courseId: 1, search: $s)'
            b' { total } }", "variables": {"s": "\\ud83d\\ude00"}}'
        ),
        headers={**school.instructor.auth, "Content-Type": "application/json"},
    )
    body = await response.json()
    assert body == {"data": {"courseStudents": {"total": 0}}}, body


async def test_a_malformed_websocket_message_closes_the_socket_as_invalid(
    client: TestClient, school: School
) -> None:
    websocket = await client.ws_connect("/graphql", protocols=["graphql-transport-ws"])
    await websocket.send_json(
        {
            "type": "connection_init",
            "payload": {"Authorization": school.student.auth["Authorization"]},
        }
    )
    assert (await websocket.receive_json(timeout=5))["type"] == "connection_ack"
    await websocket.send_str(
        '{"id": "1", "type": "subscribe", "payload": {"query": "{ me { id } }",'
        ' "variables": {"x": "\\ud800"}}}'
    )
    message = await websocket.receive(timeout=5)
    assert websocket.closed or message.type.name in ("CLOSE", "CLOSED", "CLOSING")
    assert websocket.close_code == 4400


async def test_a_subscription_sent_over_post_is_invalid_input(
    client: TestClient, school: School
) -> None:
    body = await graphql(
        client,
        "subscription($c: ID!) { progressUpdated(courseId: $c) { id } }",
        {"c": str(school.course_id)},
        as_=school.student,
        expect_status=400,
    )
    assert error_codes(body) == ["invalid_input"]
    assert "websocket" in body["errors"][0]["message"]


@pytest.mark.parametrize("value", ["²", "١٢", "1e3", "-", "0x10"])
async def test_a_rest_page_that_is_not_an_ascii_integer_is_invalid_input(
    client: TestClient, school: School, value: str
) -> None:
    response = await client.get(
        f"{REST}/courses/{school.course_id}/students",
        params={"page": value},
        headers=school.instructor.auth,
    )
    assert response.status == 400, await response.text()
    body = await response.json()
    assert body["code"] == "invalid_input"
    assert body["data"]["field"] == "page"


async def test_the_access_log_escapes_control_characters_in_the_path(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="coursepulse.access"):
        await client.get("/healthz%0A2026-01-01 INFO forged: GET /admin 200")
    lines = [
        record.getMessage() for record in caplog.records if record.name == "coursepulse.access"
    ]
    assert lines
    assert all("\n" not in line for line in lines)
    assert any("%0A" in line for line in lines)
