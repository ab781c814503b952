"""Real processes in tests: a command run to its end while the test's own servers keep
serving, and `coursepulse serve` on a real port."""

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest

if TYPE_CHECKING:
    from tests.conftest import Account, School

#: Seconds a server process may take to start answering /readyz.
STARTUP_SECONDS = 30.0
#: How long a server may take to stop when asked before it is killed.
STOP_SECONDS = 10


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.asynccontextmanager
async def coursepulse_serve(
    database_url: str,
    log: Path,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    """A `coursepulse serve` process on `port` (a free one by default), ready: its port and
    process. Stopped at the end if it still runs (SIGTERM, as a process manager does, so
    its log is complete; killed if it has not stopped within STOP_SECONDS); its output
    goes to `log` (appended)."""
    port = port or free_port()
    environment = {
        **os.environ,
        "COURSEPULSE_LOG_LEVEL": "WARNING",
        "COURSEPULSE_GRAPHIQL": "false",
        **(env or {}),
    }
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "coursepulse",
            "serve",
            "--port",
            str(port),
            "--database-url",
            database_url,
            stdout=output,
            stderr=output,
            env=environment,
        )
    try:
        await wait_ready(port, process, log)
        yield port, process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(STOP_SECONDS):
                    await process.wait()
            except TimeoutError:
                process.kill()
        await process.wait()


async def wait_ready(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    """Return once the process answers /readyz with 200; fail the test if it exits first."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(STARTUP_SECONDS):
        while True:
            if process.returncode is not None:
                output = await asyncio.to_thread(log.read_text)
                pytest.fail(f"coursepulse serve exited with {process.returncode}:\n{output}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


async def run_to_end(
    command: Sequence[str],
    *,
    cwd: Path,
    seconds: float,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """The command's exit code and its output (stdout and stderr together).

    It runs as a subprocess of the event loop, so servers on this loop (aiohttp's
    TestServer) answer it; past `seconds` it is killed and TimeoutError raised.
    """
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def complete_over_rest(base: str, school: "School", student: "Account", lesson: int) -> None:
    """Complete a lesson as the student's phone would, through the REST API."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/wp-json/fluent-community/v2/courses/{school.course_id}"
            f"/lessons/{school.lesson_ids[lesson]}/complete",
            headers=student.auth,
        ) as response,
    ):
        assert response.status == 200, await response.text()
