"""Liveness and readiness probes for load balancers and orchestrators, and bringing up
a database that was not reachable when the service started."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from coursepulse.models.db import is_unavailable
from coursepulse.models.migrate import migrate
from coursepulse.web.keys import DATABASE, SCHEMA_READY

log = logging.getLogger("coursepulse.health")
READY_TIMEOUT_SECONDS = 2.0
#: Seconds between attempts to reach (and migrate) a database that is down at start.
MIGRATE_RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


async def healthz(_request: web.Request) -> web.Response:
    """200 while the process serves requests."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers (and takes writes again after a failed one), 503
    otherwise, and while a database that was down at start is not migrated yet."""
    if not request.app[SCHEMA_READY].is_set():
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    try:
        await asyncio.wait_for(request.app[DATABASE].ping(), READY_TIMEOUT_SECONDS)
    except Exception as error:  # any failure means "not ready"
        log.warning("readiness check failed: %s: %s", type(error).__name__, error)
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    return web.json_response({"status": "ok", "database": "up"})


async def migrate_when_reachable(app: web.Application) -> None:
    """Migrate the database as soon as it answers, then mark the schema ready."""
    attempt = 0
    while True:
        try:
            await migrate(app[DATABASE].url)
        except Exception as error:
            if not is_unavailable(error):
                log.exception("cannot bring the database schema up to date")
                raise
            delay = MIGRATE_RETRY_SECONDS[min(attempt, len(MIGRATE_RETRY_SECONDS) - 1)]
            if attempt == 0:
                log.warning("the database does not answer (%s); retrying", type(error).__name__)
            attempt += 1
            await asyncio.sleep(delay)
            continue
        log.info("the database answers and its schema is up to date: ready")
        app[SCHEMA_READY].set()
        return


def schema_context(*, migrate_first: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that, with `migrate_first`, migrates in the background until the
    database answers; without, the schema is taken as ready (migrated before start)."""

    async def schema_ctx(app: web.Application) -> AsyncIterator[None]:
        if not migrate_first:
            app[SCHEMA_READY].set()
            yield
            return
        task = asyncio.create_task(migrate_when_reachable(app), name="migrate-when-reachable")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    return schema_ctx
