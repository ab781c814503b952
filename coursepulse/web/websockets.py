"""A websocket's server-side objects, made to stay small for the life of the socket.

A server holds thousands of websockets that wait for hours; what each keeps while it
waits is multiplied by all of them.

- `WebSocketResponse`: aiohttp keeps a dozen of the socket's attributes' defaults on the
  class and sets them on the socket later (when it is prepared, at each heartbeat, as it
  closes). CPython 3.11 keeps an object's attributes compactly only while their names
  fit the keys its class shares among its instances, and that room shrinks as
  instances are made: on a busy server those late attributes no longer fit, and every
  socket carries a full dictionary of its attributes (1.5 KiB). Declared here as slots,
  with the class's defaults, they take 8 bytes each and the rest stays compact.
- `WebSocketAdapter`: Strawberry's reader of JSON messages, which kept the last message
  (aiohttp's frame and its text) while waiting for the next.

Nothing about the socket or the protocol changes: the attributes and their values are
aiohttp's own, and the messages are read and decoded as Strawberry reads them.
"""

from collections.abc import AsyncGenerator
from json import JSONDecodeError
from typing import Any

from aiohttp import WSMsgType, web
from strawberry.aiohttp.views import AiohttpWebSocketAdapter
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived

#: Attributes aiohttp sets after `__init__` (or may), each with a default on its class.
_LATE = (
    # WebSocketResponse: prepared, heartbeats, closing.
    "_ws_protocol",
    "_writer",
    "_reader",
    "_parser",
    "_closed",
    "_closing",
    "_conn_lost",
    "_close_code",
    "_loop",
    "_waiting",
    "_close_wait",
    "_exception",
    "_heartbeat_when",
    "_heartbeat_cb",
    "_pong_response_cb",
    "_ping_task",
    "_need_heartbeat_reset",
    "_heartbeat_reset_handle",
    # StreamResponse: prepared and finished.
    "_keep_alive",
    "_req",
    "_payload_writer",
    "_eof_sent",
    "_must_be_empty_body",
    "_body_length",
)
_DEFAULTS = {
    name: getattr(web.WebSocketResponse, name)
    for name in _LATE
    if hasattr(web.WebSocketResponse, name)
}
_CLOSED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


class WebSocketResponse(web.WebSocketResponse):
    """aiohttp's websocket response, its late attributes in slots (see the module)."""

    __slots__ = tuple(_DEFAULTS)

    def __init__(self, **kwargs: Any) -> None:
        for name, value in _DEFAULTS.items():
            setattr(self, name, value)
        super().__init__(**kwargs)


class _Closed(Exception):
    """The websocket closed: no more messages."""


class WebSocketAdapter(AiohttpWebSocketAdapter):
    """Strawberry's aiohttp adapter, holding no message while it waits for the next."""

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        """The socket's JSON messages, decoded, until it closes (as Strawberry's)."""
        try:
            while True:
                # No local keeps the message: only the one who handles it does.
                yield await self._next_json(ignore_parsing_errors)
        except _Closed:
            return

    async def _next_json(self, ignore_parsing_errors: bool) -> object:
        """The next text message, decoded; raises `_Closed` once the socket closes."""
        while True:
            message = await self.ws.receive()
            if message.type in _CLOSED:
                raise _Closed
            if message.type == WSMsgType.TEXT:
                try:
                    return self.view.decode_json(message.data)
                except JSONDecodeError as error:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from error
            elif message.type == WSMsgType.BINARY:
                raise NonTextMessageReceived
