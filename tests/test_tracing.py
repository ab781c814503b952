"""OpenTelemetry tracing (the `otel` extra): a request's spans, from the HTTP server span
through its GraphQL operation to each SQL statement, checked with the SDK's in-memory
exporter; and the OTLP export a `serve` process makes when an endpoint is set."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from coursepulse import telemetry
from coursepulse.app import create_app
from coursepulse.models.db import Database
from coursepulse.settings import Settings
from tests.conftest import PASSWORD, School, graphql

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


async def test_serve_exports_spans_by_otlp_when_an_endpoint_is_set(
    monkeypatch: pytest.MonkeyPatch, db: Database, settings: Settings, school: School
) -> None:
    received: list[tuple[str, str, bytes]] = []

    async def collect(request: web.Request) -> web.Response:
        received.append((request.path, request.content_type, await request.read()))
        return web.Response()

    collector = web.Application()
    collector.router.add_post("/v1/traces", collect)
    async with TestServer(collector, host="127.0.0.1") as server:
        assert not telemetry.start_from_environment()  # no endpoint: off
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", str(server.make_url("")).rstrip("/"))
        monkeypatch.setenv("OTEL_SERVICE_NAME", "coursepulse-test")
        assert telemetry.start_from_environment()
        try:
            async with TestClient(TestServer(create_app(settings, database=db))) as client:
                await graphql(client, "query Me { me { username } }", as_=school.student)
        finally:
            await asyncio.to_thread(telemetry.stop)  # sends what is buffered
    assert telemetry.tracer() is None
    assert received, "no spans arrived at the collector"
    path, content_type, payload = received[0]
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    assert b"coursepulse-test" in payload
    assert b"query Me" in b"".join(body for _p, _c, body in received)
