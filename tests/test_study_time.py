"""Study time: per lesson, never ahead of the clock (an allowance that refills one second per
second), heartbeats coalesced without reading the log, 64-bit totals."""

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, text, update

from coursepulse.models import Enrollment, ProgressEvent
from coursepulse.models.db import Database
from coursepulse.models.types import utcnow
from coursepulse.resolvers import enrollments
from coursepulse.resolvers.enrollments import credit_activity
from tests.conftest import Account, School, StatementCounter, graphql

RECORD = """mutation($c: ID!, $s: Int!, $l: ID) {
  recordActivity(courseId: $c, seconds: $s, lessonId: $l) { timeSpentSeconds } }"""
LESSONS = """query($c: ID!, $u: ID) { courseProgress(courseId: $c, userId: $u) {
  timeSpentSeconds lessons { lesson { order } timeSpentSeconds } } }"""
STATS = """query($c: ID!) { courseStats(courseId: $c) {
  lessons { lesson { order } averageTimeSpentSeconds } } }"""
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_the_allowance_refills_one_second_per_second() -> None:
    # Full at first: what was sent, up to the allowance
    assert credit_activity(None, NOW, 600, 3600) == (600, NOW - timedelta(seconds=3000))
    assert credit_activity(None, NOW, 3600, 3600) == (3600, NOW)
    # Spent: nothing more until the clock moves; then one second per second
    assert credit_activity(NOW, NOW, 60, 3600) == (0, NOW)
    assert credit_activity(NOW, NOW + timedelta(seconds=45), 60, 3600) == (
        45,
        NOW + timedelta(seconds=45),
    )
    # A long pause fills it, never beyond the allowance
    later = NOW + timedelta(days=30)
    assert credit_activity(NOW, later, 3600, 3600) == (3600, later)
    assert credit_activity(NOW, later, 3600, 60) == (60, later)


async def enrol(db: Database, school: School, student: Account) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, student.viewer, school.course_id)


async def record(
    client: TestClient, school: School, student: Account, seconds: int, lesson: int | None = None
) -> int:
    variables = {
        "c": str(school.course_id),
        "s": seconds,
        "l": str(school.lesson_ids[lesson]) if lesson is not None else None,
    }
    body = await graphql(client, RECORD, variables, as_=student)
    assert "errors" not in body, body
    return int(body["data"]["recordActivity"]["timeSpentSeconds"])


async def clock_moves(db: Database, student: Account, seconds: int) -> None:
    """As if `seconds` passed since the student's last heartbeat, which spent the allowance."""
    enrolments = Enrollment.__table__
    then = utcnow() - timedelta(seconds=seconds)
    async with db.write() as tx:
        await tx.execute(
            update(enrolments)
            .where(enrolments.c.user_id == student.id)
            .values(activity_credited_to=then, last_activity_event_at=then)
        )


async def test_recorded_time_never_outruns_the_clock(
    client: TestClient, db: Database, school: School
) -> None:
    await enrol(db, school, school.student)
    started = time.monotonic()
    # An hour at once is credited (the allowance starts full)...
    assert await record(client, school, school.student, 3600) == 3600
    # ...but not a second hour in the same minute: no error, and nothing added beyond the
    # seconds that passed meanwhile (the allowance refills one second per second)
    second = await record(client, school, school.student, 3600)
    third = await record(client, school, school.student, 1)
    refilled = math.ceil(time.monotonic() - started)
    assert 3600 <= second <= third <= 3600 + refilled
    # Two minutes later, two minutes more can be credited
    await clock_moves(db, school.student, 120)
    assert await record(client, school, school.student, 3600) == third + 120


async def test_two_heartbeats_at_once_share_one_allowance(
    client: TestClient, db: Database, school: School
) -> None:
    await enrol(db, school, school.student)
    totals = await asyncio.gather(
        record(client, school, school.student, 3000), record(client, school, school.student, 3000)
    )
    assert sorted(totals) == [3000, 3600]


async def test_time_is_kept_per_lesson_and_averaged_per_lesson(
    client: TestClient, db: Database, school: School
) -> None:
    await enrol(db, school, school.student)
    await enrol(db, school, school.other_student)
    await record(client, school, school.student, 120, lesson=0)
    await record(client, school, school.student, 60, lesson=0)
    await record(client, school, school.student, 30, lesson=1)
    await record(client, school, school.student, 15)  # the course, no lesson
    await record(client, school, school.other_student, 60, lesson=0)
    body = await graphql(client, LESSONS, {"c": str(school.course_id)}, as_=school.student)
    progress = body["data"]["courseProgress"]
    assert progress["timeSpentSeconds"] == 225
    assert [lesson["timeSpentSeconds"] for lesson in progress["lessons"]] == [180, 30, 0, 0]
    body = await graphql(client, STATS, {"c": str(school.course_id)}, as_=school.instructor)
    averages = [item["averageTimeSpentSeconds"] for item in body["data"]["courseStats"]["lessons"]]
    # Over the students who spent any: (180 + 60) / 2, 30 / 1, none, none
    assert averages == [120.0, 30.0, 0.0, 0.0]
    # A student who left no longer counts
    async with db.write() as tx:
        await enrollments.unenroll(tx, school.other_student.viewer, school.course_id)
    body = await graphql(client, STATS, {"c": str(school.course_id)}, as_=school.instructor)
    averages = [item["averageTimeSpentSeconds"] for item in body["data"]["courseStats"]["lessons"]]
    assert averages == [180.0, 30.0, 0.0, 0.0]


async def test_a_smaller_allowance_is_a_setting(db: Database, school: School) -> None:
    await enrol(db, school, school.student)
    async with db.write() as tx:
        record_ = await enrollments.record_activity(
            tx, school.student.viewer, school.course_id, 600, allowance=60
        )
    assert record_.enrollment.time_spent_seconds == 60


async def test_heartbeats_are_announced_once_per_interval_without_reading_the_log(
    client: TestClient, db: Database, school: School, count_statements: StatementCounter
) -> None:
    await enrol(db, school, school.student)
    events = ProgressEvent.__table__

    async def activity_events() -> int:
        async with db.read() as tx:
            return int(await tx.scalar(select(func.count()).where(events.c.kind == "activity")))

    await record(client, school, school.student, 10)
    with count_statements:
        await record(client, school, school.student, 10)
    assert await activity_events() == 1
    assert not any("progress_events" in sql for sql in count_statements.statements)
    await clock_moves(db, school.student, 31)
    await record(client, school, school.student, 10)
    assert await activity_events() == 2


async def test_study_time_is_64_bit_on_postgresql(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite's INTEGER is 64-bit already")
    async with db.read() as tx:
        types = await tx.all(
            text(
                "SELECT table_name, data_type FROM information_schema.columns"
                " WHERE (table_name, column_name) IN"
                " (('enrollments', 'time_spent_seconds'), ('lesson_times', 'seconds'))"
                " ORDER BY table_name"
            )
        )
    assert [tuple(row) for row in types] == [
        ("enrollments", "bigint"),
        ("lesson_times", "bigint"),
    ]


def test_utcnow_is_whole_seconds() -> None:
    # The allowance is kept to the second, as every stored time
    assert utcnow().microsecond == 0
