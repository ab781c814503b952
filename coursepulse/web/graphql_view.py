"""Strawberry's aiohttp view, with our context and JSON errors for malformed requests."""

import json
from collections import OrderedDict
from typing import Any

from aiohttp import web
from cross_web import HTTPException
from strawberry.aiohttp.views import GraphQLView
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET, UnsetType

from coursepulse.resolvers.errors import InvalidCredentials
from coursepulse.schema.context import Context
from coursepulse.schema.loaders import Loaders
from coursepulse.web.credentials import viewer_from_authorization
from coursepulse.web.keys import (
    BROKER,
    CREDENTIALS,
    DATABASE,
    REQUEST_ID,
    SETTINGS,
    VIEWER,
    WEBSOCKETS,
)
from coursepulse.web.middlewares import error_body
from coursepulse.web.throttle import client_address
from coursepulse.web.ws_protocols import LegacyWSHandler, TransportWSHandler


class CoursepulseGraphQLView(GraphQLView[Context, None]):
    # Our limits, sign-in answers and init timeouts on both protocols (web/ws_protocols.py).
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    async def get_context(
        self, request: web.Request, response: web.Response | web.WebSocketResponse
    ) -> Context:
        viewer = request.get(VIEWER)
        db = request.app[DATABASE]
        reader = db.shared_reader()
        return Context(
            db=db,
            settings=request.app[SETTINGS],
            viewer=viewer,
            request_id=request.get(REQUEST_ID) or "",
            reader=reader,
            loaders=Loaders(reader, viewer.user_id if viewer else None),
            feeds=request.app[BROKER].feeds,
            request=request,
            response=response,
        )

    async def create_websocket_response(
        self, request: web.Request, subprotocol: str | None
    ) -> web.WebSocketResponse:
        """A websocket that pings its peer, so dead connections are noticed and closed."""
        websocket = web.WebSocketResponse(
            protocols=[subprotocol] if subprotocol else [],
            heartbeat=request.app[SETTINGS].ws_heartbeat_seconds,
        )
        await websocket.prepare(request)
        request.app[WEBSOCKETS].add(websocket)
        return websocket

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate from connection_init's Authorization (any case), else keep the headers'."""
        params = context.connection_params or {}
        header = next(
            (
                value
                for key, value in params.items()
                if isinstance(key, str) and key.lower() == "authorization"
            ),
            None,
        )
        if header is None:
            return UNSET
        if not isinstance(header, str):
            raise ConnectionRejectionError({"code": "invalid_credentials"})
        app = context.request.app
        try:
            context.viewer = await viewer_from_authorization(
                header,
                app[DATABASE],
                app[CREDENTIALS],
                address=client_address(context.request, context.settings.trusted_proxies),
            )
        # RateLimited passes through: the protocol handlers close with 4429 for it.
        except InvalidCredentials as error:
            raise ConnectionRejectionError(
                {"code": error.code, "status": error.status, "message": error.message}
            ) from error
        return UNSET

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self.run(request=request)
        except HTTPException as error:
            code = "invalid_input" if error.status_code < 500 else "internal_error"
            if error.status_code == 404:
                code = "not_found"
            return web.Response(
                text=json.dumps(error_body(code, error.status_code, error.reason)),
                status=error.status_code,
                content_type="application/json",
            )

    def parse_json(self, data: str | bytes) -> Any:
        # Bodies, `variables` and `extensions` must be objects (a list is a batch, which the
        # base view refuses); other JSON values would reach `.get()` and fail with a 500.
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "Expected a JSON object")
        return parsed

    def encode_json(self, data: Any) -> str:
        if isinstance(data, dict) and data.get("type") == "next":
            return _encode_next(data)
        return json.dumps(data, separators=(",", ":"))


#: Recently encoded subscription results, by identity (schema/shared_events.py shares them).
_ENCODED: OrderedDict[int, tuple[object, str]] = OrderedDict()
_ENCODED_KEPT = 256


def _encode_next(message: dict[str, Any]) -> str:
    """A `next` message; a result shared by many subscribers is encoded once for all."""
    payload = message.get("payload")
    if not isinstance(payload, dict) or payload.keys() != {"data"}:
        return json.dumps(message, separators=(",", ":"))
    data = payload["data"]
    kept = _ENCODED.get(id(data))
    if kept is None or kept[0] is not data:
        kept = _ENCODED[id(data)] = (data, json.dumps(data, separators=(",", ":")))
        if len(_ENCODED) > _ENCODED_KEPT:
            _ENCODED.popitem(last=False)
    identifier = json.dumps(message["id"])
    return f'{{"id":{identifier},"type":"next","payload":{{"data":{kept[1]}}}}}'
