"""Typed keys for what the aiohttp application and requests hold."""

from typing import TYPE_CHECKING

from aiohttp import web

from coursepulse.models.db import Database
from coursepulse.resolvers.viewer import Viewer
from coursepulse.schema.context import OperationSummary
from coursepulse.settings import Settings
from coursepulse.web.credentials import CredentialCache

if TYPE_CHECKING:
    import asyncio
    from weakref import WeakSet

    from coursepulse.fanout.brokers import Broker
    from coursepulse.web.graphiql import GraphiQLPage

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
CREDENTIALS = web.AppKey("credentials", CredentialCache)
BROKER: web.AppKey["Broker"] = web.AppKey("broker")
#: Set once the database schema is up to date (at once, or when a database that was
#: down at start answers and has been migrated).
SCHEMA_READY: web.AppKey["asyncio.Event"] = web.AppKey("schema_ready")
WEBSOCKETS: web.AppKey["WeakSet[web.WebSocketResponse]"] = web.AppKey("websockets")
#: The GraphiQL page, when the explorer is switched on.
GRAPHIQL: web.AppKey["GraphiQLPage"] = web.AppKey("graphiql")

VIEWER = web.RequestKey("viewer", Viewer | None)  # type: ignore[arg-type]
#: The request's GraphQL operation, for the access log.
OPERATION = web.RequestKey("operation", OperationSummary)
REQUEST_ID = web.RequestKey("request_id", str)
#: Whether the browser says the request comes from another site (and its origin is not listed).
CROSS_SITE = web.RequestKey("cross_site", bool)
