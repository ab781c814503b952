"""One execution per live event and subscription document, shared by its subscribers.

A course's event reaches every subscriber of the course in this process. Each
subscriber's selection of it would otherwise be executed on its own: for
thousands of progress bars watching one course, the same fields resolved on the
same event thousands of times. An event's fields depend on the event alone (not
on the viewer), so the result of executing one document with the same variables
on one event is the same for everyone: it is computed once and reused.
"""

from collections import OrderedDict
from typing import Any
from weakref import WeakKeyDictionary

from graphql import ExecutionResult
from graphql.pyutils import is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from coursepulse.events.feed import Feeds
from coursepulse.models import ProgressEvent as EventRow
from coursepulse.schema.types import ProgressEvent

#: Recent events whose GraphQL objects (and their execution results) are kept.
SHARED_EVENTS = 4096
#: Distinct (document, variables) results kept per event.
RESULTS_PER_EVENT = 8

#: Per application (its feeds): event id -> the event's GraphQL object.
_payloads: WeakKeyDictionary[Feeds, OrderedDict[int, ProgressEvent]] = WeakKeyDictionary()


def shared_payload(feeds: Feeds, event: EventRow) -> ProgressEvent:
    """The GraphQL object of a log row, the same object for every subscriber of the app."""
    recent = _payloads.get(feeds)
    if recent is None:
        recent = _payloads[feeds] = OrderedDict()
    key = int(event.id)  # type: ignore[arg-type]
    payload = recent.get(key)
    if payload is None:
        payload = recent[key] = ProgressEvent.from_model(event)
        if len(recent) > SHARED_EVENTS:
            recent.popitem(last=False)
    return payload


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Executes a subscription event once per (document, variables) for all its subscribers."""

    def build_per_event_executor(self, payload: Any) -> Any:
        """An executor for one event; when the event was executed already, its answer."""
        if isinstance(payload, ProgressEvent):
            cached = payload._results.get(self._key())
            if cached is not None and cached[0] is self.operation:
                return _Answered(cached[1])
        return super().build_per_event_executor(payload)

    def _key(self) -> tuple[int, tuple[tuple[str, str], ...]]:
        return (id(self.operation), _frozen(self.variable_values.coerced))

    def execute_operation(self, serially: bool | None = None) -> Any:
        payload = self.root_value
        if not isinstance(payload, ProgressEvent):
            return super().execute_operation(serially)
        key = self._key()
        cached = payload._results.get(key)
        if cached is not None and cached[0] is self.operation:
            return cached[1]
        result = super().execute_operation(serially)
        if is_awaitable(result):
            return self._remember_later(payload, key, result)
        self._remember(payload, key, result)
        return result

    async def _remember_later(self, payload: ProgressEvent, key: Any, pending: Any) -> Any:
        result = await pending
        self._remember(payload, key, result)
        return result

    def _remember(self, payload: ProgressEvent, key: Any, result: Any) -> None:
        results = payload._results
        # Variables differ between subscribers (each resumes `after` its own event):
        # a few kinds are kept per event, the rest executed on their own.
        if (
            isinstance(result, ExecutionResult)
            and not result.errors
            and len(results) < RESULTS_PER_EVENT
        ):
            results[key] = (self.operation, result)


class _Answered:
    """Stands in for a per-event executor whose event was executed already."""

    __slots__ = ("result",)

    def __init__(self, result: ExecutionResult) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:
        return self.result


def _frozen(variables: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, repr(value)) for name, value in variables.items()))
