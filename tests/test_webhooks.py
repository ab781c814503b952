"""Webhooks fed from the event log, as a receiver sees them: a real HTTP receiver on
127.0.0.1, signatures checked with the `standardwebhooks` library's own verify."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import standardwebhooks
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from coursepulse.delivery.horizon import EventHorizon
from coursepulse.models import ProgressEventKind, Role
from coursepulse.models.db import Database
from coursepulse.resolvers import (
    completions,
    courses,
    enrollments,
    users,
    webhook_urls,
    webhooks,
)
from coursepulse.settings import Settings
from tests.conftest import Account, School, error_codes, graphql, make_course, make_user
from tests.processes import coursepulse_serve, free_port, run_to_end

#: Seconds a test waits for deliveries before failing.
WAIT_SECONDS = 20.0

CREATE = """mutation($url: String!, $c: ID, $events: [ProgressEventKind!]) {
  createWebhook(input: {url: $url, courseId: $c, events: $events}) {
    secret webhook { id url courseId events active createdAt disabledAt } } }"""
LIST = """query($c: ID) { webhooks(courseId: $c) { id url courseId active disabledAt
  deliveries(first: 50) { id eventId attempt responseStatus succeeded attemptedAt
  nextAttemptAt error } } }"""
DELETE = "mutation($id: ID!) { deleteWebhook(id: $id) { id url } }"
REDELIVER = """mutation($id: ID!, $after: ID!) {
  redeliverWebhook(id: $id, afterEventId: $after) { id active disabledAt } }"""
COMPLETE = """mutation($c: ID!, $l: ID!) { completeLesson(courseId: $c, lessonId: $l) {
  progressPercentage } }"""


class Receiver:
    """A webhook receiver on a real port: keeps what arrives, answers `status`."""

    def __init__(self) -> None:
        self.arrived: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        #: While set, requests wait for it before they are answered.
        self.hold: asyncio.Event | None = None
        self.holding = 0
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.arrived.append((dict(request.headers), body))
        if self.hold is not None:
            self.holding += 1
            await self.hold.wait()
        return web.Response(status=self.status, text="thanks" if self.status < 300 else "down")

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hooks"))

    def accepted(self, secret: str) -> list[dict[str, Any]]:
        """The events a receiver that drops repeats by webhook-id keeps, in arrival order
        (only those it answered 2xx count); every signature is checked."""
        kept: list[dict[str, Any]] = []
        seen: set[str] = set()
        verifier = standardwebhooks.Webhook(secret)
        for index, (headers, body) in enumerate(self.arrived):
            message = verifier.verify(body, headers)
            assert headers["webhook-id"] == message["data"]["id"]
            if index < self.answered_ok_from:
                continue
            if headers["webhook-id"] not in seen:
                seen.add(headers["webhook-id"])
                kept.append(message)
        return kept

    #: Requests before this index were answered with an error.
    answered_ok_from = 0

    def come_back(self) -> None:
        """Answer 200 from now on."""
        self.answered_ok_from = len(self.arrived)
        self.status = 200


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiving = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", receiving.handle)
    receiving.server = TestServer(app, host="127.0.0.1")
    await receiving.server.start_server()
    yield receiving
    if receiving.hold is not None:
        receiving.hold.set()
    await receiving.server.close()


def delivering(settings: Settings, **changes: Any) -> Settings:
    """Settings of a service that may send to 127.0.0.1 and retries at once (tests)."""
    return settings.model_copy(
        update={
            "webhook_allow_private": True,
            "webhook_poll_seconds": 0.05,
            "webhook_retry_first_seconds": 0.05,
            "webhook_retry_max_seconds": 0.2,
            "webhook_timeout_seconds": 2.0,
            **changes,
        }
    )


async def eventually(check: Any, what: str) -> Any:
    """Wait until `check()` gives a true value (awaited if need be); that value."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(0.05)
    raise AssertionError(what)  # pragma: no cover  (the timeout raises first)


async def create(
    client: TestClient, school: School, url: str, *, events: list[str] | None = None
) -> tuple[str, str]:
    body = await graphql(
        client,
        CREATE,
        {"url": url, "c": str(school.course_id), "events": events},
        as_=school.instructor,
    )
    assert "errors" not in body, body
    created = body["data"]["createWebhook"]
    return created["webhook"]["id"], created["secret"]


async def learn(db: Database, school: School, lessons: int) -> None:
    """The student enrols and completes the first `lessons` lessons (one commit each)."""
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
    await complete(db, school, school.lesson_ids[:lessons])


async def event_ids(db: Database, course_id: int) -> list[int]:
    async with db.read() as tx:
        rows = await tx.all(
            webhooks._EVENTS_OF_COURSE_AFTER,
            after=0,
            bound=webhooks.NO_BOUND,
            course_id=course_id,
            limit=1000,
        )
    return [row.id for row in rows]


async def listed(client: TestClient, school: School) -> dict[str, Any]:
    body = await graphql(client, LIST, {"c": str(school.course_id)}, as_=school.instructor)
    assert "errors" not in body, body
    return body["data"]["webhooks"][0]


# ---- delivery -----------------------------------------------------------------------------


async def test_events_arrive_signed_in_order_with_the_progress_snapshot(
    serve: Any, settings: Settings, db: Database, school: School, receiver: Receiver
) -> None:
    client = await serve(delivering(settings))
    webhook_id, secret = await create(client, school, receiver.url)
    assert secret.startswith("whsec_")

    await learn(db, school, lessons=len(school.lesson_ids))
    expected = await event_ids(db, school.course_id)
    assert len(expected) == 1 + 4 + 1  # enrolled, four lessons, course completed

    await eventually(lambda: len(receiver.accepted(secret)) == len(expected), "every event")
    messages = receiver.accepted(secret)
    assert [int(message["data"]["id"]) for message in messages] == expected
    kinds = [message["data"]["kind"] for message in messages]
    assert kinds == ["ENROLLED", *["LESSON_COMPLETED"] * 4, "COURSE_COMPLETED"]
    third = messages[2]
    assert third["type"] == "progress.lesson_completed"
    assert third["data"]["courseId"] == str(school.course_id)
    assert third["data"]["userId"] == str(school.student.id)
    assert third["data"]["lessonId"] == str(school.lesson_ids[1])
    assert (third["data"]["completedLessons"], third["data"]["totalLessons"]) == (2, 4)
    assert third["data"]["progressPercentage"] == 50
    # A forged signature does not verify
    headers, body = receiver.arrived[0]
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(webhooks.new_secret()).verify(body, headers)

    # Operators count them
    metrics = await (await client.get("/metrics")).text()
    assert f'coursepulse_webhook_deliveries_total{{outcome="ok"}} {len(expected)}.0' in metrics
    # Its owner sees every delivery, newest first
    webhook = await listed(client, school)
    assert webhook["id"] == webhook_id
    assert webhook["active"]
    deliveries = webhook["deliveries"]
    assert [int(delivery["eventId"]) for delivery in deliveries] == expected[::-1]
    assert all(d["succeeded"] and d["responseStatus"] == 200 for d in deliveries)
    assert all(d["attempt"] == 1 and d["nextAttemptAt"] is None for d in deliveries)


async def test_only_the_chosen_kinds_are_sent(
    serve: Any, settings: Settings, db: Database, school: School, receiver: Receiver
) -> None:
    client = await serve(delivering(settings))
    _webhook_id, secret = await create(client, school, receiver.url, events=["COURSE_COMPLETED"])
    await learn(db, school, lessons=len(school.lesson_ids))

    await eventually(lambda: receiver.accepted(secret), "the completion")
    # Everything after it was stepped over, not waited for
    last = (await event_ids(db, school.course_id))[-1]
    await eventually(
        lambda: listed_last_event_id(client, school, last), "the cursor past every event"
    )
    assert [m["data"]["kind"] for m in receiver.accepted(secret)] == ["COURSE_COMPLETED"]


async def listed_last_event_id(client: TestClient, school: School, last: int) -> bool:
    body = await graphql(
        client,
        "query($c: ID) { webhooks(courseId: $c) { lastEventId } }",
        {"c": str(school.course_id)},
        as_=school.instructor,
    )
    return int(body["data"]["webhooks"][0]["lastEventId"]) == last


async def test_a_receiver_down_for_a_while_gets_every_event_in_order(
    serve: Any, settings: Settings, db: Database, school: School, receiver: Receiver
) -> None:
    client = await serve(delivering(settings))
    _webhook_id, secret = await create(client, school, receiver.url)
    receiver.status = 503

    await learn(db, school, lessons=2)
    # The first event is tried again and again while the receiver is down
    await eventually(lambda: len(receiver.arrived) >= 3, "retries")

    async def behind(count: int) -> bool:
        metrics = await (await client.get("/metrics")).text()
        return f"coursepulse_webhooks_behind {count}.0" in metrics

    await eventually(lambda: behind(1), "the backlog gauged")
    await learn_more(db, school, start=2)
    receiver.come_back()

    expected = await event_ids(db, school.course_id)
    await eventually(lambda: len(receiver.accepted(secret)) == len(expected), "every event")
    assert [int(m["data"]["id"]) for m in receiver.accepted(secret)] == expected
    deliveries = (await listed(client, school))["deliveries"]
    failed = [d for d in deliveries if not d["succeeded"]]
    assert failed
    assert all(d["responseStatus"] == 503 for d in failed)
    assert all(d["error"].startswith("HTTP 503") for d in failed)
    assert {int(d["eventId"]) for d in failed} == {expected[0]}
    assert max(d["attempt"] for d in failed) >= 3
    assert all(d["nextAttemptAt"] is not None for d in failed)
    metrics = await (await client.get("/metrics")).text()
    assert f'coursepulse_webhook_deliveries_total{{outcome="failed"}} {len(failed)}.0' in metrics
    await eventually(lambda: behind(0), "no backlog left")


async def learn_more(db: Database, school: School, *, start: int) -> None:
    await complete(db, school, school.lesson_ids[start:])


async def complete(db: Database, school: School, lesson_ids: list[int]) -> None:
    """The student completes these lessons, one commit each."""
    for lesson_id in lesson_ids:
        async with db.write() as tx:
            await completions.complete_lesson(
                tx, school.student.viewer, school.course_id, lesson_id
            )


async def test_a_failing_receiver_ends_disabled_and_its_owner_sees_why(
    serve: Any, settings: Settings, db: Database, school: School, receiver: Receiver
) -> None:
    client = await serve(delivering(settings, webhook_give_up_seconds=0.5))
    webhook_id, _secret = await create(client, school, receiver.url)
    receiver.status = 500

    await learn(db, school, lessons=1)

    async def disabled() -> dict[str, Any] | None:
        webhook = await listed(client, school)
        return webhook if webhook["disabledAt"] else None

    webhook = await eventually(disabled, "the webhook switched off")
    assert webhook["active"] is False
    newest = webhook["deliveries"][0]
    assert not newest["succeeded"]
    assert newest["nextAttemptAt"] is None
    assert newest["error"].startswith("HTTP 500")
    assert "switched off" in newest["error"]
    attempts = len(receiver.arrived)
    assert attempts >= 2

    # Switched back on by a replay, it delivers from where it is told
    receiver.come_back()
    first_event = (await event_ids(db, school.course_id))[0]
    body = await graphql(client, REDELIVER, {"id": webhook_id, "after": "0"}, as_=school.instructor)
    assert body["data"]["redeliverWebhook"]["active"] is True, body
    await eventually(lambda: len(receiver.arrived) > attempts, "a delivery after the replay")
    assert receiver.arrived[attempts][0]["webhook-id"] == str(first_event)


async def test_redelivery_replays_from_any_event_in_order(
    serve: Any, settings: Settings, db: Database, school: School, receiver: Receiver
) -> None:
    client = await serve(delivering(settings))
    webhook_id, secret = await create(client, school, receiver.url)
    await learn(db, school, lessons=3)
    expected = await event_ids(db, school.course_id)
    await eventually(lambda: len(receiver.arrived) == len(expected), "every event")

    body = await graphql(
        client, REDELIVER, {"id": webhook_id, "after": str(expected[1])}, as_=school.instructor
    )
    assert "errors" not in body, body
    await eventually(lambda: len(receiver.arrived) == 2 * len(expected) - 2, "the replay")
    replayed = [headers["webhook-id"] for headers, _body in receiver.arrived[len(expected) :]]
    assert replayed == [str(event_id) for event_id in expected[2:]]
    # A receiver that drops repeats still sees each event once
    assert [int(m["data"]["id"]) for m in receiver.accepted(secret)] == expected

    # A cursor beyond the log is refused: it would skip the events to come
    body = await graphql(
        client,
        REDELIVER,
        {"id": webhook_id, "after": str(expected[-1] + 100)},
        as_=school.instructor,
    )
    assert error_codes(body) == ["invalid_input"]


async def test_a_slow_receiver_holds_neither_requests_nor_other_webhooks(
    serve: Any, settings: Settings, db: Database, school: School, receiver: Receiver
) -> None:
    client = await serve(delivering(settings, webhook_timeout_seconds=30.0))
    await create(client, school, receiver.url)
    receiver.hold = asyncio.Event()
    await learn(db, school, lessons=1)
    await eventually(lambda: receiver.holding == 1, "the receiver holding a delivery")

    # While the receiver holds the delivery, the service answers as usual
    for lesson_id in school.lesson_ids[1:]:
        body = await graphql(
            client,
            COMPLETE,
            {"c": str(school.course_id), "l": str(lesson_id)},
            as_=school.student,
        )
        assert "errors" not in body, body
    response = await client.get("/readyz")
    assert response.status == 200
    assert receiver.holding == 1  # still held: the requests did not wait for it

    receiver.hold.set()
    expected = await event_ids(db, school.course_id)
    await eventually(lambda: len(receiver.arrived) == len(expected), "the rest, after it")


async def test_a_stopping_process_lets_go_of_its_webhooks_at_once(
    serve: Any, settings: Settings, db: Database, school: School, receiver: Receiver
) -> None:
    first = await serve(delivering(settings, webhook_timeout_seconds=30.0))
    _webhook_id, secret = await create(first, school, receiver.url)
    receiver.hold = asyncio.Event()
    await learn(db, school, lessons=2)
    await eventually(lambda: receiver.holding == 1, "a delivery under way")

    # The process stops mid-send; the next one goes on at once (not after the claim's
    # minute), starting again with the event whose answer never came
    await first.close()
    receiver.hold.set()
    await serve(delivering(settings))
    expected = await event_ids(db, school.course_id)
    await eventually(lambda: len(receiver.accepted(secret)) == len(expected), "every event")
    assert [int(m["data"]["id"]) for m in receiver.accepted(secret)] == expected


async def test_a_replay_asked_for_mid_send_waits_for_that_send(
    serve: Any, settings: Settings, db: Database, school: School, receiver: Receiver
) -> None:
    client = await serve(delivering(settings, webhook_timeout_seconds=30.0))
    webhook_id, secret = await create(client, school, receiver.url)
    receiver.hold = asyncio.Event()
    await learn(db, school, lessons=2)
    await eventually(lambda: receiver.holding == 1, "a delivery under way")

    body = await graphql(client, REDELIVER, {"id": webhook_id, "after": "0"}, as_=school.instructor)
    assert "errors" not in body, body
    await asyncio.sleep(0.5)
    assert receiver.holding == 1  # the replay did not start beside the send under way

    receiver.hold.set()
    expected = await event_ids(db, school.course_id)
    await eventually(lambda: len(receiver.arrived) == 1 + len(expected), "the replay")
    sent = [int(headers["webhook-id"]) for headers, _body in receiver.arrived]
    assert sent == [expected[0], *expected]
    assert [int(m["data"]["id"]) for m in receiver.accepted(secret)] == expected


async def test_a_webhook_stops_when_its_maker_stops_managing_the_course(
    client: TestClient, db: Database, school: School
) -> None:
    helper = await make_user(db, "assistant", role=Role.INSTRUCTOR)
    async with db.write() as tx:
        await courses.add_instructor(tx, school.instructor.viewer, school.course_id, helper.id)
    body = await graphql(
        client,
        CREATE,
        {"url": "https://assistant.example/", "c": str(school.course_id)},
        as_=helper,
    )
    webhook_id = body["data"]["createWebhook"]["webhook"]["id"]
    # The instructor's own webhook is not touched
    await create(client, school, "https://school.example/")
    async with db.write() as tx:
        await courses.remove_instructor(tx, school.instructor.viewer, school.course_id, helper.id)

    query = "query($c: ID) { webhooks(courseId: $c) { id active disabledReason } }"
    body = await graphql(client, query, {"c": str(school.course_id)}, as_=school.instructor)
    hooks = {hook["id"]: hook for hook in body["data"]["webhooks"]}
    assert hooks[webhook_id]["active"] is False
    assert "no longer manages the course" in hooks[webhook_id]["disabledReason"]
    assert [hook["active"] for hook in hooks.values()].count(True) == 1
    # Switched on again by the course's instructor, it is theirs from then on
    body = await graphql(client, REDELIVER, {"id": webhook_id, "after": "0"}, as_=school.instructor)
    assert body["data"]["redeliverWebhook"]["active"] is True
    async with db.read() as tx:
        rows = await webhooks.every_webhook(tx)
    assert {row.id: row.created_by for row in rows}[int(webhook_id)] == school.instructor.id


async def test_deleted_webhooks_receive_nothing_more(
    serve: Any, settings: Settings, db: Database, school: School, receiver: Receiver
) -> None:
    client = await serve(delivering(settings))
    webhook_id, _secret = await create(client, school, receiver.url)
    await learn(db, school, lessons=1)
    await eventually(lambda: len(receiver.arrived) == 2, "the first events")

    body = await graphql(client, DELETE, {"id": webhook_id}, as_=school.instructor)
    assert body["data"]["deleteWebhook"] == {"id": webhook_id, "url": receiver.url}
    await learn_more(db, school, start=1)
    # A webhook made now gets the next event only; the deleted one gets nothing more
    await create(client, school, receiver.url)
    await learn_more_incomplete(db, school)
    await eventually(lambda: len(receiver.arrived) >= 3, "the new webhook's event")
    newest = await event_ids(db, school.course_id)
    assert [h["webhook-id"] for h, _body in receiver.arrived[2:]] == [str(newest[-1])]


async def learn_more_incomplete(db: Database, school: School) -> None:
    async with db.write() as tx:
        await completions.incomplete_lesson(
            tx, school.student.viewer, school.course_id, school.lesson_ids[0]
        )


# ---- who may, and what is refused -----------------------------------------------------------


async def test_who_may_manage_webhooks(client: TestClient, db: Database, school: School) -> None:
    url = "https://hooks.example.com/progress"
    course = {"url": url, "c": str(school.course_id)}
    # Students may not; another course's instructor may not; anonymous requests may not
    assert error_codes(await graphql(client, CREATE, course, as_=school.student)) == ["forbidden"]
    other = await make_user(db, "other_teacher", role=Role.INSTRUCTOR)
    assert error_codes(await graphql(client, CREATE, course, as_=other)) == ["forbidden"]
    assert error_codes(await graphql(client, CREATE, course)) == ["unauthenticated"]
    # Every course's events: admins only
    every = {"url": url, "c": None}
    assert error_codes(await graphql(client, CREATE, every, as_=school.instructor)) == ["forbidden"]
    body = await graphql(client, CREATE, every, as_=school.admin)
    assert body["data"]["createWebhook"]["webhook"]["courseId"] is None
    every_id = body["data"]["createWebhook"]["webhook"]["id"]
    # The course's instructor makes one for the course (all kinds when none is chosen)
    body = await graphql(client, CREATE, course, as_=school.instructor)
    webhook = body["data"]["createWebhook"]["webhook"]
    assert webhook["events"] == [kind.name for kind in ProgressEventKind]
    assert (webhook["active"], webhook["disabledAt"]) == (True, None)

    async def ids(as_: Any, course_id: str | None = None) -> list[str] | list[str | None]:
        body = await graphql(client, LIST, {"c": course_id}, as_=as_)
        if "errors" in body:
            return error_codes(body)  # type: ignore[return-value]
        return [hook["id"] for hook in body["data"]["webhooks"]]

    assert await ids(school.admin) == [every_id, webhook["id"]]
    assert await ids(school.instructor) == [webhook["id"]]
    assert await ids(school.instructor, str(school.course_id)) == [webhook["id"]]
    assert await ids(other) == []
    assert await ids(other, str(school.course_id)) == ["forbidden"]
    assert await ids(school.student) == []
    # Someone who may not manage it cannot tell it exists
    for who in (other, school.student, school.instructor):
        target = every_id if who is school.instructor else webhook["id"]
        body = await graphql(client, DELETE, {"id": target}, as_=who)
        assert error_codes(body) == ["not_found"]
        body = await graphql(client, REDELIVER, {"id": target, "after": "0"}, as_=who)
        assert error_codes(body) == ["not_found"]
    body = await graphql(client, DELETE, {"id": webhook["id"]}, as_=school.instructor)
    assert body["data"]["deleteWebhook"]["id"] == webhook["id"]
    assert await ids(school.instructor) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hooks",
        "http://localhost/hooks",
        "http://LOCALHOST./hooks",
        "http://[::1]/hooks",
        "http://10.0.0.7/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://0.0.0.0/hooks",
        "ftp://hooks.example.com/",
        "file:///etc/passwd",
        "https://user:pass@hooks.example.com/",
        "https://",
        "not a url",
    ],
)
async def test_webhook_urls_must_be_public_http(
    client: TestClient, school: School, url: str
) -> None:
    body = await graphql(
        client, CREATE, {"url": url, "c": str(school.course_id)}, as_=school.instructor
    )
    assert error_codes(body) == ["invalid_input"]
    assert body["errors"][0]["extensions"]["field"] == "url"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_a_private_address_is_refused_when_connecting(
    serve: Any, settings: Settings, db: Database, school: School, receiver: Receiver, host: str
) -> None:
    # The webhook was made where private addresses were allowed; this service does not
    # allow them: "localhost" resolves to 127.0.0.1, and an address is taken as it is.
    url = receiver.url.replace("127.0.0.1", host)
    async with db.write() as tx:
        await webhooks.create_webhook(
            tx,
            school.instructor.viewer,
            url=url,
            course_id=school.course_id,
            events=[],
            allow_private=True,
        )
    client = await serve(delivering(settings, webhook_allow_private=False))
    await learn(db, school, lessons=1)

    async def refused() -> list[dict[str, Any]]:
        return [d for d in (await listed(client, school))["deliveries"] if d["error"]]

    failed = await eventually(refused, "a refused delivery")
    assert "refused to connect to 127.0.0.1" in failed[0]["error"]
    assert failed[0]["responseStatus"] is None
    assert receiver.arrived == []


async def test_bad_arguments_get_clear_errors(client: TestClient, school: School) -> None:
    query = "query($first: Int!) { webhooks { deliveries(first: $first) { id } } }"
    body = await graphql(
        client, CREATE, {"url": "https://hooks.example.com/", "c": None}, as_=school.admin
    )
    assert "errors" not in body
    body = await graphql(client, query, {"first": 1000}, as_=school.admin)
    assert error_codes(body) == ["invalid_input"]
    body = await graphql(client, REDELIVER, {"id": "x", "after": "0"}, as_=school.admin)
    assert error_codes(body) == ["invalid_input"]
    body = await graphql(client, REDELIVER, {"id": "1", "after": "-3"}, as_=school.admin)
    assert error_codes(body) == ["invalid_input"]


async def test_a_course_has_a_bounded_number_of_webhooks(
    client: TestClient, school: School
) -> None:
    course = {"url": "https://hooks.example.com/", "c": str(school.course_id)}
    for _ in range(webhooks.MAX_WEBHOOKS_PER_COURSE):
        assert "errors" not in await graphql(client, CREATE, course, as_=school.instructor)
    body = await graphql(client, CREATE, course, as_=school.instructor)
    assert error_codes(body) == ["invalid_input"]


# ---- order across courses (PostgreSQL commits ids out of order) ----------------------------


async def test_an_event_committed_late_is_delivered_before_later_ones(
    serve: Any, settings: Settings, db: Database, school: School, receiver: Receiver
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite commits the log in id order: one writer at a time")
    client = await serve(delivering(settings))
    body = await graphql(client, CREATE, {"url": receiver.url, "c": None}, as_=school.admin)
    secret = body["data"]["createWebhook"]["secret"]
    other_course, _lessons = await make_course(db, school.instructor, title="Second course")

    async with db.write() as slow:
        async with db.write() as quick:
            # One transaction gets its transaction id first...
            await quick.execute(text("SELECT pg_current_xact_id()"))
            # ...another draws an event id and takes its time to commit...
            await enrollments.enroll(slow, school.student.viewer, school.course_id)
            # ...while the first draws a later event id and commits at once
            await enrollments.enroll(quick, school.other_student.viewer, other_course)
        await asyncio.sleep(0.5)
        early = list(receiver.arrived)
    assert early == []  # the later event waited for the earlier one

    await eventually(lambda: len(receiver.accepted(secret)) == 2, "both events")
    ids = [int(m["data"]["id"]) for m in receiver.accepted(secret)]
    assert ids == sorted(ids)


def test_the_horizon_moves_once_older_transactions_have_ended() -> None:
    horizon = EventHorizon()
    # Newest event 10 seen while transactions below id 500 may still run (the oldest: 490)
    assert horizon.observe(10, 490, 500) == 0
    assert horizon.observe(12, 495, 505) == 0
    # Every transaction below 500 has ended: events up to 10 are complete
    assert horizon.observe(15, 500, 510) == 10
    # Nothing runs: everything seen is complete
    assert horizon.observe(20, 520, 520) == 20


# ---- several serve processes ---------------------------------------------------------------

ENROLL = "mutation($c: ID!) { enroll(courseId: $c) { message } }"


async def post_graphql(
    http: aiohttp.ClientSession, port: int, query: str, variables: dict[str, Any], as_: Account
) -> dict[str, Any]:
    async with http.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables},
        headers=as_.auth,
    ) as response:
        body = await response.json()
    assert "errors" not in body, body
    return body["data"]


async def test_two_serve_processes_deliver_each_event_once(
    tmp_path: Path, database_url: str, db: Database, school: School, receiver: Receiver
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("several serve processes share a database on PostgreSQL")
    env = {
        "COURSEPULSE_WEBHOOK_ALLOW_PRIVATE": "true",
        "COURSEPULSE_WEBHOOK_POLL_SECONDS": "0.05",
        "COURSEPULSE_WEBHOOK_RETRY_FIRST_SECONDS": "0.05",
    }
    students = [school.student, school.other_student]
    students += [await make_user(db, f"learner{number}") for number in range(3)]
    async with (
        coursepulse_serve(database_url, tmp_path / "a.log", env=env) as (port_a, _a),
        coursepulse_serve(database_url, tmp_path / "b.log", env=env) as (port_b, _b),
        aiohttp.ClientSession() as http,
    ):
        created = await post_graphql(
            http,
            port_a,
            CREATE,
            {"url": receiver.url, "c": str(school.course_id)},
            school.instructor,
        )
        secret = created["createWebhook"]["secret"]
        course = str(school.course_id)

        # Every student learns through both processes at once
        async def learner(student: Account, first_port: int) -> None:
            ports = [first_port, port_b if first_port == port_a else port_a]
            await post_graphql(http, ports[0], ENROLL, {"c": course}, student)
            for number, lesson_id in enumerate(school.lesson_ids):
                variables = {"c": course, "l": str(lesson_id)}
                await post_graphql(http, ports[number % 2], COMPLETE, variables, student)

        await asyncio.gather(
            *(learner(s, port_a if i % 2 else port_b) for i, s in enumerate(students))
        )
        expected = await event_ids(db, school.course_id)
        assert len(expected) == len(students) * 6
        await eventually(lambda: len(receiver.arrived) >= len(expected), "every event")
        await asyncio.sleep(0.5)  # anything sent twice would arrive by now

    sent = [headers["webhook-id"] for headers, _body in receiver.arrived]
    assert sent == [str(event_id) for event_id in expected]  # each once, in log order
    assert [int(m["data"]["id"]) for m in receiver.accepted(secret)] == expected


# ---- the operator's command line ------------------------------------------------------------


async def test_operators_list_webhooks_and_their_deliveries_from_the_command_line(
    tmp_path: Path,
    serve: Any,
    settings: Settings,
    database_url: str,
    db: Database,
    school: School,
    receiver: Receiver,
) -> None:
    client = await serve(delivering(settings))
    webhook_id, _secret = await create(client, school, receiver.url, events=["ENROLLED"])
    await learn(db, school, lessons=0)
    await eventually(lambda: len(receiver.arrived) == 1, "the enrolment")
    enrolled = (await event_ids(db, school.course_id))[0]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "COURSEPULSE_DATABASE_URL": database_url,
        "COURSEPULSE_LOG_LEVEL": "WARNING",
    }

    async def cli(*args: str) -> tuple[int, str]:
        command = [sys.executable, "-m", "coursepulse", *args]
        return await run_to_end(command, cwd=tmp_path, seconds=60, env=env)

    status, output = await cli("webhooks", "list")
    assert status == 0, output
    fields = output.strip().splitlines()[-1].split("\t")
    assert fields[:4] == [webhook_id, receiver.url, f"course {school.course_id}", "events enrolled"]
    assert fields[-1] == "active"

    status, output = await cli("webhooks", "deliveries", webhook_id)
    assert status == 0, output
    fields = output.strip().splitlines()[-1].split("\t")
    assert fields[1:3] == [f"event {enrolled}", "attempt 1"]
    assert fields[4:] == ["ok", "200"]

    status, output = await cli("webhooks", "deliveries", "999")
    assert status == 2
    assert "not_found" in output
    assert "Traceback" not in output


# ---- the README's receiver ------------------------------------------------------------------

ROOT = Path(__file__).parent.parent


async def test_the_readme_receiver_verifies_and_handles_each_event_once(
    serve: Any, settings: Settings, db: Database, school: School
) -> None:
    example = ROOT / "examples" / "webhook_receiver.py"
    code = example.read_text()
    assert code[code.index("import os") :] in (ROOT / "README.md").read_text()
    port = free_port()
    client = await serve(delivering(settings))
    url = f"http://127.0.0.1:{port}/coursepulse"
    webhook_id, secret = await create(client, school, url)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(example),
        env={**os.environ, "WEBHOOK_SECRET": secret, "PORT": str(port)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        async with aiohttp.ClientSession() as http:

            async def forged_refused() -> bool:
                try:
                    headers = {
                        "webhook-id": "1",
                        "webhook-timestamp": "1",
                        "webhook-signature": "v1,x",
                    }
                    async with http.post(url, data=b"{}", headers=headers) as response:
                        return response.status == 400
                except aiohttp.ClientConnectionError:
                    return False  # not listening yet

            await eventually(forged_refused, "the receiver refusing a forged delivery")
            await learn(db, school, lessons=2)
            lines = [await next_event(process.stdout) for _ in range(3)]
            student = school.student.id
            assert [line.split() for line in lines] == [
                ["ENROLLED", str(student), "0"],
                ["LESSON_COMPLETED", str(student), "25"],
                ["LESSON_COMPLETED", str(student), "50"],
            ]
            # A replay of everything is dropped as repeats: the next line is the next event
            body = await graphql(
                client, REDELIVER, {"id": webhook_id, "after": "0"}, as_=school.instructor
            )
            assert "errors" not in body, body
            await learn_more(db, school, start=2)
            line = await next_event(process.stdout)
            assert line.split() == ["LESSON_COMPLETED", str(student), "75"]
    finally:
        process.kill()
        await process.wait()


async def next_event(output: asyncio.StreamReader) -> str:
    """The receiver's next line about an event (aiohttp's start-up lines skipped)."""
    while True:
        line = (await asyncio.wait_for(output.readline(), WAIT_SECONDS)).decode()
        if line and not line.startswith(("=", "(")):
            return line


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("64:ff9b::808:808", True),  # NAT64 to a public IPv4 address
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("100.64.0.1", False),  # shared address space (carrier NAT)
        ("169.254.169.254", False),  # cloud metadata
        ("0.0.0.0", False),  # noqa: S104  (the unspecified address, refused)
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00:ec2::254", False),  # unique local (a cloud's metadata over IPv6)
        ("fec0::1", False),  # site-local
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::10.0.0.1", False),  # IPv4-compatible
        ("2002:7f00:1::", False),  # 6to4 around 127.0.0.1
        ("64:ff9b::7f00:1", False),  # NAT64 to 127.0.0.1
        ("64:ff9b:1::a00:1", False),  # a local NAT64 prefix
    ],
)
def test_only_public_addresses_are_connected_to(address: str, allowed: bool) -> None:
    assert webhook_urls.address_allowed(address, allow_private=False) is allowed
    assert webhook_urls.address_allowed(address, allow_private=True) is True


async def test_an_admins_webhook_for_every_course_stops_when_they_are_no_longer_admin(
    client: TestClient, db: Database, school: School
) -> None:
    body = await graphql(
        client, CREATE, {"url": "https://hr.example/", "c": None}, as_=school.admin
    )
    webhook_id = int(body["data"]["createWebhook"]["webhook"]["id"])
    async with db.write() as tx:
        await users.set_role(tx, school.admin.username, Role.INSTRUCTOR)
    async with db.read() as tx:
        row = {row.id: row for row in await webhooks.every_webhook(tx)}[webhook_id]
    assert row.disabled_at is not None
    assert "no longer manages" in row.disabled_reason


async def test_news_at_the_moment_of_stopping_does_not_keep_the_worker_running(
    db: Database, settings: Settings
) -> None:
    """Python 3.11's `asyncio.wait_for` returns the awaited result, swallowing the
    cancellation, when both arrive in one turn of the loop: a worker woken as it was
    stopped went on polling, and the application's clean-up waited for it forever."""
    from coursepulse.app import worker_config
    from coursepulse.delivery.sender import Sender
    from coursepulse.delivery.worker import WebhookWorker

    sender = Sender(timeout_seconds=1.0, allow_private=True)
    await sender.start()
    try:
        loop = asyncio.get_running_loop()
        for _ in range(5):
            worker = WebhookWorker(db, sender, worker_config(delivering(settings)))
            worker.start()
            await asyncio.sleep(0.1)  # waiting for news
            worker.wake()
            started = loop.time()
            # (a timeout would cancel `stop`, which then returns as if it had stopped)
            await asyncio.wait_for(worker.stop(), 5)
            assert loop.time() - started < 2, "stop waited for a worker that went on"
            assert worker.stopped
    finally:
        await sender.close()
