"""Open Badges over HTTP: a certificate's credential behind its unguessable URL, the
revocation status list, and the keys that verify them (resolvers/badges.py)."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from coursepulse.models.transactions import Transaction
from coursepulse.resolvers import badges, certificates
from coursepulse.web.keys import DATABASE, SETTINGS

T = TypeVar("T")


async def _with_key(request: web.Request, work: Callable[[Transaction], Awaitable[T]]) -> T:
    """What `work` gives: in a read, or (the very first time, to make the key) a write."""
    db = request.app[DATABASE]
    async with db.read() as tx:
        if await badges.has_signing_key(tx):
            return await work(tx)
    async with db.write() as tx:
        await badges.signing_key(tx)
        return await work(tx)


def _credential(token: str, status: int = 200) -> web.Response:
    return web.Response(
        text=token,
        status=status,
        content_type=badges.MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
    )


async def certificate_badge(request: web.Request) -> web.Response:
    """GET /certificates/{token}/badge (the holder's address) and /verify/{number}/badge
    (the public verification page's link: the credential says no more than that page):
    the certificate as an Open Badges 3.0 VC-JWT."""
    async with request.app[DATABASE].read() as tx:
        if "number" in request.match_info:
            certificate = await certificates.find_by_number(tx, request.match_info["number"])
        else:
            certificate = await certificates.find_by_token(tx, request.match_info["token"])
    if certificate is None:
        raise web.HTTPNotFound(reason="Certificate not found")
    settings = request.app[SETTINGS]
    return _credential(
        await _with_key(
            request,
            lambda tx: badges.open_badge_jwt(
                tx, certificate, settings.base_url, settings.issuer_name
            ),
        )
    )


async def status_list(request: web.Request) -> web.Response:
    """GET /credentials/status/1: which certificates are revoked, as a signed credential."""
    settings = request.app[SETTINGS]
    return _credential(
        await _with_key(
            request, lambda tx: badges.status_list_jwt(tx, settings.base_url, settings.issuer_name)
        )
    )


async def jwks(request: web.Request) -> web.Response:
    """GET /.well-known/jwks.json: the public keys of every signing key."""
    keys = await _with_key(request, badges.published_keys)
    return web.json_response(
        keys, headers={"Cache-Control": "max-age=300", "Access-Control-Allow-Origin": "*"}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(r"/certificates/{token:[A-Za-z0-9_-]+}/badge", certificate_badge)
    app.router.add_get("/verify/{number}/badge", certificate_badge)
    app.router.add_get(badges.STATUS_LIST_PATH, status_list)
    app.router.add_get(badges.JWKS_PATH, jwks)
