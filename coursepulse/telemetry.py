"""OpenTelemetry tracing, optional (`pip install coursepulse[otel]`).

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set:
then every `serve` process exports spans by OTLP over HTTP (`start_from_environment`).

- HTTP: one server span per request, from OpenTelemetry's aiohttp server instrumentation
  (route templates, status; query strings redacted). Incoming `traceparent` headers are
  followed.
- GraphQL: a span per operation over HTTP, named `query CourseProgress`, with
  `graphql.operation.type`, `graphql.operation.name` and the outcome (web/graphql_view.py).
  Made by the view rather than Strawberry's extension: the view also answers the operations
  that skip the schema's hooks (the prepared lane), and the extension records the document
  and every resolver's arguments, passwords included.
- Database: a span per statement with the SQL text (parameters are never recorded), made
  where every statement of both engines runs (models/transactions.py), for the statements
  of traced requests.

Nothing here costs a request anything while tracing is off: `tracer()` is None.
"""

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

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


def enable(provider: "TracerProvider") -> None:
    """Trace requests, GraphQL operations and statements into `provider` (applications made
    from now on get the HTTP spans)."""
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

    disable()
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
