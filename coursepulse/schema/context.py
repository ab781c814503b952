"""The typed context every resolver receives as `info.context`."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from strawberry.extensions import SchemaExtension

from coursepulse.events.feed import Feeds
from coursepulse.models.db import Database
from coursepulse.resolvers.viewer import Viewer
from coursepulse.schema.loaders import Loaders
from coursepulse.settings import Settings


@dataclass
class Context:
    db: Database
    settings: Settings
    viewer: Viewer | None
    request_id: str
    loaders: Loaders
    feeds: Feeds
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = field(default=None)

    def reset_loaders(self) -> None:
        """Forget batched reads: called after a mutation so its payload shows fresh rows."""
        self.loaders = Loaders(self.db, self.viewer.user_id if self.viewer else None)


class FreshLoaders(SchemaExtension):
    """New DataLoaders for every operation.

    A websocket's context lives as long as the connection; without this, its
    loaders would keep answering from what they read for the first operation.
    """

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            context.reset_loaders()
        yield
