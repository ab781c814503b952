"""One execution per live event and subscription document, shared by its subscribers.

A course's event reaches every subscriber of the course in this process. Each
subscriber's selection of it would otherwise be executed on its own: for
thousands of progress bars watching one course, the same fields resolved on the
same event thousands of times. An event's fields depend on the event alone (not
on the viewer), so the result of executing one document with the same variables
on one event is the same for everyone: it is computed once and reused. Only the
variables the event's fields read count: subscribers that resume `after`
different events, or follow other courses, share one execution.

What a subscriber cannot share is the execution of a document of its own (a
distinct text, such as one with a nonce in it): each distinct document is
executed on its own (the log row is still read once per course, and its GraphQL
object built once); a user's subscriptions are bounded in number
(COURSEPULSE_MAX_SUBSCRIPTIONS_PER_USER), so are the executions one user causes.
"""

from collections import OrderedDict
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    VariableNode,
    Visitor,
    visit,
)
from graphql.pyutils import is_awaitable

from coursepulse.fanout.feed import Feeds
from coursepulse.models.rows import ProgressEventRow as EventRow
from coursepulse.schema.executor import Executor
from coursepulse.schema.types import ProgressEvent

#: Recent events whose GraphQL objects (and their execution results) are kept.
SHARED_EVENTS = 4096
#: Distinct (document, variables) results kept per event.
RESULTS_PER_EVENT = 8


#: What tells one subscription document's executions on an event apart (see `event_key`).
EventKey = tuple[int, tuple[tuple[str, str], ...]]


def event_key(
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
) -> EventKey:
    """The key of an operation's executions on one event: the operation, and the values
    of the variables the event's fields can see (`variables` are the coerced ones).

    The root field's own arguments (`courseId`, `after`, which differ between
    subscribers) shape the stream, not the event's answer, whose root resolver returns
    the event as it is.
    """
    used = _per_event_variables(operation, fragments)
    return (id(operation), _frozen({name: variables[name] for name in used if name in variables}))


def executed_result(
    payload: ProgressEvent, operation: OperationDefinitionNode, key: EventKey
) -> ExecutionResult | None:
    """The result of executing `operation` on the event, when some subscriber's
    execution of it (with the same `key`) is kept; None otherwise. Only results without
    errors are kept, so this is what that subscriber was sent."""
    cached = payload.shared_results.get(key)
    if cached is not None and cached[0] is operation:
        return cached[1]  # type: ignore[no-any-return]
    return None


def shared_payload(feeds: Feeds, event: EventRow) -> ProgressEvent:
    """The GraphQL object of a log row, the same object for every subscriber of the app
    (kept with the application's feeds)."""
    recent: OrderedDict[int, Any] = feeds.shared
    key = int(event.id)  # type: ignore[arg-type]
    payload = recent.get(key)
    if payload is None:
        payload = recent[key] = ProgressEvent.from_row(event)
        if len(recent) > SHARED_EVENTS:
            recent.popitem(last=False)
    return payload


# graphql-core 3.3 internals: `build_per_event_executor` and `execute_operation` are
# overridden below; pyproject.toml pins graphql-core to >=3.3,<3.4 for that reason.
class SharedEventExecutor(Executor):
    """Executes a subscription event once per (document, variables) for all its subscribers."""

    def build_per_event_executor(self, payload: Any) -> Any:
        """An executor for one event; when the event was executed already, its answer."""
        if isinstance(payload, ProgressEvent):
            executed = executed_result(payload, self.operation, self._key())
            if executed is not None:
                return _Answered(executed)
        return super().build_per_event_executor(payload)

    def _key(self) -> EventKey:
        return event_key(self.operation, self.fragment_definitions, self.variable_values.coerced)

    def execute_operation(self, serially: bool | None = None) -> Any:
        payload = self.root_value
        if not isinstance(payload, ProgressEvent):
            return super().execute_operation(serially)
        key = self._key()
        executed = executed_result(payload, self.operation, key)
        if executed is not None:
            return executed
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
        results = payload.shared_results
        # Documents (or the variables their event fields read) may differ between
        # subscribers: a few kinds are kept per event, the rest executed on their own.
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


#: Per operation (by identity): the variables its per-event execution reads.
_EVENT_VARIABLES: OrderedDict[int, tuple[OperationDefinitionNode, frozenset[str]]] = OrderedDict()
_EVENT_VARIABLES_KEPT = 1024


class _Variables(Visitor):
    """Collects the variables, and the fragments spread, in what it visits."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.spreads: set[str] = set()

    def enter_variable(self, node: VariableNode, *_args: Any) -> None:
        self.names.add(node.name.value)

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_args: Any) -> None:
        self.spreads.add(node.name.value)


def _per_event_variables(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> frozenset[str]:
    """Variables used anywhere but in the arguments of the operation's root fields.

    Measured once per parsed operation, in time linear in its size (each fragment once).
    """
    kept = _EVENT_VARIABLES.get(id(operation))
    if kept is not None and kept[0] is operation:
        return kept[1]
    found = _Variables()
    roots, seen_roots = [operation.selection_set], set()
    while roots:
        for selection in roots.pop().selections:
            for directive in selection.directives or ():
                visit(directive, found)
            if isinstance(selection, FieldNode):
                if selection.selection_set is not None:
                    visit(selection.selection_set, found)
            elif isinstance(selection, InlineFragmentNode):
                roots.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in seen_roots and name in fragments:
                    seen_roots.add(name)
                    roots.append(fragments[name].selection_set)
    visited: set[str] = set()
    while waiting := found.spreads - visited:
        name = waiting.pop()
        visited.add(name)
        if name in fragments:
            visit(fragments[name].selection_set, found)
    used = frozenset(found.names)
    _EVENT_VARIABLES[id(operation)] = (operation, used)
    if len(_EVENT_VARIABLES) > _EVENT_VARIABLES_KEPT:
        _EVENT_VARIABLES.popitem(last=False)
    return used


def _frozen(variables: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, repr(value)) for name, value in variables.items()))
