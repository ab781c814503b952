"""Where webhooks may send: http(s) URLs, and by default only public addresses.

A webhook is a request this service makes on a user's behalf. Without these rules an
instructor could point one at the database, the cloud's metadata service or anything
else reachable only from inside (server-side request forgery). The URL is checked when
the webhook is made; the address is checked again on every connection (the name may
resolve elsewhere by then: delivery/sender.py).
"""

import ipaddress
from urllib.parse import urlsplit

from coursepulse.resolvers.errors import InvalidInput
from coursepulse.resolvers.validation import clean_text

MAX_URL_LENGTH = 2048
#: Names that always mean this machine, whatever a resolver says.
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
PRIVATE_HINT = "set COURSEPULSE_WEBHOOK_ALLOW_PRIVATE=true to allow it on a closed network"


def address_allowed(address: str, *, allow_private: bool) -> bool:
    """Whether a connection to this IP address may be made: a public unicast address,
    or any address when private ones are allowed."""
    if allow_private:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64:  # an IPv6-only network's way to a public IPv4 address
            return address_allowed(
                str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)), allow_private=False
            )
        # Only global unicast (2000::/3): this leaves out IPv4-compatible and -mapped
        # forms, other translation prefixes, site-local and unique-local addresses.
        if ip not in _GLOBAL_UNICAST:
            return False
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not address_allowed(str(embedded), allow_private=False):
            return False
    # is_global is False for loopback, private, link-local (cloud metadata), shared,
    # reserved and unspecified addresses.
    return ip.is_global and not ip.is_multicast


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def check_webhook_url(url: str, *, allow_private: bool) -> str:
    """The URL a webhook may be made with, else `invalid_input` saying why (field `url`)."""
    cleaned = clean_text(url, field="url", max_length=MAX_URL_LENGTH)
    try:
        parts = urlsplit(cleaned)
        port = parts.port
    except ValueError as error:
        raise InvalidInput(f"url is not a valid URL ({error})", field="url") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("url must start with http:// or https://", field="url")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidInput("url must name a host", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "url must not hold a user name or password: receivers check the signature",
            field="url",
        )
    if parts.fragment:
        raise InvalidInput("url must not have a #fragment", field="url")
    if port == 0:
        raise InvalidInput("url must not use port 0", field="url")
    if not allow_private:
        if host.lower() in _LOCAL_NAMES or host.lower().endswith(".localhost"):
            raise InvalidInput(f"url must not point to this machine; {PRIVATE_HINT}", field="url")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return cleaned  # a name: its addresses are checked when connecting
        if not address_allowed(host, allow_private=False):
            raise InvalidInput(
                "url must not point to a loopback, private, link-local or reserved address;"
                f" {PRIVATE_HINT}",
                field="url",
            )
    return cleaned
