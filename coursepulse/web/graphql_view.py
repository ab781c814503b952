"""Strawberry's aiohttp view, with our context and JSON errors for malformed requests."""

import json
import re
from collections import OrderedDict
from functools import cached_property
from typing import Any

import orjson
from aiohttp import web
from cross_web import HTTPException
from graphql import GraphQLError, OperationDefinitionNode, get_operation_ast, parse
from graphql import OperationType as AstOperationType
from strawberry.aiohttp.views import GraphQLView
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from coursepulse import telemetry
from coursepulse.resolvers.errors import InvalidCredentials
from coursepulse.resolvers.viewer import Viewer
from coursepulse.schema import CoursepulseSchema
from coursepulse.schema.context import Context, OperationReads, OperationSummary
from coursepulse.schema.errors import error_document
from coursepulse.schema.loaders import Loaders
from coursepulse.web import graphql_http
from coursepulse.web.credentials import credential_from_authorization
from coursepulse.web.keys import (
    BROKER,
    CREDENTIALS,
    CROSS_SITE,
    DATABASE,
    GRAPHIQL,
    OPERATION,
    REQUEST_ID,
    SETTINGS,
    VIEWER,
    WEBSOCKETS,
)
from coursepulse.web.metrics import METRICS
from coursepulse.web.next_frames import TAIL, next_head
from coursepulse.web.revocation import ACCESS
from coursepulse.web.throttle import client_address
from coursepulse.web.websockets import WebSocketAdapter, WebSocketResponse
from coursepulse.web.ws_protocols import LegacyWSHandler, TransportWSHandler


class CoursepulseGraphQLView(GraphQLView[Context, None]):
    # Our limits, sign-in answers and init timeouts on both protocols (web/ws_protocols.py).
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    # Small objects for sockets that live for hours (web/websockets.py).
    websocket_adapter_class = WebSocketAdapter  # type: ignore[assignment]

    async def get_context(
        self, request: web.Request, response: web.Response | web.WebSocketResponse
    ) -> Context:
        viewer = request.get(VIEWER)
        db = request.app[DATABASE]
        reads = OperationReads(db)
        access = request.app.get(ACCESS)
        context = Context(
            db=db,
            settings=request.app[SETTINGS],
            viewer=viewer,
            request_id=request.get(REQUEST_ID) or "",
            reads=reads,
            loaders=Loaders(reads, viewer.user_id if viewer else None),
            feeds=request.app[BROKER].feeds,
            request=request,
            response=response,
            may_change=isinstance(response, web.WebSocketResponse)
            or (request.method == "POST" and not request.get(CROSS_SITE, True)),
            access=access.grants if access is not None else None,
        )
        request[OPERATION] = context.operation
        metrics = request.app.get(METRICS)
        if metrics is not None:
            context.subscriptions_open = metrics.subscription_changed
        return context

    async def create_websocket_response(
        self, request: web.Request, subprotocol: str | None
    ) -> web.WebSocketResponse:
        """A websocket that pings its peer, so dead connections are noticed and closed."""
        settings = request.app[SETTINGS]
        websocket = WebSocketResponse(
            protocols=[subprotocol] if subprotocol else [],
            heartbeat=settings.ws_heartbeat_seconds,
            compress=settings.ws_compression,
        )
        await websocket.prepare(request)
        request.app[WEBSOCKETS].add(websocket)
        metrics = request.app.get(METRICS)
        if metrics is not None:
            metrics.websocket_opened(request)
        return websocket

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate from connection_init's Authorization (any case), else keep the headers'."""
        params = context.connection_params or {}
        # Needed only here: the socket does not keep them (a password, or a token) for life.
        context.connection_params = None
        header = next(
            (
                value
                for key, value in params.items()
                if isinstance(key, str) and key.lower() == "authorization"
            ),
            None,
        )
        if header is not None and not isinstance(header, str):
            raise ConnectionRejectionError({"code": "invalid_credentials"})
        if header is None:
            # Signed in (or not) by the upgrade request's own header, as verified before.
            header = context.request.headers.get("Authorization")
        try:
            context.viewer = await _track_socket(context, header)
        # RateLimited passes through: the protocol handlers close with 4429 for it.
        except InvalidCredentials as error:
            raise ConnectionRejectionError(
                {"code": error.code, "status": error.status, "message": error.message}
            ) from error
        return UNSET

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        tracer = telemetry.tracer()
        if tracer is None:
            return await self._answer(request)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            # A websocket lives for hours: its statements are not one request's.
            with telemetry.untraced():
                return await self._answer(request)
        with tracer.start_as_current_span(
            "graphql", record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                response = await self._answer(request)
            except Exception as error:
                telemetry.mark_failed(span, error)
                raise
            _describe_span(span, request.get(OPERATION))
            return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        try:
            answered = await self._run_prepared(request)
            if answered is not None:
                return answered
            return await self.run(request=request)
        except HTTPException as error:
            status, allow = error.status_code, graphql_http.ALLOWED_METHODS
            if isinstance(error.__cause__, InvalidOperationTypeError):
                status, allow = 405, "POST"  # a mutation sent by GET
            code = "invalid_input" if status < 500 else "internal_error"
            if status == 404:
                code = "not_found"
            response = web.Response(
                text=json.dumps(error_document(code, status, error.reason)),
                status=status,
                content_type=graphql_http.response_media_type(request.headers.get("Accept")),
            )
            if status == 405:
                response.headers["Allow"] = allow
            return response

    async def _run_prepared(self, request: web.Request) -> web.Response | None:
        """The answer to a POSTed query or mutation whose document was validated before
        (a client's usual operations, after their first request), run without the
        view's and the schema's per-request hooks; None for any other request, which
        the full view answers (and whose errors it words).
        """
        if request.method != "POST" or request.content_type != graphql_http.JSON:
            return None
        accept = request.headers.get("Accept", "")
        if "text/event-stream" in accept or "multipart/" in accept:
            return None  # streamed transports
        try:
            data = decode_json_text(await request.read())
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        schema: CoursepulseSchema = self.schema  # type: ignore[assignment]
        name, variables = data.get("operationName"), data.get("variables")
        operation = schema.documents.prepared(data.get("query"), name, data.get("extensions"))
        if operation is None or not isinstance(variables, dict | None):
            return None
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, sub_response)
        result = await schema.execute_prepared(operation, variables, name, context)
        if result is None:
            return None
        return self.create_response(await self.process_result(request, result), sub_response)

    async def process_result(self, request: web.Request, result: ExecutionResult) -> Any:
        """The result as JSON; for graphql-response+json, a request error carries no `data`."""
        summary = request.get(OPERATION)
        if summary is not None:
            summary.outcome = outcome_of(result.errors)
        body = await super().process_result(request, result)
        if graphql_http.is_request_error(result.errors, result.data) and (
            graphql_http.response_media_type(request.headers.get("Accept"))
            == graphql_http.GRAPHQL_RESPONSE
        ):
            body.pop("data", None)  # type: ignore[misc]
        return body

    async def get_sub_response(self, request: web.Request) -> web.Response:
        response = web.Response()
        response[MEDIA_TYPE] = graphql_http.response_media_type(request.headers.get("Accept"))
        return response

    def create_response(self, response_data: Any, sub_response: web.Response) -> web.Response:
        """The JSON answer in the negotiated media type; 400 for a request error under
        graphql-response+json (its body then has no `data`)."""
        media_type = sub_response.get(MEDIA_TYPE, graphql_http.JSON)
        try:
            sub_response.body = orjson.dumps(response_data)
        except TypeError:  # a value orjson does not encode (an int beyond 64 bits)
            sub_response.body = self.encode_json(response_data).encode()
        sub_response.content_type = media_type
        sub_response.charset = "utf-8"
        if (
            media_type == graphql_http.GRAPHQL_RESPONSE
            and isinstance(response_data, dict)
            and "data" not in response_data
        ):
            sub_response.set_status(400)
        return sub_response

    async def execute_single(  # type: ignore[override]
        self,
        request: web.Request,
        request_adapter: Any,
        sub_response: web.Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """A plain HTTP request runs queries and mutations; subscriptions need a websocket."""
        if _is_subscription(request_data):
            raise HTTPException(
                400, "Subscriptions are served over a websocket on /graphql (graphql-transport-ws)"
            )
        return await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )

    def decode_json(self, data: str | bytes) -> object:
        """The JSON value; any body that is not valid UTF-8 JSON text is a JSONDecodeError.

        Used for HTTP bodies and websocket messages alike, so both answer a malformed
        message as malformed (400, or close 4400) instead of failing later on it.
        """
        return decode_json_text(data)

    def should_render_graphql_ide(self, request: Any) -> bool:
        """GraphiQL for a browser's GET without a document; a persisted query's GET
        (only `extensions`, as CDNs and Apollo clients send it) is an operation."""
        return "extensions" not in request.query_params and super().should_render_graphql_ide(
            request
        )

    async def render_graphql_ide(self, request: web.Request) -> web.Response:
        """The explorer page, whose files all come from this service (web/graphiql.py)."""
        return request.app[GRAPHIQL].response()

    def parse_json(self, data: str | bytes) -> Any:
        # Bodies, `variables` and `extensions` must be objects (a list is a batch, which the
        # base view refuses); other JSON values would reach `.get()` and fail with a 500.
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "Expected a JSON object")
        return parsed

    def encode_json(self, data: Any) -> str:
        if isinstance(data, dict) and data.get("type") == "next":
            return self._encoded.next_message(data)
        return json.dumps(data, separators=(",", ":"))

    def next_frame(self, operation_id: str, data: Any) -> bytes:
        """The `next` message of an error-free result as a text frame's bytes: what
        `encode_json` writes for it."""
        return self._encoded.next_frame(operation_id, data)

    def next_rest(self, data: Any) -> bytes:
        """What follows the head (`next_head`) in the `next` message of an error-free
        result: the same bytes for every subscriber of the result."""
        return self._encoded.next_rest(data)

    @cached_property
    def _encoded(self) -> "EncodedResults":
        """This view's (so this application's) recently encoded subscription results."""
        return EncodedResults()


def _is_subscription(request_data: GraphQLRequestData) -> bool:
    """Whether the request's operation is a subscription (only documents that name one parse)."""
    query = request_data.query
    if not isinstance(query, str) or "subscription" not in query:
        return False
    try:
        operation = get_operation_ast(parse(query), request_data.operation_name)
    except GraphQLError:
        return False  # reported by the normal path
    return (
        isinstance(operation, OperationDefinitionNode)
        and operation.operation == AstOperationType.SUBSCRIPTION
    )


#: A JSON escape of a UTF-16 surrogate: only then can a decoded string hold a lone one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def decode_json_text(data: str | bytes) -> object:
    """`json.loads`, raising JSONDecodeError also for invalid UTF-8, nesting deeper than
    Python's recursion limit and lone surrogates (which no database can store)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        value = json.loads(text)
    except UnicodeDecodeError as error:
        raise json.JSONDecodeError("the body is not UTF-8", "", error.start) from error
    except RecursionError as error:
        raise json.JSONDecodeError("JSON nested too deeply", "", 0) from error
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as error:
            raise json.JSONDecodeError("lone UTF-16 surrogate in a string", "", 0) from error
    return value


#: The media type a GraphQL answer is sent in (see web/graphql_http.py), per response.
MEDIA_TYPE = web.ResponseKey("media_type", str)


async def _track_socket(context: Context, header: str | None) -> Viewer | None:
    """The viewer of the socket's sign-in, remembered with its credential so that the
    socket closes (4403) when that credential stops holding (web/revocation.py)."""
    app = context.request.app
    credential = await credential_from_authorization(
        header,
        app[DATABASE],
        app[CREDENTIALS],
        address=client_address(context.request, context.settings.trusted_proxies),
    )
    access, websocket = app.get(ACCESS), context.response
    if (
        credential is not None
        and access is not None
        and isinstance(websocket, web.WebSocketResponse)
    ):
        access.remember_socket(websocket, credential)
    return credential.viewer if credential is not None else None


class EncodedResults:
    """Recently encoded subscription results, by identity: schema/shared_events.py gives many
    subscribers one result object, which is then encoded once for all of them."""

    KEPT = 256

    def __init__(self) -> None:
        #: By the data's identity: the data (so the identity stays its own), its JSON as
        #: text and as UTF-8.
        self._kept: OrderedDict[int, tuple[object, str, bytes]] = OrderedDict()

    def _encoded(self, data: Any) -> tuple[object, str, bytes]:
        kept = self._kept.get(id(data))
        if kept is None or kept[0] is not data:
            text = json.dumps(data, separators=(",", ":"))
            kept = self._kept[id(data)] = (data, text, text.encode())
            if len(self._kept) > self.KEPT:
                self._kept.popitem(last=False)
        return kept

    def next_message(self, message: dict[str, Any]) -> str:
        """A `next` message as JSON text."""
        payload = message.get("payload")
        if not isinstance(payload, dict) or payload.keys() != {"data"}:
            return json.dumps(message, separators=(",", ":"))
        identifier = json.dumps(message["id"])
        data = self._encoded(payload["data"])[1]
        return f'{{"id":{identifier},"type":"next","payload":{{"data":{data}}}}}'

    def next_frame(self, operation_id: str, data: Any) -> bytes:
        """The `next` message of `data` for the operation, as UTF-8 (`next_message`'s text)."""
        return next_head(operation_id) + self.next_rest(data)

    def next_rest(self, data: Any) -> bytes:
        """What follows the head in the `next` message of `data` (see the view's)."""
        return self._encoded(data)[2] + TAIL


def _describe_span(span: Any, operation: OperationSummary | None) -> None:
    """Name the operation's span as OpenTelemetry's GraphQL conventions do (`query Name`)."""
    if operation is None or operation.type is None:
        return
    span.update_name(f"{operation.type} {operation.name}" if operation.name else operation.type)
    span.set_attribute("graphql.operation.type", operation.type)
    if operation.name:
        span.set_attribute("graphql.operation.name", operation.name)
    if operation.outcome:
        span.set_attribute("coursepulse.outcome", operation.outcome)
        if operation.outcome == "internal_error":
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, "internal_error"))


def outcome_of(errors: list[Any] | None) -> str:
    """ "ok", or the code of the result's first error ("internal_error" when it has none)."""
    if not errors:
        return "ok"
    extensions = getattr(errors[0], "extensions", None) or {}
    code = extensions.get("code")
    return code if isinstance(code, str) and code.isidentifier() else "internal_error"
