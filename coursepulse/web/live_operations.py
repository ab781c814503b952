"""graphql-transport-ws subscriptions that wait without a task of their own.

Strawberry runs each operation in a task: for a subscription waiting for its next
event, that task holds the whole stack of the execution (the operation's task,
Strawberry's result stream and extension hooks, graphql-core's executor, the
resolver's generators), about 20 KiB per subscription: 200 MB for 10,000 dashboards
following a course, almost all of it idle.

Here a live stream (fanout/stream.py) parks instead of waiting: the operation's task
ends without `complete`, Strawberry's stack with it, and only a `ParkedOperation` is
kept. When the stream has something to deliver, a task delivers it:

- an event that a subscriber with the same document had executed already (the usual
  case: schema/shared_events.py executes an event once for all of them) is sent as
  Strawberry sends an error-free result: `next` with `{"data": ...}`;
- anything else (the first subscriber of an event, the end of the stream, an error)
  runs the operation through Strawberry again, whose resolver takes the stream up
  where it parked (`RESUME`): every rule, hook and error of the normal path applies.

Operations woken by one event (thousands, for a course's dashboards) are served in one
task (`Deliveries`): an executed result goes out at once on a socket that takes it
without waiting; an operation that needs more (or whose socket is slow to read) gets a
task of its own, as above. A task per subscriber and event was most of the fan-out's cost.

A parked operation stays in the handler's `operations` (so its id stays taken and
counts towards the limits); `complete` or the socket closing ends it as it ends any.
"""

import asyncio
import contextvars
import logging
from contextlib import suppress
from typing import Any
from weakref import WeakKeyDictionary

from aiohttp import ClientConnectionResetError, WSMsgType
from aiohttp.web import WebSocketResponse
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types import ExecutionResult

from coursepulse.fanout.stream import PARK, RESUME, LiveStream, Parking
from coursepulse.schema.context import Context
from coursepulse.schema.subscription import executed_event
from coursepulse.web.next_frames import next_head, websocket_frame

log = logging.getLogger("coursepulse.live")


class Parked(BaseException):
    """Ends an operation's task quietly: its stream parked (never leaves `run_operation`).

    Not an Exception, so that Strawberry's handlers, which answer any Exception with
    an error, let it through.
    """


class ParkedOperation:
    """A subscription whose stream parked, with what delivering to it needs."""

    __slots__ = (
        "context",
        "deliveries",
        "ended",
        "handler",
        "head",
        "holds_place",
        "operation",
        "socket",
        "stream",
        "task",
    )

    def __init__(
        self,
        handler: "ParkingTransportWSHandler",
        operation: Operation[Context, None],
        stream: LiveStream,
        context: contextvars.Context,
    ) -> None:
        self.handler = handler
        self.operation = operation
        self.stream = stream
        #: The context variables of the operation's task, for the tasks that deliver.
        self.context = context
        #: The task delivering to it now, if any.
        self.task: asyncio.Task[None] | None = None
        #: Whether its end gives back a place (`ParkingTransportWSHandler.hold_place`).
        self.holds_place = False
        self.ended = False
        #: The start of its `next` messages (the view's `next_head`), made on the first.
        self.head: bytes | None = None
        #: Its socket and transport, when executed results can be written to them as
        #: frames (`ParkingTransportWSHandler.direct_socket`).
        self.socket = handler.direct_socket()
        #: Its loop's deliveries (it is made, and woken, on the socket's loop).
        self.deliveries = Deliveries.of_loop()

    def frame(self, rest: bytes) -> bytes:
        """The websocket frame of its `next` message whose part after the head is `rest`
        (the view's `next_rest`)."""
        head = self.head
        if head is None:
            head = self.head = next_head(self.operation.id)
        return websocket_frame(head, rest)

    def wake(self) -> None:
        """The stream has something to deliver: deliver it with the others woken now,
        unless a task delivers to it already."""
        if self.task is None and not self.ended:
            self.deliveries.add(self)

    async def end(self) -> None:
        """The operation is over: forget it and close its stream (once)."""
        if self.ended:
            return
        self.ended = True
        self.handler.forget_parked(self)
        await self.stream.close()


class ParkingTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler, with operations that park."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Operations whose streams parked, by id (made on the first). Every attribute is
        #: set here: added later, on a server with thousands of sockets, it would no
        #: longer fit CPython's compact layout of the handler's attributes.
        self.parked: dict[str, ParkedOperation] | None = None

    # ---- hooks for subclasses -------------------------------------------------------------

    def hold_place(self) -> bool:
        """Called in an operation's task as its stream first parks; True when the
        operation holds something that `release_place` must give back once it ends
        (instead of when the task ends)."""
        return False

    def release_place(self) -> None:
        """A parked operation for which `hold_place` said True ended."""

    # ---- parking ------------------------------------------------------------------------

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """Strawberry's, except that when the operation's stream parks the task ends
        without `complete`, and the operation is kept (parked)."""
        await self._run(operation)

    async def _run(self, operation: Operation[Context, None]) -> bool:
        """Run the operation; True when its stream parked and the operation is kept."""
        parking = Parking()
        token = PARK.set(parking)
        parked = kept = False
        try:
            await super().run_operation(operation)
        except Parked:
            parked = True
        finally:
            PARK.reset(token)
            stream = parking.stream
            if stream is not None:
                kept = parked and self._keep(operation, stream)
                if not kept:
                    await stream.close()
        return kept

    async def _send_result_stream(
        self, operation: Operation[Context, None], result_source: Any
    ) -> None:
        await super()._send_result_stream(operation, result_source)
        parking = PARK.get()
        if parking is not None and parking.stream is not None:
            raise Parked  # the results ended because the stream parked: no `complete`

    def _keep(self, operation: Operation[Context, None], stream: LiveStream) -> bool:
        """Keep the operation parked; False when it ended meanwhile (or is not this one's)."""
        if stream.closed or self.operations.get(operation.id) is not operation:
            return False
        parked = self.parked.get(operation.id) if self.parked is not None else None
        if parked is not None:  # parked again, by the task delivering to it
            return parked.stream is stream
        if self.parked is None:
            self.parked = {}
        parked = self.parked[operation.id] = ParkedOperation(
            self, operation, stream, contextvars.copy_context()
        )
        parked.holds_place = self.hold_place()
        operation.task = None  # the finished task is not kept
        stream.waker = parked.wake
        if not stream.settle():
            parked.wake()
        return True

    def forget_parked(self, parked: ParkedOperation) -> None:
        operation_id = parked.operation.id
        if self.parked is not None and self.parked.get(operation_id) is parked:
            del self.parked[operation_id]
        if parked.holds_place:
            self.release_place()

    def start_delivery(self, parked: ParkedOperation) -> None:
        task = asyncio.create_task(self._deliver(parked), context=parked.context)
        parked.task = parked.operation.task = task
        task.add_done_callback(_retrieve)

    async def deliver_at_once(
        self, parked: ParkedOperation, executing: dict[object, asyncio.Task[None]]
    ) -> None:
        """Send the parked stream's executed results now, without a task of its own; an
        operation that needs more gets its task (`start_delivery`). When that task
        executes an event for the stream's document, it is recorded in `executing` (by
        the stream's key), for the others woken with it to wait for. Never raises."""
        stream, operation = parked.stream, parked.operation
        while not (parked.ended or parked.task is not None or stream.ending):
            event = stream.ready()
            if event is None:
                stream.rest()  # as `settle` would find it, just looked at
                return
            result = executed_event(stream, event)
            if result is None:
                self.start_delivery(parked)  # executes the event, for the others too
                key = getattr(stream, "key", None)
                if key is not None and parked.task is not None:
                    executing[key] = parked.task
                return
            if self.operations.get(operation.id) is not operation:
                self.start_delivery(parked)
                return
            direct = self._frame_to_write(parked, result)
            if direct is None and not self._takes_at_once():
                self.start_delivery(parked)
                return
            stream.consume(event)
            try:
                if direct is not None:
                    direct[0].write(direct[1])
                else:
                    await self._send_next(operation, result)  # type: ignore[arg-type]
            except Exception as error:  # ended in a task of its own, as any failure
                self.fail_in_task(parked, error)
                return
        if not (parked.ended or parked.task is not None or stream.settle()):
            self.start_delivery(parked)  # the stream's end, or more than results

    def direct_socket(self) -> tuple[WebSocketResponse, asyncio.Transport] | None:
        """The aiohttp websocket and its transport, when executed results can be written
        to the transport as frames: an uncompressed socket, served by a view that makes
        them (`next_rest`). None otherwise: results go through aiohttp's writer."""
        ws = getattr(self.websocket, "ws", None)
        if ws is None or ws.compress or getattr(self.view, "next_rest", None) is None:
            return None
        transport = self.context.request.transport
        return None if transport is None else (ws, transport)

    def write_executed(self, parked: ParkedOperation, rests: "SharedRests") -> bool:
        """Deliver to the parked operation when all it waits for is one event whose
        result was executed already and its socket takes it at once: the frame is written
        to the transport, and the stream rests. True when nothing is left to do for it
        (an operation that ended, has a task, or whose write failed, ends in a task);
        False when nothing was done: `deliver_at_once` takes it."""
        if parked.ended or parked.task is not None:
            return True
        socket = parked.socket
        stream = parked.stream
        event = stream.only_ready()
        if socket is None or event is None:
            return False
        operation = parked.operation
        ws, transport = socket
        if ws.closed or operation.completed or not _reads_along(transport):
            return False
        if self.operations.get(operation.id) is not operation:
            return False
        rest = rests.rest(self, stream, event)
        if rest is None:
            return False
        stream.consume(event)
        try:
            transport.write(parked.frame(rest))
        except Exception as error:
            self.fail_in_task(parked, error)
            return True
        stream.rest()  # nothing waits and it is not ending: `only_ready` said so
        return True

    def _frame_to_write(
        self, parked: ParkedOperation, result: ExecutionResult
    ) -> tuple[asyncio.Transport, bytes] | None:
        """The socket's transport and the websocket frame of the result's `next` message,
        when the frame can be written to it at once: an error-free result of an operation
        still running, on an open `direct_socket` whose peer reads (see `_takes_at_once`).
        The frame is made from the JSON its subscribers share (the view's `next_rest`),
        without Strawberry's message and encoding layers and aiohttp's writer, per
        subscriber. None otherwise: then it goes their way."""
        socket = parked.socket
        if socket is None or self._socket_for_shared(parked.operation, result) is None:
            return None
        ws, transport = socket
        if ws.closed or not _reads_along(transport):
            return None
        return transport, parked.frame(self.view.next_rest(result.data))

    async def _send_next(
        self, operation: Operation[Context, None], result: ExecutionResult
    ) -> None:
        """Strawberry's `Operation.send_next`; an error-free result goes out as one text
        frame made from the JSON its subscribers share (the view's `next_frame`), without
        Strawberry's message and encoding layers, per subscriber."""
        next_frame = getattr(self.view, "next_frame", None)
        ws = self._socket_for_shared(operation, result)
        if next_frame is None or ws is None:
            await operation.send_next(result)
            return
        try:
            await ws.send_frame(next_frame(operation.id, result.data), WSMsgType.TEXT)
        except (RuntimeError, ClientConnectionResetError) as error:  # as Strawberry's adapter
            raise WebSocketDisconnected from error

    def _socket_for_shared(
        self, operation: Operation[Context, None], result: ExecutionResult
    ) -> WebSocketResponse | None:
        """The aiohttp websocket, when the result's `next` message can go out on it as a
        frame of the JSON its subscribers share: an error-free result without extensions,
        of an operation still running. None otherwise."""
        if result.errors or result.extensions or operation.completed:
            return None
        return getattr(self.websocket, "ws", None)

    def _takes_at_once(self) -> bool:
        """Whether the socket takes a message without making its sender wait."""
        transport = self.context.request.transport
        return transport is not None and _reads_along(transport)

    def fail_in_task(self, parked: ParkedOperation, error: Exception) -> None:
        """End, in a task of its own, a parked operation whose result could not be sent."""
        task = asyncio.create_task(self._fail(parked, error), context=parked.context)
        parked.task = parked.operation.task = task
        task.add_done_callback(_retrieve)

    async def _fail(self, parked: ParkedOperation, error: Exception) -> None:
        """End a parked operation whose result could not be sent."""
        try:
            await self._end_failed(parked.operation, error)
        finally:
            await parked.end()

    async def _end_failed(self, operation: Operation[Context, None], error: Exception) -> None:
        """Report the error and end the operation, as Strawberry's run_operation ends an
        operation that failed."""
        await self.handle_task_exception(error)
        with suppress(Exception):
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        self.operations.pop(operation.id, None)

    async def _deliver(self, parked: ParkedOperation) -> None:
        """Deliver what the parked stream has; the stream ends parked again, or the
        operation over."""
        stream, operation = parked.stream, parked.operation
        kept = False
        try:
            while True:
                await self._send_executed(operation, stream)
                if stream.settle():
                    kept = True
                    return
                if not await self._resume(operation, stream):
                    break
            # Strawberry ended the operation (and said so), unless the stream was not
            # taken up again: then it ends here.
            if self.operations.get(operation.id) is operation:
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
        finally:
            if kept:
                parked.task = operation.task = None
            else:
                await parked.end()

    async def _send_executed(self, operation: Operation[Context, None], stream: LiveStream) -> None:
        """Send the waiting events whose results were executed already, in order."""
        while not stream.ending:
            event = stream.ready()
            if event is None:
                return
            result = executed_event(stream, event)
            if result is None:
                return
            stream.consume(event)
            try:
                await self._send_next(operation, result)  # type: ignore[arg-type]
            except Exception as error:
                await self._end_failed(operation, error)
                raise

    async def _resume(self, operation: Operation[Context, None], stream: LiveStream) -> bool:
        """Run the operation again, its resolver taking the stream up where it parked;
        True when the stream parked again."""
        token = RESUME.set(stream)
        try:
            return await self._run(operation)
        finally:
            RESUME.reset(token)

    async def cleanup_operation(self, operation_id: str) -> None:
        parked = self.parked.get(operation_id) if self.parked is not None else None
        if parked is None:
            await super().cleanup_operation(operation_id)
            return
        self.operations.pop(operation_id, None)
        if parked.task is not None:
            parked.task.cancel()
        await parked.end()


class Deliveries:
    """The parked operations woken since the loop last ran, delivered by one task."""

    _of_loop: "WeakKeyDictionary[asyncio.AbstractEventLoop, Deliveries]" = WeakKeyDictionary()

    def __init__(self) -> None:
        self.woken: list[ParkedOperation] = []
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def of_loop(cls) -> "Deliveries":
        """The running loop's deliveries."""
        loop = asyncio.get_running_loop()
        deliveries = cls._of_loop.get(loop)
        if deliveries is None:
            deliveries = cls._of_loop[loop] = cls()
        return deliveries

    def add(self, parked: ParkedOperation) -> None:
        """Deliver to `parked` in the next round."""
        self.woken.append(parked)
        if self.task is None:
            self.task = asyncio.create_task(self._deliver())
            self.task.add_done_callback(_retrieve)

    async def _deliver(self) -> None:
        try:
            while self.woken:
                woken, self.woken = self.woken, []
                # The first of each document executes the event; the others wait for it.
                executing: dict[object, asyncio.Task[None]] = {}
                waiting = []
                rests = SharedRests()
                for parked in woken:
                    key = getattr(parked.stream, "key", None)
                    if key is not None and key in executing:
                        waiting.append(parked)  # the usual case: thousands woken by one event
                        continue
                    try:
                        if not parked.handler.write_executed(parked, rests):
                            await parked.handler.deliver_at_once(parked, executing)
                    except Exception as error:
                        _failed(parked, error)
                if waiting:
                    await asyncio.wait(executing.values())
                    rests = SharedRests()
                    for parked in waiting:
                        try:
                            if not parked.handler.write_executed(parked, rests):
                                await parked.handler.deliver_at_once(parked, {})
                        except Exception as error:
                            _failed(parked, error)
        finally:
            self.task = None
            if self.woken:  # a round cancelled part-way: the rest go their own way
                woken, self.woken = self.woken, []
                for parked in woken:
                    if not parked.ended and parked.task is None:
                        parked.handler.start_delivery(parked)


class SharedRests:
    """The rest of the `next` message (after its head) of the executed result last looked
    up: the subscribers of one document woken by one event follow one another in a round,
    and the result is looked up and encoded once for them."""

    __slots__ = ("event", "key", "operation", "rest_of")

    def __init__(self) -> None:
        self.event: object = None
        self.operation: object = None
        self.key: object = None
        self.rest_of: bytes | None = None

    def rest(
        self, handler: ParkingTransportWSHandler, stream: LiveStream, event: object
    ) -> bytes | None:
        """What follows the head in the `next` message of the stream's result on `event`,
        when it was executed already without errors; None otherwise."""
        operation = getattr(stream, "operation", None)
        key = getattr(stream, "key", None)
        if event is self.event and operation is self.operation and key == self.key:
            return self.rest_of
        result = executed_event(stream, event)  # type: ignore[arg-type]
        rest_of = None
        if result is not None and not (result.errors or result.extensions):
            rest_of = handler.view.next_rest(result.data)
        self.event, self.operation, self.key, self.rest_of = event, operation, key, rest_of
        return rest_of


def _failed(parked: ParkedOperation, error: Exception) -> None:
    """Delivering to `parked` failed unexpectedly: it ends, the others of its round still
    get theirs."""
    if parked.ended or parked.task is not None:
        log.error("delivering a live event failed", exc_info=error)
    else:
        parked.handler.fail_in_task(parked, error)


def _reads_along(transport: asyncio.Transport) -> bool:
    """Whether the transport is open and its peer reads: what is buffered for it is far
    from the limit at which writes wait."""
    if transport.is_closing():
        return False
    return transport.get_write_buffer_size() < transport.get_write_buffer_limits()[1] // 2


def _retrieve(task: asyncio.Task[None]) -> None:
    """Failures were reported where they happened (as Strawberry's `_task_done` does)."""
    if not task.cancelled():
        task.exception()
