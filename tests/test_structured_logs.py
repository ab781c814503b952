"""The access log as an operator reads it: one JSON object per request (when not on a
terminal) with its request id, viewer, operation name, type and outcome, and no secret."""

import asyncio
import io
import json
import logging
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from coursepulse.logging_setup import (
    BatchedStreamHandler,
    JsonFormatter,
    TextFormatter,
    direct_handler,
)
from coursepulse.models.db import Database
from tests.conftest import PASSWORD, School, graphql
from tests.processes import coursepulse_serve

PROGRESS = """query CourseProgress($c: ID!) { courseProgress(courseId: $c) {
  progressPercentage } }"""
TOKEN = 'mutation NewToken { createApiToken(name: "ci") { token } }'


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The access log's records as the JSON formatter writes them."""
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.name == "coursepulse.access"
    ]


async def test_each_request_is_one_json_object_with_its_operation_and_outcome(
    client: TestClient, school: School, caplog: pytest.LogCaptureFixture
) -> None:
    variables = {"c": str(school.course_id)}
    with caplog.at_level(logging.INFO, logger="coursepulse.access"):
        # Not enrolled yet: the operation fails with its code; then, twice, it succeeds
        # (the second time by the path for documents seen before)
        await graphql(client, PROGRESS, variables, as_=school.student)
        await graphql(
            client,
            "mutation($c: ID!) { enroll(courseId: $c) { message } }",
            variables,
            as_=school.student,
        )
        for _ in range(2):
            await graphql(client, PROGRESS, variables, as_=school.student)
        await client.get("/nowhere", headers={"X-Request-ID": "anonymous-1"})

    lines = access_lines(caplog)
    graphql_lines = [line for line in lines if line["path"] == "/graphql"]
    assert [
        (line.get("operation_name"), line["operation_type"], line["outcome"])
        for line in graphql_lines
    ] == [
        ("CourseProgress", "query", "not_enrolled"),
        (None, "mutation", "ok"),
        ("CourseProgress", "query", "ok"),
        ("CourseProgress", "query", "ok"),
    ]
    for line in graphql_lines:
        assert line["viewer_id"] == school.student.id
        assert line["method"] == "POST"
        assert line["status"] == 200
        assert line["duration_ms"] >= 0
        assert len(line["request_id"]) == 32
        assert line["level"] == "INFO"
    anonymous = next(line for line in lines if line["path"] == "/nowhere")
    assert anonymous["request_id"] == "anonymous-1"
    assert "viewer_id" not in anonymous


async def test_probes_that_answer_are_logged_at_debug_and_the_others_at_info(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="coursepulse.access"):
        await client.get("/healthz")
        await client.get("/readyz")
    assert access_lines(caplog) == []  # a load balancer's probes do not fill the log

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="coursepulse.access"):
        await client.get("/healthz", headers={"X-Request-ID": "probe-1"})
        await client.get("/readyz")
    probes = access_lines(caplog)
    assert [(line["path"], line["status"], line["level"]) for line in probes] == [
        ("/healthz", 200, "DEBUG"),
        ("/readyz", 200, "DEBUG"),
    ]
    assert probes[0]["request_id"] == "probe-1"


async def test_no_password_or_token_reaches_the_log(
    client: TestClient, school: School, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        body = await graphql(client, TOKEN, as_=school.student)
        token = body["data"]["createApiToken"]["token"]
        await client.post(
            "/graphql",
            json={"query": "{ me { username } }"},
            headers={"Authorization": f"Bearer {token}"},
        )
        await client.get(f"/graphql?query={{me{{username}}}}&token={token}")
        await client.post(
            "/graphql",
            json={"query": "{ me { username } }"},
            headers={"Authorization": "Basic bm9ib2R5Ondyb25nLXNlY3JldA=="},
        )
    # Every record but aiohttp's own access log, which the test server keeps and
    # `coursepulse serve` switches off (web.run_app(access_log=None))
    written = "\n".join(
        formatter.format(record)
        for record in caplog.records
        if record.name != "aiohttp.access"
        for formatter in (JsonFormatter(), TextFormatter())
    )
    assert "NewToken" in written
    for secret in (
        PASSWORD,
        token,
        school.student.auth["Authorization"].split()[1],
        "bm9ib2R5Ondyb25nLXNlY3JldA==",
        "wrong-secret",
    ):
        assert secret not in written


async def test_a_slow_request_is_a_warning(
    serve: Any, settings: Any, school: School, caplog: pytest.LogCaptureFixture
) -> None:
    client = await serve(settings.model_copy(update={"slow_request_seconds": 0.000001}))
    with caplog.at_level(logging.INFO, logger="coursepulse.access"):
        await graphql(client, "query Me { me { username } }", as_=school.student)
    line = next(line for line in access_lines(caplog) if line["path"] == "/graphql")
    assert line["level"] == "WARNING"
    assert line["message"].startswith("slow request: POST /graphql 200")
    assert line["operation_name"] == "Me"


async def test_the_service_writes_json_lines_when_not_on_a_terminal(
    tmp_path: Path, database_url: str, db: Database, school: School
) -> None:
    log = tmp_path / "serve.log"
    env = {"COURSEPULSE_LOG_LEVEL": "INFO"}
    async with (
        coursepulse_serve(database_url, log, env=env) as (port, process),
        aiohttp.ClientSession() as http,
    ):
        async with http.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "query Me { me { username } }", "operationName": "Me"},
            headers={**school.student.auth, "X-Request-ID": "from-the-test"},
        ) as response:
            assert response.status == 200
        # While it runs, the line is written within COURSEPULSE_LOG_FLUSH_SECONDS (0.5).
        for _ in range(100):
            if "from-the-test" in log.read_text():
                break
            await asyncio.sleep(0.05)
        assert "from-the-test" in log.read_text()
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    request = next(line for line in lines if line.get("request_id") == "from-the-test")
    assert (request["operation_name"], request["operation_type"]) == ("Me", "query")
    assert request["outcome"] == "ok"
    assert request["viewer_id"] == school.student.id
    assert request["logger"] == "coursepulse.access"
    assert school.student.auth["Authorization"].split()[1] not in log.read_text()


def test_a_json_line_has_the_record_time_to_the_millisecond_in_utc() -> None:
    formatter = JsonFormatter()
    # Around the end of a second, where rounding to the microsecond carries into it.
    for created in (1796647075.1189995, 1796647075.9999996, 1796647076.0, 1796647076.0004999):
        record = logging.LogRecord("coursepulse.access", logging.INFO, "", 0, "m", (), None)
        record.created = created
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert json.loads(formatter.format(record))["time"] == expected


def test_a_field_json_cannot_hold_as_a_number_is_still_logged() -> None:
    record = logging.LogRecord("coursepulse.access", logging.INFO, "", 0, "m", (), None)
    record.fields = {"big": 2**70, "when": datetime(2026, 12, 7, tzinfo=UTC), "name": "Zoë"}
    line = JsonFormatter().format(record)
    assert json.loads(line)["big"] == 2**70
    assert json.loads(line)["name"] == "Zoë"


def _record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("coursepulse.access", level, "", 0, message, (), None)


def test_batched_lines_wait_for_their_batch_and_a_warning_takes_them_along() -> None:
    stream = io.StringIO()
    handler = BatchedStreamHandler(interval=60, batch_bytes=1_000)
    handler.setStream(stream)
    try:
        handler.handle(_record(logging.INFO, "first"))
        handler.handle(_record(logging.INFO, "second"))
        assert stream.getvalue() == ""
        handler.handle(_record(logging.WARNING, "third"))
        assert stream.getvalue().splitlines() == ["first", "second", "third"]
        for number in range(200):  # a full batch is written without waiting
            handler.handle(_record(logging.INFO, f"line {number:03d}"))
        written = stream.getvalue().splitlines()
        assert len(written) > 3
        assert written[3:] == [f"line {number:03d}" for number in range(len(written) - 3)]
    finally:
        handler.close()
    assert stream.getvalue().splitlines()[-1] == "line 199"  # closing writes the rest


def test_batched_lines_are_written_within_the_interval() -> None:
    stream = io.StringIO()
    handler = BatchedStreamHandler(interval=0.05)
    handler.setStream(stream)
    try:
        handler.handle(_record(logging.INFO, "soon"))
        deadline = time.monotonic() + 5
        while "soon" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.getvalue() == "soon\n"
    finally:
        handler.close()


async def test_the_access_log_writes_its_line_straight_to_a_lone_json_handler(
    client: TestClient, school: School, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    # Given the service's own logging: one batched JSON handler on the root logger
    stream = io.StringIO()
    handler = BatchedStreamHandler(interval=60)
    handler.setStream(stream)
    handler.setFormatter(JsonFormatter())
    monkeypatch.setattr(logging.root, "handlers", [handler])
    monkeypatch.setattr(logging.root, "level", logging.INFO)
    records: list[str] = []
    make_record = logging.Logger.makeRecord

    def counted(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(self, *args, **kwargs)
        records.append(record.name)
        return record

    monkeypatch.setattr(logging.Logger, "makeRecord", counted)
    try:
        # When a request is answered, its line goes to that handler without a record
        await graphql(client, PROGRESS, {"c": str(school.course_id)}, as_=school.student)
        handler.flush()
    finally:
        handler.close()
    assert "coursepulse.access" not in records  # no LogRecord was made for the line
    lines = [json.loads(text) for text in stream.getvalue().splitlines()]
    (line,) = [line for line in lines if line["logger"] == "coursepulse.access"]
    # Then it is the line the formatter makes of the access log's record
    assert line.keys() >= {"time", "level", "logger", "process", "message", "request_id"}
    assert line["level"] == "INFO"
    assert line["logger"] == "coursepulse.access"
    assert line["message"].startswith("POST /graphql 200 ")
    assert line["viewer_id"] == school.student.id
    assert line["operation_name"] == "CourseProgress"
    assert line["outcome"] == "not_enrolled"  # the school's student has not enrolled yet


def test_a_record_takes_the_logging_path_unless_one_json_handler_alone_gets_it(
    monkeypatch: Any,
) -> None:
    access = logging.getLogger("coursepulse.access")
    handler = BatchedStreamHandler(interval=60)
    handler.setFormatter(JsonFormatter())
    try:
        monkeypatch.setattr(logging.root, "handlers", [handler])
        assert direct_handler(access, logging.INFO) is handler
        handler.setLevel(logging.WARNING)
        assert direct_handler(access, logging.INFO) is None
        assert direct_handler(access, logging.WARNING) is handler
        handler.setLevel(logging.NOTSET)
        monkeypatch.setattr(logging.root, "handlers", [handler, logging.NullHandler()])
        assert direct_handler(access, logging.INFO) is None
        text = BatchedStreamHandler(interval=60)
        text.setFormatter(TextFormatter())
        monkeypatch.setattr(logging.root, "handlers", [text])
        assert direct_handler(access, logging.INFO) is None
        text.close()
        monkeypatch.setattr(logging.root, "handlers", [handler])
        handler.addFilter(lambda record: True)
        assert direct_handler(access, logging.INFO) is None
    finally:
        handler.close()


def test_a_json_line_is_the_formatted_record() -> None:
    formatter = JsonFormatter()
    record = logging.getLogger("coursepulse.access").makeRecord(
        "coursepulse.access", logging.INFO, "", 0, "GET %s", ("/healthz",), None,
        extra={"fields": {"status": 200, "viewer_id": None}},
    )  # fmt: skip
    assert formatter.format(record) == formatter.line(
        record.created, "INFO", "coursepulse.access", record.process, "GET /healthz",
        {"status": 200, "viewer_id": None},
    )  # fmt: skip
