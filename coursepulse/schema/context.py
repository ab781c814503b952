"""The typed context every resolver receives as `info.context`."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any

from strawberry.extensions import SchemaExtension

from coursepulse.fanout.access import LiveGrants
from coursepulse.fanout.feed import Feeds
from coursepulse.models.db import Database
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers.viewer import Viewer
from coursepulse.schema.loaders import Loaders
from coursepulse.settings import Settings


class OperationReads:
    """The read transaction of one GraphQL operation, shared by its resolvers and loaders.

    One transaction means one consistent view of the data (a percentage and the lessons
    it counts agree) and one BEGIN instead of one per batch; it takes a connection only
    when a first statement runs. A websocket keeps one for its whole life (its context's),
    so it is small: slots, and its lock made when first needed.
    """

    __slots__ = ("_closed", "_db", "_lock", "_scope", "_statements_before", "_tx", "one_statement")

    def __init__(self, db: Database, *, one_statement: bool = False) -> None:
        self._db = db
        #: The operation is expected to read with one statement (`Database.read`).
        self.one_statement = one_statement
        self._scope: AbstractAsyncContextManager[Transaction] | None = None
        self._tx: Transaction | None = None
        self._lock: asyncio.Lock | None = None
        self._statements_before = 0
        self._closed = False

    @property
    def lock(self) -> asyncio.Lock:
        """Serialises beginning and ending the transaction."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def tx(self) -> Transaction:
        """The operation's read transaction, begun on first use."""
        if self._tx is None:
            async with self.lock:
                if self._tx is None:
                    scope = self._db.read(one_statement=self.one_statement)
                    self._tx = await scope.__aenter__()
                    self._scope = scope
        return self._tx

    @property
    def unused(self) -> bool:
        """True while no transaction was begun or ended: how it reads may still be set."""
        return self._tx is None and not self._closed

    @property
    def statements(self) -> int:
        """The statements the operation's reads have run so far."""
        return self._statements_before + (self._tx.statements if self._tx else 0)

    async def close(self) -> None:
        """End the transaction; the next use begins a new one (and sees newer commits)."""
        if self._lock is None:  # never begun: nothing to end
            self._closed = True
            return
        async with self._lock:
            self._closed = True
            if self._tx is not None:
                self._statements_before += self._tx.statements
            scope, self._scope, self._tx = self._scope, None, None
        if scope is not None:
            await scope.__aexit__(None, None, None)


@dataclass(slots=True)
class OperationSummary:
    """What the access log says of a request's GraphQL operation (name, type, outcome)."""

    name: str | None = None
    #: "query", "mutation" or "subscription".
    type: str | None = None
    #: "ok", the first error's code (e.g. "not_enrolled"), or "internal_error".
    outcome: str | None = None

    def named(self, name: str | None, document: Any) -> None:
        """Take the operation's name and type from its parsed document."""
        for definition in getattr(document, "definitions", ()):
            operation = getattr(definition, "operation", None)
            own = getattr(getattr(definition, "name", None), "value", None)
            if operation is not None and (name is None or own == name):
                self.name = own
                self.type = operation.value
                return


@dataclass(slots=True)
class Context:
    db: Database
    settings: Settings
    viewer: Viewer | None
    request_id: str
    reads: OperationReads
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
    #: The request's operation, for the access log (shared by `for_operation` copies).
    operation: OperationSummary = field(default_factory=OperationSummary)
    #: Told when a live subscription starts (+1) and ends (-1), by field name (metrics).
    subscriptions_open: Callable[[str, int], None] | None = None

    async def tx(self) -> Transaction:
        """The operation's read transaction (see `OperationReads`)."""
        return await self.reads.tx()

    async def refresh(self) -> None:
        """Forget what this operation read: after a mutation's commit, the next reads see it."""
        await self.reads.close()
        self.loaders = Loaders(self.reads, self.viewer.user_id if self.viewer else None)

    def for_operation(self, *, one_statement: bool = False) -> "Context":
        """This context with a read transaction and DataLoaders of the operation's own
        (`one_statement`: see `OperationReads`).

        A websocket's operations share the connection's context and may run at once:
        each must read, and end its reads, without touching the others'.
        """
        reads = OperationReads(self.db, one_statement=one_statement)
        viewer_id = self.viewer.user_id if self.viewer else None
        return replace(self, reads=reads, loaders=Loaders(reads, viewer_id))


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
            await own.reads.close()
