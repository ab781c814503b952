"""One subscription's stream: replay from the log after `after`, then live, no gap, no repeat.

A `LiveStream` is iterated by the task that serves its subscription. Thousands of
subscriptions spend nearly all their time waiting for their next event; a task that
can let go of a waiting stream says so by setting `PARK` (a `Parking`) while it
iterates. The stream then *parks* instead of waiting: its iteration ends as if it
were over, but it stays subscribed, and once it has something to deliver (an event,
or the reason it must end) it calls its `waker`. Whoever holds it then delivers what
it can itself (`ready`, `consume`, `settle`), or iterates it again, with the stream
in `RESUME` so that its consumer picks it up where it parked (web/live_operations.py).
"""

from collections.abc import Callable, Iterator
from contextvars import ContextVar

from coursepulse.fanout.access import LiveGrant, forbidden
from coursepulse.fanout.feed import Feeds, Overflowed, Subscription
from coursepulse.models.db import Database
from coursepulse.models.rows import ProgressEventRow
from coursepulse.resolvers.errors import ResumeRequired
from coursepulse.resolvers.subscriptions import events_after


class Parking:
    """Set in `PARK` by a task that lets a stream park; names the stream that did."""

    __slots__ = ("stream",)

    def __init__(self) -> None:
        self.stream: LiveStream | None = None


#: The current task's permission to park its stream (None: streams wait for events).
PARK: ContextVar[Parking | None] = ContextVar("coursepulse_park", default=None)
#: A parked stream that the current task iterates again.
RESUME: ContextVar["LiveStream | None"] = ContextVar("coursepulse_resume", default=None)


class LiveStream:
    """Events of one course (of one user, if given), oldest first.

    The feed subscription is taken before the log is read, so nothing committed in
    between is missed; events already replayed are skipped when they arrive live (a
    course's events commit in id order, so comparing ids is enough). With a `grant`,
    the stream ends with `forbidden` once the grant ends; a subscriber that falls too
    far behind gets `resume_required` with the last id it was given.
    """

    __slots__ = (
        "_parked",
        "_replay",
        "_replaying",
        "_subscription",
        "_woken",
        "after",
        "closed",
        "course_id",
        "db",
        "feeds",
        "grant",
        "last_id",
        "user_id",
        "waker",
    )

    def __init__(
        self,
        db: Database,
        feeds: Feeds,
        course_id: int,
        *,
        after: int | None,
        user_id: int | None = None,
    ) -> None:
        self.db = db
        self.feeds = feeds
        self.course_id = course_id
        self.after = after
        self.user_id = user_id
        #: The id of the last event given out (or skipped as given out before).
        self.last_id = 0
        #: Ends the stream with `forbidden` once it ends (see `LiveGrant.wake`).
        self.grant: LiveGrant | None = None
        #: Called when a parked stream has something to deliver (once until `settle`).
        self.waker: Callable[[], None] | None = None
        self.closed = False
        self._subscription: Subscription | None = None
        self._replaying = False
        self._replay: Iterator[ProgressEventRow] | None = None
        self._parked = False
        self._woken = False

    def __aiter__(self) -> "LiveStream":
        return self

    async def __anext__(self) -> ProgressEventRow:
        if self.closed:
            raise StopAsyncIteration
        self._parked = False
        if self._subscription is None:
            await self._open()
        if self._replaying:
            self._check_grant()
            replayed = await self._replayed()
            if replayed is not None:
                return replayed
        subscription = self._subscription
        assert subscription is not None
        while True:
            event = self._live()
            if event is not None:
                return event
            parking = PARK.get()
            if parking is not None and parking.stream is None:
                parking.stream = self
                self._parked = True
                self._woken = False
                raise StopAsyncIteration
            await subscription.wait()
            if self.closed:
                raise StopAsyncIteration

    async def _open(self) -> None:
        subscription = await self.feeds.subscribe(self.course_id)
        subscription.listener = self._news
        self._subscription = subscription
        # Without `after`, a resume must start where this subscription started, not at zero.
        self.last_id = self.after if self.after is not None else subscription.start
        self._replaying = self.after is not None

    async def _replayed(self) -> ProgressEventRow | None:
        """The next event from the log after `after`; None once the log is caught up."""
        while True:
            if self._replay is not None:
                event = next(self._replay, None)
                if event is not None:
                    self.last_id = event.id
                    return event
            async with self.db.read() as tx:
                batch = await events_after(tx, self.course_id, self.last_id, user_id=self.user_id)
            if not batch:
                self._replay, self._replaying = None, False
                return None
            self._replay = iter(batch)

    def _live(self) -> ProgressEventRow | None:
        """The next live event, taken; None when none waits. Raises when the stream ends."""
        subscription = self._subscription
        assert subscription is not None
        while True:
            self._check_grant()
            try:
                event = subscription.take()
            except Overflowed:
                raise ResumeRequired(last_event_id=str(self.last_id)) from None
            if event is None:
                return None
            if self._delivers(event):
                self.last_id = event.id
                return event

    def _check_grant(self) -> None:
        """Raises `forbidden` once the stream's grant ended."""
        if self.grant is not None and self.grant.ended:
            raise forbidden()

    def _delivers(self, event: ProgressEventRow) -> bool:
        return event.id > self.last_id and (self.user_id is None or event.user_id == self.user_id)

    # ---- a parked stream, as its holder sees it ------------------------------------------

    @property
    def ending(self) -> bool:
        """True when the stream must end (its grant ended, or it fell too far behind):
        only iterating it says how."""
        grant = self.grant
        subscription = self._subscription
        return (grant is not None and grant.ended) or (
            subscription is not None and subscription.overflowed
        )

    def ready(self) -> ProgressEventRow | None:
        """The next event to deliver, not taken yet (events it skips are dropped); None
        when none waits. Only for a stream that is not `ending`."""
        subscription = self._subscription
        if subscription is None:
            return None
        while True:
            event = subscription.peek()
            if event is None or self._delivers(event):
                return event
            subscription.take()

    def only_ready(self) -> ProgressEventRow | None:
        """The event to deliver, when it is all the stream has to deliver: the stream is
        not `ending` and that one event waits. None otherwise (`ready` and `settle` tell
        what there is then)."""
        subscription = self._subscription
        if subscription is None:
            return None
        grant = self.grant
        if grant is not None and grant.ended:
            return None
        event = subscription.only()
        if event is None or not self._delivers(event):
            return None
        return event

    def consume(self, event: ProgressEventRow) -> None:
        """`event`, as `ready` gave it, was delivered."""
        assert self._subscription is not None
        self._subscription.take()
        self.last_id = event.id

    def settle(self) -> bool:
        """Stay parked and idle: True when nothing is left to deliver. False when events
        (or the stream's end) still wait, and `waker` will not be called for them."""
        if self.ending or self.ready() is not None:
            self._woken = True
            return False
        self._woken = False
        return True

    def rest(self) -> None:
        """Stay parked and idle, as `settle` does when it returns True: for a holder that
        has just seen the stream not `ending` and nothing `ready`, with nothing run since."""
        self._woken = False

    def interrupt(self) -> None:
        """Wake the stream's consumer, for it to look at the grant again."""
        if self._subscription is not None:
            self._subscription.interrupt()

    def _news(self) -> None:
        """Something arrived while nobody waits: a parked stream wakes its holder."""
        if self._parked and not self._woken:
            self._woken = True
            if self.waker is not None:
                self.waker()

    # ---- the end -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """End the stream, unless it parked: then its holder ends it (`close`)."""
        if not self._parked:
            await self.close()

    def ended(self) -> None:
        """Called once, as the stream closes (for subclasses)."""

    async def close(self) -> None:
        """End the stream: no longer subscribed, its grant no longer checked."""
        if self.closed:
            return
        self.closed = True
        self._parked = False
        self.waker = None
        grant, self.grant = self.grant, None
        if grant is not None:
            grant.release()
        self.ended()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.listener = None
            await self.feeds.unsubscribe(subscription)
