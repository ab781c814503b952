"""Live grants: the permission a running subscription was given, which can be taken back.

A subscription that only its course's staff may follow (courseActivity) runs
under a `LiveGrant`. When the web layer learns that the user may have lost that
right (an access notice, models/access.py, or a periodic sweep), it asks the
grant to check again (`recheck`, the resolvers' own rule); if the rule now
refuses, the grant ends and the subscription finishes with `forbidden`, while
the websocket stays open for its other operations.

Ending costs nothing per event: the subscription's stream (fanout/stream.py)
looks at `ended` before each event, and a grant that ends tells the stream
(`wake`) so that one waiting for its next event, or parked, ends at once.
"""

from collections.abc import Awaitable, Callable

from coursepulse.resolvers.errors import Forbidden

ENDED_MESSAGE = "Your access to this course's live activity ended"


def forbidden() -> Forbidden:
    """The error a subscription ends with once its grant ended."""
    return Forbidden(ENDED_MESSAGE)


class LiveGrant:
    """One running subscription's right to go on."""

    __slots__ = ("course_id", "ended", "owner", "recheck", "user_id", "wake")

    def __init__(
        self,
        user_id: int,
        course_id: int,
        recheck: Callable[[], Awaitable[None]],
        owner: "LiveGrants | None" = None,
    ) -> None:
        self.user_id = user_id
        self.course_id = course_id
        #: Raises a DomainError when the user may no longer follow what this grant covers.
        self.recheck = recheck
        self.ended = False
        #: Told when the grant ends (the subscription's stream).
        self.wake: Callable[[], None] | None = None
        self.owner = owner

    def end(self) -> None:
        """Stop the subscription: it ends with `forbidden` before its next event."""
        if self.ended:
            return
        self.ended = True
        if self.wake is not None:
            self.wake()

    def release(self) -> None:
        """The subscription is over: its grant is no longer checked."""
        self.wake = None
        if self.owner is not None:
            self.owner.forget(self)


class LiveGrants:
    """The grants of one application's running subscriptions, by user."""

    def __init__(self) -> None:
        self._by_user: dict[int, set[LiveGrant]] = {}

    def watch(
        self, user_id: int, course_id: int, recheck: Callable[[], Awaitable[None]]
    ) -> LiveGrant:
        grant = LiveGrant(user_id, course_id, recheck, owner=self)
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
