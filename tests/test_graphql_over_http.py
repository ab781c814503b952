"""GraphQL over HTTP, as its specification says: media types, statuses, methods.

The last test runs the `graphql-http` package's own `auditServer` against the service
(through npm, pinned in tests/graphql_http_audit/); it is skipped, saying why, where npm
or the registry is not available.
"""

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import School, error_codes
from tests.processes import run_to_end

GRAPHQL_RESPONSE = "application/graphql-response+json"
AUDIT_DIR = Path(__file__).parent / "graphql_http_audit"


async def post(
    client: TestClient, body: object, accept: str | None, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, object]]:
    all_headers = {**(headers or {}), **({"Accept": accept} if accept else {})}
    response = await client.post("/graphql", json=body, headers=all_headers)
    return response.status, response.content_type, await response.json(content_type=None)


async def test_a_client_that_accepts_graphql_response_json_gets_it(client: TestClient) -> None:
    status, media_type, body = await post(client, {"query": "{ __typename }"}, GRAPHQL_RESPONSE)
    assert (status, media_type, body) == (200, GRAPHQL_RESPONSE, {"data": {"__typename": "Query"}})


@pytest.mark.parametrize(
    "query",
    ["{", "{ noSuchField }", "query($id: ID!) { course(id: $id) { id } }"],
    ids=["syntax", "validation", "missing variable"],
)
async def test_request_errors_are_400_without_data_under_graphql_response_json(
    client: TestClient, query: str
) -> None:
    status, media_type, body = await post(client, {"query": query}, GRAPHQL_RESPONSE)
    assert (status, media_type) == (400, GRAPHQL_RESPONSE)
    assert "data" not in body
    assert error_codes(body) == ["invalid_input"]

    # The older convention stays for application/json clients: 200, errors in the body
    status, media_type, body = await post(client, {"query": query}, "application/json")
    assert (status, media_type) == (200, "application/json")
    assert body["data"] is None
    assert error_codes(body) == ["invalid_input"]


async def test_a_field_error_is_200_with_data_under_graphql_response_json(
    client: TestClient, school: School
) -> None:
    status, _, body = await post(
        client,
        {"query": f"{{ courseProgress(courseId: {school.course_id}) {{ completedLessons }} }}"},
        f"{GRAPHQL_RESPONSE}, application/json;q=0.9",
        school.student.auth,
    )
    assert status == 200
    assert "data" in body
    assert error_codes(body) == ["not_enrolled"]


async def test_application_json_is_kept_when_the_client_prefers_it(client: TestClient) -> None:
    for accept in (None, "application/json", f"application/json, {GRAPHQL_RESPONSE};q=0.5"):
        _, media_type, _ = await post(client, {"query": "{ __typename }"}, accept)
        assert media_type == "application/json", accept


async def test_other_methods_answer_405_with_allow(client: TestClient) -> None:
    response = await client.put("/graphql", json={"query": "{ __typename }"})
    assert response.status == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert error_codes(await response.json()) == ["invalid_input"]


async def test_a_mutation_sent_by_get_answers_405_allow_post_and_changes_nothing(
    client: TestClient, school: School
) -> None:
    mutation = f"mutation {{ enroll(courseId: {school.course_id}) {{ message }} }}"
    response = await client.get("/graphql?query=" + quote(mutation), headers=school.student.auth)
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    progress = f"{{ courseProgress(courseId: {school.course_id}) {{ completedLessons }} }}"
    _, _, body = await post(client, {"query": progress}, None, school.student.auth)
    assert error_codes(body) == ["not_enrolled"]


@pytest.fixture(scope="session")
def graphql_http_audit() -> Path:
    """The pinned graphql-http package, installed by npm once per test session."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("the graphql-http audit needs Node.js and npm (not found on PATH)")
    if not (AUDIT_DIR / "node_modules" / "graphql-http").is_dir():
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=AUDIT_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if installed.returncode != 0:
            pytest.skip(f"npm could not install graphql-http: {installed.stderr.strip()[-300:]}")
    return AUDIT_DIR


async def test_the_graphql_http_audit_finds_no_error_and_no_warning(
    client: TestClient, graphql_http_audit: Path, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the audit speaks only HTTP: once, on SQLite, is enough")
    exit_code, output = await run_to_end(
        ("node", "audit.mjs", str(client.make_url("/graphql"))),
        cwd=graphql_http_audit,
        seconds=120,
    )
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines, output
    summary = lines[-1]
    not_ok = [line for line in lines[:-1] if line["status"] != "ok"]
    assert exit_code == 0, not_ok or output
    assert summary["notOk"] == 0
    assert summary["total"] >= 50
