"""Turning an Authorization header into a viewer, with a short-lived cache.

Password hashing is slow on purpose; an SPA sends the same header on every
request. A verified header is remembered for `auth_cache_seconds`, keyed by its
SHA-256 digest (the secret itself is never kept). Failures are not cached.
"""

import base64
import binascii
import hashlib
import time
from collections import OrderedDict

from coursepulse.models.db import Database
from coursepulse.resolvers import users
from coursepulse.resolvers.errors import InvalidCredentials
from coursepulse.resolvers.viewer import Viewer

MAX_ENTRIES = 10_000


class CredentialCache:
    def __init__(self, ttl_seconds: float, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Viewer]] = OrderedDict()

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
    header: str | None, db: Database, cache: CredentialCache
) -> Viewer | None:
    """The viewer an Authorization header names; None without one; `invalid_credentials` else."""
    if header is None or not header.strip():
        return None
    digest = hashlib.sha256(header.encode()).hexdigest()
    cached = cache.get(digest)
    if cached is not None:
        return cached
    scheme, _, value = header.strip().partition(" ")
    async with db.read() as session:
        if scheme.lower() == "basic":
            username, password = _basic_credentials(value)
            viewer = await users.authenticate_password(session, username, password)
        elif scheme.lower() == "bearer" and value.strip():
            viewer = await users.authenticate_token(session, value.strip())
        else:
            raise InvalidCredentials("Unsupported Authorization scheme; use Basic or Bearer")
    cache.put(digest, viewer)
    return viewer
