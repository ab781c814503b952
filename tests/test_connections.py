"""Bounded connections: read timeouts for HTTP, init timeouts and quotas for websockets.

Slow clients are real TCP sockets (asyncio.open_connection) sending a request
head or body a few bytes at a time, against a server with its timeouts lowered.
Websockets are raw aiohttp frames of either protocol, so close codes and
`connection_error` payloads are seen as sent; those tests run on both databases.
"""

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse
from graphql.execution import Executor

from coursepulse.app import create_app
from coursepulse.models.db import Database
from coursepulse.schema import shared_events
from coursepulse.schema.types import ProgressEvent as EventType
from coursepulse.settings import Settings
from coursepulse.web.ws_protocols import WS_QUOTA
from tests.conftest import School
from tests.test_live import (  # noqa: F401  (_asyncio_debug: an autouse fixture)
    COMPLETE_LESSON,
    COURSE_ACTIVITY,
    INCOMPLETE_LESSON,
    LEGACY_WS,
    PROGRESS_UPDATED,
    PROTOCOLS,
    TRANSPORT_WS,
    RawSocket,
    _asyncio_debug,
    base64_of,
    basic_header,
    complete,
    enroll,
    followers,
    last_event_id,
    mutate,
    raw_socket,
    ws_url,
)

WAIT = 10.0


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110  (state of the server under test)
            await asyncio.sleep(0.01)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# ---- HTTP: header and body read timeouts ----------------------------------------------


@pytest.fixture
async def tcp_server(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Any]:
    """Start the app (on a SQLite copy) with given settings on a real port."""
    servers: list[TestServer] = []

    async def start(**settings: Any) -> TestServer:
        path = tmp_path / f"db{len(servers)}.db"
        shutil.copyfile(sqlite_template, path)
        app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{path}", **settings))
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (bounded wait)."""
    received = b""
    async with asyncio.timeout(WAIT):
        try:
            while chunk := await reader.read(65536):
                received += chunk
        except ConnectionResetError:
            pass  # closed with the client's bytes unread: a reset is a close too
    return received


async def test_a_request_head_sent_slowly_is_cut_off_after_the_header_timeout(
    tcp_server: Any,
) -> None:
    server = await tcp_server(http_header_timeout_seconds=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")

    async def trickle() -> None:
        for number in range(100):  # a header line every 0.2 s: 20 s if never cut off
            await asyncio.sleep(0.2)
            writer.write(f"X-Slow-{number}: a\r\n".encode())

    trickling = asyncio.create_task(trickle())
    try:
        answer = await closed_by_server(reader)
    finally:
        trickling.cancel()
        writer.close()
    assert answer == b""  # nothing answered: the head never completed
    assert time.monotonic() - started >= 0.9  # cut off by the timeout, not before


async def test_coursepulse_serve_cuts_off_a_slow_head_too(tmp_path: Path) -> None:
    # `serve` runs aiohttp's web.run_app, whose own keep-alive default must not win
    env = {
        **os.environ,
        "COURSEPULSE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'school.db'}",
        "COURSEPULSE_HTTP_HEADER_TIMEOUT_SECONDS": "1",
    }
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "coursepulse", "serve", "--port", str(port)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(30):
            while True:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    break
                except OSError:
                    await asyncio.sleep(0.2)
        started = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        assert await closed_by_server(reader) == b""
        assert time.monotonic() - started >= 0.9
        writer.close()
    finally:
        server.terminate()
        async with asyncio.timeout(WAIT):
            await server.wait()


async def test_two_hundred_slow_heads_are_all_closed_while_others_are_served(
    tcp_server: Any,
) -> None:
    server = await tcp_server(http_header_timeout_seconds=1.0)
    connections = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(200)]
    for _, writer in connections:
        writer.write(b"POST /graphql HTTP/1.1\r\nHost: localhost\r\n")  # and then nothing
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}/healthz") as health,
    ):
        assert health.status == 200
    answers = await asyncio.gather(*(closed_by_server(reader) for reader, _ in connections))
    assert answers == [b""] * 200
    for _, writer in connections:
        writer.close()


async def test_an_idle_kept_alive_connection_is_closed_after_the_header_timeout(
    tcp_server: Any,
) -> None:
    server = await tcp_server(http_header_timeout_seconds=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    answer = await closed_by_server(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 OK")  # the request was answered, then closed


async def test_a_request_body_sent_slowly_gets_408_and_the_connection_closes(
    tcp_server: Any,
) -> None:
    server = await tcp_server(http_body_timeout_seconds=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
        b'{"query": "'
    )

    async def trickle() -> None:
        for _ in range(100):
            await asyncio.sleep(0.2)
            writer.write(b" ")

    trickling = asyncio.create_task(trickle())
    try:
        answer = await closed_by_server(reader)
    finally:
        trickling.cancel()
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    error = json.loads(body)["errors"][0]
    assert error["extensions"] == {"code": "invalid_input", "status": 408}


async def test_a_body_sent_in_time_is_read_as_usual(tcp_server: Any) -> None:
    server = await tcp_server(http_body_timeout_seconds=1.0)
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.port}/graphql"
        async with session.post(url, json={"query": "{ __typename }"}) as response:
            assert await response.json() == {"data": {"__typename": "Query"}}


# ---- websockets: init timeouts and the legacy protocol's sign-in -------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_websocket_that_never_sends_connection_init_is_closed_with_4408(
    serve: Any, settings: Settings, http: aiohttp.ClientSession, protocol: str
) -> None:
    client = await serve(settings.model_copy(update={"ws_init_timeout_seconds": 0.3}))
    async with raw_socket(http, ws_url(client), protocol) as socket:
        closed = await socket.receive()
    assert (closed["frame"], closed["code"]) == (WSMsgType.CLOSE, 4408)


async def test_a_refused_sign_in_closes_the_legacy_protocol_with_4403(
    client: Any, http: aiohttp.ClientSession, school: School
) -> None:
    wrong = {"Authorization": f"Basic {base64_of('john_doe:wrong password')}"}
    async with raw_socket(http, ws_url(client), LEGACY_WS) as socket:
        error = await socket.init(wrong)
        closed = await socket.receive()
    assert error["type"] == "connection_error"
    assert error["payload"]["code"] == "invalid_credentials"
    assert (closed["frame"], closed["code"]) == (WSMsgType.CLOSE, 4403)


async def test_a_second_connection_init_on_the_legacy_protocol_changes_nothing(
    client: Any, http: aiohttp.ClientSession, school: School
) -> None:
    async with raw_socket(http, ws_url(client), LEGACY_WS) as socket:
        # Given a socket signed in as a student
        ack = await socket.init({"Authorization": basic_header(school.student)})
        assert ack["type"] == "connection_ack"
        # When it sends connection_init again, as the course's instructor, then a wrong one
        await socket.send(
            {
                "type": "connection_init",
                "payload": {"Authorization": basic_header(school.instructor)},
            }
        )
        await socket.send({"type": "connection_init", "payload": {"Authorization": "Bearer x"}})
        # Then it is still the student's: the instructors' stream is forbidden, and it is open
        await socket.subscribe("1", COURSE_ACTIVITY, courseId=str(school.course_id))
        answer = await socket.receive()
    assert answer["type"] == "data"
    assert [e["extensions"]["code"] for e in answer["payload"]["errors"]] == ["forbidden"]


# ---- websockets: per-user quotas ----------------------------------------------------------


async def refusal(socket: RawSocket, answer: dict[str, Any]) -> dict[str, Any]:
    """The close frame of a refused connection_init (after graphql-ws' connection_error)."""
    if socket.protocol == LEGACY_WS:
        assert answer["type"] == "connection_error", answer
        assert answer["payload"]["code"] == "rate_limited"
        answer = await socket.receive()
    return answer


async def test_a_user_over_the_websocket_limit_is_refused_until_one_closes(
    serve: Any, settings: Settings, http: aiohttp.ClientSession, school: School, protocol: str
) -> None:
    client = await serve(settings.model_copy(update={"max_websockets_per_user": 2}))
    quota = client.server.app[WS_QUOTA]
    student = {"Authorization": basic_header(school.student)}
    async with (
        raw_socket(http, ws_url(client), protocol) as first,
        raw_socket(http, ws_url(client), protocol) as second,
    ):
        assert (await first.init(student))["type"] == "connection_ack"
        assert (await second.init(student))["type"] == "connection_ack"
        async with raw_socket(http, ws_url(client), protocol) as third:
            closed = await refusal(third, await third.init(student))
        assert (closed["frame"], closed["code"]) == (WSMsgType.CLOSE, 4429)
        # Another user is not concerned
        async with raw_socket(http, ws_url(client), protocol) as other:
            other_init = {"Authorization": basic_header(school.other_student)}
            assert (await other.init(other_init))["type"] == "connection_ack"
        await first.websocket.close()
        await until(lambda: quota.sockets[f"user:{school.student.id}"] == 1)
        async with raw_socket(http, ws_url(client), protocol) as again:
            assert (await again.init(student))["type"] == "connection_ack"
    await until(lambda: not quota.sockets)  # every socket's place is given back


async def test_anonymous_websockets_are_counted_per_address(
    serve: Any, settings: Settings, http: aiohttp.ClientSession, protocol: str
) -> None:
    client = await serve(settings.model_copy(update={"max_websockets_per_user": 2}))
    async with (
        raw_socket(http, ws_url(client), protocol) as first,
        raw_socket(http, ws_url(client), protocol) as second,
        raw_socket(http, ws_url(client), protocol) as third,
    ):
        assert (await first.init())["type"] == "connection_ack"
        assert (await second.init())["type"] == "connection_ack"
        closed = await refusal(third, await third.init())
    assert (closed["frame"], closed["code"]) == (WSMsgType.CLOSE, 4429)


async def test_a_user_over_the_subscription_limit_gets_rate_limited_on_that_operation(
    serve: Any,
    settings: Settings,
    db: Database,
    http: aiohttp.ClientSession,
    school: School,
    protocol: str,
) -> None:
    client = await serve(settings.model_copy(update={"max_subscriptions_per_user": 3}))
    quota = client.server.app[WS_QUOTA]
    await enroll(client, school, school.student)
    student = {"Authorization": basic_header(school.student)}
    course = str(school.course_id)
    async with (
        raw_socket(http, ws_url(client), protocol) as first,
        raw_socket(http, ws_url(client), protocol) as second,
    ):
        assert (await first.init(student))["type"] == "connection_ack"
        assert (await second.init(student))["type"] == "connection_ack"
        # Given three live subscriptions over two sockets (each replays the enrolment)
        for socket, operation in ((first, "1"), (first, "2"), (second, "3")):
            await socket.subscribe(operation, PROGRESS_UPDATED, courseId=course, after="0")
            assert (await socket.next_event())["kind"] == "ENROLLED"
        # When a fourth is asked for
        await second.subscribe("4", PROGRESS_UPDATED, courseId=course, after="0")
        refused = await second.receive()
        # Then that operation alone is refused, with rate_limited
        assert (refused["type"], refused["id"]) == ("error", "4")
        errors = refused["payload"]
        (error,) = errors if isinstance(errors, list) else [errors]
        assert error["extensions"]["code"] == "rate_limited"
        assert error["extensions"]["limit"] == 3
        # And once one ends, a new one is accepted
        stop = "complete" if protocol == TRANSPORT_WS else "stop"
        await first.send({"type": stop, "id": "1"})
        await until(lambda: quota.operations[f"user:{school.student.id}"] == 2)
        await second.subscribe("5", PROGRESS_UPDATED, courseId=course, after="0")
        assert (await second.next_event())["kind"] == "ENROLLED"
    await until(lambda: not quota.operations)


async def test_subscribers_resuming_from_different_events_share_one_execution_of_an_event(
    client: TestClient,
    db: Database,
    http: aiohttp.ClientSession,
    school: School,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    executed: list[int] = []
    execute = Executor.execute_operation

    def counting(self: Executor, serially: bool | None = None) -> Any:
        if isinstance(self.root_value, EventType):
            executed.append(int(self.root_value.id))
        return execute(self, serially)

    monkeypatch.setattr(Executor, "execute_operation", counting)
    await enroll(client, school, school.student, school.other_student)
    lesson = {"courseId": str(school.course_id), "lessonId": str(school.lesson_ids[1])}
    for _ in range(6):  # twelve more events in the log
        await mutate(client, COMPLETE_LESSON, school.other_student, **lesson)
        await mutate(client, INCOMPLETE_LESSON, school.other_student, **lesson)
    latest = await last_event_id(db)
    course = str(school.course_id)
    # Given twelve staff subscribers of one document, each resuming after its own event
    # (more kinds of variables than an event keeps results for)
    async with contextlib.AsyncExitStack() as stack:
        sockets = []
        for number in range(12):
            socket = await stack.enter_async_context(raw_socket(http, ws_url(client), TRANSPORT_WS))
            ack = await socket.init({"Authorization": basic_header(school.instructor)})
            assert ack["type"] == "connection_ack"
            after = str(latest - 1 - number)
            await socket.subscribe(str(number), COURSE_ACTIVITY, courseId=course, after=after)
            sockets.append(socket)
        await until(lambda: followers(client.server.app, school.course_id) == 12)
        for socket in sockets:  # each has its replay before the live event
            while int((await socket.next_event())["id"]) != latest:
                pass
        executed.clear()
        # When a lesson is completed
        await complete(client, school, school.student, 0)
        heard = [await socket.next_event() for socket in sockets]
    # Then all twelve got one answer, executed once
    assert len({json.dumps(event, sort_keys=True) for event in heard}) == 1
    assert executed == [latest + 1]


def test_only_variables_below_the_root_fields_arguments_tell_event_answers_apart() -> None:
    document = parse(
        """
        subscription S($courseId: ID!, $after: ID, $withLesson: Boolean!, $live: Boolean!) {
          ...Root
        }
        fragment Root on Subscription {
          courseActivity(courseId: $courseId, after: $after) @include(if: $live) {
            id
            ... on ProgressEvent { ...Lesson }
          }
        }
        fragment Lesson on ProgressEvent { lessonId @include(if: $withLesson) }
        """
    )
    operation, *fragments = document.definitions
    assert isinstance(operation, OperationDefinitionNode)
    by_name = {f.name.value: f for f in fragments if isinstance(f, FragmentDefinitionNode)}
    used = shared_events._per_event_variables(operation, by_name)
    assert used == {"withLesson", "live"}


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param
