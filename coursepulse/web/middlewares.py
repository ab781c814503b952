"""Request id and access log, CORS, authentication, and a JSON answer for every failure."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from coursepulse.logging_setup import direct_handler
from coursepulse.resolvers.errors import DomainError, InvalidCredentials, RateLimited
from coursepulse.schema.errors import error_document
from coursepulse.web.credentials import viewer_from_authorization
from coursepulse.web.keys import (
    CREDENTIALS,
    CROSS_SITE,
    DATABASE,
    OPERATION,
    REQUEST_ID,
    SCHEMA_READY,
    SETTINGS,
    VIEWER,
)
from coursepulse.web.metrics import METRICS, METRICS_PATH
from coursepulse.web.request_ids import REQUEST_IDS
from coursepulse.web.throttle import client_address

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
access_log = logging.getLogger("coursepulse.access")
log = logging.getLogger("coursepulse.web")

CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, X-Request-ID"


#: An error answer in a front door's own shape: (code, status, message, context) -> response.
ErrorShape = Callable[[str, int, str, dict[str, Any]], web.Response]
#: Front doors with an error shape of their own, by path prefix (the REST facade registers
#: its own); every other path answers in the GraphQL shape.
ERROR_SHAPES = web.AppKey("error_shapes", dict[str, ErrorShape])


def error_response(code: str, status: int, message: str, **extra: Any) -> web.Response:
    """An error answer in the GraphQL shape."""
    return web.json_response(error_document(code, status, message, **extra), status=status)


def failure(
    request: web.Request, code: str, status: int, message: str, **extra: Any
) -> web.Response:
    """An error answer in the shape of the front door asked: its own, or GraphQL's."""
    for prefix, shape in request.app.get(ERROR_SHAPES, {}).items():
        if request.path.startswith(prefix):
            return shape(code, status, message, extra)
    return error_response(code, status, message, **extra)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Gives every request an id (kept from X-Request-ID when sane) and logs it once."""
    given = request.headers.get("X-Request-ID", "")
    request_id = given if 0 < len(given) <= 64 and given.isprintable() else REQUEST_IDS.next()
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    try:
        try:
            response = await handler(request)
        except web.HTTPException as http_error:
            if http_error.status < 400:
                raise
            code = "not_found" if http_error.status == 404 else "invalid_input"
            response = failure(request, code, http_error.status, http_error.reason)
            if http_error.status == 405:
                response.headers["Allow"] = http_error.headers.get("Allow", "")
        except Exception:
            log.exception("unhandled error (request %s)", request_id)
            response = failure(
                request, "internal_error", 500, "Internal server error", requestId=request_id
            )
        if not response.prepared:
            response.headers["X-Request-ID"] = request_id
        seconds = time.perf_counter() - started
        log_request(request, response.status, seconds)
        metrics = request.app.get(METRICS)
        if metrics is not None:
            metrics.observe_request(request, response.status, seconds, request.get(OPERATION))
        return response
    finally:
        ended = request.app.get(METRICS)
        if ended is not None:
            ended.request_ended(request)  # a websocket's request ends when it closes


def log_request(request: web.Request, status: int, seconds: float) -> None:
    """The access log's line for a request: who, what, how it ended and how long it took
    (a warning when slower than `slow_request_seconds`; a probe that answered, debug).
    The path is logged without its query string, and no header is: neither may carry a
    secret into the logs."""
    viewer = request.get(VIEWER)
    operation = request.get(OPERATION)
    path = loggable(request.raw_path.split("?", 1)[0])
    fields = {
        "request_id": request[REQUEST_ID],
        "method": request.method,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
        "viewer_id": viewer.user_id if viewer is not None else None,
        "operation_name": loggable(operation.name[:100]) if operation and operation.name else None,
        "operation_type": operation.type if operation else None,
        "outcome": operation.outcome if operation else None,
    }
    slow = seconds >= request.app[SETTINGS].slow_request_seconds
    if slow:
        level = logging.WARNING
    elif status < 400 and path in PROBE_PATHS:
        level = logging.DEBUG  # a load balancer's probes every few seconds, answered
    else:
        level = logging.INFO
    if not access_log.isEnabledFor(level):
        return
    arguments = ("slow request: " if slow else "", request.method, path, status, seconds * 1000)
    handler = direct_handler(access_log, level)
    if handler is None:
        access_log.log(level, _ACCESS_LINE, *arguments, extra={"fields": fields})
    else:
        handler.add_entry(access_log, level, _ACCESS_LINE % arguments, fields)


#: The access log's message: "GET /graphql 200 1.2ms" (prefixed for a slow request).
_ACCESS_LINE = "%s%s %s %s %.1fms"


def loggable(text: str) -> str:
    """The text with control and other unprintable characters escaped, so it cannot start
    a forged log line (the path is logged as sent: `%0A` stays `%0A`)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _cross_site(request: web.Request, origin: str | None) -> bool:
    """True when the browser says the request comes from another site than this service."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return True
    if origin is None or origin == "null":
        return origin == "null"
    own = {f"{request.scheme}://{request.host}", _origin_of(request.app[SETTINGS].base_url)}
    return origin.rstrip("/") not in own


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS for the single-page apps listed in COURSEPULSE_ALLOWED_ORIGINS."""
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin.rstrip("/") in request.app[SETTINGS].allowed_origins
    request[CROSS_SITE] = not allowed and _cross_site(request, origin)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        response: web.StreamResponse = web.Response(status=204 if allowed else 403)
    elif request.method not in SAFE_METHODS and request[CROSS_SITE]:
        # A form on another site must not act with credentials the browser remembers.
        response = failure(request, "forbidden", 403, "Cross-site request refused")
    else:
        response = await handler(request)
    if allowed and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
        response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
        response.headers["Vary"] = "Origin"
    return response


#: Paths that answer while the database is not ready: the probes that report it.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
RETRY_AFTER_SECONDS = 5


@web.middleware
async def unavailable_until_ready(request: web.Request, handler: Handler) -> web.StreamResponse:
    """503 (with Retry-After) while a database that was down at start is not migrated yet."""
    if request.app[SCHEMA_READY].is_set() or request.path in PROBE_PATHS:
        return await handler(request)
    response = failure(
        request, "internal_error", 503, "The database is not available yet; try again shortly"
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sets the request's viewer from its Authorization header; bad credentials answer 401.

    /metrics is left alone: its Authorization is the scrape token, not a user's."""
    if request.path == METRICS_PATH:
        return await handler(request)
    try:
        request[VIEWER] = await viewer_from_authorization(
            request.headers.get("Authorization"),
            request.app[DATABASE],
            request.app[CREDENTIALS],
            address=client_address(request, request.app[SETTINGS].trusted_proxies),
        )
    except RateLimited as error:
        _count_auth_failure(request)
        return rate_limited(request, error)
    except InvalidCredentials as error:
        _count_auth_failure(request)
        response = failure(request, error.code, error.status, error.message)
        # A page's own script (X-Requested-With, as the progress app sends) shows its own
        # sign-in form; the challenge would make the browser open its login dialog.
        if request.headers.get("X-Requested-With") != "XMLHttpRequest":
            response.headers["WWW-Authenticate"] = 'Basic realm="coursepulse", charset="UTF-8"'
        return response
    except DomainError as error:  # pragma: no cover  (other domain errors do not occur here)
        return failure(request, error.code, error.status, error.message)
    return await handler(request)


def _count_auth_failure(request: web.Request) -> None:
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.auth_failures.inc()


def rate_limited(request: web.Request, error: RateLimited) -> web.Response:
    """429 in the front door's shape, with Retry-After (seconds) when the error has one."""
    response = failure(request, error.code, error.status, error.message, **error.extra)
    retry_after = error.extra.get("retryAfter")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@web.middleware
async def read_body_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Reads a request's body within COURSEPULSE_HTTP_BODY_TIMEOUT_SECONDS, else answers 408.

    The body is kept by aiohttp (`request.read()` returns it again), so handlers
    read it as usual; a client trickling its body cannot hold a handler for long.
    """
    if request.body_exists and request.can_read_body:
        if request.content.is_eof():  # all of it arrived already: nothing to wait for
            await request.read()
            return await handler(request)
        try:
            async with asyncio.timeout(request.app[SETTINGS].http_body_timeout_seconds):
                await request.read()
        except TimeoutError:
            response = failure(request, "invalid_input", 408, "Request body not received in time")
            response.headers["X-Request-ID"] = request[REQUEST_ID]
            response.force_close()
            # Sent now and the connection closed: aiohttp would otherwise linger, reading
            # the rest of the body for up to 10 s more.
            await response.prepare(request)
            await response.write_eof()
            if request.transport is not None:
                request.transport.close()
            return response
    return await handler(request)
