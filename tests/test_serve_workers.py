"""`coursepulse serve --workers 2`: two processes on one port, clean stop, shared live progress."""

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from coursepulse.demo import LOGINS
from tests.processes import free_port

STUDENT = next(login for login in LOGINS if login.username == "jane_roe")
BASIC = "Basic " + base64.b64encode(f"{STUDENT.username}:{STUDENT.password}".encode()).decode()
SUBSCRIBE = "subscription { progressUpdated(courseId: 2) { id kind lessonId } }"
ACTIVITY = "mutation($s: Int!) { recordActivity(courseId: 2, seconds: $s) { timeSpentSeconds } }"
COMPLETE = "mutation($l: ID!) { completeLesson(courseId: 2, lessonId: $l) { progressPercentage } }"


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture
def two_workers(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    if not sys.platform.startswith("linux"):
        pytest.skip("the test reads /proc; SO_REUSEPORT workers are checked on Linux")
    url = f"sqlite+aiosqlite:///{tmp_path / 'school.db'}"
    env = {**os.environ, "COURSEPULSE_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "coursepulse", "demo"], env=env, check=True, capture_output=True
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "coursepulse", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return server, f"http://127.0.0.1:{port}"


def listening_sockets(port: int) -> int:
    """Sockets listening on the local port (read from /proc/net/tcp): one per worker, as
    each binds its own with SO_REUSEPORT once its application has started."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


async def wait_for_workers(base: str, workers: int, deadline: float) -> None:
    """Wait until every worker listens (a slow machine starts the second one later)."""
    port = int(base.rsplit(":", 1)[1])
    while listening_sockets(port) < workers:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {workers} workers listen on port {port}")
        await asyncio.sleep(0.1)


async def wait_ready(base: str, deadline: float) -> None:
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("workers did not become ready")


async def test_two_workers_serve_share_live_progress_and_stop_cleanly(
    two_workers: tuple[subprocess.Popen[bytes], str],
) -> None:
    server, base = two_workers
    try:
        await wait_ready(base, time.monotonic() + 30)
        assert len(children_of(server.pid)) >= 2

        async with aiohttp.ClientSession() as session:
            websocket = await session.ws_connect(
                f"{base}/graphql", protocols=["graphql-transport-ws"]
            )
            await websocket.send_json(
                {"type": "connection_init", "payload": {"Authorization": BASIC}}
            )
            assert (await websocket.receive_json(timeout=10))["type"] == "connection_ack"
            await websocket.send_json(
                {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}
            )
            await asyncio.sleep(1)  # the subscription reaches its feed

            # Jane enrols in course 2, then studies over fresh connections: the kernel spreads
            # them over both workers, and the subscriber hears every change whichever wrote it.
            async def post(query: str, variables: dict[str, object]) -> None:
                async with (
                    aiohttp.ClientSession() as fresh,
                    fresh.post(
                        f"{base}/graphql",
                        json={"query": query, "variables": variables},
                        headers={"Authorization": BASIC},
                    ) as response,
                ):
                    body = await response.json()
                    assert "errors" not in body, body

            await post("mutation { enroll(courseId: 2) { message } }", {})
            lesson_ids = [str(number) for number in range(13, 18)]  # course 2's lessons
            for lesson_id in lesson_ids:
                await post(COMPLETE, {"l": lesson_id})

            kinds: list[tuple[str, str | None]] = []
            while len(kinds) < 1 + len(lesson_ids) + 1:
                message = await websocket.receive_json(timeout=10)
                event = message["payload"]["data"]["progressUpdated"]
                kinds.append((event["kind"], event["lessonId"]))
            await websocket.close()
        assert kinds[0] == ("ENROLLED", None)
        assert kinds[1:6] == [("LESSON_COMPLETED", lesson_id) for lesson_id in lesson_ids]
        assert kinds[6] == ("COURSE_COMPLETED", None)
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode()
    assert server.returncode == 0, output
    assert "Traceback" not in output


async def test_one_scrape_of_any_worker_counts_every_workers_requests(
    two_workers: tuple[subprocess.Popen[bytes], str],
) -> None:
    server, base = two_workers
    try:
        await wait_ready(base, time.monotonic() + 30)
        await wait_for_workers(base, 2, time.monotonic() + 30)
        # Each request on a connection of its own: the kernel spreads them over both workers
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(30):
                async with session.post(
                    f"{base}/graphql",
                    json={"query": "query Me { me { username } }"},
                    headers={"Authorization": BASIC},
                ) as response:
                    assert response.status == 200
            websocket = await session.ws_connect(
                f"{base}/graphql", protocols=["graphql-transport-ws"]
            )
            scrapes = [await scrape(session, base) for _ in range(6)]
            await websocket.close()
            await asyncio.sleep(0.5)
            after = await scrape(session, base)
        for text in scrapes:
            assert 'operation_name="Me",operation_type="query",outcome="ok"} 30.0' in text
            assert "coursepulse_websocket_connections 1.0" in text
            # Both workers' connections: SQLite's 8 readers and 1 writer each
            assert "coursepulse_db_connections 18.0" in text
        assert "coursepulse_websocket_connections 0.0" in after
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


async def scrape(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/metrics") as response:
        assert response.status == 200
        return await response.text()
