"""How far the event log may be delivered in order.

On SQLite one writer at a time appends to the log, so ids commit in order: every
committed event may be delivered. On PostgreSQL transactions draw event ids and commit
in any order across courses: a reader can see event 101 while 100 is still to commit.
A webhook's cursor must not pass 100 before it is seen, or 100 would never be sent.

Every transaction that appends an event has a transaction id before it draws the
event's id (resolvers/outbox.py). The worker reads, in a write transaction of its own,
the newest event N and its own transaction id T, which is given out after the
statement's snapshot: every transaction that had drawn an id up to N by then has an id
below T. Once the oldest running transaction is at or past T + 1, all of those have
ended, and everything up to N that will ever commit is visible. The bound trails the log
by the longest write transaction running, usually milliseconds; a transaction left open
anywhere on the server holds it back (and so holds back every course's webhooks).

A course's own events commit in id order (its event lock), so webhooks of one course
need no bound; only webhooks of every course wait for it.
"""

import time
from collections import deque

#: Observations kept while old transactions keep the bound back (older ones are dropped:
#: the bound then moves on later than it could, never too early).
MAX_WAITING = 10_000


class EventHorizon:
    """The highest event id below which the log is complete (PostgreSQL)."""

    def __init__(self) -> None:
        #: Event ids, each with the transaction id the oldest running one must reach before
        #: every event up to it is complete.
        self._waiting: deque[tuple[int, int, float]] = deque()
        self.bound = 0

    def observe(self, last_event_id: int, xmin: int, passed_at: int) -> int:
        """Take the numbers of resolvers/webhooks.event_horizon; gives the bound."""
        if not self._waiting or self._waiting[-1][0] != last_event_id:
            self._waiting.append((last_event_id, passed_at, time.monotonic()))
        while len(self._waiting) > MAX_WAITING:
            self._waiting.popleft()
        while self._waiting and self._waiting[0][1] <= xmin:
            self.bound = max(self.bound, self._waiting.popleft()[0])
        return self.bound

    def waited(self) -> float:
        """Seconds the oldest event id still waiting has waited (0 when none waits)."""
        return time.monotonic() - self._waiting[0][2] if self._waiting else 0.0
