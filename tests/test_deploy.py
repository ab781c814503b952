"""The deployment example (deploy/): its nginx configuration, run by a real nginx, in front of
two real `coursepulse serve` replicas on one database, as deploy/compose.yaml wires them.

Requests are spread over both replicas, a subscription's websocket passes through the
balancer, a replica that stops closes its websockets with 1001 while the other goes on
answering, and /metrics is not reachable through the public address. A replica told to stop
(SIGTERM, as `docker stop` does) first finishes the requests under way.
"""

import asyncio
import json
import os
import re
import shutil
import signal
import sqlite3
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType
from sqlalchemy import func, select

from coursepulse.models import LessonCompletion
from coursepulse.models.db import Database
from tests.conftest import School
from tests.processes import coursepulse_serve, free_port
from tests.test_live import (
    PROGRESS_UPDATED,
    TRANSPORT_WS,
    basic_header,
    complete,
    enroll,
    last_event_id,
    raw_socket,
)

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def nginx_binary() -> str:
    """nginx's path; skips the test when there is none (CI installs it and must run it)."""
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the deployment test: `apt-get install nginx-light`")
        pytest.skip(
            "the deployment test runs deploy/nginx.conf in nginx: `apt-get install nginx-light`"
        )
    return path


def balancer_config(replicas: list[int], port: int) -> str:
    """deploy/nginx.conf with the replicas and the listening address of this test."""
    config = (DEPLOY / "nginx.conf").read_text()
    config, replaced = re.subn(r"server app1:8000", f"server 127.0.0.1:{replicas[0]}", config)
    assert replaced == 1
    config, replaced = re.subn(r"server app2:8000", f"server 127.0.0.1:{replicas[1]}", config)
    assert replaced == 1
    config, replaced = re.subn(r"listen 8080;", f"listen 127.0.0.1:{port};", config)
    assert replaced == 1
    return config


@pytest.fixture
def nginx_path() -> str:
    return nginx_binary()


async def test_two_replicas_behind_the_example_balancer(
    nginx_path: str, db: Database, database_url: str, school: School, tmp_path: Path
) -> None:
    environment = {
        "COURSEPULSE_LOG_LEVEL": "INFO",
        "COURSEPULSE_LOG_FORMAT": "json",
        "COURSEPULSE_TRUSTED_PROXIES": "127.0.0.1",
        # SQLite: each replica also reads the log for the other's events.
        "COURSEPULSE_EVENT_POLL_SECONDS": "0.2",
    }
    logs = [tmp_path / "app1.log", tmp_path / "app2.log"]
    async with (
        coursepulse_serve(database_url, logs[0], env=environment) as (port1, process1),
        coursepulse_serve(database_url, logs[1], env=environment) as (port2, process2),
    ):
        port = free_port()
        (tmp_path / "nginx.conf").write_text(balancer_config([port1, port2], port))
        nginx = await asyncio.create_subprocess_exec(
            nginx_path,
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-g",
            f"daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/nginx-error.log;",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession(base) as balancer:
                for _ in range(100):
                    try:
                        async with balancer.get("/readyz") as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)

                await enroll(balancer, school, school.student)
                enrolled = await last_event_id(db)
                # /graphql is only ever asked through the balancer here (the replicas' own
                # ports are asked /readyz and /metrics): each replica's log counts its share
                for _ in range(10):
                    async with balancer.get("/graphql", params={"query": "{ __typename }"}) as got:
                        assert got.status == 200
                async with balancer.get("/metrics") as response:
                    assert response.status == 404

                # A subscription's websocket passes through the balancer
                async with (
                    aiohttp.ClientSession() as http,
                    raw_socket(http, f"ws://127.0.0.1:{port}/graphql", TRANSPORT_WS) as live,
                ):
                    init = await live.init({"Authorization": basic_header(school.student)})
                    assert init["type"] == "connection_ack"
                    await live.subscribe(
                        "1",
                        PROGRESS_UPDATED,
                        courseId=str(school.course_id),
                        after=str(enrolled - 1),
                    )
                    assert int((await live.next_event())["id"]) == enrolled
                    for lesson in range(2):  # through either replica, heard on the socket
                        await complete(balancer, school, school.student, lesson)
                        event = await live.next_event()
                        assert event["lessonId"] == str(school.lesson_ids[lesson])

                    # A replica that stops closes its websockets as "going away" ...
                    served = await replica_of_socket(http, [port1, port2])
                    stopping = process1 if served == 0 else process2
                    stopping.send_signal(signal.SIGTERM)
                    closed = await live.receive()
                    assert (closed["frame"], closed["code"]) == (WSMsgType.CLOSE, 1001)
                    async with asyncio.timeout(15):
                        assert await stopping.wait() == 0

                # ... and the balancer sends everything to the other one
                for _ in range(10):
                    async with balancer.get("/readyz") as response:
                        assert response.status == 200
                await complete(balancer, school, school.student, 2)
        finally:
            nginx.send_signal(signal.SIGQUIT)  # graceful stop
            try:
                await asyncio.wait_for(nginx.wait(), 10)
            except TimeoutError:
                nginx.kill()
                await nginx.wait()

    answered = [
        sum(_logged_path(line) == "/graphql" for line in log.read_text().splitlines())
        for log in logs
    ]
    assert all(count > 0 for count in answered), f"requests per replica: {answered}"


async def replica_of_socket(http: aiohttp.ClientSession, ports: list[int]) -> int:
    """Which replica holds the open websocket (its own /metrics says)."""
    for index, port in enumerate(ports):
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
        if re.search(r"^coursepulse_websocket_connections 1\.0$", text, re.MULTILINE):
            return index
    raise AssertionError("no replica holds the websocket")


async def test_a_stopping_replica_finishes_the_requests_under_way(
    db: Database, database_url: str, school: School, tmp_path: Path
) -> None:
    if db.dialect != "sqlite":
        pytest.skip("the request is held by SQLite's write lock, taken by the test")
    path = database_url.removeprefix("sqlite+aiosqlite:///")
    async with (
        coursepulse_serve(database_url, tmp_path / "app.log") as (port, process),
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as replica,
    ):
        await enroll(replica, school, school.student)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the completion below waits for this writer
        try:
            under_way = asyncio.create_task(complete(replica, school, school.student, 0))
            await asyncio.sleep(0.5)
            assert not under_way.done()
            process.send_signal(signal.SIGTERM)  # what `docker stop` sends
            await asyncio.sleep(0.5)
            assert process.returncode is None, "the replica stopped with a request under way"
        finally:
            holder.rollback()
            holder.close()
        await asyncio.wait_for(under_way, 15)  # answered 200 with the completion
        async with asyncio.timeout(15):
            assert await process.wait() == 0
    async with db.read() as tx:
        assert await tx.scalar(select(func.count()).select_from(LessonCompletion)) == 1


def _logged_path(line: str) -> str | None:
    """The path of an access log line (None for any other line)."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    return entry.get("path") if isinstance(entry, dict) else None
