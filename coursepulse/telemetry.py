"""OpenTelemetry tracing, optional (`pip install coursepulse[otel]`).

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set:
then every `serve` process exports spans by OTLP over HTTP (`start_from_environment`).

- HTTP: one server span per request, from OpenTelemetry's aiohttp server instrumentation
  (route templates, status). Incoming `traceparent` headers are followed. The request's
  target and URL are recorded as the route template (`RouteOnly`): a query string may
  carry a GraphQL document and its variables, and some paths carry a certificate's token.
- GraphQL: a span per operation over HTTP, named `query CourseProgress`, with
  `graphql.operation.type`, `graphql.operation.name` and the outcome (web/graphql_view.py).
  Made by the view rather than Strawberry's extension: the view also answers the operations
  that skip the schema's hooks (the prepared lane), and the extension records the document
  and every resolver's arguments, passwords included.
- Errors are recorded by type only: a driver's message may quote a row.
- Database: a span per statement with the SQL text (parameters are never recorded), made
  where every statement of both engines runs (models/transactions.py), for the statements
  of traced requests.

Nothing here costs a request anything while tracing is off: `tracer()` is None.
"""

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("coursepulse.telemetry")

#: The endpoints whose presence turns tracing on (OpenTelemetry's own variables).
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_state: dict[str, Any] = {"tracer": None, "provider": None, "instrumentor": None}


def tracer() -> "Tracer | None":
    """The service's tracer while tracing is on, else None."""
    return _state["tracer"]


def tracing_now() -> bool:
    """Whether the code running now is part of a traced request: statements of background
    work (the webhook worker's polls) would otherwise each make a trace of their own."""
    if _state["tracer"] is None:
        return False
    from opentelemetry import trace

    return trace.get_current_span().is_recording()


def mark_failed(span: "Span", error: BaseException) -> None:
    """The span ended in an error: its status says so, naming only the error's type."""
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, type(error).__name__))


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Run the block outside any trace (what it starts is not part of the current one)."""
    from opentelemetry import context

    token = context.attach(context.Context())
    try:
        yield
    finally:
        context.detach(token)


#: The attributes of a server span that may hold the query string or the raw path.
_TARGET_ATTRIBUTES = ("http.target", "url.path")
_URL_ATTRIBUTES = ("http.url", "url.full")


def _path_of(attributes: Any, target: str) -> str:
    """The route template of the request, else its path without the query string."""
    route = attributes.get("http.route")
    if isinstance(route, str) and route:
        return route
    path = target.split("?", 1)[0]
    return path if path.startswith("/") else "/" + path


def _route_only_processor() -> Any:
    """A span processor that replaces the request's target and URL with its route template
    as the span starts (before any exporter sees it)."""
    from opentelemetry.sdk.trace import SpanProcessor

    class RouteOnly(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            attributes = span.attributes or {}
            if not any(name in attributes for name in _TARGET_ATTRIBUTES + _URL_ATTRIBUTES):
                return
            for name in _TARGET_ATTRIBUTES:
                if isinstance(attributes.get(name), str):
                    span.set_attribute(name, _path_of(attributes, attributes[name]))
            for name in _URL_ATTRIBUTES:
                url = attributes.get(name)
                if isinstance(url, str):
                    scheme, _, rest = url.partition("://")
                    host, _, path = rest.partition("/")
                    span.set_attribute(name, f"{scheme}://{host}{_path_of(attributes, path)}")
            if "url.query" in attributes:
                span.set_attribute("url.query", "")

    return RouteOnly()


def enable(provider: "TracerProvider") -> None:
    """Trace requests, GraphQL operations and statements into `provider` (applications made
    from now on get the HTTP spans)."""
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

    disable()
    provider.add_span_processor(_route_only_processor())
    instrumentor = AioHttpServerInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    _state.update(
        tracer=provider.get_tracer("coursepulse"), provider=provider, instrumentor=instrumentor
    )


def disable() -> None:
    """Stop tracing (applications made from now on have no HTTP spans)."""
    instrumentor = _state["instrumentor"]
    if instrumentor is not None:
        instrumentor.uninstrument()
    _state.update(tracer=None, provider=None, instrumentor=None)


def start_from_environment() -> bool:
    """Turn tracing on with an OTLP exporter when an endpoint is configured; returns whether
    it is on. Without the `otel` extra, says how to get it and goes on untraced."""
    if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but tracing is not installed:"
            " pip install 'coursepulse[otel]'; serving without traces"
        )
        return False
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "coursepulse"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    enable(provider)
    log.info(
        "tracing: spans are exported by OTLP (service %s)",
        provider.resource.attributes.get("service.name"),
    )
    return True


def stop() -> None:
    """Send the spans still buffered, and stop tracing (at the end of `serve`)."""
    provider = _state["provider"]
    disable()
    if provider is not None:
        provider.shutdown()
