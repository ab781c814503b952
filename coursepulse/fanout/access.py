"""Live grants: the permission a running subscription was given, which can be taken back.

A subscription that only its course's staff may follow (courseActivity) runs
under a `LiveGrant`. When the web layer learns that the user may have lost that
right (an access notice, models/access.py, or a periodic sweep), it asks the
grant to check again (`recheck`, the resolvers' own rule); if the rule now
refuses, the grant ends and the subscription finishes with `forbidden`, while
the websocket stays open for its other operations.

Ending costs nothing per event: a grant remembers whether its task is waiting
for the next event, and only then is that wait cancelled (and the cancellation
turned into the error), the way `asyncio.timeout` turns one into TimeoutError.
"""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TypeVar

from coursepulse.resolvers.errors import Forbidden

T = TypeVar("T")

ENDED_MESSAGE = "Your access to this course's live activity ended"


class LiveGrant:
    """One running subscription's right to go on."""

    __slots__ = ("_cancelled", "_task", "_waiting", "course_id", "ended", "recheck", "user_id")

    def __init__(
        self, user_id: int, course_id: int, recheck: Callable[[], Awaitable[None]]
    ) -> None:
        self.user_id = user_id
        self.course_id = course_id
        #: Raises a DomainError when the user may no longer follow what this grant covers.
        self.recheck = recheck
        self.ended = False
        self._task: asyncio.Task[object] | None = None
        self._waiting = False
        self._cancelled = False

    def end(self) -> None:
        """Stop the subscription: it ends with `forbidden` before its next event."""
        if self.ended:
            return
        self.ended = True
        task = self._task
        if self._waiting and task is not None and not task.done():
            # The task waits inside `LiveGrants.guarded` for the next event: wake it.
            self._cancelled = True
            task.cancel()


class LiveGrants:
    """The grants of one application's running subscriptions, by user."""

    def __init__(self) -> None:
        self._by_user: dict[int, set[LiveGrant]] = {}

    def watch(
        self, user_id: int, course_id: int, recheck: Callable[[], Awaitable[None]]
    ) -> LiveGrant:
        grant = LiveGrant(user_id, course_id, recheck)
        self._by_user.setdefault(user_id, set()).add(grant)
        return grant

    def forget(self, grant: LiveGrant) -> None:
        grants = self._by_user.get(grant.user_id)
        if grants is not None:
            grants.discard(grant)
            if not grants:
                del self._by_user[grant.user_id]

    def of(self, user_id: int, course_id: int | None = None) -> list[LiveGrant]:
        """The running grants of a user (in one course, if given)."""
        return [
            grant
            for grant in self._by_user.get(user_id, ())
            if course_id is None or grant.course_id == course_id
        ]

    def all(self) -> list[LiveGrant]:
        return [grant for grants in self._by_user.values() for grant in grants]

    def __len__(self) -> int:
        return sum(len(grants) for grants in self._by_user.values())

    async def guarded(self, grant: LiveGrant, events: AsyncGenerator[T, None]) -> AsyncIterator[T]:
        """`events` for as long as the grant holds; then `forbidden`."""
        try:
            while not grant.ended:
                # The task that waits now (whoever iterates this generator) is the one to wake.
                task = grant._task = asyncio.current_task()
                grant._waiting = True
                try:
                    item = await anext(events)
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    if not grant._cancelled or task is None:
                        raise
                    # Our own cancellation, not the connection's: take it back.
                    grant._cancelled = False
                    task.uncancel()
                    break
                finally:
                    grant._waiting = False
                yield item
            raise Forbidden(ENDED_MESSAGE)
        finally:
            self.forget(grant)
            await events.aclose()
