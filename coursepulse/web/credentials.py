"""Turning an Authorization header into a viewer, with a short-lived cache.

Password hashing is slow on purpose; an SPA sends the same header on every
request. A verified header is remembered for `auth_cache_seconds`, keyed by its
SHA-256 digest (the secret itself is never kept). Failures are not cached.
"""

import asyncio
import base64
import binascii
import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from functools import partial

from coursepulse.models.db import Database
from coursepulse.resolvers import users
from coursepulse.resolvers.errors import InvalidCredentials
from coursepulse.resolvers.viewer import Viewer
from coursepulse.web.throttle import FairHashing, SignInThrottle

MAX_ENTRIES = 10_000
#: Password hashes computed at once (argon2 takes tens of milliseconds of a core and 64 MiB
#: each): one per core (at least two, at most eight); more would only slow each one down.
MAX_HASHING = min(8, max(2, os.cpu_count() or 2))
#: Of those, how many one client address may hold: a flood from one address waits for its
#: own share, and the other half of the cores stays free for everyone else's sign-ins.
HASHING_PER_ADDRESS = max(1, MAX_HASHING // 2)


class CredentialCache:
    """Verified credentials by digest, plus the checks under way.

    Concurrent requests with the same header (an SPA's first burst) share one
    check, and at most `max_hashing` password hashes run at once, so a flood of
    wrong passwords queues instead of taking every core and the memory with it;
    `throttle` refuses an address or username with too many recent failures
    before anything is hashed, and no address holds more than its share of hashing.
    """

    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int = MAX_ENTRIES,
        max_hashing: int = MAX_HASHING,
        *,
        throttle: SignInThrottle | None = None,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Viewer]] = OrderedDict()
        self._checking: dict[str, asyncio.Future[Viewer]] = {}
        self.hashing = FairHashing(max_hashing, max(1, min(HASHING_PER_ADDRESS, max_hashing // 2)))
        self.throttle = throttle or SignInThrottle()

    async def verify_once(self, digest: str, verify: Callable[[], Awaitable[Viewer]]) -> Viewer:
        """The cached viewer, or the result of `verify` shared by every concurrent caller."""
        cached = self.get(digest)
        if cached is not None:
            return cached
        pending = self._checking.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Viewer] = asyncio.get_running_loop().create_future()
        # Read the outcome here too, so a failure nobody else awaited is not reported as lost.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._checking[digest] = future
        try:
            viewer = await verify()
        except BaseException as error:
            future.set_exception(error)
            raise
        finally:
            del self._checking[digest]
        self.put(digest, viewer)
        future.set_result(viewer)
        return viewer

    def get(self, digest: str) -> Viewer | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires, viewer = entry
        if expires < time.monotonic():
            del self._entries[digest]
            return None
        return viewer

    def put(self, digest: str, viewer: Viewer) -> None:
        if self.ttl <= 0:
            return
        self._entries[digest] = (time.monotonic() + self.ttl, viewer)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def _basic_credentials(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise InvalidCredentials("Malformed Basic credentials") from error
    username, separator, password = decoded.partition(":")
    if not separator:
        raise InvalidCredentials("Malformed Basic credentials")
    return username, password


async def viewer_from_authorization(
    header: str | None, db: Database, cache: CredentialCache, *, address: str
) -> Viewer | None:
    """The viewer an Authorization header names; None without one; `invalid_credentials` else.

    `address` is the client's (throttle.client_address): failed sign-ins are
    counted by it, and `rate_limited` answers once it has too many.
    """
    if header is None or not header.strip():
        return None
    digest = hashlib.sha256(header.encode()).hexdigest()
    scheme, _, value = header.strip().partition(" ")

    async def verify() -> Viewer:
        if scheme.lower() == "basic":
            username, password = _basic_credentials(value)
            check = partial(_password_check, db, cache, username, password, address)
            return await _throttled(cache, username, address, check)
        if scheme.lower() == "bearer" and value.strip():
            return await _throttled(cache, None, address, partial(_token_check, db, value.strip()))
        raise InvalidCredentials("Unsupported Authorization scheme; use Basic or Bearer")

    return await cache.verify_once(digest, verify)


async def _password_check(
    db: Database, cache: CredentialCache, username: str, password: str, address: str
) -> Viewer:
    # The hashing slot is taken before a database connection, so waiting holds none.
    async with cache.hashing.slot(address), db.read() as session:
        return await users.authenticate_password(session, username, password)


async def _token_check(db: Database, token: str) -> Viewer:
    async with db.read() as session:
        return await users.authenticate_token(session, token)


async def _throttled(
    cache: CredentialCache,
    username: str | None,
    address: str,
    check: Callable[[], Awaitable[Viewer]],
) -> Viewer:
    """The check's viewer, counted by the throttle; `rate_limited` before it runs when over."""
    attempt = cache.throttle.begin(username, address)
    try:
        viewer = await check()
    except (InvalidCredentials, asyncio.CancelledError):
        # A check cancelled midway counts as failed: its hash runs on in its thread, and
        # a client must not escape the count by going away before the answer.
        attempt.failed()
        raise
    except BaseException:
        attempt.abandoned()  # the check itself broke (the database is down, say)
        raise
    attempt.succeeded()
    return viewer
