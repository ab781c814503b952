"""Access that ends: revoking a token, removing an instructor, changing a password or a role
takes effect at once, over HTTP (despite the credential cache) and on open websockets.

Real HTTP and real websockets (aiohttp's client, both protocols, frames on the wire);
every test runs on SQLite (in-process notices) and PostgreSQL (NOTIFY on the access
channel), and the cross-process ones on PostgreSQL only.
"""

import asyncio
import base64
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import delete, select, text, update

from coursepulse.app import create_app
from coursepulse.cli import main
from coursepulse.fanout.access import LiveGrant, LiveGrants
from coursepulse.fanout.feed import Feeds
from coursepulse.fanout.stream import LiveStream
from coursepulse.models import ApiToken, CourseInstructor, ProgressEventKind, Role
from coursepulse.models.access import AccessChange, AccessNotice
from coursepulse.models.db import Database
from coursepulse.models.migrate import schema_engine
from coursepulse.resolvers import courses, enrollments, users
from coursepulse.resolvers.errors import Forbidden, InvalidCredentials
from coursepulse.settings import Settings
from coursepulse.web.keys import BROKER
from coursepulse.web.revocation import ACCESS
from tests.conftest import PASSWORD, Account, School, error_codes, graphql, make_user
from tests.test_cli_and_schema import run_cli, succeeded
from tests.test_live import (  # the autouse fixture runs these tests in asyncio debug mode too
    COURSE_ACTIVITY,
    LEGACY_WS,
    PROGRESS_UPDATED,
    TRANSPORT_WS,
    RawSocket,
    _asyncio_debug,  # noqa: F401
    complete,
    enroll,
    last_event_id,
    raw_socket,
    until,
    ws_url,
)

OPERATIONS = Path(__file__).resolve().parents[1] / "graphql" / "operations"
# The documents clients use (graphql/operations/), run as they are.
CREATE_TOKEN = (OPERATIONS / "CreateApiToken.graphql").read_text()
REVOKE_TOKEN = (OPERATIONS / "RevokeApiToken.graphql").read_text()
MY_TOKENS = (OPERATIONS / "MyApiTokens.graphql").read_text()
CHANGE_PASSWORD = (OPERATIONS / "ChangePassword.graphql").read_text()
REMOVE_INSTRUCTOR = (OPERATIONS / "RemoveInstructor.graphql").read_text()
ADD_INSTRUCTOR = """
mutation Add($c: ID!, $u: ID!) { addInstructor(courseId: $c, userId: $u) { id } }
"""
ME = "{ me { username role } }"
NEW_PASSWORD = "a brand new passphrase"
TOKENS = ApiToken.__table__
INSTRUCTORS = CourseInstructor.__table__


# ---- helpers ------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(username: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def ok(client: TestClient, document: str, account: Account, **variables: Any) -> Any:
    body = await graphql(client, document, variables, as_=account)
    assert "errors" not in body, body
    return body["data"]


async def me_status(client: TestClient, headers: dict[str, str]) -> tuple[int, Any]:
    """The HTTP status of `{ me }` with these headers, and who it says the viewer is."""
    response = await client.post("/graphql", json={"query": ME}, headers=headers)
    body = await response.json()
    return response.status, (body.get("data") or {}).get("me")


async def create_token(
    client: TestClient, account: Account, name: str = "laptop"
) -> tuple[str, str]:
    """A new API token of the account's (through createApiToken): its secret and id."""
    created = (await ok(client, CREATE_TOKEN, account, name=name))["createApiToken"]
    assert created["token"].startswith("cp_")
    assert created["apiToken"]["revokedAt"] is None
    return created["token"], created["apiToken"]["id"]


@contextlib.asynccontextmanager
async def signed_in_socket(
    http: aiohttp.ClientSession, url: str, protocol: str, headers: dict[str, str]
) -> AsyncIterator[RawSocket]:
    """A raw websocket signed in through connection_init with these headers."""
    async with raw_socket(http, url, protocol) as socket:
        assert (await socket.init(headers))["type"] == "connection_ack"
        yield socket


async def live_subscription(
    socket: RawSocket, operation_id: str, document: str, course_id: int, db: Database
) -> None:
    """Subscribe and wait for a replayed event: the subscription is live from then on."""
    newest = await last_event_id(db)
    await socket.subscribe(operation_id, document, courseId=str(course_id), after=str(newest - 1))
    assert int((await socket.next_event())["id"]) == newest


async def ending_error(socket: RawSocket, operation_id: str) -> list[str]:
    """The codes of the error that ends an operation, and that it then completes."""
    while True:
        message = await socket.receive()
        assert message["type"] != "websocket", f"the socket closed: {message}"
        if message.get("id") != operation_id:
            continue
        payload = message["payload"]
        errors = payload.get("errors") if isinstance(payload, dict) else payload
        if errors:
            break
    completed = await socket.receive()
    assert (completed["type"], completed.get("id")) == ("complete", operation_id)
    return [error["extensions"]["code"] for error in errors]


async def closed_with(socket: RawSocket) -> int:
    """The close code the server closes the socket with (other messages are skipped)."""
    while True:
        message = await socket.receive()
        if message["type"] == "websocket":
            assert message["frame"] == WSMsgType.CLOSE, message
            return int(message["code"])


async def still_open(socket: RawSocket) -> None:
    """The socket still runs operations (the legacy protocol runs subscriptions only): one on
    an unknown course is answered with its error."""
    probe = f"probe-{next(_PROBES)}"
    await socket.subscribe(probe, COURSE_ACTIVITY, courseId="999999")
    assert await operation_error(socket, probe) == ["not_found"]


_PROBES = itertools.count()


@pytest.fixture(params=[TRANSPORT_WS, LEGACY_WS])
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def co_teacher(db: Database, school: School) -> Account:
    """A second instructor of the school's course."""
    account = await make_user(db, "co_teacher", role=Role.INSTRUCTOR, display_name="Co Teacher")
    async with db.write() as tx:
        await courses.add_instructor(tx, school.instructor.viewer, school.course_id, account.id)
    return account


# ---- removeInstructor -------------------------------------------------------------------


async def test_removed_instructors_open_course_activity_ends_with_forbidden(
    client: TestClient,
    db: Database,
    school: School,
    co_teacher: Account,
    http: aiohttp.ClientSession,
    protocol: str,
) -> None:
    await enroll(client, school, school.student)
    url = ws_url(client)
    async with (
        signed_in_socket(http, url, protocol, co_teacher.auth) as removed,
        signed_in_socket(http, url, protocol, school.instructor.auth) as kept,
    ):
        # Given both instructors watch the course's activity, and the co-teacher his progress too
        await live_subscription(removed, "activity", COURSE_ACTIVITY, school.course_id, db)
        await live_subscription(kept, "activity", COURSE_ACTIVITY, school.course_id, db)
        grants = client.server.app[ACCESS].grants
        assert len(grants.of(co_teacher.id, school.course_id)) == 1

        # When the instructor removes the co-teacher from the course
        data = await ok(
            client,
            REMOVE_INSTRUCTOR,
            school.instructor,
            courseId=str(school.course_id),
            userId=str(co_teacher.id),
        )
        assert data["removeInstructor"]["id"] == str(school.course_id)

        # Then the co-teacher's stream ends with forbidden, on a socket that stays open
        assert await ending_error(removed, "activity") == ["forbidden"]
        await still_open(removed)
        assert grants.of(co_teacher.id) == []
        # And a new subscription is refused
        await removed.subscribe("again", COURSE_ACTIVITY, courseId=str(school.course_id))
        assert await operation_error(removed, "again") == ["forbidden"]

        # And the instructor who stayed still hears the course
        await complete(client, school, school.student, 0)
        event = await kept.next_event()
        assert (event["kind"], event["userId"]) == ("LESSON_COMPLETED", str(school.student.id))


async def operation_error(socket: RawSocket, operation_id: str) -> list[str]:
    """The codes of an operation's error, whether sent as `error` or as a result with errors."""
    while True:
        message = await socket.receive()
        assert message["type"] != "websocket", f"the socket closed: {message}"
        if message.get("id") != operation_id:
            continue
        payload = message["payload"]
        errors = (
            payload.get("errors") if isinstance(payload, dict) and "errors" in payload else payload
        )
        if isinstance(errors, dict):
            errors = [errors]
        return [error["extensions"]["code"] for error in errors]


async def test_an_admin_removed_from_the_instructors_keeps_watching(
    client: TestClient, db: Database, school: School, http: aiohttp.ClientSession
) -> None:
    # Given an admin who is also listed as an instructor, watching the course
    await ok(client, ADD_INSTRUCTOR, school.admin, c=str(school.course_id), u=str(school.admin.id))
    await enroll(client, school, school.student)
    async with signed_in_socket(http, ws_url(client), TRANSPORT_WS, school.admin.auth) as socket:
        await live_subscription(socket, "activity", COURSE_ACTIVITY, school.course_id, db)

        # When the admin is taken off the instructors
        await ok(
            client,
            REMOVE_INSTRUCTOR,
            school.admin,
            courseId=str(school.course_id),
            userId=str(school.admin.id),
        )
        await client.server.app[ACCESS].settle()

        # Then the stream goes on: admins follow every course
        await complete(client, school, school.student, 0)
        assert (await socket.next_event())["kind"] == "LESSON_COMPLETED"


async def test_who_may_remove_an_instructor(
    client: TestClient, db: Database, school: School, co_teacher: Account
) -> None:
    course = str(school.course_id)
    # A student may not
    body = await graphql(
        client,
        REMOVE_INSTRUCTOR,
        {"courseId": course, "userId": str(co_teacher.id)},
        as_=school.student,
    )
    assert error_codes(body) == ["forbidden"]
    # An instructor of another course may not
    other = await make_user(db, "stranger", role=Role.INSTRUCTOR)
    body = await graphql(
        client, REMOVE_INSTRUCTOR, {"courseId": course, "userId": str(co_teacher.id)}, as_=other
    )
    assert error_codes(body) == ["forbidden"]
    # An unknown user is not found; someone who does not teach it changes nothing
    body = await graphql(
        client, REMOVE_INSTRUCTOR, {"courseId": course, "userId": "999999"}, as_=school.instructor
    )
    assert error_codes(body) == ["not_found"]
    await ok(
        client, REMOVE_INSTRUCTOR, school.instructor, courseId=course, userId=str(school.student.id)
    )
    # A co-teacher may remove the other instructor, but not the last one
    await ok(
        client, REMOVE_INSTRUCTOR, co_teacher, courseId=course, userId=str(school.instructor.id)
    )
    body = await graphql(
        client,
        REMOVE_INSTRUCTOR,
        {"courseId": course, "userId": str(co_teacher.id)},
        as_=school.admin,
    )
    assert error_codes(body) == ["invalid_input"]
    # And the removed instructor has lost the course's staff views
    body = await graphql(
        client,
        "query($c: ID!) { courseStats(courseId: $c) { enrolledCount } }",
        {"c": course},
        as_=school.instructor,
    )
    assert error_codes(body) == ["forbidden"]


# ---- API tokens --------------------------------------------------------------------------


async def test_revoked_tokens_socket_closes_with_4403_and_http_answers_401_at_once(
    client: TestClient, db: Database, school: School, http: aiohttp.ClientSession, protocol: str
) -> None:
    await enroll(client, school, school.student)
    token, token_id = await create_token(client, school.student)
    # Given John's token is signed in (and so cached) over HTTP
    assert await me_status(client, bearer(token)) == (
        200,
        {"username": "john_doe", "role": "STUDENT"},
    )
    url = ws_url(client)
    async with (
        signed_in_socket(http, url, protocol, bearer(token)) as by_token,
        signed_in_socket(http, url, protocol, school.student.auth) as by_password,
    ):
        # And a socket signed in with it follows his progress, next to one signed in by password
        await live_subscription(by_token, "1", PROGRESS_UPDATED, school.course_id, db)
        await live_subscription(by_password, "1", PROGRESS_UPDATED, school.course_id, db)

        # When he revokes the token
        revoked = (await ok(client, REVOKE_TOKEN, school.student, id=token_id))["revokeApiToken"]
        assert revoked["revokedAt"] is not None

        # Then HTTP refuses the token at once, despite the 30-second cache
        assert await me_status(client, bearer(token)) == (401, None)
        # And the token's socket is closed with 4403
        assert await closed_with(by_token) == 4403
        # While the password's socket goes on
        await complete(client, school, school.student, 0)
        assert (await by_password.next_event())["kind"] == "LESSON_COMPLETED"

    # And a new socket cannot sign in with it
    async with raw_socket(http, url, TRANSPORT_WS) as again:
        assert (await again.init(bearer(token)))["frame"] == WSMsgType.CLOSE


async def test_tokens_are_listed_with_last_use_and_revocation(
    client: TestClient, db: Database, school: School
) -> None:
    token, token_id = await create_token(client, school.student, "laptop")
    _unused, unused_id = await create_token(client, school.student, "phone")
    assert (await me_status(client, bearer(token)))[0] == 200
    await ok(client, REVOKE_TOKEN, school.student, id=unused_id)

    listed = (await ok(client, MY_TOKENS, school.student))["myApiTokens"]

    assert [(t["id"], t["name"]) for t in listed] == [(token_id, "laptop"), (unused_id, "phone")]
    laptop, phone = listed
    assert (laptop["lastUsedAt"] is None, laptop["revokedAt"]) == (False, None)
    assert (phone["lastUsedAt"], phone["revokedAt"] is None) == (None, False)
    assert laptop["createdAt"].endswith("+00:00")
    # Nobody else sees them
    assert (await ok(client, MY_TOKENS, school.other_student))["myApiTokens"] == []
    body = await graphql(client, MY_TOKENS)
    assert error_codes(body) == ["unauthenticated"]


async def test_who_may_revoke_a_token(client: TestClient, db: Database, school: School) -> None:
    _token, token_id = await create_token(client, school.student)

    # Another student's attempt finds nothing (ids reveal nothing), and changes nothing
    body = await graphql(client, REVOKE_TOKEN, {"id": token_id}, as_=school.other_student)
    assert error_codes(body) == ["not_found"]
    assert (await ok(client, MY_TOKENS, school.student))["myApiTokens"][0]["revokedAt"] is None
    body = await graphql(client, REVOKE_TOKEN, {"id": "999999"}, as_=school.student)
    assert error_codes(body) == ["not_found"]

    # An admin may revoke anyone's; revoking again keeps the first moment
    first = (await ok(client, REVOKE_TOKEN, school.admin, id=token_id))["revokeApiToken"]
    again = (await ok(client, REVOKE_TOKEN, school.student, id=token_id))["revokeApiToken"]
    assert first["revokedAt"] is not None
    assert again["revokedAt"] == first["revokedAt"]


async def test_last_use_is_written_at_most_once_a_minute_not_per_request(
    serve: Any, settings: Settings, db: Database, school: School
) -> None:
    # Without a credential cache every request verifies the token again
    client = await serve(settings.model_copy(update={"auth_cache_seconds": 0}))
    token, _token_id = await create_token(client, school.student)
    writes: list[str] = []

    def record(statement: str) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_TOKENS"):
            writes.append(statement)

    db.observers.append(record)
    try:
        for _ in range(5):
            assert (await me_status(client, bearer(token)))[0] == 200
    finally:
        db.observers.remove(record)

    assert len(writes) == 1
    async with db.read() as tx:
        used = await tx.scalar(select(TOKENS.c.last_used_at))
    assert used is not None


# ---- changePassword -----------------------------------------------------------------------


async def test_changed_password_ends_the_old_credential_and_its_sockets_at_once(
    client: TestClient, db: Database, school: School, http: aiohttp.ClientSession, protocol: str
) -> None:
    student = school.student
    token, _token_id = await create_token(client, student)
    # Given John is signed in by password over HTTP (cached) and on a socket, and by token too
    assert (await me_status(client, student.auth))[0] == 200
    url = ws_url(client)
    async with (
        signed_in_socket(http, url, protocol, student.auth) as by_password,
        signed_in_socket(http, url, protocol, bearer(token)) as by_token,
    ):
        await still_open(by_password)

        # When a wrong current password is given, nothing changes
        body = await graphql(
            client,
            CHANGE_PASSWORD,
            {"currentPassword": "not my password", "newPassword": NEW_PASSWORD},
            as_=student,
        )
        assert error_codes(body) == ["invalid_credentials"]
        assert (await me_status(client, student.auth))[0] == 200

        # When he changes his password
        changed = await ok(
            client, CHANGE_PASSWORD, student, currentPassword=PASSWORD, newPassword=NEW_PASSWORD
        )
        assert changed["changePassword"]["username"] == "john_doe"

        # Then the old password is refused at once, and the new one signs in
        assert await me_status(client, student.auth) == (401, None)
        assert (await me_status(client, basic("john_doe", NEW_PASSWORD)))[0] == 200
        # And the socket signed in with the old password is closed with 4403
        assert await closed_with(by_password) == 4403
        # While his token's socket goes on
        await still_open(by_token)


async def test_of_two_password_changes_verified_at_once_only_the_first_is_stored(
    db: Database, school: School
) -> None:
    viewer = school.student.viewer
    # Given two changes verified against the same current password (two tabs)
    async with db.read() as tx:
        holder = await users.password_holder(tx, viewer)
    first = await users.prepare_password_change(holder, PASSWORD, NEW_PASSWORD)
    second = await users.prepare_password_change(holder, PASSWORD, "another good password")
    # When both are stored, one after the other
    async with db.write() as tx:
        await users.change_password(tx, viewer, first)
    with pytest.raises(InvalidCredentials):
        async with db.write() as tx:
            await users.change_password(tx, viewer, second)
    # Then the first one holds: the second was verified against a password that is gone
    async with db.read() as tx:
        user = await users.user_to_sign_in(tx, "john_doe")
    assert user is not None
    assert (await users.verify_sign_in(user, NEW_PASSWORD)).viewer.user_id == viewer.user_id


async def test_new_password_follows_the_rules_of_new_users(
    client: TestClient, school: School
) -> None:
    body = await graphql(
        client,
        CHANGE_PASSWORD,
        {"currentPassword": PASSWORD, "newPassword": "short"},
        as_=school.student,
    )
    assert error_codes(body) == ["invalid_input"]
    assert body["errors"][0]["extensions"]["field"] == "newPassword"
    assert (await me_status(client, school.student.auth))[0] == 200
    body = await graphql(
        client, CHANGE_PASSWORD, {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
    )
    assert error_codes(body) == ["unauthenticated"]


# ---- a change of role ----------------------------------------------------------------------


async def test_a_demoted_admins_socket_closes_and_http_carries_the_new_role(
    client: TestClient, db: Database, school: School, http: aiohttp.ClientSession, protocol: str
) -> None:
    admin = school.admin
    assert await me_status(client, admin.auth) == (200, {"username": "admin", "role": "ADMIN"})
    async with signed_in_socket(http, ws_url(client), protocol, admin.auth) as socket:
        await still_open(socket)

        # When the admin is made an instructor (the operator's `coursepulse user role`)
        async with db.write() as tx:
            await users.set_role(tx, "admin", Role.INSTRUCTOR)

        # Then HTTP answers with the new role at once, and the admin's socket closes
        assert await me_status(client, admin.auth) == (
            200,
            {"username": "admin", "role": "INSTRUCTOR"},
        )
        assert await closed_with(socket) == 4403


# ---- missed notices ------------------------------------------------------------------------


async def revoke_without_notice(db: Database, token_id: str) -> None:
    """Revoke a token behind the service's back: no notice is sent (a missed one)."""
    async with db.write() as tx:
        await tx.execute(
            update(TOKENS)
            .where(TOKENS.c.id == int(token_id))
            .values(revoked_at=text("CURRENT_TIMESTAMP"))
        )


async def test_a_missed_notice_is_caught_by_the_periodic_check(
    serve: Any,
    settings: Settings,
    db: Database,
    school: School,
    co_teacher: Account,
    http: aiohttp.ClientSession,
) -> None:
    client = await serve(settings.model_copy(update={"access_recheck_seconds": 0.2}))
    await enroll(client, school, school.student)
    token, token_id = await create_token(client, school.student)
    url = ws_url(client)
    async with (
        signed_in_socket(http, url, TRANSPORT_WS, bearer(token)) as by_token,
        signed_in_socket(http, url, TRANSPORT_WS, co_teacher.auth) as dashboard,
    ):
        await still_open(by_token)
        await live_subscription(dashboard, "activity", COURSE_ACTIVITY, school.course_id, db)

        # When a token is revoked and an instructor removed behind the service's back
        await revoke_without_notice(db, token_id)
        async with db.write() as tx:
            await tx.execute(delete(INSTRUCTORS).where(INSTRUCTORS.c.user_id == co_teacher.id))

        # Then the next check finds both
        assert await closed_with(by_token) == 4403
        assert await ending_error(dashboard, "activity") == ["forbidden"]


async def test_after_a_lost_listener_connection_every_socket_is_checked_again(
    client: TestClient, db: Database, school: School, http: aiohttp.ClientSession
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("the access channel's listener is PostgreSQL's")
    broker = client.server.app[BROKER]
    token, token_id = await create_token(client, school.student)
    assert (await me_status(client, bearer(token)))[0] == 200
    async with signed_in_socket(http, ws_url(client), TRANSPORT_WS, bearer(token)) as socket:
        await still_open(socket)
        # Given a revocation the process never heard of
        await revoke_without_notice(db, token_id)
        assert (await me_status(client, bearer(token)))[0] == 200, "served from the cache"

        # When the listener connection is lost and comes back
        admin = schema_engine(db.url.set(database="postgres").render_as_string(False))
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            terminated = await connection.scalar(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :database AND query LIKE 'LISTEN%'"
                ),
                {"database": db.url.database},
            )
        await admin.dispose()
        assert terminated

        # Then the socket is closed and the cache forgotten
        assert await closed_with(socket) == 4403
        await until(broker.connected.is_set)
        assert await me_status(client, bearer(token)) == (401, None)


# ---- across processes (PostgreSQL) ----------------------------------------------------------


@pytest.fixture
def postgres_db(db: Database) -> Database:
    if db.dialect != "postgresql":
        pytest.skip("several processes share one database through PostgreSQL NOTIFY")
    return db


@pytest.fixture
async def other_app(
    postgres_db: Database, database_url: str, settings: Settings
) -> AsyncIterator[TestClient]:
    """A second application on the same database, with its own connections and listener."""
    other_db = Database.from_url(database_url)
    other = TestClient(TestServer(create_app(settings, database=other_db)))
    await other.start_server()
    try:
        yield other
    finally:
        await other.close()
        await other_db.dispose()


async def test_a_token_revoked_on_one_app_closes_its_socket_on_another(
    other_app: TestClient, school: School, client: TestClient, http: aiohttp.ClientSession
) -> None:
    # Given a second application on the same database, with its own connections and listener
    other = other_app
    token, token_id = await create_token(other, school.student)
    assert (await me_status(other, bearer(token)))[0] == 200
    async with signed_in_socket(http, ws_url(other), TRANSPORT_WS, bearer(token)) as socket:
        await still_open(socket)

        # When the token is revoked through the first application
        await ok(client, REVOKE_TOKEN, school.student, id=token_id)

        # Then the second one closes the socket, and refuses the token over HTTP
        assert await closed_with(socket) == 4403
        assert await me_status(other, bearer(token)) == (401, None)


async def test_a_course_role_removed_on_one_app_ends_the_stream_on_another(
    postgres_db: Database,
    other_app: TestClient,
    school: School,
    co_teacher: Account,
    client: TestClient,
    http: aiohttp.ClientSession,
) -> None:
    await enroll(client, school, school.student)
    async with signed_in_socket(http, ws_url(other_app), LEGACY_WS, co_teacher.auth) as socket:
        await live_subscription(socket, "activity", COURSE_ACTIVITY, school.course_id, postgres_db)
        await ok(
            client,
            REMOVE_INSTRUCTOR,
            school.instructor,
            courseId=str(school.course_id),
            userId=str(co_teacher.id),
        )
        assert await ending_error(socket, "activity") == ["forbidden"]
        await still_open(socket)


# ---- the command line ------------------------------------------------------------------------


async def test_token_list_and_revoke_on_the_command_line(
    db: Database,
    database_url: str,
    client: TestClient,
    school: School,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def cli(*args: str) -> tuple[int, str, str]:
        """The command in this process (its own event loop, in a thread): a subprocess per
        step would be slow. Exit status, stdout, stderr."""
        capsys.readouterr()
        status = await asyncio.to_thread(main, [*args, "--database-url", database_url])
        out, err = capsys.readouterr()
        return status, out, err

    # Given a token of John's, made on the command line and used once
    status, token, _ = await cli("token", "create", "john_doe", "--name", "ci")
    assert status == 0
    token = token.strip()
    assert (await me_status(client, bearer(token)))[0] == 200

    # When the operator lists John's tokens
    status, listed, _ = await cli("token", "list", "john_doe")

    # Then the token is there, active, with its last use
    assert status == 0
    (line,) = listed.splitlines()
    token_id, name, _created, last_used, state = line.split("\t")
    assert (name, state) == ("ci", "active")
    assert last_used != "last used -"

    # When it is revoked by a `coursepulse token revoke` process, while a socket uses it
    async with signed_in_socket(http, ws_url(client), TRANSPORT_WS, bearer(token)) as socket:
        await still_open(socket)
        revoked = succeeded(
            await asyncio.to_thread(
                run_cli, "token", "revoke", token_id, database_url=database_url, cwd=tmp_path
            )
        )
        assert f"revoked token {token_id}" in revoked.stdout
        if db.dialect == "postgresql":
            # Then the running service hears it (NOTIFY) and closes the socket
            assert await closed_with(socket) == 4403
            assert await me_status(client, bearer(token)) == (401, None)

    # And the list shows it revoked; an unknown id or user fails clearly
    status, listed, _ = await cli("token", "list", "john_doe")
    assert listed.rstrip().split("\t")[-1].startswith("revoked ")
    for args in (("token", "revoke", "999999"), ("token", "list", "nobody")):
        status, out, err = await cli(*args)
        assert status != 0
        assert "not_found" in err
        assert "Traceback" not in out + err


async def test_a_role_changed_on_the_command_line_takes_effect(
    db: Database,
    database_url: str,
    client: TestClient,
    school: School,
    http: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    admin = school.admin
    async with signed_in_socket(http, ws_url(client), TRANSPORT_WS, admin.auth) as socket:
        await still_open(socket)
        capsys.readouterr()
        status = await asyncio.to_thread(
            main, ["user", "role", "admin", "student", "--database-url", database_url]
        )
        assert (status, capsys.readouterr().out.strip()) == (0, "admin is now student")
        if db.dialect == "postgresql":
            # Another Database (the command's) told this service through NOTIFY
            assert await closed_with(socket) == 4403
            assert await me_status(client, admin.auth) == (
                200,
                {"username": "admin", "role": "STUDENT"},
            )
    status = await asyncio.to_thread(
        main, ["user", "role", "nobody", "admin", "--database-url", database_url]
    )
    assert status != 0
    assert "not_found" in capsys.readouterr().err


def test_access_notices_survive_the_notify_payload() -> None:
    notice = AccessNotice(AccessChange.COURSE_ROLE, 12, 34)
    assert AccessNotice.decode(notice.encode("abc")) == ("abc", notice)
    with pytest.raises(ValueError, match="nonsense"):
        AccessNotice.decode("abc nonsense 1 2")


# ---- live grants, without a server ---------------------------------------------------------


async def test_an_ended_grant_stops_its_stream_before_replay_between_events_or_waiting(
    db: Database, school: School
) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
    grants, feeds = LiveGrants(), Feeds(db)

    async def allowed() -> None:
        return None

    def granted_stream() -> tuple[LiveStream, LiveGrant]:
        """A stream replaying the course from its start, under a grant of its own."""
        stream = LiveStream(db, feeds, school.course_id, after=0)
        grant = stream.grant = grants.watch(1, school.course_id, allowed)
        grant.wake = stream.interrupt
        return stream, grant

    # Before its replay: nothing is replayed
    unread, grant = granted_stream()
    grant.end()
    with pytest.raises(Forbidden):
        await anext(unread)
    await unread.aclose()

    # Between events: the consumer holds the first event when the grant ends
    between, grant = granted_stream()
    try:
        assert (await anext(between)).kind == ProgressEventKind.ENROLLED
        grant.end()
        with pytest.raises(Forbidden):
            await anext(between)

        # Waiting: the consumer waits for the next event when the grant ends
        waiting, grant = granted_stream()
        assert (await anext(waiting)).kind == ProgressEventKind.ENROLLED

        async def consume() -> BaseException | None:
            try:
                await anext(waiting)
            except Forbidden as error:
                current = asyncio.current_task()
                assert current is not None
                assert current.cancelling() == 0, "no cancellation was used to wake it"
                return error
            return None

        consumer = asyncio.create_task(consume())
        await until(lambda: waiting._subscription is not None and waiting._subscription._waiter)
        grant.end()
        assert isinstance(await consumer, Forbidden)
        await between.aclose()
        await waiting.aclose()

        # Both streams left the feed, and the grants were forgotten
        assert school.course_id not in feeds.course_ids
        assert len(grants) == 0
    finally:
        await feeds.close()
