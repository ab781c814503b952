"""Live progress: subscriptions over websockets, fed by the durable event log.

Real clients against a server on a real local port: the `gql` library's websocket
transport speaks both `graphql-transport-ws` and the legacy `graphql-ws`; raw
aiohttp frames are used where a test needs to see the wire (close codes, errors
before any operation, a thousand sockets). Every test runs on SQLite (in-process
broker) and PostgreSQL (LISTEN/NOTIFY broker), with asyncio in debug mode and a
loop exception handler that fails the test on "Task exception was never
retrieved" and similar reports.

A subscriber knows its subscription is live when it receives an event it asked
to be replayed (`after` one below a known id): the server subscribes to the feed
before it reads the log, so everything committed afterwards reaches it.
"""

import asyncio
import base64
import contextlib
import gc
import json
import logging
import resource
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_websocket import WebSocketWriter
from aiohttp.test_utils import TestClient
from gql import Client, GraphQLRequest
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportError,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.websockets import WebsocketsTransport
from graphql.execution import Executor
from sqlalchemy import func, select, text
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation
from websockets.exceptions import ConnectionClosed

from coursepulse.fanout.feed import Feeds, Overflowed, Subscription
from coursepulse.fanout.stream import LiveStream
from coursepulse.models import ProgressEvent, ProgressEventKind, Role
from coursepulse.models.db import Database
from coursepulse.models.migrate import schema_engine
from coursepulse.resolvers import completions, enrollments
from coursepulse.resolvers.errors import ResumeRequired
from coursepulse.schema import build_schema
from coursepulse.schema.types import ProgressEvent as EventType
from coursepulse.settings import Settings
from coursepulse.web.graphql_view import CoursepulseGraphQLView
from coursepulse.web.keys import BROKER
from coursepulse.web.next_frames import next_head, websocket_frame
from coursepulse.web.revocation import ACCESS
from coursepulse.web.ws_protocols import WS_QUOTA
from tests.conftest import Account, School, graphql, make_course, make_user

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]
#: Seconds a test waits for something that should happen at once.
WAIT = 10.0
T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

EVENT_FIELDS = """
    id kind occurredAt courseId userId lessonId
    progressPercentage completedLessons totalLessons
"""
PROGRESS_UPDATED = f"""
subscription ProgressUpdated($courseId: ID!, $after: ID) {{
  progressUpdated(courseId: $courseId, after: $after) {{ {EVENT_FIELDS} }}
}}
"""
COURSE_ACTIVITY = f"""
subscription CourseActivity($courseId: ID!, $after: ID) {{
  courseActivity(courseId: $courseId, after: $after) {{ {EVENT_FIELDS} }}
}}
"""
ENROLL = """
mutation Enroll($courseId: ID!) { enroll(courseId: $courseId) { message } }
"""
COMPLETE_LESSON = """
mutation CompleteLesson($courseId: ID!, $lessonId: ID!) {
  completeLesson(courseId: $courseId, lessonId: $lessonId) {
    alreadyCompleted progressPercentage
  }
}
"""
INCOMPLETE_LESSON = """
mutation IncompleteLesson($courseId: ID!, $lessonId: ID!) {
  incompleteLesson(courseId: $courseId, lessonId: $lessonId) { progressPercentage }
}
"""
UNENROLL = """
mutation Unenroll($courseId: ID!) { unenroll(courseId: $courseId) { message } }
"""
RECORD_ACTIVITY = """
mutation RecordActivity($courseId: ID!, $seconds: Int!) {
  recordActivity(courseId: $courseId, seconds: $seconds) { timeSpentSeconds }
}
"""


# ---- asyncio debug: no task may fail unnoticed --------------------------------------------


def _abandoned_sqlite_close(context: dict[str, Any]) -> bool:
    """SQLAlchemy's own leftover when a query on aiosqlite is cancelled mid-flight.

    A subscription closed while its stream reads the log (client gone, server shutting
    down) cancels the query; SQLAlchemy then invalidates the connection, tries a graceful
    close under `asyncio.shield`, and on the cancellation force-stops aiosqlite's thread,
    abandoning that close task (sqlalchemy.connectors.asyncio.AsyncAdapt_terminate). It is
    pending, not failed, and it is not ours.
    """
    task = context.get("task")
    return (
        context.get("message") == "Task was destroyed but it is pending!"
        and isinstance(task, asyncio.Task)
        and task.get_coro().__qualname__.endswith("._terminate_graceful_close")
    )


@pytest.fixture(autouse=True)
async def _asyncio_debug() -> AsyncIterator[None]:
    """Debug mode, and fail on any error the loop reports (e.g. an unretrieved task exception).

    Autouse and dependency-free, so it is set up first and torn down last, after the app.
    """
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    reports: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()

    def record(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        loop.default_exception_handler(context)
        if not _abandoned_sqlite_close(context):
            reports.append(context)

    loop.set_exception_handler(record)
    # Older objects are left out of the collection below, which then only looks at this test's.
    gc.freeze()
    try:
        yield
        gc.collect()  # an unreferenced failed task reports itself when collected
        await asyncio.sleep(0)
    finally:
        gc.unfreeze()
    loop.set_exception_handler(previous)
    assert [report.get("message") for report in reports] == []


# ---- helpers ------------------------------------------------------------------------------


def ws_url(client: TestClient) -> str:
    return f"ws://127.0.0.1:{client.server.port}/graphql"


def basic_header(account: Account) -> str:
    return account.auth["Authorization"]


def base64_of(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def mutate(
    client: TestClient, document: str, account: Account, **variables: Any
) -> dict[str, Any]:
    body = await graphql(client, document, variables, as_=account)
    assert "errors" not in body, body
    return body["data"]


async def enroll(client: TestClient, school: School, *students: Account) -> None:
    for student in students:
        await mutate(client, ENROLL, student, courseId=str(school.course_id))


async def complete(client: TestClient, school: School, student: Account, lesson: int) -> None:
    await mutate(
        client,
        COMPLETE_LESSON,
        student,
        courseId=str(school.course_id),
        lessonId=str(school.lesson_ids[lesson]),
    )


async def last_event_id(db: Database) -> int:
    async with db.read() as tx:
        return int(await tx.scalar(select(func.coalesce(func.max(ProgressEvent.id), 0))))


async def until(condition: Callable[[], bool]) -> None:
    """Wait (a bounded time) for a condition the test cannot await directly."""
    async with asyncio.timeout(WAIT):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def course_is_followed(app: web.Application, course_id: int) -> None:
    """Wait until this process follows the course (its first subscription is registered)."""
    feeds = app[BROKER].feeds
    await until(lambda: course_id in feeds.course_ids)


def followers(app: web.Application, course_id: int) -> int:
    """Live subscriptions this process has on the course."""
    feed = app[BROKER].feeds._feeds.get(course_id)
    return len(feed.subscriptions) if feed is not None else 0


async def read_until_error(
    read: Callable[[], Awaitable[T]], error_type: type[E]
) -> tuple[list[T], E]:
    """Everything a stream delivers before it ends with `error_type`."""
    items: list[T] = []
    while True:
        try:
            items.append(await read())
        except error_type as error:
            return items, error


class Stream:
    """One gql subscription, consumed in the background so a test can await its events."""

    def __init__(self, session: Any, document: str, variables: dict[str, Any]) -> None:
        self._results: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()
        request = GraphQLRequest(document, variable_values=variables)
        self._task = asyncio.create_task(self._consume(session, request))

    async def _consume(self, session: Any, request: GraphQLRequest) -> None:
        try:
            async for result in session.subscribe(request):
                await self._results.put(result)
        except Exception as error:  # handed to the test, which re-raises it
            await self._results.put(error)

    async def next(self) -> dict[str, Any]:
        """The next event (the field's value); raises what the subscription raised."""
        async with asyncio.timeout(WAIT):
            result = await self._results.get()
        if isinstance(result, BaseException):
            raise result
        (event,) = result.values()
        return event

    async def error(self) -> TransportQueryError:
        """The error that ended the subscription."""
        with pytest.raises(TransportQueryError) as caught:
            await self.next()
        return caught.value

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class LiveClient:
    """A gql websocket client speaking one protocol, authenticated in connection_init."""

    def __init__(
        self,
        url: str,
        protocol: str,
        *,
        account: Account | None = None,
        init_payload: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if init_payload is None:
            init_payload = {"Authorization": basic_header(account)} if account else {}
        self.client = Client(
            transport=WebsocketsTransport(
                url=url,
                subprotocols=[protocol],
                init_payload=init_payload,
                headers=headers,
            )
        )
        self.streams: list[Stream] = []

    async def __aenter__(self) -> "LiveClient":
        self.session = await self.client.connect_async()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for stream in self.streams:
            await stream.close()
        await self.client.close_async()

    def subscribe(self, document: str, **variables: Any) -> Stream:
        stream = Stream(self.session, document, variables)
        self.streams.append(stream)
        return stream


async def follow(live: LiveClient, document: str, course_id: int, after: int) -> Stream:
    """Subscribe with `after` one below a known event and wait for it: the stream is live."""
    stream = live.subscribe(document, courseId=str(course_id), after=str(after - 1))
    replayed = await stream.next()
    assert int(replayed["id"]) == after
    return stream


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


class RawSocket:
    """Hand-written frames of either protocol, for what a test must see on the wire."""

    def __init__(self, websocket: aiohttp.ClientWebSocketResponse, protocol: str) -> None:
        self.websocket = websocket
        self.protocol = protocol

    async def send(self, message: dict[str, Any]) -> None:
        await self.websocket.send_str(json.dumps(message))

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.send({"type": "connection_init", "payload": payload or {}})
        return await self.receive()

    async def subscribe(self, operation_id: str, document: str, **variables: Any) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": document, "variables": variables}
        await self.send({"type": kind, "id": operation_id, "payload": payload})

    async def receive(self) -> dict[str, Any]:
        """The next protocol message (keep-alives skipped); CLOSE frames are returned as is."""
        while True:
            async with asyncio.timeout(WAIT):
                frame = await self.websocket.receive()
            if frame.type != WSMsgType.TEXT:
                return {"type": "websocket", "frame": frame.type, "code": frame.data}
            message = json.loads(frame.data)
            if message["type"] in ("ka", "pong"):
                continue
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            return message

    async def next_event(self) -> dict[str, Any]:
        message = await self.receive()
        assert message["type"] in ("next", "data"), message
        (event,) = message["payload"]["data"].values()
        return event


@contextlib.asynccontextmanager
async def raw_socket(
    session: aiohttp.ClientSession, url: str, protocol: str, **kwargs: Any
) -> AsyncIterator[RawSocket]:
    async with session.ws_connect(url, protocols=[protocol], **kwargs) as websocket:
        assert websocket.protocol == protocol
        yield RawSocket(websocket, protocol)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# ---- delivery -----------------------------------------------------------------------------


async def test_student_sees_own_lesson_completion_made_over_http(
    client: TestClient, db: Database, school: School, protocol: str
) -> None:
    # Given John is enrolled and follows his progress from now on (no `after`)
    await enroll(client, school, school.student)
    async with LiveClient(ws_url(client), protocol, account=school.student) as live:
        stream = live.subscribe(PROGRESS_UPDATED, courseId=str(school.course_id))
        await course_is_followed(client.server.app, school.course_id)

        # When he completes the first lesson in another tab
        await complete(client, school, school.student, 0)

        # Then his progress bar hears it, with the snapshot of his progress
        event = await stream.next()
    assert event["kind"] == "LESSON_COMPLETED"
    assert event["lessonId"] == str(school.lesson_ids[0])
    assert event["courseId"] == str(school.course_id)
    assert event["userId"] == str(school.student.id)
    assert event["progressPercentage"] == 25
    assert (event["completedLessons"], event["totalLessons"]) == (1, 4)
    assert event["occurredAt"].endswith("+00:00")
    assert int(event["id"]) == await last_event_id(db)


async def test_subscribers_with_one_document_share_one_execution_of_an_event(
    client: TestClient, db: Database, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    executed: list[int] = []
    execute = Executor.execute_operation

    def counting(self: Executor, serially: bool | None = None) -> Any:
        if isinstance(self.root_value, EventType):
            executed.append(int(self.root_value.id))
        return execute(self, serially)

    monkeypatch.setattr(Executor, "execute_operation", counting)
    # Given the instructor and an admin follow the course with the same document
    await enroll(client, school, school.student)
    async with (
        LiveClient(ws_url(client), TRANSPORT_WS, account=school.instructor) as first,
        LiveClient(ws_url(client), TRANSPORT_WS, account=school.admin) as second,
    ):
        one = first.subscribe(COURSE_ACTIVITY, courseId=str(school.course_id))
        two = second.subscribe(COURSE_ACTIVITY, courseId=str(school.course_id))
        await until(lambda: followers(client.server.app, school.course_id) == 2)

        # When a lesson is completed
        await complete(client, school, school.student, 0)

        # Then both get the same answer, executed once for both
        heard = [await one.next(), await two.next()]
    event_id = await last_event_id(db)
    assert heard[0] == heard[1]
    assert int(heard[0]["id"]) == event_id
    assert executed == [event_id]
    payload = client.server.app[BROKER].feeds.shared[event_id]
    assert len(payload.shared_results) == 1


async def test_instructor_sees_every_students_events_in_order(
    client: TestClient, school: School, protocol: str
) -> None:
    # Given John and Jane are enrolled and the instructor watches the course
    await enroll(client, school, school.student, school.other_student)
    async with LiveClient(ws_url(client), protocol, account=school.instructor) as live:
        stream = live.subscribe(COURSE_ACTIVITY, courseId=str(school.course_id))
        await course_is_followed(client.server.app, school.course_id)

        # When each completes a lesson, and Jane leaves the course
        await complete(client, school, school.student, 0)
        await complete(client, school, school.other_student, 2)
        await mutate(client, UNENROLL, school.other_student, courseId=str(school.course_id))

        # Then the dashboard hears all of it, in the order it happened
        events = [await stream.next() for _ in range(3)]
    assert [(e["kind"], e["userId"], e["lessonId"]) for e in events] == [
        ("LESSON_COMPLETED", str(school.student.id), str(school.lesson_ids[0])),
        ("LESSON_COMPLETED", str(school.other_student.id), str(school.lesson_ids[2])),
        ("UNENROLLED", str(school.other_student.id), None),
    ]
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(set(ids))


async def test_admin_follows_course_activity_and_sees_course_completion(
    client: TestClient, db: Database, school: School
) -> None:
    await enroll(client, school, school.student)
    async with LiveClient(ws_url(client), TRANSPORT_WS, account=school.admin) as live:
        stream = await follow(live, COURSE_ACTIVITY, school.course_id, await last_event_id(db))
        for lesson in range(4):
            await complete(client, school, school.student, lesson)
        events = [await stream.next() for _ in range(5)]
    assert [e["kind"] for e in events] == ["LESSON_COMPLETED"] * 4 + ["COURSE_COMPLETED"]
    assert [e["progressPercentage"] for e in events] == [25, 50, 75, 100, 100]


async def test_resume_after_disconnect_replays_exactly_the_missed_events_then_live_ones(
    client: TestClient, db: Database, school: School, protocol: str
) -> None:
    course = str(school.course_id)
    await enroll(client, school, school.other_student, school.student)
    url = ws_url(client)

    # Given John's progress bar received an event, then lost its connection
    async with LiveClient(url, protocol, account=school.student) as live:
        stream = await follow(live, PROGRESS_UPDATED, school.course_id, await last_event_id(db))
        await complete(client, school, school.student, 0)
        seen = await stream.next()
    assert (seen["kind"], seen["lessonId"]) == ("LESSON_COMPLETED", str(school.lesson_ids[0]))

    # When three of his changes happen while it is away (and one of Jane's)
    await complete(client, school, school.student, 1)
    await complete(client, school, school.other_student, 0)
    await mutate(
        client,
        INCOMPLETE_LESSON,
        school.student,
        courseId=course,
        lessonId=str(school.lesson_ids[1]),
    )
    await mutate(client, RECORD_ACTIVITY, school.student, courseId=course, seconds=60)

    # Then reconnecting with `after` replays exactly his three, in order
    async with LiveClient(url, protocol, account=school.student) as live:
        stream = live.subscribe(PROGRESS_UPDATED, courseId=course, after=seen["id"])
        missed = [await stream.next() for _ in range(3)]
        assert [(e["kind"], e["lessonId"], e["progressPercentage"]) for e in missed] == [
            ("LESSON_COMPLETED", str(school.lesson_ids[1]), 50),
            ("LESSON_INCOMPLETED", str(school.lesson_ids[1]), 25),
            ("ACTIVITY", None, 25),
        ]
        assert {e["userId"] for e in missed} == {str(school.student.id)}

        # And then streams live ones, with nothing repeated at the seam
        await complete(client, school, school.student, 2)
        live_event = await stream.next()
    assert (live_event["kind"], live_event["lessonId"]) == (
        "LESSON_COMPLETED",
        str(school.lesson_ids[2]),
    )
    ids = [int(seen["id"])] + [int(e["id"]) for e in missed] + [int(live_event["id"])]
    assert ids == sorted(set(ids))


# ---- access control ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "protocol"),
    [("student", TRANSPORT_WS), ("student", LEGACY_WS), ("other_instructor", TRANSPORT_WS)],
)
async def test_only_course_staff_may_follow_course_activity(
    client: TestClient, db: Database, school: School, protocol: str, who: str
) -> None:
    account = school.student
    if who == "other_instructor":
        account = await make_user(db, "other_teacher", role=Role.INSTRUCTOR)
        await make_course(db, account, title="Another course")
    await enroll(client, school, school.student)
    async with LiveClient(ws_url(client), protocol, account=account) as live:
        error = await live.subscribe(COURSE_ACTIVITY, courseId=str(school.course_id)).error()
    assert [e["extensions"]["code"] for e in error.errors or []] == ["forbidden"]


async def test_progress_updated_never_carries_another_students_events(
    client: TestClient, school: School, protocol: str
) -> None:
    # Given John and Jane are in the same course, and John follows his progress
    await enroll(client, school, school.student, school.other_student)
    async with LiveClient(ws_url(client), protocol, account=school.student) as live:
        stream = live.subscribe(PROGRESS_UPDATED, courseId=str(school.course_id))
        await course_is_followed(client.server.app, school.course_id)

        # When Jane completes a lesson, and then John does
        await complete(client, school, school.other_student, 0)
        await mutate(
            client, RECORD_ACTIVITY, school.other_student, courseId=str(school.course_id), seconds=5
        )
        await complete(client, school, school.student, 3)

        # Then John's first event is his own: Jane's never reached him
        event = await stream.next()
    assert (event["userId"], event["lessonId"]) == (
        str(school.student.id),
        str(school.lesson_ids[3]),
    )


async def test_anonymous_subscriber_is_unauthenticated(
    client: TestClient, school: School, protocol: str
) -> None:
    async with LiveClient(ws_url(client), protocol) as live:
        error = await live.subscribe(PROGRESS_UPDATED, courseId=str(school.course_id)).error()
    assert [e["extensions"]["code"] for e in error.errors or []] == ["unauthenticated"]


async def test_bad_credentials_in_connection_init_close_transport_ws_with_4403(
    client: TestClient, http: aiohttp.ClientSession, school: School
) -> None:
    wrong = {"Authorization": f"Basic {base64_of('john_doe:wrong password')}"}
    async with raw_socket(http, ws_url(client), TRANSPORT_WS) as socket:
        answer = await socket.init(wrong)
        assert answer == {"type": "websocket", "frame": WSMsgType.CLOSE, "code": 4403}


async def test_bad_credentials_in_connection_init_get_connection_error_on_graphql_ws(
    client: TestClient, http: aiohttp.ClientSession, school: School
) -> None:
    wrong = {"authorization": f"Basic {base64_of('john_doe:wrong password')}"}
    async with raw_socket(http, ws_url(client), LEGACY_WS) as socket:
        answer = await socket.init(wrong)
        assert answer["type"] == "connection_error"
        assert answer["payload"]["code"] == "invalid_credentials"
        closed = await socket.receive()
        assert closed["frame"] == WSMsgType.CLOSE


async def test_gql_client_is_refused_with_bad_credentials(
    client: TestClient, school: School, protocol: str
) -> None:
    wrong = {"Authorization": "Bearer not-a-token"}
    live = LiveClient(ws_url(client), protocol, init_payload=wrong)
    with pytest.raises(TransportError) as refused:
        await live.__aenter__()
    await live.client.close_async()
    if protocol == LEGACY_WS:
        # connection_error, with our error's code as its payload
        assert isinstance(refused.value, TransportServerError)
        assert "invalid_credentials" in str(refused.value)
    else:
        # the socket is closed with 4403 Forbidden
        assert isinstance(refused.value, TransportConnectionFailed)
        closed = refused.value.__cause__
        assert isinstance(closed, ConnectionClosed)
        assert closed.rcvd is not None
        assert closed.rcvd.code == 4403


@pytest.mark.parametrize(
    ("key", "protocol"), [("authorization", TRANSPORT_WS), ("AUTHORIZATION", LEGACY_WS)]
)
async def test_authorization_key_of_connection_init_is_case_insensitive(
    client: TestClient, db: Database, school: School, key: str, protocol: str
) -> None:
    await enroll(client, school, school.student)
    payload = {key: basic_header(school.student)}
    async with LiveClient(ws_url(client), protocol, init_payload=payload) as live:
        stream = await follow(live, PROGRESS_UPDATED, school.course_id, await last_event_id(db))
        await complete(client, school, school.student, 0)
        event = await stream.next()
    assert event["userId"] == str(school.student.id)


async def test_upgrade_request_headers_authenticate_without_connection_params(
    client: TestClient, db: Database, school: School
) -> None:
    await enroll(client, school, school.student)
    async with LiveClient(ws_url(client), TRANSPORT_WS, headers=school.instructor.auth) as live:
        stream = await follow(live, COURSE_ACTIVITY, school.course_id, await last_event_id(db))
        await complete(client, school, school.student, 1)
        event = await stream.next()
    assert (event["kind"], event["userId"]) == ("LESSON_COMPLETED", str(school.student.id))


async def test_websocket_origins_are_the_cors_setting(
    client: TestClient, http: aiohttp.ClientSession
) -> None:
    # The SPA's origin (settings.allowed_origins) may open a websocket...
    async with raw_socket(http, ws_url(client), TRANSPORT_WS, origin="http://spa.example") as ok:
        assert (await ok.init())["type"] == "connection_ack"
    # ...a page on a foreign origin may not
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(
            ws_url(client), protocols=[TRANSPORT_WS], origin="http://evil.example"
        )
    assert refused.value.status == 403


# ---- no events for no-ops ----------------------------------------------------------------


async def test_completing_a_completed_lesson_delivers_nothing(
    client: TestClient, db: Database, school: School
) -> None:
    course = str(school.course_id)
    await enroll(client, school, school.student)
    async with LiveClient(ws_url(client), TRANSPORT_WS, account=school.student) as live:
        stream = await follow(live, PROGRESS_UPDATED, school.course_id, await last_event_id(db))
        await complete(client, school, school.student, 0)
        assert (await stream.next())["lessonId"] == str(school.lesson_ids[0])

        # When the lesson is completed again, and a lesson never completed is "incompleted"
        again = await mutate(
            client,
            COMPLETE_LESSON,
            school.student,
            courseId=course,
            lessonId=str(school.lesson_ids[0]),
        )
        assert again["completeLesson"]["alreadyCompleted"] is True
        await mutate(
            client,
            INCOMPLETE_LESSON,
            school.student,
            courseId=course,
            lessonId=str(school.lesson_ids[3]),
        )
        # and then a real change happens
        await complete(client, school, school.student, 1)

        # Then the next event is the real change: the no-ops produced nothing
        event = await stream.next()
    assert (event["kind"], event["lessonId"]) == ("LESSON_COMPLETED", str(school.lesson_ids[1]))


async def test_activity_heartbeats_within_30_seconds_make_one_event(
    client: TestClient, db: Database, school: School
) -> None:
    course = str(school.course_id)
    await enroll(client, school, school.student)
    async with LiveClient(ws_url(client), LEGACY_WS, account=school.instructor) as live:
        stream = await follow(live, COURSE_ACTIVITY, school.course_id, await last_event_id(db))
        first = await mutate(client, RECORD_ACTIVITY, school.student, courseId=course, seconds=20)
        second = await mutate(client, RECORD_ACTIVITY, school.student, courseId=course, seconds=20)
        await complete(client, school, school.student, 0)
        events = [await stream.next(), await stream.next()]
    # Both heartbeats count as study time...
    assert first["recordActivity"]["timeSpentSeconds"] == 20
    assert second["recordActivity"]["timeSpentSeconds"] == 40
    # ...but subscribers hear one ACTIVITY event, then the next real change
    assert [e["kind"] for e in events] == ["ACTIVITY", "LESSON_COMPLETED"]


# ---- slow consumers ------------------------------------------------------------------------


async def complete_in_one_transaction(
    db: Database, school: School, student: Account, lessons: range
) -> None:
    """Several completions committed together: one burst of events."""
    async with db.write() as tx:
        for lesson in lessons:
            await completions.complete_lesson(
                tx, student.viewer, school.course_id, school.lesson_ids[lesson]
            )


async def test_feed_overflow_asks_to_resume_from_the_last_delivered_event_without_a_gap(
    db: Database, school: School
) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
    feeds = Feeds(db, buffer=2)
    # Given a live subscription (no `after`) with room for 2 waiting events...
    stream = LiveStream(db, feeds, school.course_id, after=None, user_id=None)
    first = asyncio.ensure_future(anext(stream))
    try:
        await until(lambda: school.course_id in feeds.course_ids)
        # ...which received one event
        await complete_in_one_transaction(db, school, school.student, range(1))
        feeds.wake({school.course_id})
        delivered = [await first]
        assert delivered[0].lesson_id == school.lesson_ids[0]

        # When 4 events land at once (3 lessons and the course completion)
        await complete_in_one_transaction(db, school, school.student, range(1, 4))
        feeds.wake({school.course_id})

        # Then it gets what fits and is told to resume after the last event it got
        async with asyncio.timeout(WAIT):
            more, overflow = await read_until_error(lambda: anext(stream), ResumeRequired)
        delivered += more
    finally:
        first.cancel()
        await stream.aclose()
    resume_after = overflow.extra["last_event_id"]
    assert resume_after == str(delivered[-1].id)

    # And resuming from there yields every event it missed: none is lost
    resumed = LiveStream(db, feeds, school.course_id, after=int(resume_after), user_id=None)
    try:
        async with asyncio.timeout(WAIT):
            while len(delivered) < 5:
                delivered.append(await anext(resumed))
    finally:
        await resumed.aclose()
        await feeds.close()
    assert [event.kind for event in delivered] == [
        *[ProgressEventKind.LESSON_COMPLETED] * 4,
        ProgressEventKind.COURSE_COMPLETED,
    ]
    assert [event.lesson_id for event in delivered[:4]] == school.lesson_ids
    ids = [event.id for event in delivered]
    assert ids == sorted(set(ids))


async def test_overflow_before_any_delivery_resumes_from_where_the_subscription_started(
    db: Database, school: School
) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
    before_subscribing = await last_event_id(db)
    feeds = Feeds(db, buffer=1)
    stream = LiveStream(db, feeds, school.course_id, after=None, user_id=None)
    first = asyncio.ensure_future(anext(stream))
    try:
        await until(lambda: school.course_id in feeds.course_ids)
        await complete_in_one_transaction(db, school, school.student, range(2))
        feeds.wake({school.course_id})
        with pytest.raises(ResumeRequired) as overflow:
            await asyncio.wait_for(first, WAIT)
    finally:
        await stream.aclose()
        await feeds.close()
    assert overflow.value.extra["last_event_id"] == str(before_subscribing)


async def test_slow_subscriber_gets_resume_required_and_loses_nothing_by_resuming(
    serve: Any, settings: Settings, db: Database, school: School
) -> None:
    client = await serve(settings.model_copy(update={"subscription_buffer": 3}))
    course = str(school.course_id)
    await enroll(client, school, school.student)
    async with LiveClient(ws_url(client), TRANSPORT_WS, account=school.instructor) as live:
        # Given a dashboard following the course live, with room for 3 waiting events
        stream = live.subscribe(COURSE_ACTIVITY, courseId=course)
        await course_is_followed(client.server.app, school.course_id)
        await complete(client, school, school.student, 0)
        delivered = [await stream.next()]

        # When a burst of 4 events (3 lessons, then the course) exceeds that buffer
        await complete_in_one_transaction(db, school, school.student, range(1, 4))

        # Then the subscription ends with resume_required and the last id it delivered
        more, overflow = await read_until_error(stream.next, TransportQueryError)
        delivered += more
        (error,) = overflow.errors or []
        assert error["extensions"]["code"] == "resume_required"
        assert error["extensions"]["lastEventId"] == delivered[-1]["id"]

        # And resuming with `after` on the same connection delivers the rest, in order
        resumed = live.subscribe(
            COURSE_ACTIVITY, courseId=course, after=error["extensions"]["lastEventId"]
        )
        while len(delivered) < 5:
            delivered.append(await resumed.next())
    assert [e["kind"] for e in delivered] == ["LESSON_COMPLETED"] * 4 + ["COURSE_COMPLETED"]
    assert [e["lessonId"] for e in delivered[:4]] == [str(id_) for id_ in school.lesson_ids]
    ids = [int(e["id"]) for e in delivered]
    assert ids == sorted(set(ids))


# ---- PostgreSQL listener connection -------------------------------------------------------


async def test_lost_listener_connection_reconnects_and_catches_up_from_the_log(
    client: TestClient, db: Database, school: School
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite uses the in-process broker")
    broker = client.server.app[BROKER]
    database = db.url.database
    await enroll(client, school, school.student)
    # The service's pools hold their connections once used (the completion's own too).
    await complete(client, school, school.student, 2)
    async with LiveClient(ws_url(client), TRANSPORT_WS, account=school.instructor) as live:
        stream = await follow(live, COURSE_ACTIVITY, school.course_id, await last_event_id(db))
        # Connections to our database cannot be refused from inside it: act from another one.
        admin_engine = schema_engine(db.url.set(database="postgres").render_as_string(False))
        async with admin_engine.connect() as admin:
            await admin.execution_options(isolation_level="AUTOCOMMIT")
            listener = await admin.scalar(
                text(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = :database AND query LIKE 'LISTEN%'"
                ),
                {"database": database},
            )
            assert listener is not None
            try:
                # Given the listener's connection is killed and cannot come back yet
                await admin.exec_driver_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
                await admin.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": listener})
                await until(lambda: not broker.connected.is_set())

                # When a lesson is completed while nobody in this process listens
                await complete(client, school, school.student, 0)
            finally:
                await admin.exec_driver_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin_engine.dispose()

        # Then, once reconnected, the subscriber gets it from the log
        missed = await stream.next()
        assert (missed["kind"], missed["lessonId"]) == (
            "LESSON_COMPLETED",
            str(school.lesson_ids[0]),
        )
        # And live notifications flow again on the new connection
        await complete(client, school, school.student, 1)
        again = await stream.next()
    assert (again["kind"], again["lessonId"]) == ("LESSON_COMPLETED", str(school.lesson_ids[1]))


# ---- connection lifecycle ----------------------------------------------------------------


def feed_tasks() -> list[str]:
    return [
        task.get_name()
        for task in asyncio.all_tasks()
        if task.get_name().startswith(("course-feed-", "postgres-listener")) and not task.done()
    ]


async def test_shutdown_closes_websockets_with_1001_and_stops_feed_tasks(
    serve: Any,
    settings: Settings,
    db: Database,
    school: School,
    http: aiohttp.ClientSession,
    protocol: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await serve(settings)
    await enroll(client, school, school.student)
    enrolled = await last_event_id(db)
    async with raw_socket(http, ws_url(client), protocol) as socket:
        assert (await socket.init({"Authorization": basic_header(school.student)}))[
            "type"
        ] == "connection_ack"
        await socket.subscribe(
            "1", PROGRESS_UPDATED, courseId=str(school.course_id), after=str(enrolled - 1)
        )
        assert int((await socket.next_event())["id"]) == enrolled
        assert feed_tasks()

        # When the server shuts down with a live subscription open
        caplog.clear()
        await client.close()

        # Then the client is told the server is going away, and no feed task is left behind
        closed = await socket.receive()
        assert (closed["frame"], closed["code"]) == (WSMsgType.CLOSE, 1001)
    assert feed_tasks() == []
    await asyncio.sleep(0.1)  # the driver reports a closed connection to listeners soon after
    # A clean shutdown is not reported as a lost listener connection
    assert [r.message for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_server_pings_websockets_so_dead_peers_are_dropped(
    serve: Any, settings: Settings, http: aiohttp.ClientSession
) -> None:
    client = await serve(settings.model_copy(update={"ws_heartbeat_seconds": 0.2}))
    async with http.ws_connect(ws_url(client), protocols=[TRANSPORT_WS], autoping=False) as ws:
        async with asyncio.timeout(WAIT):
            frame = await ws.receive()
        assert frame.type == WSMsgType.PING
        # A peer that never answers is closed after the heartbeat's grace
        async with asyncio.timeout(WAIT):
            while frame.type not in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                frame = await ws.receive()


async def test_client_that_never_sends_connection_init_is_closed_with_4408(
    serve: Any, settings: Settings, http: aiohttp.ClientSession
) -> None:
    client = await serve(settings.model_copy(update={"ws_init_timeout_seconds": 0.2}))
    async with raw_socket(http, ws_url(client), TRANSPORT_WS) as socket:
        closed = await socket.receive()
    assert (closed["frame"], closed["code"]) == (WSMsgType.CLOSE, 4408)


# ---- idle subscriptions -------------------------------------------------------------------

ACTIVITY_KINDS = """
subscription Kinds($courseId: ID!, $after: ID) {
  courseActivity(courseId: $courseId, after: $after) { id kind }
}
"""
ACTIVITY_LESSONS = """
subscription Lessons($courseId: ID!, $after: ID) {
  courseActivity(courseId: $courseId, after: $after) { id lessonId }
}
"""


def operation_tasks() -> list[str]:
    """The running tasks that serve websocket operations (run one, or deliver to one)."""
    names = [task.get_coro().__qualname__ for task in asyncio.all_tasks() if not task.done()]
    return [name for name in names if name.endswith(("run_operation", "._deliver"))]


async def test_idle_subscriptions_wait_without_a_task_and_each_gets_its_own_selection(
    client: TestClient, db: Database, school: School, http: aiohttp.ClientSession
) -> None:
    app = client.server.app
    await enroll(client, school, school.student)
    enrolled = await last_event_id(db)
    course = str(school.course_id)
    async with raw_socket(http, ws_url(client), TRANSPORT_WS) as socket:
        ack = await socket.init({"Authorization": basic_header(school.instructor)})
        assert ack["type"] == "connection_ack"
        # Given a dashboard following the course twice on one socket, with two selections
        for operation_id, document in (("kinds", ACTIVITY_KINDS), ("lessons", ACTIVITY_LESSONS)):
            await socket.subscribe(operation_id, document, courseId=course, after=str(enrolled - 1))
        replayed = {message["id"] for message in [await socket.receive(), await socket.receive()]}
        assert replayed == {"kinds", "lessons"}

        # When both wait for the next event, no task is kept for them
        await until(lambda: operation_tasks() == [])
        assert followers(app, school.course_id) == 2

        # And when a lesson is completed, each hears it with the fields it asked for
        await complete(client, school, school.student, 0)
        heard = {}
        for _ in range(2):
            message = await socket.receive()
            assert message["type"] == "next", message
            heard[message["id"]] = message["payload"]["data"]["courseActivity"]
        event_id = str(await last_event_id(db))
        assert heard == {
            "kinds": {"id": event_id, "kind": "LESSON_COMPLETED"},
            "lessons": {"id": event_id, "lessonId": str(school.lesson_ids[0])},
        }
        await until(lambda: operation_tasks() == [])

        # When one is completed, it is no longer followed; the other goes on
        await socket.send({"type": "complete", "id": "kinds"})
        await until(lambda: followers(app, school.course_id) == 1)
        await complete(client, school, school.student, 1)
        message = await socket.receive()
        assert (message["type"], message["id"]) == ("next", "lessons")
        assert message["payload"]["data"]["courseActivity"]["lessonId"] == str(school.lesson_ids[1])
    # And once the socket closes, nothing of it is left: no follower, no grant, no place
    await until(lambda: followers(app, school.course_id) == 0)
    assert len(app[ACCESS].grants) == 0
    assert not app[WS_QUOTA].operations
    assert operation_tasks() == []


async def dashboards_waiting(
    socket: Any, app: web.Application, school: School, operations: list[str]
) -> None:
    """The instructor's socket follows the course with one document per operation id,
    and every one of them waits without a task."""
    ack = await socket.init({"Authorization": basic_header(school.instructor)})
    assert ack["type"] == "connection_ack"
    for operation_id in operations:
        await socket.subscribe(operation_id, ACTIVITY_KINDS, courseId=str(school.course_id))
    await until(lambda: followers(app, school.course_id) == len(operations))
    await until(lambda: operation_tasks() == [])


async def test_an_event_reaches_its_idle_subscribers_without_a_task_each(
    client: TestClient,
    db: Database,
    school: School,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = client.server.app
    strawberry_sends: list[str] = []
    send_next = Operation.send_next

    async def counted_send(operation: Operation[Any, Any], result: Any) -> None:
        strawberry_sends.append(operation.id)
        await send_next(operation, result)

    monkeypatch.setattr(Operation, "send_next", counted_send)
    writer_frames: list[bytes] = []
    send_frame = WebSocketWriter.send_frame

    async def counted_frame(
        writer: WebSocketWriter, message: bytes, *args: Any, **kwargs: Any
    ) -> None:
        if b'"type":"next"' in message:
            writer_frames.append(message)
        await send_frame(writer, message, *args, **kwargs)

    monkeypatch.setattr(WebSocketWriter, "send_frame", counted_frame)
    await enroll(client, school, school.student)
    operations = [f"dashboard{number}" for number in range(20)]
    loop = asyncio.get_running_loop()
    created: list[str] = []
    async with raw_socket(http, ws_url(client), TRANSPORT_WS) as socket:
        # Given twenty dashboards following the course with one document, all waiting
        await dashboards_waiting(socket, app, school, operations)
        factory = loop.get_task_factory()

        def counted(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            created.append(coro.__qualname__)
            if factory is None:
                return asyncio.Task(coro, loop=loop, **kwargs)
            return factory(loop, coro, **kwargs)

        # When a lesson is completed
        loop.set_task_factory(counted)
        try:
            await complete(client, school, school.student, 0)
            heard = [await socket.receive() for _ in operations]
        finally:
            loop.set_task_factory(factory)
    # Then each hears it, with one task executing it for the document and one sending it
    # to the others, not a task each
    assert sorted(message["id"] for message in heard) == sorted(operations)
    assert {message["type"] for message in heard} == {"next"}
    assert {message["payload"]["data"]["courseActivity"]["kind"] for message in heard} == {
        "LESSON_COMPLETED"
    }
    delivering = [name for name in created if name.endswith("._deliver")]
    assert sorted(delivering) == ["Deliveries._deliver", "ParkingTransportWSHandler._deliver"]
    # and only the one that executed it goes through Strawberry's sending layers: the
    # others are sent the frame made from the JSON they share
    assert len(strawberry_sends) == 1
    # ...and aiohttp's writer: the others' frames are written to their socket at once
    assert len(writer_frames) == 1


async def test_a_burst_of_events_reaches_each_idle_subscriber_in_order(
    client: TestClient, db: Database, school: School, http: aiohttp.ClientSession
) -> None:
    app = client.server.app
    await enroll(client, school, school.student)
    operations = [f"dashboard{number}" for number in range(10)]
    async with raw_socket(http, ws_url(client), TRANSPORT_WS) as socket:
        # Given ten dashboards following the course with one document, all waiting
        await dashboards_waiting(socket, app, school, operations)
        before = await last_event_id(db)

        # When three lessons are completed in one transaction (the events wait together)
        await complete_in_one_transaction(db, school, school.student, range(3))
        app[BROKER].feeds.wake({school.course_id})
        heard: dict[str, list[str]] = {operation_id: [] for operation_id in operations}
        for _ in range(3 * len(operations)):
            message = await socket.receive()
            assert message["type"] == "next", message
            heard[message["id"]].append(message["payload"]["data"]["courseActivity"]["id"])
        # Then each hears all three, once each and in order
        burst = [str(event_id) for event_id in range(before + 1, before + 4)]
        assert heard == {operation_id: burst for operation_id in operations}
        await until(lambda: operation_tasks() == [])

        # And each waits for the next event again: the last lesson and the course's completion
        await complete(client, school, school.student, 3)
        after: dict[str, list[str]] = {operation_id: [] for operation_id in operations}
        for _ in range(2 * len(operations)):
            message = await socket.receive()
            after[message["id"]].append(message["payload"]["data"]["courseActivity"]["kind"])
        assert after == {
            operation_id: ["LESSON_COMPLETED", "COURSE_COMPLETED"] for operation_id in operations
        }


async def test_a_delivery_that_fails_ends_its_operation_alone(
    client: TestClient,
    school: School,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = client.server.app
    next_rest = CoursepulseGraphQLView.next_rest
    failures = []

    def fails_once(view: CoursepulseGraphQLView, data: Any) -> bytes:
        if not failures:
            failures.append(data)
            raise RuntimeError("the result could not be encoded")
        return next_rest(view, data)

    monkeypatch.setattr(CoursepulseGraphQLView, "next_rest", fails_once)
    await enroll(client, school, school.student)
    operations = [f"dashboard{number}" for number in range(5)]
    async with raw_socket(http, ws_url(client), TRANSPORT_WS) as socket:
        # Given five dashboards waiting for the course's next event
        await dashboards_waiting(socket, app, school, operations)
        # When delivering it to one of them fails unexpectedly
        await complete(client, school, school.student, 0)
        heard = [await socket.receive() for _ in operations]
        assert len(failures) == 1
        # Then that operation ends (and the error is logged); the others get the event
        ended = [message["id"] for message in heard if message["type"] == "complete"]
        assert len(ended) == 1
        assert sorted(message["id"] for message in heard if message["type"] == "next") == sorted(
            set(operations) - set(ended)
        )
        assert "the result could not be encoded" in caplog.text
        # And the others go on waiting for the next one
        await until(lambda: followers(app, school.course_id) == len(operations) - 1)
        await complete(client, school, school.student, 1)
        again = [await socket.receive() for _ in range(len(operations) - 1)]
        assert {message["type"] for message in again} == {"next"}


def test_a_feed_subscription_queues_events_in_order_up_to_its_buffer() -> None:
    subscription = Subscription(course_id=1, buffer=3)
    events: list[Any] = [object() for _ in range(4)]  # the queue does not look inside
    assert (subscription.peek(), subscription.only(), subscription.take()) == (None, None, None)
    # One waiting event is the only one; with more behind it, it is not
    subscription.offer(events[0])
    assert (subscription.peek(), subscription.only()) == (events[0], events[0])
    subscription.offer(events[1])
    subscription.offer(events[2])
    assert (subscription.peek(), subscription.only()) == (events[0], None)
    # They come out oldest first, and the queue can fill up again after
    assert [subscription.take(), subscription.take()] == events[:2]
    assert subscription.only() == events[2]
    assert subscription.take() == events[2]
    assert subscription.take() is None
    for event in events[:3]:
        subscription.offer(event)
    assert not subscription.overflowed
    # One more than its buffer, and the subscriber has fallen behind: nothing is kept
    subscription.offer(events[3])
    assert subscription.overflowed
    assert subscription.only() is None
    with pytest.raises(Overflowed):
        subscription.peek()
    with pytest.raises(Overflowed):
        subscription.take()
    # A subscription without room overflows at once
    no_room = Subscription(course_id=1, buffer=0)
    no_room.offer(events[0])
    assert no_room.overflowed


# ---- many subscribers ---------------------------------------------------------------------

SUBSCRIBERS = 1000


async def test_a_thousand_subscribers_on_one_process_all_receive_the_event(
    serve: Any, settings: Settings, db: Database, school: School
) -> None:
    if db.dialect != "sqlite":
        pytest.skip("one process's fan-out does not depend on the broker: measured on SQLite")
    # One instructor account stands for a thousand viewers: its per-user limits are raised.
    limits = {"max_websockets_per_user": SUBSCRIBERS, "max_subscriptions_per_user": SUBSCRIBERS}
    client = await serve(settings.model_copy(update=limits))
    # Each subscriber holds two sockets in this process (client and server side)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 3 * SUBSCRIBERS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 3 * SUBSCRIBERS + 1000), hard))
    asyncio.get_running_loop().set_debug(False)  # debug mode's bookkeeping would skew timings
    await enroll(client, school, school.student)
    enrolled = await last_event_id(db)
    init = {
        "type": "connection_init",
        "payload": {"Authorization": basic_header(school.instructor)},
    }
    subscribe = {
        "type": "subscribe",
        "id": "1",
        "payload": {
            "query": COURSE_ACTIVITY,
            "variables": {"courseId": str(school.course_id), "after": str(enrolled - 1)},
        },
    }
    received: list[float] = []
    failures: list[BaseException] = []
    ready = asyncio.Event()
    done = asyncio.Event()
    live = 0

    async def subscriber(session: aiohttp.ClientSession) -> None:
        nonlocal live
        try:
            async with session.ws_connect(ws_url(client), protocols=[TRANSPORT_WS]) as ws:
                await ws.send_str(json.dumps(init))
                assert json.loads(await ws.receive_str())["type"] == "connection_ack"
                await ws.send_str(json.dumps(subscribe))
                replayed = json.loads(await ws.receive_str())
                assert int(replayed["payload"]["data"]["courseActivity"]["id"]) == enrolled
                live += 1
                if live == SUBSCRIBERS:
                    ready.set()
                message = json.loads(await ws.receive_str())
                received.append(time.perf_counter())
                assert message["payload"]["data"]["courseActivity"]["kind"] == "LESSON_COMPLETED"
                if len(received) == SUBSCRIBERS:
                    done.set()
                await done.wait()  # stay connected until everyone has it
        except Exception as error:
            failures.append(error)
            ready.set()
            done.set()

    connector = aiohttp.TCPConnector(limit=0)  # the default pool would cap us at 100 sockets
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        tasks = [asyncio.create_task(subscriber(session)) for _ in range(SUBSCRIBERS)]
        try:
            async with asyncio.timeout(45):
                await ready.wait()
                connected = time.perf_counter()
                assert failures == []
                # When one lesson is completed over HTTP
                sent = time.perf_counter()
                await complete(client, school, school.student, 0)
                answered = time.perf_counter()
                await done.wait()
        finally:
            done.set()
            for task in tasks:  # on failure, some may still wait for an event
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    # Then every one of the thousand subscribers received it
    assert failures == []
    assert len(received) == SUBSCRIBERS
    # Subscribers may hear it before the response reaches the client: that counts as 0 ms.
    after_response = sorted(max(0.0, t - answered) * 1000 for t in received)
    after_request = sorted((t - sent) * 1000 for t in received)
    p = statistics.quantiles
    print(
        f"\n{SUBSCRIBERS} subscribers, delivery after the mutation's response: "
        f"p50 {p(after_response, n=100)[49]:.1f} ms, p99 {p(after_response, n=100)[98]:.1f} ms; "
        f"after its request: p50 {p(after_request, n=100)[49]:.1f} ms, "
        f"p99 {p(after_request, n=100)[98]:.1f} ms; "
        f"mutation took {(answered - sent) * 1000:.1f} ms; "
        f"connecting and subscribing all took {connected - started:.1f} s"
    )


def test_next_messages_are_encoded_as_plain_json() -> None:
    view = CoursepulseGraphQLView(schema=build_schema())
    shared = {"courseActivity": {"id": "3", "kind": "LESSON_COMPLETED", "lessonId": None}}
    messages = [
        {"id": "1", "type": "next", "payload": {"data": shared}},
        {"id": 'second "tab"', "type": "next", "payload": {"data": shared}},
        {"id": "3", "type": "next", "payload": {"data": None, "errors": [{"message": "no"}]}},
        {"id": "4", "type": "complete"},
    ]
    for message in messages:
        assert view.encode_json(message) == json.dumps(message, separators=(",", ":"))


def test_a_next_frame_is_the_next_message_as_utf8() -> None:
    view = CoursepulseGraphQLView(schema=build_schema())
    shared = {
        "courseActivity": {"id": "3", "kind": "LESSON_COMPLETED", "title": "Caf\u00e9 \u2615"}
    }
    for operation_id in ("1", 'second "tab"', "\u00e9t\u00e9"):
        message = {"id": operation_id, "type": "next", "payload": {"data": shared}}
        frame = view.next_frame(operation_id, shared)
        assert frame == view.encode_json(message).encode()
        assert json.loads(frame) == message


class _Collected(asyncio.Transport):
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False


async def test_a_next_websocket_frame_is_the_frame_aiohttp_sends() -> None:
    """Fan-out writes a parked subscription's frames to the socket itself: byte for byte
    what aiohttp's writer sends for the message, at each of the three length encodings."""
    view = CoursepulseGraphQLView(schema=build_schema())
    for title_length in (0, 200, 70_000):
        shared = {"courseActivity": {"id": "3", "title": "\u00e9" * title_length}}
        for operation_id in ("1", 'second "tab"'):
            frame = websocket_frame(next_head(operation_id), view.next_rest(shared))
            transport = _Collected()
            protocol = BaseProtocol(asyncio.get_running_loop())
            writer = WebSocketWriter(protocol, transport)
            await writer.send_frame(view.next_frame(operation_id, shared), WSMsgType.TEXT)
            assert frame == bytes(transport.written)
