"""The aiohttp application factory: everything is wired here, nothing at import time."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from weakref import WeakSet

from aiohttp import WSCloseCode, web

from coursepulse.delivery.sender import Sender
from coursepulse.delivery.worker import WebhookWorker, WorkerConfig
from coursepulse.fanout.brokers import create_broker
from coursepulse.models.db import Database
from coursepulse.resolvers.webhooks import RetryPolicy
from coursepulse.rest import routes as rest_routes
from coursepulse.schema import build_schema
from coursepulse.settings import Settings
from coursepulse.web import badges as badge_routes
from coursepulse.web import certificates as certificate_routes
from coursepulse.web import graphiql, metrics
from coursepulse.web.credentials import CredentialCache
from coursepulse.web.graphiql import GraphiQLPage
from coursepulse.web.graphql_view import CoursepulseGraphQLView
from coursepulse.web.health import healthz, readyz, schema_context
from coursepulse.web.keys import (
    BROKER,
    CREDENTIALS,
    DATABASE,
    GRAPHIQL,
    SCHEMA_READY,
    SETTINGS,
    WEBSOCKETS,
)
from coursepulse.web.metrics import METRICS
from coursepulse.web.middlewares import (
    authenticate,
    cors,
    read_body_in_time,
    request_context,
    unavailable_until_ready,
)
from coursepulse.web.progress_app import ProgressApp
from coursepulse.web.revocation import access_ctx
from coursepulse.web.static_files import StaticFiles
from coursepulse.web.throttle import SignInLimits, SignInThrottle
from coursepulse.web.ws_protocols import WS_QUOTA, WebsocketQuota

MAX_REQUEST_BYTES = 1024 * 1024


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    migrate_first: bool = False,
) -> web.Application:
    """A ready-to-run application; pass `database` to share one (tests, CLI).

    With `migrate_first` (the database did not answer before start), the schema is
    migrated in the background as soon as the database answers; until then GraphQL and
    REST answer 503 and `/readyz` says not ready.
    """
    settings = settings or Settings()
    app = web.Application(
        middlewares=[
            request_context,
            read_body_in_time,
            cors,
            unavailable_until_ready,
            authenticate,
        ],
        client_max_size=MAX_REQUEST_BYTES,
        # aiohttp closes a connection that has no complete request head this long after
        # it opened or after its last response: the header timeout, and the idle one.
        handler_args={"keepalive_timeout": settings.http_header_timeout_seconds},
    )
    app[SETTINGS] = settings
    app[CREDENTIALS] = CredentialCache(
        settings.auth_cache_seconds, throttle=sign_in_throttle(settings)
    )
    app[WS_QUOTA] = WebsocketQuota(
        settings.max_websockets_per_user, settings.max_subscriptions_per_user
    )

    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        owned = database is None
        app[DATABASE] = database or Database.from_url(
            settings.database_url,
            echo=settings.sql_echo,
            pool_size=settings.db_pool_size,
            plan_cache_mode=settings.db_plan_cache_mode,
        )
        yield
        if owned:
            await app[DATABASE].dispose()

    async def broker_ctx(app: web.Application) -> AsyncIterator[None]:
        db = app[DATABASE]
        broker = create_broker(
            db,
            buffer=settings.subscription_buffer,
            poll_seconds=settings.event_poll_seconds,
        )
        await broker.start()
        app[BROKER] = broker
        yield
        await broker.stop()

    async def close_websockets(app: web.Application) -> None:
        """Going away (1001): clients reconnect elsewhere and resume with `after`."""
        for websocket in list(app[WEBSOCKETS]):
            await websocket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    async def webhook_ctx(app: web.Application) -> AsyncIterator[None]:
        if not settings.webhook_delivery:
            yield
            return
        sender = Sender(
            timeout_seconds=settings.webhook_timeout_seconds,
            allow_private=settings.webhook_allow_private,
        )
        await sender.start()
        worker = WebhookWorker(
            app[DATABASE], sender, worker_config(settings), observer=app[METRICS]
        )
        app[BROKER].feeds.news_listeners.append(worker.wake)
        worker.start(ready=app[SCHEMA_READY])
        yield
        await worker.stop()
        await sender.close()

    app[WEBSOCKETS] = WeakSet()
    app[SCHEMA_READY] = asyncio.Event()
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(schema_context(migrate_first=migrate_first))
    app.cleanup_ctx.append(broker_ctx)
    app.cleanup_ctx.append(metrics.metrics_ctx)
    app.cleanup_ctx.append(access_ctx)
    app.cleanup_ctx.append(webhook_ctx)
    app.on_shutdown.append(close_websockets)

    view = CoursepulseGraphQLView(
        schema=build_schema(settings),
        graphql_ide="graphiql" if settings.graphiql else None,
        allowed_origins=settings.allowed_origins,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
        keep_alive=True,
        keep_alive_interval=15,
    )
    app.router.add_route("*", "/graphql", view)
    files = StaticFiles(without=() if settings.graphiql else graphiql.FILES)
    files.add_routes(app)
    ProgressApp(files).add_routes(app)
    if settings.graphiql:
        app[GRAPHIQL] = GraphiQLPage(files)
    app.router.add_get("/healthz", healthz)
    metrics.add_routes(app)
    app.router.add_get("/readyz", readyz)
    certificate_routes.add_routes(app)
    badge_routes.add_routes(app)
    rest_routes.add_routes(app)
    return app


def sign_in_throttle(settings: Settings) -> SignInThrottle:
    """The sign-in throttle the settings describe."""
    return SignInThrottle(
        SignInLimits(
            window_seconds=settings.signin_window_seconds,
            per_address=settings.signin_failures_per_address,
            per_user_and_address=settings.signin_failures_per_user_and_address,
            per_user=settings.signin_failures_per_user,
        )
    )


def worker_config(settings: Settings) -> WorkerConfig:
    """How the webhook worker works, as the settings say."""
    return WorkerConfig(
        policy=RetryPolicy(
            first_delay_seconds=settings.webhook_retry_first_seconds,
            max_delay_seconds=settings.webhook_retry_max_seconds,
            give_up_after_seconds=settings.webhook_give_up_seconds,
        ),
        poll_seconds=settings.webhook_poll_seconds,
        concurrency=settings.webhook_concurrency,
        retention=timedelta(days=settings.webhook_delivery_retention_days),
    )
