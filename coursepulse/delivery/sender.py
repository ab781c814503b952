"""Sending one signed delivery: an HTTP POST signed by the Standard Webhooks scheme.

Every connection is checked where it is made: the socket is refused before it connects
unless its address is public (or private ones are allowed), whatever name the URL gave,
so a name that resolves to an inner address, now or later, gets nowhere. Redirects are
not followed, proxies from the environment are not used, and at most a few bytes of the
answer are read.
"""

import json
import logging
import socket
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohappyeyeballs import AddrInfoType
from standardwebhooks import Webhook as Signer

from coursepulse.resolvers.webhook_urls import PRIVATE_HINT, address_allowed
from coursepulse.resolvers.webhooks import MAX_ERROR_LENGTH, Attempt

log = logging.getLogger("coursepulse.webhooks")

#: Bytes of a receiver's answer read (the rest is ignored).
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "coursepulse-webhooks/1"


class AddressRefused(OSError):
    """The delivery would connect to an address webhooks may not reach."""


def _guarded_socket(allow_private: bool) -> Any:
    def create(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _name, address = addr_info
        if not address_allowed(str(address[0]), allow_private=allow_private):
            raise AddressRefused(
                f"refused to connect to {address[0]}: not a public address ({PRIVATE_HINT})"
            )
        return socket.socket(family=family, type=type_, proto=proto)

    return create


def body_of(message: dict[str, Any]) -> bytes:
    """The bytes sent (and signed) for a message."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def _shown(text: str) -> str:
    """A receiver's words as kept with a delivery: one line, printable, short."""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return line[:200]


class Sender:
    """POSTs deliveries over one pooled HTTP client (per process)."""

    def __init__(self, *, timeout_seconds: float, allow_private: bool) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=100, limit_per_host=4, socket_factory=_guarded_socket(self.allow_private)
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, url: str, secret: str, message_id: str, body: bytes) -> Attempt:
        """POST the body signed with the secret; what came of it (never raises for the
        receiver's faults: network errors, timeouts and non-2xx answers are failures)."""
        assert self._session is not None, "start() first"
        now = datetime.now(UTC)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Signer(secret).sign(message_id, now, body),
        }
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                answer = await response.content.read(MAX_RESPONSE_BYTES)
                status = response.status
        except TimeoutError:
            seconds = self.timeout.total
            return Attempt(succeeded=False, error=f"no answer within {seconds:g} s")
        except aiohttp.ClientConnectorError as error:
            cause = error.os_error
            reason = str(cause) if isinstance(cause, AddressRefused) else _shown(str(error))
            return Attempt(succeeded=False, error=f"could not connect: {reason}")
        except (aiohttp.ClientError, OSError) as error:
            return Attempt(succeeded=False, error=_shown(f"{type(error).__name__}: {error}"))
        if 200 <= status < 300:
            return Attempt(succeeded=True, response_status=status)
        said = _shown(answer.decode("utf-8", "replace"))
        error = f"HTTP {status}" + (f": {said}" if said else "")
        return Attempt(succeeded=False, response_status=status, error=error[:MAX_ERROR_LENGTH])
