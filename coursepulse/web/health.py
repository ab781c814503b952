"""Liveness and readiness probes for load balancers and orchestrators."""

import asyncio
import logging

from aiohttp import web

from coursepulse.web.keys import DATABASE

log = logging.getLogger("coursepulse.health")
READY_TIMEOUT_SECONDS = 2.0


async def healthz(_request: web.Request) -> web.Response:
    """200 while the process serves requests."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers, 503 otherwise."""
    try:
        await asyncio.wait_for(request.app[DATABASE].ping(), READY_TIMEOUT_SECONDS)
    except Exception as error:  # any failure means "not ready"
        log.warning("readiness check failed: %s", type(error).__name__)
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    return web.json_response({"status": "ok", "database": "up"})
