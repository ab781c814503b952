"""Readiness: `serve` starts while the database is down, and failed writes flip /readyz."""

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from coursepulse.models.db import Database
from coursepulse.models.migrate import schema_engine
from tests.conftest import END_OTHER_CONNECTIONS, School, end_connections, error_codes, graphql
from tests.processes import free_port

COURSES = '{"query": "{ courses { id } }"}'


async def status_of(session: aiohttp.ClientSession, url: str) -> int | None:
    try:
        async with session.get(url) as response:
            return response.status
    except aiohttp.ClientError:
        return None


async def wait_for(session: aiohttp.ClientSession, url: str, status: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await status_of(session, url) == status:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} did not answer {status} within {seconds} s")


@contextlib.asynccontextmanager
async def serving(database_url: str, cwd: Path) -> AsyncIterator[str]:
    """A real `coursepulse serve` process; yields its base URL."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "coursepulse", "serve", "--port", str(port)),
        env={**os.environ, "COURSEPULSE_DATABASE_URL": database_url},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        output, _ = await asyncio.wait_for(server.communicate(), 30)
        print(output.decode(errors="replace"))


async def test_serve_starts_on_a_sqlite_file_that_cannot_be_opened_yet(tmp_path: Path) -> None:
    # Given a database file in a folder that does not exist yet (a volume not mounted)
    folder = tmp_path / "volume"
    url = f"sqlite+aiosqlite:///{folder / 'school.db'}"
    async with serving(url, tmp_path) as base, aiohttp.ClientSession() as session:
        # Then the process serves: alive, not ready, GraphQL answers 503 with Retry-After
        await wait_for(session, f"{base}/healthz", 200, 30)
        assert await status_of(session, f"{base}/readyz") == 503
        async with session.post(
            f"{base}/graphql", data=COURSES, headers={"Content-Type": "application/json"}
        ) as response:
            assert response.status == 503
            assert response.headers["Retry-After"]
            assert error_codes(await response.json()) == ["internal_error"]

        # When the volume appears, the schema is migrated and the service gets ready
        folder.mkdir()
        await wait_for(session, f"{base}/readyz", 200, 30)
        async with session.post(
            f"{base}/graphql", data=COURSES, headers={"Content-Type": "application/json"}
        ) as response:
            assert await response.json() == {"data": {"courses": []}}


async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_serve_starts_while_postgresql_is_down_and_gets_ready_when_it_answers(
    postgres_url: str, tmp_path: Path
) -> None:
    # Given PostgreSQL reachable only through a port where nothing listens yet
    target = make_url(postgres_url)
    port = free_port()
    url = target.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)

    async def relay(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_reader, server_writer = await asyncio.open_connection(
            target.host or "127.0.0.1", target.port or 5432
        )
        await asyncio.gather(
            forward(client_reader, server_writer), forward(server_reader, client_writer)
        )

    async with serving(url, tmp_path) as base, aiohttp.ClientSession() as session:
        await wait_for(session, f"{base}/healthz", 200, 30)
        assert await status_of(session, f"{base}/readyz") == 503

        # When the database comes up, the service is ready and answers
        proxy = await asyncio.start_server(relay, "127.0.0.1", port)
        try:
            await wait_for(session, f"{base}/readyz", 200, 30)
            async with session.post(
                f"{base}/graphql", data=COURSES, headers={"Content-Type": "application/json"}
            ) as response:
                body = await response.json()
                assert "errors" not in body, body
        finally:
            proxy.close()


async def test_a_write_the_database_refuses_flips_readiness_until_writes_work_again(
    client: TestClient, db: Database, school: School, database_url: str
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("a read-only database is made with PostgreSQL's default_transaction_read_only")
    name = make_url(database_url).database
    admin = schema_engine(database_url)

    async def set_read_only(on: bool) -> None:
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            value = "on" if on else "off"
            await connection.execute(
                text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {value}')
            )
            # Settings reach new connections only: end the service's current ones.
            await connection.execute(END_OTHER_CONNECTIONS, {"name": name})

    assert (await client.get("/readyz")).status == 200
    try:
        # Given the server turned read-only (a failover to a replica, a full disk)
        await set_read_only(True)
        body = await graphql(
            client,
            "mutation($c: ID!) { enroll(courseId: $c) { message } }",
            {"c": str(school.course_id)},
            as_=school.student,
        )
        assert error_codes(body) == ["internal_error"]
        # Then readiness says so, although reads still answer
        assert (await client.get("/readyz")).status == 503
        assert (await client.get("/healthz")).status == 200
    finally:
        await set_read_only(False)
        await admin.dispose()
    # And once writes work again, the service is ready again
    assert (await client.get("/readyz")).status == 200


async def test_readiness_holds_when_the_server_drops_idle_connections(
    client: TestClient, db: Database, database_url: str
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: a SQLite file has no server to drop the connection")
    for _ in range(30):
        # Given the pool holds idle connections (several reads ran at once)
        responses = await asyncio.gather(
            *(
                client.post("/graphql", data=COURSES, headers={"Content-Type": "application/json"})
                for _ in range(4)
            )
        )
        for response in responses:
            assert response.status == 200
            assert "errors" not in await response.json()
        # When the server ends them (a restart, an administrator, a proxy's timeout)
        await end_connections(database_url)
        # Then readiness answers at once: a dropped idle connection is replaced
        assert (await client.get("/readyz")).status == 200
