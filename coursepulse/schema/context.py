"""The typed context every resolver receives as `info.context`."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from strawberry.extensions import SchemaExtension

from coursepulse.events.feed import Feeds
from coursepulse.models.db import Database, SharedReader
from coursepulse.resolvers.viewer import Viewer
from coursepulse.schema.loaders import Loaders
from coursepulse.settings import Settings


@dataclass
class Context:
    db: Database
    settings: Settings
    viewer: Viewer | None
    request_id: str
    reader: SharedReader
    loaders: Loaders
    feeds: Feeds
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = field(default=None)

    async def refresh(self) -> None:
        """Forget what this operation read: after a mutation, and before each operation of a
        websocket (whose context lives as long as the connection)."""
        await self.reader.close()
        self.loaders = Loaders(self.reader, self.viewer.user_id if self.viewer else None)


class FreshLoaders(SchemaExtension):
    """New DataLoaders and read transaction for every operation, closed when it ends."""

    async def on_operation(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            await context.refresh()
        yield
        if isinstance(context, Context):
            await context.reader.close()
