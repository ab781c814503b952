"""OpenTelemetry tracing (the `otel` extra): a request's spans, from the HTTP server span
through its GraphQL operation to each SQL statement, checked with the SDK's in-memory
exporter; and the OTLP export a `serve` process makes when an endpoint is set."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from coursepulse import telemetry
from coursepulse.app import create_app
from coursepulse.models import User, utcnow
from coursepulse.models.db import Database
from coursepulse.settings import Settings
from tests.conftest import PASSWORD, School, graphql
from tests.test_live import (
    PROGRESS_UPDATED,
    TRANSPORT_WS,
    basic_header,
    enroll,
    raw_socket,
    ws_url,
)

PROGRESS = "query CourseProgress($c: ID!) { courseProgress(courseId: $c) { progressPercentage } }"


@pytest.fixture
async def traced(db: Database, settings: Settings) -> AsyncIterator[tuple[TestClient, Any]]:
    """A client of an app traced into an in-memory exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.enable(provider)
    try:
        async with TestClient(TestServer(create_app(settings, database=db))) as client:
            yield client, exporter
    finally:
        telemetry.disable()


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    """The names of the span's parents, nearest first."""
    by_id = {each.context.span_id: each for each in spans}
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_a_request_is_traced_from_http_through_graphql_to_each_statement(
    traced: tuple[TestClient, InMemorySpanExporter], school: School, db: Database
) -> None:
    client, exporter = traced
    variables = {"c": str(school.course_id)}
    await graphql(
        client,
        "mutation($c: ID!) { enroll(courseId: $c) { message } }",
        {"c": str(school.course_id)},
        as_=school.student,
    )
    for _ in range(2):  # the second runs in the prepared lane
        exporter.clear()
        body = await graphql(client, PROGRESS, variables, as_=school.student)
        assert body["data"]["courseProgress"]["progressPercentage"] == 0

        spans = list(exporter.get_finished_spans())
        server = [span for span in spans if span.kind == SpanKind.SERVER]
        assert len(server) == 1
        assert server[0].attributes["http.route"] == "/graphql"
        operation = [span for span in spans if span.name == "query CourseProgress"]
        assert len(operation) == 1
        assert operation[0].attributes["graphql.operation.type"] == "query"
        assert operation[0].attributes["graphql.operation.name"] == "CourseProgress"
        assert operation[0].attributes["coursepulse.outcome"] == "ok"
        assert ancestors(operation[0], spans)[-1] == server[0].name
        statements = [span for span in spans if span.kind == SpanKind.CLIENT]
        assert statements, "no statement was traced"
        system = "postgresql" if db.dialect == "postgresql" else "sqlite"
        for statement in statements:
            assert statement.attributes["db.system"] == system
            assert statement.attributes["db.statement"].lstrip().upper().startswith("SELECT")
            assert ancestors(statement, spans)[:1] == ["query CourseProgress"]
        assert {span.context.trace_id for span in spans} == {server[0].context.trace_id}


async def test_a_callers_trace_is_continued_and_no_secret_is_recorded(
    traced: tuple[TestClient, InMemorySpanExporter], school: School
) -> None:
    client, exporter = traced
    exporter.clear()  # the school's making
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = await client.post(
        "/graphql",
        json={
            "query": "mutation Change { changePassword(currentPassword:"
            f' "{PASSWORD}", newPassword: "a brand new secret 42") {{ username }} }}',
        },
        headers={
            **school.student.auth,
            "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
        },
    )
    assert response.status == 200
    assert "errors" not in await response.json()

    spans = list(exporter.get_finished_spans())
    assert {format(span.context.trace_id, "032x") for span in spans} == {trace_id}
    assert any(span.name == "mutation Change" for span in spans)
    recorded = " ".join(
        f"{span.name} {dict(span.attributes or {})} {[event.attributes for event in span.events]}"
        for span in spans
    )
    for secret in (PASSWORD, "a brand new secret 42", school.student.auth["Authorization"]):
        assert secret not in recorded
    assert "UPDATE" in recorded  # the statements are there, without their parameters

    # GraphQL over GET carries the document and variables in the query string
    exporter.clear()
    secret_query = '{ me { username } } # "hunter2 secret"'
    await client.get(
        "/graphql",
        params={"query": secret_query, "variables": '{"password": "hunter2 secret"}'},
        headers={**school.student.auth, "Accept": "application/json"},
    )
    await client.get("/no/such/page", params={"token": "hunter2 secret"})
    await client.get("/certificates/tok3n-hunter2secret.pdf")
    spans = list(exporter.get_finished_spans())
    assert {
        span.attributes.get("http.route") for span in spans if span.kind == SpanKind.SERVER
    } >= {"/graphql"}
    recorded = " ".join(f"{span.name} {dict(span.attributes or {})}" for span in spans)
    assert "hunter2" not in recorded
    assert "/certificates/{token}.pdf" in recorded


async def test_a_failed_statement_is_recorded_by_its_type_only(
    traced: tuple[TestClient, InMemorySpanExporter], school: School, db: Database
) -> None:
    _client, exporter = traced
    tracer = telemetry.tracer()
    assert tracer is not None
    exporter.clear()
    with tracer.start_as_current_span("a request"), pytest.raises(IntegrityError):
        async with db.write() as tx:
            await tx.execute(
                insert(User).values(
                    username="john_doe",  # taken: the driver's message quotes the row
                    display_name="Someone Else",
                    password_hash="x",
                    role="student",
                    created_at=utcnow(),
                )
            )
    failed = [
        span
        for span in exporter.get_finished_spans()
        if span.name == "INSERT " + ("postgresql" if db.dialect == "postgresql" else "sqlite")
    ]
    assert len(failed) == 1
    assert failed[0].status.status_code == StatusCode.ERROR
    assert failed[0].status.description in {"UniqueViolationError", "IntegrityError"}
    assert not failed[0].events
    assert "john_doe" not in str(dict(failed[0].attributes or {}))


async def test_background_work_and_websockets_make_no_request_spans(
    traced: tuple[TestClient, InMemorySpanExporter], school: School, db: Database
) -> None:
    client, exporter = traced
    await enroll(client, school, school.student)
    exporter.clear()
    async with db.read() as tx:  # outside any request: the webhook worker, a course feed
        await tx.execute(select(User.id).limit(1))
    assert not exporter.get_finished_spans()

    # A subscription's websocket lives for hours: its reads belong to no request's trace
    async with raw_socket(client.session, ws_url(client), TRANSPORT_WS) as live:
        init = await live.init({"Authorization": basic_header(school.student)})
        assert init["type"] == "connection_ack"
        await live.subscribe("1", PROGRESS_UPDATED, courseId=str(school.course_id), after="0")
        assert (await live.next_event())["kind"] == "ENROLLED"
    for _ in range(100):  # the server span ends once the server has closed the socket
        if any(span.kind == SpanKind.SERVER for span in exporter.get_finished_spans()):
            break
        await asyncio.sleep(0.02)
    spans = list(exporter.get_finished_spans())
    assert [
        span.attributes.get("http.route") for span in spans if span.kind == SpanKind.SERVER
    ] == ["/graphql"]
    assert not [span for span in spans if span.kind == SpanKind.CLIENT]
