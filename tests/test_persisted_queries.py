"""Persisted queries over real HTTP: Apollo's automatic persisted queries, and trusted documents.

The messages are the protocol's own: `extensions.persistedQuery = {version: 1,
sha256Hash}`, sent by POST or as GET's `extensions` query parameter.
"""

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from coursepulse.app import create_app
from coursepulse.cli import main
from coursepulse.models import Enrollment
from coursepulse.models.db import Database
from coursepulse.schema.persisted import PersistedQueries, Resolved, load_manifest
from coursepulse.settings import Settings
from tests.conftest import Account, School, error_codes

OPERATIONS = Path(__file__).parent.parent / "graphql" / "operations"
ME = (OPERATIONS / "Me.graphql").read_text()
COURSES = (OPERATIONS / "Courses.graphql").read_text()


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def persisted(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}


async def post(
    client: TestClient, body: dict[str, Any], as_: Account | None = None
) -> dict[str, Any]:
    response = await client.post("/graphql", json=body, headers=as_.auth if as_ else {})
    assert response.status == 200, await response.text()
    return await response.json()


async def get(
    client: TestClient,
    params: dict[str, Any],
    as_: Account | None = None,
    *,
    status: int = 200,
    accept: str = "application/json",
) -> dict[str, Any]:
    query = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in params.items()
    }
    headers = {"Accept": accept, **(as_.auth if as_ else {})}
    response = await client.get("/graphql", params=query, headers=headers)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


# ---- automatic persisted queries ----------------------------------------------------------


async def test_the_apq_handshake_registers_a_document_then_runs_it_by_hash(
    client: TestClient, school: School
) -> None:
    # Given a client that first sends only the hash
    first = await post(client, {"extensions": persisted(ME)}, as_=school.student)
    # Then the server does not know it yet, as the protocol says
    assert first == {
        "data": None,
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND", "status": 400},
            }
        ],
    }
    # When it sends the document with its hash, the document runs and is registered
    second = await post(client, {"query": ME, "extensions": persisted(ME)}, as_=school.student)
    assert second["data"]["me"]["username"] == "john_doe"
    # Then the hash alone runs it, for anyone, each with their own viewer
    third = await post(client, {"extensions": persisted(ME)}, as_=school.other_student)
    assert third == {"data": {"me": {**third["data"]["me"], "username": "jane_roe"}}}


async def test_a_persisted_query_runs_by_get_with_extensions_in_the_url(
    client: TestClient, school: School
) -> None:
    params = {"extensions": persisted(COURSES)}
    # A browser's Accept (as a CDN forwards it) still gets the operation, not GraphiQL
    missing = await get(client, params, accept="text/html,*/*")
    assert error_codes(missing) == ["PERSISTED_QUERY_NOT_FOUND"]
    registered = await post(client, {"query": COURSES, "extensions": persisted(COURSES)})
    assert registered["data"]["courses"][0]["id"] == str(school.course_id)
    by_get = await get(client, {**params, "operationName": "Courses"}, accept="*/*")
    assert by_get == registered
    # With variables in the URL too
    course = "query One($id: ID!) { course(id: $id) { title } }"
    await post(
        client,
        {"query": course, "variables": {"id": "1"}, "extensions": persisted(course)},
    )
    one = await get(
        client,
        {"extensions": persisted(course), "variables": {"id": str(school.course_id)}},
    )
    assert one == {"data": {"course": {"title": "Introduction to Web Development"}}}


async def test_a_hash_that_does_not_match_the_document_is_refused_and_not_kept(
    client: TestClient,
) -> None:
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": sha256("{ me { id } }")}}
    body = await post(client, {"query": COURSES, "extensions": wrong})
    assert body["errors"][0]["message"] == "provided sha does not match query"
    assert error_codes(body) == ["invalid_input"]
    assert body.get("data") is None
    assert error_codes(await post(client, {"extensions": wrong})) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize(
    "extensions",
    [
        {"persistedQuery": {"version": 2, "sha256Hash": sha256(ME)}},
        {"persistedQuery": {"version": 1, "sha256Hash": "not-a-digest"}},
        {"persistedQuery": {"version": 1}},
        {"persistedQuery": "yes"},
    ],
)
async def test_malformed_persisted_query_extensions_are_invalid_input(
    client: TestClient, extensions: dict[str, Any]
) -> None:
    body = await post(client, {"query": ME, "extensions": extensions})
    assert error_codes(body) == ["invalid_input"], body


async def test_get_extensions_that_are_not_an_object_are_refused(client: TestClient) -> None:
    for raw in ("[1]", "{", '"x"'):
        response = await client.get("/graphql", params={"extensions": raw})
        assert response.status == 400
        assert (await response.json())["errors"][0]["extensions"]["code"] == "invalid_input"


async def test_a_document_that_does_not_validate_is_not_registered(client: TestClient) -> None:
    invalid = "{ me { nope } }"
    body = await post(client, {"query": invalid, "extensions": persisted(invalid)})
    assert error_codes(body) == ["invalid_input"]
    again = await post(client, {"extensions": persisted(invalid)})
    assert error_codes(again) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_get_never_runs_a_persisted_mutation(
    client: TestClient, school: School, db: Database
) -> None:
    # Given an enrol mutation registered by POST (anonymously: it validates, then fails)
    enroll = f"mutation {{ enroll(courseId: {school.course_id}) {{ message }} }}"
    registered = await post(client, {"query": enroll, "extensions": persisted(enroll)})
    assert error_codes(registered) == ["unauthenticated"]
    # When a signed-in student's browser is made to GET it by its hash
    response = await client.get(
        "/graphql",
        params={"extensions": json.dumps(persisted(enroll))},
        headers=school.student.auth,
    )
    # Then it is refused (405, as GraphQL over HTTP says for a mutation by GET) and nothing
    # was written
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert (await response.json())["errors"][0]["extensions"]["code"] == "invalid_input"
    async with db.read() as tx:
        enrolled = await tx.scalar(select(func.count()).select_from(Enrollment))
    assert enrolled == 0


def test_the_persisted_store_is_bounded_by_bytes() -> None:
    store = PersistedQueries(max_bytes=1000)
    documents = [f"query Q{number} {{ __typename }}" + " " * 200 for number in range(10)]
    for document in documents:
        store.register(sha256(document), document)
    assert store.store.bytes <= 1000
    kept = [
        isinstance(found := store.resolve(None, persisted(document)), Resolved)
        and found.query == document
        for document in documents
    ]
    assert kept == [False] * 6 + [True] * 4


# ---- trusted documents ------------------------------------------------------------------------


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """The manifest, built by the CLI from graphql/operations/."""
    path = tmp_path / "trusted.json"
    assert main(["trusted-documents", "build", "--output", str(path)]) == 0
    return path


@pytest.fixture
async def trusted_client(
    db: Database, settings: Settings, manifest: Path
) -> AsyncIterator[TestClient]:
    app = create_app(settings.model_copy(update={"trusted_documents": manifest}), database=db)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def test_the_cli_builds_a_manifest_of_every_operation(manifest: Path) -> None:
    data = json.loads(manifest.read_text())
    files = sorted(OPERATIONS.glob("*.graphql"))
    assert len(data) == len(files)
    assert {sha256(path.read_text()): path.read_text() for path in files} == data
    assert load_manifest(manifest) == data


def test_a_manifest_whose_hashes_do_not_match_is_refused_at_start(
    tmp_path: Path, settings: Settings
) -> None:
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps({sha256(ME): "{ courses { id } }"}))
    with pytest.raises(ValueError, match="does not have that SHA-256"):
        create_app(settings.model_copy(update={"trusted_documents": path}))


async def test_trusted_mode_runs_registered_documents_whole_or_by_hash(
    trusted_client: TestClient, school: School
) -> None:
    whole = await post(trusted_client, {"query": ME}, as_=school.student)
    assert whole["data"]["me"]["username"] == "john_doe"
    by_hash = await post(trusted_client, {"extensions": persisted(ME)}, as_=school.student)
    assert by_hash == whole
    both = await post(
        trusted_client, {"query": ME, "extensions": persisted(ME)}, as_=school.student
    )
    assert both == whole
    by_get = await get(trusted_client, {"extensions": persisted(COURSES)})
    assert by_get["data"]["courses"][0]["title"] == "Introduction to Web Development"


async def test_trusted_mode_refuses_every_other_document(
    trusted_client: TestClient, school: School
) -> None:
    others = [
        {"query": "{ me { id } }"},
        {"query": ME + " "},
        {"extensions": persisted("{ me { id } }")},
        {"query": "{ __schema { types { name } } }"},
    ]
    for body in others:
        answer = await post(trusted_client, body, as_=school.admin)
        assert answer["errors"][0]["extensions"] == {
            "code": "operation_not_trusted",
            "status": 403,
        }, body
        assert answer.get("data") is None
    # A registered hash beside another document is a mismatch, not a way in
    mismatch = await post(
        trusted_client, {"query": "{ me { id } }", "extensions": persisted(ME)}, as_=school.admin
    )
    assert error_codes(mismatch) == ["invalid_input"]


async def test_trusted_mode_holds_on_websockets(trusted_client: TestClient, school: School) -> None:
    websocket = await trusted_client.ws_connect("/graphql", protocols=["graphql-transport-ws"])
    await websocket.send_json(
        {
            "type": "connection_init",
            "payload": {"Authorization": school.student.auth["Authorization"]},
        }
    )
    assert (await websocket.receive_json(timeout=5))["type"] == "connection_ack"
    untrusted = "subscription { progressUpdated(courseId: 1) { id } }"
    await websocket.send_json({"id": "1", "type": "subscribe", "payload": {"query": untrusted}})
    refused = await websocket.receive_json(timeout=5)
    assert refused["type"] == "error", refused
    assert refused["payload"][0]["extensions"]["code"] == "operation_not_trusted"
    await websocket.send_json({"id": "2", "type": "subscribe", "payload": {"query": ME}})
    answered = await websocket.receive_json(timeout=5)
    assert answered["type"] == "next", answered
    assert answered["payload"]["data"]["me"]["username"] == "john_doe"
    await websocket.close()
