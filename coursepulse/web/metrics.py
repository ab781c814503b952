"""Prometheus metrics at /metrics (prometheus-client): requests, GraphQL operations, sign-in
failures, open websockets, the event log's events (committed, and read for live
subscribers), webhook deliveries and the database connections in use. With
`serve --workers N` every worker's count (multiprocess mode).

Each application has a registry of its own (two apps in one process share nothing). Label
values are bounded: routes are templates (never raw paths), and operation names are the
clients' `operationName` up to `MAX_OPERATION_NAMES` distinct ones, `other` after that,
`anonymous` without one.
"""

import asyncio
import contextlib
import hmac
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from coursepulse.models.db import Database
from coursepulse.models.rows import ProgressEventRow
from coursepulse.models.slots import ConnectionUse
from coursepulse.models.types import utcnow
from coursepulse.schema.context import OperationSummary
from coursepulse.settings import Settings
from coursepulse.web.keys import BROKER, DATABASE, SETTINGS

#: Distinct operation names kept as label values (a client cannot mint unlimited ones).
MAX_OPERATION_NAMES = 200
METRICS_PATH = "/metrics"
#: How often each process records its database connections' use.
CONNECTIONS_SAMPLE_SECONDS = 1.0


class Metrics:
    """The metrics of one application."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.operations = Counter(
            "coursepulse_graphql_operations",
            "GraphQL operations run over HTTP, by name, type and outcome (ok or error code).",
            ["operation_name", "operation_type", "outcome"],
            registry=self.registry,
        )
        self.operation_seconds = Histogram(
            "coursepulse_graphql_operation_duration_seconds",
            "Time to answer a GraphQL operation over HTTP.",
            ["operation_name", "operation_type"],
            registry=self.registry,
        )
        self.requests = Counter(
            "coursepulse_http_requests",
            "HTTP requests, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "coursepulse_auth_failures",
            "Requests refused for wrong credentials (and throttled sign-ins).",
            registry=self.registry,
        )
        self.websockets = Gauge(
            "coursepulse_websocket_connections",
            "Websocket connections open (on every worker of `serve --workers`).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.events = Counter(
            "coursepulse_events_appended",
            "Progress events committed to the event log, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.event_delivery = Histogram(
            "coursepulse_event_delivery_seconds",
            "From an event's change to its reading for the live subscribers of this process.",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.subscriptions = Gauge(
            "coursepulse_subscriptions",
            "Live subscriptions running, by field.",
            ["field"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.webhook_deliveries = Counter(
            "coursepulse_webhook_deliveries",
            "Webhook delivery attempts, by outcome (ok, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.webhooks_behind = Gauge(
            "coursepulse_webhooks_behind",
            "Switched-on webhooks with events still to send (the delivery backlog).",
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.db_connections = Gauge(
            "coursepulse_db_connections",
            "Database connections this process may hold at once (its pool's size).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.db_connections_in_use = Gauge(
            "coursepulse_db_connections_in_use",
            "Database connections held by a transaction now.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.db_connections_waiting = Gauge(
            "coursepulse_db_connections_waiting",
            "Transactions waiting for a database connection (the pool is exhausted).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._names: set[str] = set()
        #: Each labelled counter or histogram met, by metric and label values (a few dozen:
        #: the label values are bounded). `labels()` takes a lock and checks its values.
        self._children: dict[tuple[object, ...], Any] = {}

    def sample_connections(self, use: ConnectionUse) -> None:
        """Record how the database connections are used now."""
        self.db_connections.set(use.size)
        self.db_connections_in_use.set(use.in_use)
        self.db_connections_waiting.set(use.waiting)

    def subscription_changed(self, field: str, change: int) -> None:
        """A live subscription of `field` started (+1) or ended (-1)."""
        self.subscriptions.labels(field).inc(change)

    def webhook_attempted(self, succeeded: bool) -> None:
        """The webhook worker sent one delivery."""
        self.webhook_deliveries.labels("ok" if succeeded else "failed").inc()

    def webhooks_waiting(self, count: int) -> None:
        """The webhook worker counted the webhooks with events still to send."""
        self.webhooks_behind.set(count)

    def count_events(self, kinds: Mapping[str, int]) -> None:
        """A write committed these events (Database.after_events)."""
        for kind, count in kinds.items():
            self.events.labels(kind.upper()).inc(count)

    def event_read(self, event: ProgressEventRow) -> None:
        """An event was read for this process's live subscribers (Feeds.read_listeners)."""
        self.event_delivery.observe(max(0.0, (utcnow() - event.occurred_at).total_seconds()))

    def websocket_opened(self, request: web.Request) -> None:
        """A websocket of this request is open (until the request ends)."""
        request[_WEBSOCKET_OPEN] = True
        self.websockets.inc()

    def request_ended(self, request: web.Request) -> None:
        """The request is over, and its websocket, if it had one, is closed."""
        if request.get(_WEBSOCKET_OPEN):
            request[_WEBSOCKET_OPEN] = False
            self.websockets.dec()

    def operation_name(self, name: str | None) -> str:
        """The label value of an operation name (bounded, see the module's docstring)."""
        if not name:
            return "anonymous"
        if name in self._names:
            return name
        if len(self._names) < MAX_OPERATION_NAMES and name.isidentifier() and len(name) <= 100:
            self._names.add(name)
            return name
        return "other"

    def observe_request(
        self,
        request: web.Request,
        status: int,
        seconds: float,
        operation: OperationSummary | None,
    ) -> None:
        """Count a finished request (and its GraphQL operation, when it ran one)."""
        self._child(self.requests, route_of(request), request.method, str(status)).inc()
        if operation is not None and operation.type is not None and operation.outcome:
            name = self.operation_name(operation.name)
            self._child(self.operations, name, operation.type, operation.outcome).inc()
            self._child(self.operation_seconds, name, operation.type).observe(seconds)

    def _child(self, metric: Counter | Histogram, *values: str) -> Any:
        """The metric's child for these label values (made once)."""
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child


def route_of(request: web.Request) -> str:
    """The route template the request matched ("/verify/{number}"), or "unmatched"."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None:
        return "unmatched"
    canonical = resource.canonical
    return canonical if canonical else "unmatched"


METRICS = web.AppKey("metrics", Metrics)
_WEBSOCKET_OPEN = web.RequestKey("websocket_open", bool)
#: Set (by `serve --workers`) to a folder the workers' metrics are kept in, so that one
#: scrape of any worker sees them all (prometheus-client's multiprocess mode).
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def allowed(settings: Settings, authorization: str | None) -> bool:
    """Whether a scrape may read the metrics (`token:<secret>`: with that Bearer token)."""
    if settings.metrics == "on":
        return True
    if settings.metrics.startswith("token:"):
        expected = "Bearer " + settings.metrics.removeprefix("token:")
        return hmac.compare_digest((authorization or "").encode(), expected.encode())
    return False


async def metrics_page(request: web.Request) -> web.Response:
    """GET /metrics: the Prometheus text format."""
    if not allowed(request.app[SETTINGS], request.headers.get("Authorization")):
        return web.Response(
            status=401, text="metrics need the token\n", headers={"WWW-Authenticate": "Bearer"}
        )
    metrics = request.app[METRICS]
    metrics.sample_connections(request.app[DATABASE].connection_use())
    registry = metrics.registry
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def _sample_connections(metrics: Metrics, db: Database) -> None:
    """Every CONNECTIONS_SAMPLE_SECONDS, record this process's connection use (a scrape of
    another worker reads it from the shared folder)."""
    while True:
        metrics.sample_connections(db.connection_use())
        await asyncio.sleep(CONNECTIONS_SAMPLE_SECONDS)


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Count the events this process commits and reads for live subscribers, and sample
    its database connections."""
    metrics = app[METRICS]
    db, feeds = app[DATABASE], app[BROKER].feeds
    db.after_events.append(metrics.count_events)
    feeds.read_listeners.append(metrics.event_read)
    sampler = asyncio.create_task(_sample_connections(metrics, db))
    yield
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    db.after_events.remove(metrics.count_events)
    feeds.read_listeners.remove(metrics.event_read)


def add_routes(app: web.Application) -> None:
    """Serve /metrics unless the settings switch metrics off."""
    app[METRICS] = Metrics()
    if app[SETTINGS].metrics != "off":
        app.router.add_get(METRICS_PATH, metrics_page)
