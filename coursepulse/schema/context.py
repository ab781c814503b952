"""The typed context every resolver receives as `info.context`."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from strawberry.extensions import SchemaExtension

from coursepulse.events.access import LiveGrants
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
    #: False for requests that must not change anything (GraphQL over GET): a query
    #: that would write on first use (`certificate`) only reads then.
    may_change: bool = True
    #: The application's live grants (subscriptions whose access can be taken back).
    access: LiveGrants | None = None

    async def refresh(self) -> None:
        """Forget what this operation read: after a mutation's commit, the next reads see it."""
        await self.reader.close()
        self.loaders = Loaders(self.reader, self.viewer.user_id if self.viewer else None)

    def for_operation(self) -> "Context":
        """This context with a read transaction and DataLoaders of the operation's own.

        A websocket's operations share the connection's context and may run at once:
        each must read, and end its reads, without touching the others'.
        """
        reader = self.db.shared_reader()
        viewer_id = self.viewer.user_id if self.viewer else None
        return replace(self, reader=reader, loaders=Loaders(reader, viewer_id))


class FreshLoaders(SchemaExtension):
    """New DataLoaders and read transaction for every operation, ended when it ends.

    Ended also when the operation fails or is cancelled (a websocket closing cancels
    its subscriptions), so no pooled connection is left behind.
    """

    async def on_operation(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if not isinstance(context, Context):
            yield
            return
        own = context.for_operation()
        self.execution_context.context = own
        try:
            yield
        finally:
            await own.reader.close()
