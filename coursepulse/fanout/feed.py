"""Per-course feeds: read new events from the log once per process, fan them out."""

import asyncio
import contextlib
import contextvars
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from coursepulse.models.db import Database
from coursepulse.models.rows import ProgressEventRow
from coursepulse.resolvers.subscriptions import events_after, last_event_id

log = logging.getLogger("coursepulse.fanout")

#: Events a subscription may have waiting before it is ended with `resume_required`.
DEFAULT_BUFFER = 1000
#: Rows read from the log per query while catching up.
READ_BATCH = 500


class Overflowed(Exception):
    """The subscriber fell behind by more than its buffer."""


class Subscription:
    """One subscriber's bounded queue of events of one course.

    Thousands of these wait idle at once, and an event reaches all of them in one pass:
    the first event waiting takes a slot of its own (the usual case, no allocation per
    subscriber), later ones a queue made while they wait, and a single future wakes the
    one consumer. A consumer that does not wait (a parked stream, fanout/stream.py) is
    told through `listener`.
    """

    __slots__ = (
        "_first",
        "_more",
        "_waiter",
        "buffer",
        "course_id",
        "listener",
        "overflowed",
        "start",
    )

    def __init__(self, course_id: int, buffer: int, start: int = 0) -> None:
        self.course_id = course_id
        #: Events of the course up to this id were handed out before this subscription began.
        self.start = start
        self.buffer = buffer
        self.overflowed = False
        #: The oldest event waiting (None: none waits), then the others, in order.
        self._first: ProgressEventRow | None = None
        self._more: deque[ProgressEventRow] | None = None
        self._waiter: asyncio.Future[None] | None = None
        #: Called when an event arrives (or `interrupt` is called) and nobody waits in `wait`.
        self.listener: Callable[[], None] | None = None

    def offer(self, event: ProgressEventRow) -> None:
        """Queue an event without waiting; a full queue marks the subscription overflowed."""
        if self.overflowed:
            return
        more = self._more
        waiting = 0 if self._first is None else 1 + (len(more) if more is not None else 0)
        if waiting >= self.buffer:
            # Nothing more is delivered: the events waiting would leave a gap behind the
            # id the subscriber resumes from once it has noticed.
            self.overflowed = True
            self._first = self._more = None
        elif self._first is None:
            self._first = event
        elif more is None:
            self._more = deque((event,))
        else:
            more.append(event)
        self.interrupt()

    def interrupt(self) -> None:
        """Wake the consumer (the one waiting in `wait`, else the `listener`)."""
        waiter = self._waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
        elif self.listener is not None:
            self.listener()

    def peek(self) -> ProgressEventRow | None:
        """The next event without taking it; None when none waits. Raises `Overflowed`
        once the subscriber fell too far behind."""
        if self.overflowed:
            raise Overflowed()
        return self._first

    def only(self) -> ProgressEventRow | None:
        """The event waiting, when it is the only one (and the subscriber has not fallen
        behind); None otherwise."""
        return self._first if not self._more else None

    def take(self) -> ProgressEventRow | None:
        """The next event, taken from the queue; None when none waits. Raises `Overflowed`
        once the subscriber fell too far behind."""
        if self.overflowed:
            raise Overflowed()
        event = self._first
        more = self._more
        if more:
            self._first = more.popleft()
            if not more:
                self._more = None
        else:
            self._first = None
        return event

    async def wait(self) -> None:
        """Returns once an event is waiting, the subscription overflowed, or `interrupt`
        was called."""
        if self._first is not None or self.overflowed:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def next(self) -> ProgressEventRow:
        """The next event; raises `Overflowed` once the subscriber fell too far behind."""
        while True:
            event = self.take()
            if event is not None:
                return event
            await self.wait()


class CourseFeed:
    """Delivers one course's new log rows to its subscriptions, in id order."""

    def __init__(
        self,
        db: Database,
        course_id: int,
        cursor: int,
        read_listeners: list[Callable[[ProgressEventRow], None]] | None = None,
    ) -> None:
        self.db = db
        self.read_listeners = read_listeners if read_listeners is not None else []
        self.course_id = course_id
        self.cursor = cursor
        self.subscriptions: set[Subscription] = set()
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # A context of its own: the feed serves every subscriber of the course, not the
        # request that happened to start it (its trace, its request-scoped variables).
        self._task = asyncio.create_task(
            self._run(), name=f"course-feed-{self.course_id}", context=contextvars.Context()
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        self._dirty.set()

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._read_new()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database hiccupped: keep the cursor, try again on the next wake-up.
                log.exception("reading events of course %s failed", self.course_id)
                await asyncio.sleep(1)
                self._dirty.set()

    async def _read_new(self) -> None:
        while True:
            async with self.db.read() as tx:
                rows = await events_after(tx, self.course_id, self.cursor, limit=READ_BATCH)
            for event in rows:
                self.cursor = event.id
                for listener in self.read_listeners:
                    listener(event)
                for subscription in tuple(self.subscriptions):
                    subscription.offer(event)
            if len(rows) < READ_BATCH:
                return


class Feeds:
    """The process's course feeds, created on first subscription and dropped on the last."""

    def __init__(self, db: Database, buffer: int = DEFAULT_BUFFER) -> None:
        self.db = db
        self.buffer = buffer
        self._feeds: dict[int, CourseFeed] = {}
        self._lock = asyncio.Lock()
        #: What the front door builds once per event for all its subscribers, by event id
        #: (schema/shared_events.py bounds it).
        self.shared: OrderedDict[int, Any] = OrderedDict()
        #: Told of every wake-up, whatever the course (the webhook worker).
        self.news_listeners: list[Callable[[], None]] = []
        #: Told of each event read for live subscribers, once per process (metrics).
        self.read_listeners: list[Callable[[ProgressEventRow], None]] = []

    async def subscribe(self, course_id: int) -> Subscription:
        """A subscription receiving every event of the course committed from now on."""
        async with self._lock:
            feed = self._feeds.get(course_id)
            if feed is None:
                async with self.db.read() as tx:
                    cursor = await last_event_id(tx, course_id)
                feed = CourseFeed(self.db, course_id, cursor, self.read_listeners)
                feed.start()
                self._feeds[course_id] = feed
                # Anything committed while the cursor was being read is picked up now.
                feed.wake()
            subscription = Subscription(course_id, self.buffer, start=feed.cursor)
            feed.subscriptions.add(subscription)
            return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        async with self._lock:
            feed = self._feeds.get(subscription.course_id)
            if feed is None:
                return
            feed.subscriptions.discard(subscription)
            if not feed.subscriptions:
                del self._feeds[subscription.course_id]
                await feed.stop()

    def wake(self, course_ids: set[int]) -> None:
        """News in these courses: their feeds read the log."""
        for listener in self.news_listeners:
            listener()
        for course_id in course_ids:
            feed = self._feeds.get(course_id)
            if feed is not None:
                feed.wake()

    def wake_all(self) -> None:
        """Catch up every feed (after a lost broker connection)."""
        for listener in self.news_listeners:
            listener()
        for feed in self._feeds.values():
            feed.wake()

    @property
    def course_ids(self) -> set[int]:
        return set(self._feeds)

    async def close(self) -> None:
        async with self._lock:
            feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            await feed.stop()
