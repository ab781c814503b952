"""Making access changes take effect in this process, at once.

Resolvers record what a write took away (models/access.py); once it commits, the
notices reach `AccessEnforcer.hear` from this process's database and, through
PostgreSQL NOTIFY, from every other process. Then:

- the cached sign-ins of that user (password or role changed) or that API token
  (revoked) are dropped, so the next request is verified again;
- open websockets signed in with such a credential are checked again against the
  database, and those that no longer hold are closed with 4403;
- live grants of that user (courseActivity subscriptions, fanout/access.py) are
  checked again by the resolvers' rule, and those refused end with `forbidden`.

A notice can be missed (the listener connection was lost, or another process on
a SQLite file acted): after a reconnect the cache is cleared and every socket
and grant checked again, and the same sweep runs every `access_recheck_seconds`.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any
from weakref import WeakKeyDictionary

from aiohttp import web

from coursepulse.fanout.access import LiveGrant, LiveGrants
from coursepulse.models.access import AccessChange, AccessNotice
from coursepulse.models.db import Database, is_unavailable
from coursepulse.resolvers import users
from coursepulse.resolvers.errors import DomainError
from coursepulse.resolvers.users import Credential
from coursepulse.web.credentials import CredentialCache
from coursepulse.web.keys import BROKER, CREDENTIALS, DATABASE, SETTINGS

log = logging.getLogger("coursepulse.access")

#: Close code for a websocket whose sign-in no longer holds (as for a refused one).
CLOSE_FORBIDDEN = 4403
CLOSE_MESSAGE = b"Forbidden: the credential of this connection no longer holds"


class AccessEnforcer:
    """The sockets and grants of one application, and what to do when access changes."""

    def __init__(
        self,
        db: Database,
        cache: CredentialCache,
        grants: LiveGrants,
        *,
        recheck_seconds: float = 0.0,
    ) -> None:
        self.db = db
        self.cache = cache
        self.grants = grants
        self.recheck_seconds = recheck_seconds
        #: Open, signed-in websockets and the credential each was signed in with.
        self.sockets: WeakKeyDictionary[web.WebSocketResponse, Credential] = WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # ---- what the websocket view tells us ---------------------------------------------------

    def remember_socket(self, websocket: web.WebSocketResponse, credential: Credential) -> None:
        """Track a websocket signed in with `credential` (a new sign-in replaces the old)."""
        self.sockets[websocket] = credential

    # ---- notices ----------------------------------------------------------------------------

    def hear(self, notices: list[AccessNotice]) -> None:
        """Access changed (committed): drop cached sign-ins now, check sockets and grants soon."""
        for notice in notices:
            if notice.kind == AccessChange.USER:
                self.cache.forget_user(notice.user_id)
            elif notice.kind == AccessChange.TOKEN:
                self.cache.forget_token(notice.subject)
        self._spawn(self.enforce(notices))

    def resync(self) -> None:
        """Notices may have been missed: forget every cached sign-in, check everything."""
        self.cache.clear()
        self._spawn(self.sweep())

    async def enforce(self, notices: Iterable[AccessNotice]) -> None:
        """Close the sockets and end the grants that the notices' changes took away."""
        sockets: dict[web.WebSocketResponse, Credential] = {}
        grants: set[LiveGrant] = set()
        for notice in notices:
            if notice.kind == AccessChange.TOKEN:
                sockets.update(self._sockets_where(lambda c, n=notice: c.token_id == n.subject))
            elif notice.kind == AccessChange.USER:
                sockets.update(
                    self._sockets_where(lambda c, n=notice: c.viewer.user_id == n.user_id)
                )
                grants.update(self.grants.of(notice.user_id))
            elif notice.kind == AccessChange.COURSE_ROLE:
                grants.update(self.grants.of(notice.user_id, notice.subject))
        await self._close_lapsed(sockets)
        await self._end_lapsed(grants)

    async def sweep(self) -> None:
        """Check every open socket's credential and every running grant again."""
        await self._close_lapsed(self._sockets_where(lambda _credential: True))
        await self._end_lapsed(self.grants.all())

    def _sockets_where(
        self, matches: Callable[[Credential], bool]
    ) -> dict[web.WebSocketResponse, Credential]:
        """The open sockets whose credential matches."""
        return {
            websocket: credential
            for websocket, credential in list(self.sockets.items())
            if not websocket.closed and matches(credential)
        }

    async def _close_lapsed(self, sockets: dict[web.WebSocketResponse, Credential]) -> None:
        if not sockets:
            return
        pairs = list(sockets.items())
        try:
            async with self.db.read() as tx:
                holding = await users.credentials_holding(tx, [c for _, c in pairs])
        except Exception as error:
            if not is_unavailable(error):
                raise
            log.warning("could not check %d websocket sign-ins; will try again", len(pairs))
            return
        lapsed = [
            websocket for (websocket, _), holds in zip(pairs, holding, strict=True) if not holds
        ]
        for websocket in lapsed:
            self.sockets.pop(websocket, None)
        if lapsed:
            log.info("closing %d websocket(s) whose sign-in no longer holds", len(lapsed))
            await asyncio.gather(
                *(ws.close(code=CLOSE_FORBIDDEN, message=CLOSE_MESSAGE) for ws in lapsed),
                return_exceptions=True,
            )

    async def _end_lapsed(self, grants: Iterable[LiveGrant]) -> None:
        # One check per user and course, however many subscriptions they hold there.
        groups: dict[tuple[int, int], list[LiveGrant]] = {}
        for grant in grants:
            if not grant.ended:
                groups.setdefault((grant.user_id, grant.course_id), []).append(grant)
        for group in groups.values():
            try:
                await group[0].recheck()
            except DomainError:
                for grant in group:
                    grant.end()
            except Exception as error:
                if not is_unavailable(error):
                    raise
                log.warning("could not check a live subscription's access; will try again")

    # ---- tasks ------------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("enforcing an access change failed", exc_info=task.exception())

    async def _sweep_regularly(self) -> None:
        while True:
            await asyncio.sleep(self.recheck_seconds)
            try:
                await self.sweep()
            except Exception:
                log.exception("the periodic access check failed")

    def start(self) -> None:
        if self.recheck_seconds > 0:
            self._sweeper = asyncio.create_task(self._sweep_regularly(), name="access-sweeper")

    async def settle(self) -> None:
        """Wait for the checks under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


ACCESS = web.AppKey("access", AccessEnforcer)


async def access_ctx(app: web.Application) -> AsyncIterator[None]:
    """Wire the enforcer to the database (own changes) and broker (others', reconnects).

    Runs after the database and broker contexts, which it needs.
    """
    db, broker = app[DATABASE], app[BROKER]
    enforcer = AccessEnforcer(
        db,
        app[CREDENTIALS],
        LiveGrants(),
        recheck_seconds=app[SETTINGS].access_recheck_seconds,
    )
    app[ACCESS] = enforcer
    db.after_access_change.append(enforcer.hear)
    broker.access_heard.append(enforcer.hear)
    broker.reconnected.append(enforcer.resync)
    enforcer.start()
    yield
    for listeners, listener in (
        (db.after_access_change, enforcer.hear),
        (broker.access_heard, enforcer.hear),
        (broker.reconnected, enforcer.resync),
    ):
        with contextlib.suppress(ValueError):
            listeners.remove(listener)  # type: ignore[arg-type]
    await enforcer.stop()
