"""Strawberry's two websocket protocol handlers, with our limits and sign-in answers.

- A client has `COURSEPULSE_WS_INIT_TIMEOUT_SECONDS` to send `connection_init` on
  both protocols (Strawberry times out only `graphql-transport-ws`): 4408.
- A sign-in refused for too many failures closes with 4429 (on `graphql-ws`
  after a `connection_error` whose payload has `code: rate_limited` and
  `retryAfter`); on `graphql-ws` a refused sign-in closes with 4403, as on
  `graphql-transport-ws` (Strawberry closes it with 1011), and a second
  `connection_init` is ignored: it cannot change the connection's identity.
- One user (anonymous: one client address) may have `max_websockets_per_user`
  acknowledged websockets and `max_subscriptions_per_user` operations running
  over them in this process; over it the socket closes with 4429 (`graphql-ws`:
  `connection_error` first), or the operation gets an error with code
  `rate_limited`.
"""

import asyncio
import contextlib
from collections import Counter
from typing import Any

from aiohttp import web
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage as TransportInitMessage,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message as TransportMessage,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyInitMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage
from strawberry.types.unset import UnsetType

from coursepulse.resolvers.errors import RateLimited
from coursepulse.schema.context import Context
from coursepulse.schema.errors import error_entry
from coursepulse.web.live_operations import ParkingTransportWSHandler
from coursepulse.web.throttle import client_address

#: Close code for a refused connection_init: too many sign-in failures, or too many sockets.
CLOSE_RATE_LIMITED = 4429
CLOSE_FORBIDDEN = 4403
CLOSE_INIT_TIMEOUT = 4408


class WebsocketQuota:
    """Acknowledged websockets and running operations, per identity, in this process."""

    def __init__(self, max_sockets: int, max_operations: int) -> None:
        self.max_sockets = max_sockets
        self.max_operations = max_operations
        self.sockets: Counter[str] = Counter()
        self.operations: Counter[str] = Counter()

    def open_socket(self, identity: str) -> bool:
        """Counts one more socket for `identity`; False (and counts nothing) when at the limit."""
        return _claim(self.sockets, identity, self.max_sockets)

    def close_socket(self, identity: str) -> None:
        _release(self.sockets, identity)

    def start_operation(self, identity: str) -> bool:
        return _claim(self.operations, identity, self.max_operations)

    def end_operation(self, identity: str) -> None:
        _release(self.operations, identity)


def _claim(counts: Counter[str], key: str, limit: int) -> bool:
    if counts[key] >= limit:
        if not counts[key]:
            del counts[key]
        return False
    counts[key] += 1
    return True


def _release(counts: Counter[str], key: str) -> None:
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]


WS_QUOTA = web.AppKey("ws_quota", WebsocketQuota)


def _identity(context: Context) -> str:
    """Whose sockets these are: the viewer, or for anonymous ones the client address."""
    if context.viewer is not None:
        return f"user:{context.viewer.user_id}"
    return "address:" + client_address(context.request, context.settings.trusted_proxies)


def _quota(context: Context) -> WebsocketQuota:
    return context.request.app[WS_QUOTA]


def _rate_limited_payload(error: RateLimited) -> dict[str, object]:
    return {"code": error.code, "status": error.status, "message": error.message, **error.extra}


def _too_many_sockets(quota: WebsocketQuota) -> RateLimited:
    return RateLimited(f"Too many open websockets for this account: at most {quota.max_sockets}")


def _too_many_operations(quota: WebsocketQuota) -> dict[str, object]:
    return error_entry(
        "rate_limited",
        429,
        f"Too many subscriptions for this account: at most {quota.max_operations}",
        limit=quota.max_operations,
    )


def _close_reason(error: RateLimited) -> str:
    """A close reason within the 123 bytes a close frame allows."""
    return f"{error.code}: {error.message}"[:120]


class TransportWSHandler(ParkingTransportWSHandler):
    """`graphql-transport-ws` with sign-in throttling answers, per-user quotas, and
    subscriptions that wait without a task (web/live_operations.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Whose sockets this one counts in, once acknowledged (until it is given back).
        self.identity: str | None = None
        #: Whose quota the socket's operations count in (kept once `identity` is given back).
        self.operations_identity: str | None = None

    async def handle_connection_init(self, message: TransportInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except RateLimited as error:
            await self.websocket.close(code=CLOSE_RATE_LIMITED, reason=_close_reason(error))

    def on_request_accepted(self) -> None:
        super().on_request_accepted()
        timer = self.connection_init_timeout_task
        if timer is not None:
            # Once it is over (connection_init came, or time ran out), the timer's task
            # is not kept for the rest of the connection.
            timer.add_done_callback(self._forget_init_timer)

    def _forget_init_timer(self, timer: "asyncio.Task[None]") -> None:
        if self.connection_init_timeout_task is timer:
            self.connection_init_timeout_task = None

    async def handle_message(self, message: TransportMessage) -> None:
        try:
            await super().handle_message(message)
        finally:
            # What lives on of it is kept where it is used (the operation, the context);
            # the loop that read it would keep it whole until the next message.
            if isinstance(message, dict):
                message.clear()

    async def send_message(self, message: TransportMessage) -> None:
        if message["type"] == "connection_ack" and self.identity is None:
            # The sign-in passed: the socket counts for its user from now on.
            quota = _quota(self.context)
            identity = _identity(self.context)
            if not quota.open_socket(identity):
                reason = _close_reason(_too_many_sockets(quota))
                await self.websocket.close(code=CLOSE_RATE_LIMITED, reason=reason)
                raise WebSocketDisconnected
            self.identity = self.operations_identity = identity
        await super().send_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        identity, operation_id = self.identity, message["id"]
        if identity is None or operation_id in self.operations:
            await super().handle_subscribe(message)  # refused there: unacknowledged, or a dup
            return
        quota = _quota(self.context)
        if not quota.start_operation(identity):
            error = _too_many_operations(quota)
            await self.send_message({"id": operation_id, "type": "error", "payload": [error]})  # type: ignore[typeddict-item]
            return
        await super().handle_subscribe(message)
        operation = self.operations.get(operation_id)
        if operation is None or operation.task is None:
            quota.end_operation(identity)  # Strawberry's per-connection limit refused it
        else:
            operation.task.add_done_callback(self._operation_over)

    def _operation_over(self, _task: object) -> None:
        """An operation that counted in the quota ended (its task, or parked: itself)."""
        if self.operations_identity is not None:
            _quota(self.context).end_operation(self.operations_identity)

    def hold_place(self) -> bool:
        """A parked operation keeps its place in the quota until it ends, not its task."""
        task = asyncio.current_task()
        return task is not None and task.remove_done_callback(self._operation_over) > 0

    def release_place(self) -> None:
        self._operation_over(None)

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            if self.identity is not None:
                _quota(self.context).close_socket(self.identity)
                self.identity = None


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy `graphql-ws` protocol with an init timeout, 4403, one init, and quotas."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Set here, not later: see ParkingTransportWSHandler.__init__.
        self.identity: str | None = None
        self.connection_init_received = False

    async def handle(self) -> None:
        seconds = self.context.settings.ws_init_timeout_seconds
        timer = asyncio.create_task(self._close_unless_initialised(seconds))
        try:
            await super().handle()
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    async def _close_unless_initialised(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if not self.connection_init_received:
            await self.websocket.close(
                code=CLOSE_INIT_TIMEOUT, reason="Connection initialisation timeout"
            )

    async def handle_connection_init(self, message: LegacyInitMessage) -> None:
        # Follows Strawberry 0.341's handler, but a refused sign-in closes with 4403,
        # too many failures or sockets with 4429, and only the first init counts.
        if self.connection_init_received:
            return
        self.connection_init_received = True
        payload = message.get("payload")
        if payload is not None and not isinstance(payload, dict):
            await self.send_message({"type": "connection_error"})
            await self.websocket.close(code=1000, reason="")
            return
        self.context.connection_params = payload
        try:
            ack_payload = await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError as rejection:
            await self._refuse(rejection.payload, CLOSE_FORBIDDEN, "Forbidden")
            return
        except RateLimited as error:
            await self._refuse(_rate_limited_payload(error), CLOSE_RATE_LIMITED, error.code)
            return
        quota = _quota(self.context)
        identity = _identity(self.context)
        if not quota.open_socket(identity):
            error = _too_many_sockets(quota)
            await self._refuse(_rate_limited_payload(error), CLOSE_RATE_LIMITED, error.code)
            return
        self.identity = identity
        if isinstance(ack_payload, UnsetType) or ack_payload is None:
            await self.send_message({"type": "connection_ack"})
        else:
            await self.send_message({"type": "connection_ack", "payload": ack_payload})
        self.connection_acknowledged = True
        if self.keep_alive:
            self.keep_alive_task = asyncio.create_task(self.handle_keep_alive())

    async def _refuse(self, payload: dict[str, object], code: int, reason: str) -> None:
        await self.send_message({"type": "connection_error", "payload": payload})
        await self.websocket.close(code=code, reason=reason)

    async def handle_start(self, message: StartMessage) -> None:
        identity, operation_id = self.identity, message["id"]
        if identity is None or not self.connection_acknowledged:
            await super().handle_start(message)  # refused there: 4401
            return
        if operation_id in self.tasks:
            await self.cleanup_operation(operation_id)  # its place is freed first
        quota = _quota(self.context)
        if not quota.start_operation(identity):
            error: Any = _too_many_operations(quota)
            await self.send_message({"type": "error", "id": operation_id, "payload": error})
            return
        await super().handle_start(message)
        task = self.tasks.get(operation_id)
        if task is None:
            quota.end_operation(identity)  # Strawberry's per-connection limit refused it
        else:
            task.add_done_callback(lambda _task: quota.end_operation(identity))

    async def cleanup(self) -> None:
        try:
            await super().cleanup()
        finally:
            if self.identity is not None:
                _quota(self.context).close_socket(self.identity)
                self.identity = None
