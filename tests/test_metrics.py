"""/metrics as Prometheus scrapes it: counters of requests, operations and sign-in failures
with bounded labels, and the scrape token."""

import asyncio
import contextlib
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from coursepulse.app import create_app
from coursepulse.models.db import Database
from coursepulse.resolvers import completions, courses, enrollments
from coursepulse.settings import Settings
from coursepulse.web.keys import BROKER
from coursepulse.web.metrics import MAX_OPERATION_NAMES, Metrics
from tests.conftest import School, graphql

PROGRESS = "query CourseProgress($c: ID!) { courseProgress(courseId: $c) { progressPercentage } }"
ENROLL = "mutation Enroll($c: ID!) { enroll(courseId: $c) { message } }"


async def scrape(client: TestClient, **headers: str) -> dict[tuple[str, tuple[Any, ...]], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[Any, ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_operations_requests_and_failures_are_counted(
    client: TestClient, school: School
) -> None:
    variables = {"c": str(school.course_id)}
    await graphql(client, PROGRESS, variables, as_=school.student)  # not enrolled yet
    await graphql(client, ENROLL, variables, as_=school.student)
    for _ in range(3):
        await graphql(client, PROGRESS, variables, as_=school.student)
    await graphql(client, "{ me { username } }", as_=school.student)
    bad = {"Authorization": "Basic bm9ib2R5Ondyb25nLXNlY3JldA=="}
    await client.post("/graphql", json={"query": "{ me { id } }"}, headers=bad)
    await client.get(f"/verify/CERT-2026-{school.course_id:03}")
    await client.get("/verify/CERT-2026-999")

    samples = await scrape(client)
    operations = "coursepulse_graphql_operations_total"
    query = {"operation_type": "query"}
    assert value(samples, operations, operation_name="CourseProgress", outcome="ok", **query) == 3
    assert (
        value(samples, operations, operation_name="CourseProgress", outcome="not_enrolled", **query)
        == 1
    )
    assert value(samples, operations, operation_name="anonymous", outcome="ok", **query) == 1
    assert (
        value(samples, operations, operation_name="Enroll", operation_type="mutation", outcome="ok")
        == 1
    )
    durations = "coursepulse_graphql_operation_duration_seconds_count"
    assert value(samples, durations, operation_name="CourseProgress", **query) == 4
    requests = "coursepulse_http_requests_total"
    assert value(samples, requests, route="/graphql", method="POST", status="200") == 6
    assert value(samples, requests, route="/graphql", method="POST", status="401") == 1
    # Route templates, never raw paths
    assert value(samples, requests, route="/verify/{number}", method="GET", status="404") == 2
    assert not any("CERT-2026" in str(labels) for _name, labels in samples)
    assert value(samples, "coursepulse_auth_failures_total") == 1
    assert value(samples, "coursepulse_websocket_connections") == 0


def test_clients_cannot_mint_unlimited_operation_names() -> None:
    metrics = Metrics()
    kept = [metrics.operation_name(f"Probe{number}") for number in range(MAX_OPERATION_NAMES)]
    assert kept == [f"Probe{number}" for number in range(MAX_OPERATION_NAMES)]
    assert metrics.operation_name("OneTooMany") == "other"
    assert metrics.operation_name("Probe7") == "Probe7"  # known names keep counting
    assert metrics.operation_name(None) == "anonymous"
    assert Metrics().operation_name("not an identifier") == "other"


async def test_the_scrape_token_guards_metrics_and_off_removes_them(
    serve: Any, settings: Settings, school: School
) -> None:
    guarded = await serve(settings.model_copy(update={"metrics": "token:scrape-me"}))
    assert (await guarded.get("/metrics")).status == 401
    assert (await guarded.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
    samples = await scrape(guarded, Authorization="Bearer scrape-me")
    assert value(samples, "coursepulse_auth_failures_total") == 0  # a scrape is no sign-in
    off = await serve(settings.model_copy(update={"metrics": "off"}))
    assert (await off.get("/metrics")).status == 404


async def test_events_are_counted_by_kind_and_timed_to_their_live_readers(
    client: TestClient, db: Database, school: School
) -> None:
    feeds = client.server.app[BROKER].feeds
    subscription = await feeds.subscribe(school.course_id)
    try:
        async with db.write() as tx:
            await enrollments.enroll(tx, school.student.viewer, school.course_id)
            for lesson_id in school.lesson_ids[:2]:
                await completions.complete_lesson(
                    tx, school.student.viewer, school.course_id, lesson_id
                )
        async with db.write() as tx:  # one statement writes the recalculated progress
            await courses.delete_lesson(tx, school.instructor.viewer, school.lesson_ids[3])
        for _ in range(4):
            await asyncio.wait_for(subscription.next(), 10)
    finally:
        await feeds.unsubscribe(subscription)

    samples = await scrape(client)
    appended = "coursepulse_events_appended_total"
    assert value(samples, appended, kind="ENROLLED") == 1
    assert value(samples, appended, kind="LESSON_COMPLETED") == 2
    assert value(samples, appended, kind="PROGRESS_RECALCULATED") == 1
    assert value(samples, "coursepulse_event_delivery_seconds_count") == 4


async def test_websockets_and_live_subscriptions_are_gauged(
    client: TestClient, db: Database, school: School
) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
    websocket = await client.ws_connect("/graphql", protocols=["graphql-transport-ws"])
    try:
        await websocket.send_json({"type": "connection_init", "payload": school.student.auth})
        assert (await websocket.receive_json(timeout=10))["type"] == "connection_ack"
        query = 'subscription($c: ID!) { progressUpdated(courseId: $c, after: "0") { id } }'
        await websocket.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": query, "variables": {"c": str(school.course_id)}},
            }
        )
        # The subscription runs once it has replayed the enrolment
        assert (await websocket.receive_json(timeout=10))["type"] == "next"
        samples = await scrape(client)
        assert value(samples, "coursepulse_websocket_connections") == 1
        assert value(samples, "coursepulse_subscriptions", field="progressUpdated") == 1
        await websocket.send_json({"id": "1", "type": "complete"})
    finally:
        await websocket.close()

    async def closed() -> bool:
        samples = await scrape(client)
        return (
            value(samples, "coursepulse_websocket_connections") == 0
            and value(samples, "coursepulse_subscriptions", field="progressUpdated") == 0
        )

    for _ in range(100):
        if await closed():
            break
        await asyncio.sleep(0.05)
    assert await closed()


async def test_database_connections_in_use_and_waited_for_are_gauged(
    client: TestClient, db: Database
) -> None:
    samples = await scrape(client)
    size = db.connection_use().size
    assert size == (10 if db.dialect == "postgresql" else 8 + 1)  # SQLite: readers and writer
    assert value(samples, "coursepulse_db_connections") == size
    assert value(samples, "coursepulse_db_connections_in_use") == 0
    assert value(samples, "coursepulse_db_connections_waiting") == 0

    async with contextlib.AsyncExitStack() as held:
        for _ in range(db.read_connections):  # every connection reads may take
            tx = await held.enter_async_context(db.read())
            await tx.execute(text("SELECT 1"))

        async def one_more_read() -> None:
            async with db.read() as tx:
                await tx.execute(text("SELECT 1"))

        waiting = asyncio.create_task(one_more_read())
        for _ in range(500):  # until it asks for a connection
            if db.connection_use().waiting:
                break
            await asyncio.sleep(0.01)
        samples = await scrape(client)
        assert value(samples, "coursepulse_db_connections_in_use") == db.read_connections
        assert value(samples, "coursepulse_db_connections_waiting") == 1
    await waiting
    samples = await scrape(client)
    assert value(samples, "coursepulse_db_connections_in_use") == 0
    assert value(samples, "coursepulse_db_connections_waiting") == 0


async def test_the_pool_size_is_a_setting(settings: Settings, database_url: str) -> None:
    app = create_app(settings.model_copy(update={"db_pool_size": 3}))
    async with TestClient(TestServer(app)) as client:
        samples = await scrape(client)
    expected = 3 if database_url.startswith("postgresql") else 8 + 1  # SQLite: its own
    assert value(samples, "coursepulse_db_connections") == expected
