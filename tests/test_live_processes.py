"""Live progress across processes: two real `coursepulse serve` on one PostgreSQL database.

A mutation sent to one process reaches a subscriber connected to the other through
PostgreSQL NOTIFY and the event log; stopping a process closes its websockets with
1001 (going away) so clients resume elsewhere with `after`.
"""

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType

from coursepulse.models.db import Database
from tests.conftest import School
from tests.processes import coursepulse_serve
from tests.test_live import (  # the autouse fixture runs these tests in asyncio debug mode too
    COURSE_ACTIVITY,
    PROGRESS_UPDATED,
    TRANSPORT_WS,
    LiveClient,
    _asyncio_debug,  # noqa: F401
    basic_header,
    complete,
    enroll,
    follow,
    last_event_id,
    raw_socket,
)


@pytest.fixture
def postgres_db(db: Database) -> Database:
    if db.dialect != "postgresql":
        pytest.skip(
            "several processes share live progress through PostgreSQL; SQLite is one process"
        )
    return db


async def test_event_of_a_mutation_on_one_process_reaches_a_subscriber_of_another(
    postgres_db: Database, database_url: str, school: School, tmp_path: Path
) -> None:
    db = postgres_db
    async with (
        coursepulse_serve(database_url, tmp_path / "a.log") as (port_a, process_a),
        coursepulse_serve(database_url, tmp_path / "b.log") as (port_b, _process_b),
        aiohttp.ClientSession(f"http://127.0.0.1:{port_b}") as to_b,
        aiohttp.ClientSession() as http,
    ):
        await enroll(to_b, school, school.student)
        enrolled = await last_event_id(db)
        url_a = f"ws://127.0.0.1:{port_a}/graphql"

        # Given the instructor's dashboard and John's progress bar are connected to process A
        async with (
            LiveClient(url_a, TRANSPORT_WS, account=school.instructor) as dashboard,
            LiveClient(url_a, TRANSPORT_WS, account=school.student) as progress_bar,
            raw_socket(http, url_a, TRANSPORT_WS) as raw,
        ):
            activity = await follow(dashboard, COURSE_ACTIVITY, school.course_id, enrolled)
            own = await follow(progress_bar, PROGRESS_UPDATED, school.course_id, enrolled)
            assert (await raw.init({"Authorization": basic_header(school.student)}))[
                "type"
            ] == "connection_ack"
            await raw.subscribe(
                "1", PROGRESS_UPDATED, courseId=str(school.course_id), after=str(enrolled - 1)
            )
            assert int((await raw.next_event())["id"]) == enrolled

            # When John completes a lesson through process B
            await complete(to_b, school, school.student, 0)

            # Then both hear it on process A
            for stream in (activity, own):
                event = await stream.next()
                assert (event["kind"], event["lessonId"], event["userId"]) == (
                    "LESSON_COMPLETED",
                    str(school.lesson_ids[0]),
                    str(school.student.id),
                )
            assert (await raw.next_event())["lessonId"] == str(school.lesson_ids[0])

            # And stopping process A closes its websockets as "going away"
            process_a.send_signal(signal.SIGTERM)
            closed = await raw.receive()
            assert (closed["frame"], closed["code"]) == (WSMsgType.CLOSE, 1001)
            async with asyncio.timeout(15):
                assert await process_a.wait() == 0
