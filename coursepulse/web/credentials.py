"""Turning an Authorization header into a viewer, with a short-lived cache.

Password hashing is slow on purpose; an SPA sends the same header on every
request. A verified header is remembered for `auth_cache_seconds`, keyed by its
SHA-256 digest (the secret itself is never kept). Failures are not cached.
Entries carry the `Credential` (viewer, role, token id): when access changes, the
entries of that user or token are dropped (`forget_user`, `forget_token`).
"""

import asyncio
import base64
import binascii
import hashlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from functools import partial

from coursepulse.models.db import Database, is_unavailable
from coursepulse.resolvers import users
from coursepulse.resolvers.errors import InvalidCredentials
from coursepulse.resolvers.users import Credential
from coursepulse.resolvers.viewer import Viewer
from coursepulse.web.throttle import FairHashing, SignInThrottle

log = logging.getLogger("coursepulse.web")

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
        self._entries: OrderedDict[str, tuple[float, Credential]] = OrderedDict()
        self._checking: dict[str, asyncio.Future[Credential]] = {}
        self.hashing = FairHashing(max_hashing, max(1, min(HASHING_PER_ADDRESS, max_hashing // 2)))
        self.throttle = throttle or SignInThrottle()
        #: Grows whenever entries are forgotten: a check begun before must not be cached.
        self._generation = 0

    async def verify_once(
        self, digest: str, verify: Callable[[], Awaitable[Credential]]
    ) -> Credential:
        """The cached credential, or the result of `verify` shared by every concurrent caller."""
        cached = self.get(digest)
        if cached is not None:
            return cached
        pending = self._checking.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Credential] = asyncio.get_running_loop().create_future()
        # Read the outcome here too, so a failure nobody else awaited is not reported as lost.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._checking[digest] = future
        generation = self._generation
        try:
            credential = await verify()
        except BaseException as error:
            future.set_exception(error)
            raise
        finally:
            if self._checking.get(digest) is future:
                del self._checking[digest]
        if generation == self._generation:
            self.put(digest, credential)
        future.set_result(credential)
        return credential

    def get(self, digest: str) -> Credential | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires, viewer = entry
        if expires < time.monotonic():
            del self._entries[digest]
            return None
        return viewer

    def put(self, digest: str, credential: Credential) -> None:
        if self.ttl <= 0:
            return
        self._entries[digest] = (time.monotonic() + self.ttl, credential)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    # ---- access changes (web/revocation.py) ------------------------------------------------

    def forget_user(self, user_id: int) -> int:
        """Drop every cached sign-in of the user (password or role changed); how many."""
        return self._forget(lambda credential: credential.viewer.user_id == user_id)

    def forget_token(self, token_id: int) -> int:
        """Drop the cached sign-ins of an API token (revoked); how many."""
        return self._forget(lambda credential: credential.token_id == token_id)

    def clear(self) -> None:
        """Drop everything (access notices may have been missed)."""
        self._forget(lambda _credential: True)

    def _forget(self, matches: Callable[[Credential], bool]) -> int:
        self._generation += 1
        # Checks under way read the database before the change: later callers start anew.
        self._checking.clear()
        stale = [digest for digest, (_, credential) in self._entries.items() if matches(credential)]
        for digest in stale:
            del self._entries[digest]
        return len(stale)


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
    credential = await credential_from_authorization(header, db, cache, address=address)
    return credential.viewer if credential is not None else None


async def credential_from_authorization(
    header: str | None, db: Database, cache: CredentialCache, *, address: str
) -> Credential | None:
    """The verified credential of an Authorization header (see viewer_from_authorization)."""
    if header is None or not header.strip():
        return None
    digest = hashlib.sha256(header.encode()).hexdigest()
    scheme, _, value = header.strip().partition(" ")

    async def verify() -> Credential:
        if scheme.lower() == "basic":
            username, password = _basic_credentials(value)
            check = partial(_password_check, db, cache, username, password, address)
            return await _throttled(cache, username, address, check)
        if scheme.lower() == "bearer" and value.strip():
            return await _throttled(cache, None, address, partial(_token_check, db, value.strip()))
        raise InvalidCredentials("Unsupported Authorization scheme; use Basic or Bearer")

    return await cache.verify_once(digest, verify)


async def _record_token_use(db: Database, credential: Credential) -> None:
    """Keep the token's `lastUsedAt` to the minute: one small write a minute at most, never
    one per request (cached sign-ins do not come here at all)."""
    if credential.token_id is None or not credential.token_use_due:
        return
    try:
        async with db.write() as tx:
            await users.record_token_use(tx, credential.token_id)
    except Exception as error:
        if not is_unavailable(error):
            raise
        # Bookkeeping only: a busy or read-only database must not refuse the sign-in.
        log.warning("could not record the use of API token %s", credential.token_id)


async def _password_check(
    db: Database, cache: CredentialCache, username: str, password: str, address: str
) -> Credential:
    # The hashing slot is taken before a database connection, so waiting holds none; the
    # stored hash is read and the transaction ended before the (slow) verification.
    async with cache.hashing.slot(address):
        async with db.read() as tx:
            user = await users.user_to_sign_in(tx, username)
        return await users.verify_sign_in(user, password)


async def _token_check(db: Database, token: str) -> Credential:
    async with db.read() as tx:
        credential = await users.sign_in_token(tx, token)
    await _record_token_use(db, credential)
    return credential


async def _throttled(
    cache: CredentialCache,
    username: str | None,
    address: str,
    check: Callable[[], Awaitable[Credential]],
) -> Credential:
    """The check's credential, counted by the throttle; `rate_limited` before it runs when over."""
    attempt = cache.throttle.begin(username, address)
    try:
        credential = await check()
    except (InvalidCredentials, asyncio.CancelledError):
        # A check cancelled midway counts as failed: its hash runs on in its thread, and
        # a client must not escape the count by going away before the answer.
        attempt.failed()
        raise
    except BaseException:
        attempt.abandoned()  # the check itself broke (the database is down, say)
        raise
    attempt.succeeded()
    return credential
