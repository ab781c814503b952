"""examples/progress_bar.py, run as README says, against a real `coursepulse serve` that is
killed and started again: it prints the bar as it stands, then every change, and resumes
after the last event it saw, so the change made while the server was down is printed too."""

import asyncio
import signal
import sys
from pathlib import Path

from coursepulse.models.db import Database
from coursepulse.resolvers import completions, enrollments
from tests.conftest import PASSWORD, School
from tests.processes import complete_over_rest, coursepulse_serve, free_port

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "progress_bar.py"
#: Seconds a line of the example may take: it waits 2 s between reconnects.
LINE_SECONDS = 15.0


async def next_line(example: asyncio.subprocess.Process) -> str:
    assert example.stdout is not None
    line = await asyncio.wait_for(example.stdout.readline(), LINE_SECONDS)
    assert line, "the example stopped"
    return line.decode().rstrip("\n")


async def test_the_terminal_bar_starts_right_and_resumes_across_a_server_restart(
    db: Database, database_url: str, school: School, tmp_path: Path
) -> None:
    john, course = school.student, school.course_id
    async with db.write() as tx:
        await enrollments.enroll(tx, john.viewer, course)
        await completions.complete_lesson(tx, john.viewer, course, school.lesson_ids[0])
    port = free_port()
    log = tmp_path / "serve.log"

    async with coursepulse_serve(database_url, log, port=port) as (_, server):
        example = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLE),
            *("--url", f"ws://127.0.0.1:{port}/graphql", "--course", str(course)),
            *("--user", john.username, "--password", PASSWORD),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            # It prints the bar as it stands
            assert (await next_line(example)).endswith(" 25%  now")

            # Then a completion made through the REST API, as it happens
            await complete_over_rest(f"http://127.0.0.1:{port}", school, john, 1)
            assert (await next_line(example)).endswith(" 50%  lesson_completed")

            # When the server is killed, it says it lost the connection
            server.send_signal(signal.SIGKILL)
            await server.wait()
            lost = await next_line(example)
            assert lost.startswith("connection lost"), lost
            assert "resuming after event" in lost, lost

            # And a change made while the server is down is printed once it is back
            async with db.write() as tx:
                await completions.complete_lesson(tx, john.viewer, course, school.lesson_ids[2])
            async with coursepulse_serve(database_url, log, port=port):
                line = await next_line(example)
                while line.startswith("connection lost"):  # refused while it was down
                    line = await next_line(example)
                assert line.endswith(" 75%  lesson_completed"), line
        finally:
            example.kill()
            await example.wait()
