"""The prepared lane: a document validated before answers exactly as the full path does.

The first request of a document goes through Strawberry's view and the schema's
extensions (parse, validate, cost); later ones run on graphql-core directly. Whatever a
client sees (data, errors and their codes, status, media type) must not tell them apart.
"""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from coursepulse.resolvers import enrollments
from coursepulse.schema import CoursepulseSchema
from coursepulse.settings import Settings
from tests.conftest import Account, School, graphql

PROGRESS = """query Progress($c: ID!, $u: ID) { courseProgress(courseId: $c, userId: $u) {
  courseId status progressPercentage nextLesson { id title order } } }"""
ROSTER = """query Roster($c: ID!, $n: Int!) { courseStudents(courseId: $c, perPage: $n) {
  total nodes { username } } }"""
ENROLL = """mutation Enroll($c: ID!) { enroll(courseId: $c) { message } }"""


@pytest.fixture
def full_path_runs(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The documents that went through the full path (Strawberry's `Schema.execute`)."""
    seen: list[str | None] = []
    execute = CoursepulseSchema.execute

    async def counting(self: CoursepulseSchema, query: str | None, *args: Any, **kw: Any) -> Any:
        seen.append(query)
        return await execute(self, query, *args, **kw)

    monkeypatch.setattr(CoursepulseSchema, "execute", counting)
    return seen


async def twice(
    client: TestClient, query: str, variables: dict[str, Any], account: Account
) -> tuple[dict[str, Any], dict[str, Any]]:
    first = await graphql(client, query, variables, as_=account)
    second = await graphql(client, query, variables, as_=account)
    return first, second


async def test_a_known_document_skips_the_full_path_and_answers_the_same(
    client: TestClient, school: School, full_path_runs: list[str | None]
) -> None:
    await graphql(client, ENROLL, {"c": str(school.course_id)}, as_=school.student)
    variables = {"c": str(school.course_id), "u": str(school.student.id)}
    first, second = await twice(client, PROGRESS, variables, school.admin)
    assert first == second
    assert second["data"]["courseProgress"]["nextLesson"]["id"] == str(school.lesson_ids[0])
    assert full_path_runs.count(PROGRESS) == 1


async def test_domain_errors_read_the_same_on_both_paths(
    client: TestClient, school: School, full_path_runs: list[str | None]
) -> None:
    variables = {"c": str(school.course_id), "u": None}
    first, second = await twice(client, PROGRESS, variables, school.student)
    assert first == second
    assert second["errors"][0]["extensions"]["code"] == "not_enrolled"
    assert full_path_runs.count(PROGRESS) == 1


async def test_a_mutation_posted_again_runs_and_answers_in_the_contracts_shape(
    client: TestClient, school: School, full_path_runs: list[str | None]
) -> None:
    variables = {"c": str(school.course_id)}
    first, second = await twice(client, ENROLL, variables, school.student)
    assert first["data"]["enroll"]["message"] == enrollments.ENROLLED_MESSAGE
    assert second["errors"][0]["extensions"]["code"] == "already_enrolled"
    assert full_path_runs.count(ENROLL) == 1


async def test_an_unexpected_error_is_masked_and_logged_with_the_request_id(
    client: TestClient,
    school: School,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*_args: Any, **_kw: Any) -> Any:
        raise RuntimeError("the disk is on fire")

    variables = {"c": str(school.course_id), "u": None}
    await graphql(client, PROGRESS, variables, as_=school.student)  # validated and kept
    monkeypatch.setattr(enrollments, "course_progress_and_next_lesson", broken)
    response = await client.post(
        "/graphql",
        json={"query": PROGRESS, "variables": variables},
        headers={**school.student.auth, "X-Request-ID": "lane-1"},
    )
    body = await response.json()
    (error,) = body["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "internal_error", "status": 500, "requestId": "lane-1"}
    assert "disk is on fire" not in await response.text()
    assert any("lane-1" in record.getMessage() for record in caplog.records)


async def test_the_cost_limit_holds_for_a_document_validated_before(
    serve: Any, settings: Settings, school: School
) -> None:
    client = await serve(settings.model_copy(update={"max_query_cost": 60}))
    small = await graphql(
        client, ROSTER, {"c": str(school.course_id), "n": 5}, as_=school.instructor
    )
    assert "errors" not in small
    # The same document, now asking for more than the viewer may spend
    big = await graphql(
        client, ROSTER, {"c": str(school.course_id), "n": 100}, as_=school.instructor
    )
    assert big["errors"][0]["extensions"]["code"] == "query_too_complex"
    assert big["errors"][0]["extensions"]["maxCost"] == 60


async def test_graphql_response_json_clients_get_the_same_answer_on_both_paths(
    client: TestClient, school: School, full_path_runs: list[str | None]
) -> None:
    headers = {**school.student.auth, "Accept": "application/graphql-response+json"}
    payload = {"query": PROGRESS, "variables": {"c": str(school.course_id), "u": None}}
    answers = []
    for _ in range(2):
        response = await client.post("/graphql", json=payload, headers=headers)
        answers.append((response.status, response.content_type, await response.json()))
    assert answers[0] == answers[1]
    assert answers[1][1] == "application/graphql-response+json"
    assert full_path_runs.count(PROGRESS) == 1


async def test_variables_of_the_wrong_type_are_refused_alike_on_both_paths(
    client: TestClient, school: School, full_path_runs: list[str | None]
) -> None:
    good = {"c": str(school.course_id), "u": None}
    await graphql(client, PROGRESS, good, as_=school.student)  # validated and kept
    headers = {**school.student.auth, "Accept": "application/graphql-response+json"}
    answers = []
    for query in (PROGRESS, PROGRESS + " "):  # the known document, then a new one
        response = await client.post(
            "/graphql", json={"query": query, "variables": {"c": {"no": 1}}}, headers=headers
        )
        answers.append((response.status, await response.json()))
    assert answers[0] == answers[1]
    status, body = answers[0]
    assert status == 400
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "invalid_input"
    assert full_path_runs.count(PROGRESS) == 1
