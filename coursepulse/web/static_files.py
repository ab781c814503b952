"""The browser files the service serves itself: pinned npm files and its own.

No page of the service loads anything from another origin. The npm files live in
`static/vendor/` with their integrity hashes in its `manifest.json` (refreshed by
`make browser-assets`); the service's own scripts and stylesheets live in `static/app/`.
Each is served at `/assets/<hash>/<name>`, so a browser may cache it for good, and pages
refer to it with its Subresource Integrity hash.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
OWN_DIR = STATIC_DIR / "app"
PREFIX = "/assets/"

_IMMUTABLE = "public, max-age=31536000, immutable"
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


def page_policy(*, inline_styles: bool = False) -> str:
    """A Content-Security-Policy that lets a page reach only the service's own origin."""
    style = "style-src 'self' 'unsafe-inline'" if inline_styles else "style-src 'self'"
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            style,
            "font-src 'self' data:",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def integrity_of(content: bytes) -> str:
    """The Subresource Integrity value (sha384) of `content`."""
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode()


@dataclass(frozen=True)
class Asset:
    """One file a page loads: its name, bytes and integrity value."""

    name: str
    content: bytes
    integrity: str

    @property
    def url(self) -> str:
        """The file's path on the service, versioned by its hash."""
        version = self.integrity[7:23].replace("/", "_").replace("+", "-")
        return f"{PREFIX}{version}/{self.name}"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[Path(self.name).suffix]

    @functools.cached_property
    def gzipped(self) -> bytes:
        """The content gzip-compressed (GraphiQL's 3.5 MB script goes out as 0.7 MB), made
        on the first request that accepts it."""
        return gzip.compress(self.content, compresslevel=9, mtime=0)


@functools.cache
def load_assets() -> dict[str, Asset]:
    """Every servable file by name, the npm ones checked against their manifest.

    Raises RuntimeError when a pinned file is missing or differs from its manifest, so a
    damaged install fails at start rather than as a blank page in a browser.
    """
    manifest = json.loads((VENDOR_DIR / "manifest.json").read_text())
    assets: dict[str, Asset] = {}
    for entry in manifest["assets"]:
        content = (VENDOR_DIR / entry["name"]).read_bytes()
        if integrity_of(content) != entry["integrity"]:
            raise RuntimeError(f"browser file {entry['name']} does not match its manifest")
        assets[entry["name"]] = Asset(entry["name"], content, entry["integrity"])
    for path in sorted(OWN_DIR.iterdir()):
        if path.suffix in _CONTENT_TYPES:
            content = path.read_bytes()
            assets[path.name] = Asset(path.name, content, integrity_of(content))
    return assets


class StaticFiles:
    """The files pages load, read once per application, and the tags that load them."""

    def __init__(self, *, without: Iterable[str] = ()) -> None:
        left_out = set(without)
        self.assets = {name: a for name, a in load_assets().items() if name not in left_out}
        self.by_url = {asset.url: asset for asset in self.assets.values()}

    def script(self, name: str, *, module: bool = False) -> str:
        """A <script> tag for the named file, with its integrity hash."""
        asset = self.assets[name]
        kind = ' type="module"' if module else ""
        return f'<script{kind} src="{escape(asset.url)}" integrity="{asset.integrity}"></script>'

    def stylesheet(self, name: str) -> str:
        """A stylesheet <link> for the named file, with its integrity hash."""
        asset = self.assets[name]
        return f'<link rel="stylesheet" href="{escape(asset.url)}" integrity="{asset.integrity}">'

    async def handle(self, request: web.Request) -> web.Response:
        """One of the files (404 for any other path)."""
        asset = self.by_url.get(request.path)
        if asset is None:
            raise web.HTTPNotFound(text="Not found")
        headers = {
            "Cache-Control": _IMMUTABLE,
            "X-Content-Type-Options": "nosniff",
            "Vary": "Accept-Encoding",
        }
        body = asset.content
        if "gzip" in request.headers.get("Accept-Encoding", "").lower():
            body = asset.gzipped
            headers["Content-Encoding"] = "gzip"
        return web.Response(
            body=body, content_type=asset.content_type, charset="utf-8", headers=headers
        )

    def add_routes(self, app: web.Application) -> None:
        """Serve the files under PREFIX."""
        app.router.add_get(PREFIX + "{version}/{name}", self.handle)


def html_document(
    title: str, head: Sequence[str], body: Sequence[str], *, body_tag: str = "<body>"
) -> str:
    """An HTML5 document: the common head (charset, viewport, no favicon request), then
    `head` and `body`, one element a line."""
    return "\n".join(
        (
            "<!doctype html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>",
            '<link rel="icon" href="data:,">',
            *head,
            "</head>",
            body_tag,
            *body,
            "</body>",
            "</html>",
        )
    )


def html_page(body: str, *, policy: str) -> web.Response:
    """An HTML page under `policy`, never cached (its files are)."""
    return web.Response(
        text=body,
        content_type="text/html",
        headers={
            "Content-Security-Policy": policy,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
