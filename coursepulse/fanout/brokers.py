"""Brokers tell a process's feeds which courses have news.

- `InProcessBroker` (SQLite, one process): woken right after a write commits.
- `PostgresBroker`: every write sends `NOTIFY coursepulse_progress, '<course id>'`
  inside its transaction, so only committed events are heard, by every process
  on the database. Each process LISTENs on a dedicated connection; when that
  connection is lost it reconnects and every feed catches up from the log.

The same connection LISTENs on the access channel (models/access.py): notices of
other processes' access changes go to `access_heard`; after a reconnect, notices
may have been missed, so `reconnected` is told to check every sign-in again.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg

from coursepulse.fanout.feed import Feeds
from coursepulse.models.access import ACCESS_CHANNEL, AccessNotice
from coursepulse.models.db import NOTIFY_CHANNEL, Database
from coursepulse.models.postgres import dsn_of

log = logging.getLogger("coursepulse.fanout")


AccessListener = Callable[[list[AccessNotice]], None]


class Broker(Protocol):
    feeds: Feeds
    #: Told of other processes' access changes (this process's own come from the database).
    access_heard: list[AccessListener]
    #: Told when notices may have been missed (the listener connection was lost).
    reconnected: list[Callable[[], None]]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class InProcessBroker:
    """Wakes feeds after each committed write of this process.

    With `poll_seconds`, feeds also read the log that often, which catches writes
    made by other processes sharing the database file.
    """

    def __init__(self, db: Database, feeds: Feeds, poll_seconds: float = 0.0) -> None:
        self.db = db
        self.feeds = feeds
        self.poll_seconds = poll_seconds
        self._poller: asyncio.Task[None] | None = None
        # One process: its own access changes reach it through `Database.after_access_change`.
        self.access_heard: list[AccessListener] = []
        self.reconnected: list[Callable[[], None]] = []

    async def start(self) -> None:
        self.db.after_commit.append(self.feeds.wake)
        if self.poll_seconds > 0:
            self._poller = asyncio.create_task(self._poll(), name="event-log-poller")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            self.feeds.wake_all()

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        with contextlib.suppress(ValueError):
            self.db.after_commit.remove(self.feeds.wake)
        await self.feeds.close()


class PostgresBroker:
    """LISTENs for NOTIFY on a dedicated connection (a pooled one would drop the listener)."""

    RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
    #: Seconds between checks that the listener connection still answers.
    PING_INTERVAL = 30.0
    PING_TIMEOUT = 5.0

    def __init__(self, db: Database, feeds: Feeds) -> None:
        self.db = db
        self.feeds = feeds
        self.dsn = dsn_of(db.url)
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.access_heard: list[AccessListener] = []
        self.reconnected: list[Callable[[], None]] = []

    async def start(self) -> None:
        """Listen now if the database answers; otherwise keep trying in the background
        (the process still starts, and /readyz says it is not ready)."""
        try:
            await self._connect()
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("cannot LISTEN yet (%s); will keep trying", error)
            self._lost.set()
        self._task = asyncio.create_task(self._keep_listening(), name="postgres-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None and not self._connection.is_closed():
            # Closing on purpose is not a lost connection: do not report (or react to) it.
            self._connection.remove_termination_listener(self._on_terminated)
            await self._connection.close(timeout=5)
        await self.feeds.close()

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            course_id = int(payload)
        except ValueError:
            log.warning("ignoring malformed notification %r", payload[:100])
            return
        self.feeds.wake({course_id})

    def _on_access_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            origin, notice = AccessNotice.decode(payload)
        except ValueError:
            log.warning("ignoring malformed access notice %r", payload[:100])
            return
        if origin == self.db.origin:
            return  # this process acted on its own change when it committed
        for listener in self.access_heard:
            try:
                listener([notice])
            except Exception:
                log.exception("an access listener failed on %r", payload[:100])

    def _on_terminated(self, _connection: Any) -> None:
        log.warning("lost the PostgreSQL listener connection; reconnecting")
        self.connected.clear()
        self._lost.set()

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self.dsn)
        connection.add_termination_listener(self._on_terminated)
        await connection.add_listener(NOTIFY_CHANNEL, self._on_notify)
        await connection.add_listener(ACCESS_CHANNEL, self._on_access_notify)
        self._connection = connection
        self._lost.clear()
        self.connected.set()

    async def _alive(self) -> bool:
        """Whether the listener connection still answers (a half-open one would not)."""
        connection = self._connection
        if connection is None or connection.is_closed():
            return False
        try:
            await asyncio.wait_for(connection.fetchval("SELECT 1"), self.PING_TIMEOUT)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
        return True

    async def _keep_listening(self) -> None:
        while True:
            try:
                # Not `asyncio.wait_for`, which on Python 3.11 can swallow a cancellation
                # that comes in the same turn of the loop as the event (see delivery/worker.py).
                async with asyncio.timeout(self.PING_INTERVAL):
                    await self._lost.wait()
            except TimeoutError:
                if await self._alive():
                    continue
                log.warning("the PostgreSQL listener stopped answering; reconnecting")
                self.connected.clear()
                if self._connection is not None:
                    self._connection.remove_termination_listener(self._on_terminated)
                    self._connection.terminate()
                self._lost.set()
            attempt = 0
            while True:
                try:
                    await self._connect()
                    break
                except (OSError, asyncpg.PostgresError) as error:
                    delay = self.RECONNECT_DELAYS[min(attempt, len(self.RECONNECT_DELAYS) - 1)]
                    log.warning("listener reconnect failed (%s); retrying in %.1fs", error, delay)
                    attempt += 1
                    await asyncio.sleep(delay)
            log.info("PostgreSQL listener reconnected; catching up from the event log")
            # Whatever was committed while we were away is in the log: read it now.
            self.feeds.wake_all()
            # Access notices are not logged: whoever listens checks every sign-in again.
            for listener in self.reconnected:
                try:
                    listener()
                except Exception:
                    log.exception("a reconnect listener failed")


def create_broker(db: Database, *, buffer: int, poll_seconds: float = 0.0) -> Broker:
    """The broker that fits the database: NOTIFY on PostgreSQL, in-process otherwise."""
    feeds = Feeds(db, buffer=buffer)
    if db.dialect == "postgresql":
        return PostgresBroker(db, feeds)
    return InProcessBroker(db, feeds, poll_seconds=poll_seconds)
