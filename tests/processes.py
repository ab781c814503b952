"""Running a command to its end from a test, while the test's own servers keep serving."""

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path


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
