"""How far the event log may be delivered in order.

On SQLite one writer at a time appends to the log, so ids commit in order: every
committed event may be delivered. On PostgreSQL transactions draw event ids and commit
in any order across courses: a reader can see event 101 while 100 is still to commit.
A webhook's cursor must not pass 100 before it is seen, or 100 would never be sent.

Every transaction that appends an event has a transaction id before it draws the
event's id (resolvers/outbox.py). So when a snapshot shows newest event N and next
transaction id X, any event below N still to commit belongs to a transaction below
X; once the oldest running transaction is at or past X, all of those have ended,
and everything up to N that will ever commit is visible. The bound trails the log by
the longest write transaction running, usually milliseconds.
"""

from collections import deque

#: Observations kept while old transactions keep the bound back (older ones are dropped:
#: the bound then moves on later than it could, never too early).
MAX_WAITING = 10_000


class EventHorizon:
    """The highest event id below which the log is complete (PostgreSQL)."""

    def __init__(self) -> None:
        #: Event ids with the transaction id that must be passed before they are complete.
        self._waiting: deque[tuple[int, int]] = deque()
        self.bound = 0

    def observe(self, last_event_id: int, xmin: int, xmax: int) -> int:
        """Take a snapshot's numbers (resolvers/webhooks.event_horizon); gives the bound."""
        if not self._waiting or self._waiting[-1] != (last_event_id, xmax):
            self._waiting.append((last_event_id, xmax))
        while len(self._waiting) > MAX_WAITING:
            self._waiting.popleft()
        while self._waiting and self._waiting[0][1] <= xmin:
            self.bound = max(self.bound, self._waiting.popleft()[0])
        return self.bound
