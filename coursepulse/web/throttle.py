"""Sign-in throttling and fair password hashing, in this process's memory.

Failed sign-ins are counted in sliding windows (a log of failure times, so the
limit is exact) under three keys, after OWASP's authentication guidance:

- per client address, whatever the usernames: one address guessing many accounts;
- per (username, address): one address guessing one account;
- per username, counting only addresses that have never signed in as that user
  here: many addresses guessing one account. Over this limit such addresses are
  refused for that username, while an address the user signed in from keeps
  working, so a distributed attack cannot lock the real user out. One address
  alone never reaches it (its own pair limit is lower), so a flood from one
  address cannot lock out a fresh address either.

An attempt is checked, and reserves its place in every window, before any
password is hashed: a refused attempt costs no hashing, and concurrent guesses
cannot overshoot a limit. A success frees its reservation; a failure keeps it as
a failure. Every table is bounded (least recently used keys are forgotten).
State is per process: with N processes an address gets up to N times the limits.
"""

import asyncio
import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache

from aiohttp import web

from coursepulse.resolvers.errors import RateLimited

#: Keys each window table remembers at most (an address flood evicts its own oldest keys).
MAX_TRACKED = 20_000
#: Addresses remembered per username as having signed in successfully.
KNOWN_ADDRESSES_PER_USER = 16
#: Usernames whose known addresses are remembered.
MAX_KNOWN_USERS = 50_000
#: Longest username kept as a key (longer ones are cut: they cannot be real usernames).
MAX_KEY_LENGTH = 64


@dataclass(frozen=True)
class SignInLimits:
    """Failed sign-ins allowed per sliding window of `window_seconds`."""

    window_seconds: float = 60.0
    per_address: int = 200
    per_user_and_address: int = 10
    per_user: int = 100


class _Window:
    """Failure times of one key, oldest first, and the attempts under way."""

    __slots__ = ("failures", "pending")

    def __init__(self) -> None:
        self.failures: deque[float] = deque()
        self.pending = 0

    def count(self, now: float, window: float) -> int:
        """Failures within the window plus attempts under way."""
        horizon = now - window
        while self.failures and self.failures[0] <= horizon:
            self.failures.popleft()
        return len(self.failures) + self.pending

    def retry_after(self, now: float, window: float, limit: int) -> float:
        """Seconds until one more attempt fits under `limit`."""
        excess = len(self.failures) + self.pending - limit  # >= 0 when this is asked
        if excess < len(self.failures):
            return self.failures[excess] + window - now
        return 1.0  # only attempts under way hold the places: they end within seconds

    @property
    def idle(self) -> bool:
        return not self.failures and not self.pending


class _Table:
    """Windows by key, the least recently used forgotten past `max_keys`."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self.windows: OrderedDict[object, _Window] = OrderedDict()

    def get(self, key: object) -> _Window:
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = _Window()
            while len(self.windows) > self.max_keys:
                self.windows.popitem(last=False)
        else:
            self.windows.move_to_end(key)
        return window

    def peek(self, key: object) -> _Window | None:
        return self.windows.get(key)

    def drop_if_idle(self, key: object) -> None:
        window = self.windows.get(key)
        if window is not None and window.idle:
            del self.windows[key]


class SignInAttempt:
    """One admitted attempt: report `succeeded()`, `failed()`, or `abandoned()` (an error)."""

    __slots__ = ("_done", "_keys", "_throttle", "address", "username")

    def __init__(
        self,
        throttle: "SignInThrottle",
        username: str | None,
        address: str,
        keys: list[tuple[_Table, object]],
    ) -> None:
        self._throttle = throttle
        self.username = username
        self.address = address
        self._keys = keys
        self._done = False

    def succeeded(self) -> None:
        """Frees the reservations; the address becomes known for the user."""
        if self._finish(failed=False) and self.username is not None:
            self._throttle._remember(self.username, self.address)
            self._throttle._pairs.windows.pop((self.username, self.address), None)

    def failed(self) -> None:
        """Turns the reservations into failures, dated now."""
        self._finish(failed=True)

    def abandoned(self) -> None:
        """Frees the reservations without counting: the check itself broke."""
        self._finish(failed=False)

    def _finish(self, *, failed: bool) -> bool:
        if self._done:
            return False
        self._done = True
        now = self._throttle.clock()
        for table, key in self._keys:
            window = table.get(key)
            window.pending = max(0, window.pending - 1)
            if failed:
                window.failures.append(now)
            else:
                table.drop_if_idle(key)
        return True


class SignInThrottle:
    """Admits or refuses sign-in attempts by their recent failures (see the module)."""

    def __init__(
        self,
        limits: SignInLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self.limits = limits or SignInLimits()
        self.clock = clock
        self._addresses = _Table(max_tracked)
        self._pairs = _Table(max_tracked)
        self._users = _Table(max_tracked)
        self._known: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()

    def begin(self, username: str | None, address: str) -> SignInAttempt:
        """An admitted attempt holding its places; `rate_limited` when a limit is reached.

        `username` is None for credentials without one (API tokens): only the
        address is counted then.
        """
        limits = self.limits
        now = self.clock()
        checks: list[tuple[_Table, object, int]] = [(self._addresses, address, limits.per_address)]
        if username is not None:
            username = username[:MAX_KEY_LENGTH]
            checks.append((self._pairs, (username, address), limits.per_user_and_address))
            if not self.is_known(username, address):
                checks.append((self._users, username, limits.per_user))
        wait = 0.0
        for table, key, limit in checks:
            window = table.peek(key)
            if window is not None and window.count(now, limits.window_seconds) >= limit:
                wait = max(wait, window.retry_after(now, limits.window_seconds, limit))
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(
                f"Too many failed sign-ins: try again in {seconds} s", retryAfter=seconds
            )
        keys: list[tuple[_Table, object]] = []
        for table, key, _limit in checks:
            table.get(key).pending += 1
            keys.append((table, key))
        return SignInAttempt(self, username, address, keys)

    def tracked(self) -> int:
        """Keys held in the windows (bounded by `max_tracked` per kind)."""
        return sum(len(table.windows) for table in (self._addresses, self._pairs, self._users))

    def is_known(self, username: str, address: str) -> bool:
        """True when `address` has signed in as `username` (recently, in this process)."""
        known = self._known.get(username)
        return known is not None and address in known

    def _remember(self, username: str, address: str) -> None:
        known = self._known.get(username)
        if known is None:
            known = self._known[username] = OrderedDict()
            while len(self._known) > MAX_KNOWN_USERS:
                self._known.popitem(last=False)
        else:
            self._known.move_to_end(username)
        known[address] = None
        known.move_to_end(address)
        while len(known) > KNOWN_ADDRESSES_PER_USER:
            known.popitem(last=False)


class FairHashing:
    """At most `slots` password hashes at once, and at most `per_address` of them per address.

    One address flooding wrong passwords waits in its own queue for its own share,
    so the other slots stay free for everyone else.
    """

    def __init__(self, slots: int, per_address: int) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.per_address = per_address
        self._queues: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @asynccontextmanager
    async def slot(self, address: str) -> AsyncIterator[None]:
        """Holds a hashing slot for `address` while the block runs."""
        entry = self._queues.get(address)
        if entry is None:
            entry = self._queues[address] = (asyncio.Semaphore(self.per_address), [0])
        queue, users = entry
        users[0] += 1
        try:
            async with queue, self.slots:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._queues[address]


def client_address(request: web.BaseRequest, trusted_proxies: Sequence[str] = ()) -> str:
    """The address sign-ins are counted under.

    The peer's address (behind a reverse proxy: the proxy's), or, when the peer
    is one of `trusted_proxies` (addresses or networks), the nearest untrusted
    address of X-Forwarded-For. IPv6 addresses count by their /64 network, the
    block one subscriber usually holds.
    """
    peer = request.remote or ""
    networks = _networks(tuple(trusted_proxies)) if trusted_proxies else ()
    if networks and _within(peer, networks):
        forwarded = [
            hop.strip()
            for header in request.headers.getall("X-Forwarded-For", [])
            for hop in header.split(",")
        ]
        for hop in reversed(forwarded):
            if hop and not _within(hop, networks):
                peer = hop
                break
    return _address_key(peer)


@lru_cache(maxsize=16)
def _networks(
    proxies: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The trusted proxies' networks, parsed once (the setting does not change)."""
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _within(
    address: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


@lru_cache(maxsize=4096)
def _address_key(address: str) -> str:
    """The counting key of an address (kept for the addresses seen most: every request
    asks, and parsing one costs more than the rest of a cached sign-in)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:MAX_KEY_LENGTH]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
