"""The live progress app at `/`: a page for students (their courses, lessons and live bars)
and instructors (a live roster), written in plain JavaScript in static/app/app.js."""

from __future__ import annotations

from aiohttp import web

from coursepulse.web.static_files import StaticFiles, html_document, html_page, page_policy

CONTENT_SECURITY_POLICY = page_policy()


def page_html(files: StaticFiles) -> str:
    """The app's HTML shell; app.js fills `main`."""
    return html_document(
        "coursepulse",
        head=[files.stylesheet("app.css")],
        body=[
            "<header>",
            '<a class="brand" href="#/">coursepulse</a>',
            '<nav><span id="connection" role="status" data-state="idle"></span>'
            '<span id="account"></span></nav>',
            "</header>",
            '<div id="alert" role="alert" hidden></div>',
            '<main id="main"><noscript>coursepulse needs JavaScript.</noscript></main>',
            files.script("graphql-ws.min.js"),
            files.script("app.js", module=True),
        ],
    )


class ProgressApp:
    """The app's page, built once per application."""

    def __init__(self, files: StaticFiles) -> None:
        self.html = page_html(files)

    async def page(self, _request: web.Request) -> web.Response:
        """The app, under a policy that allows only the service's origin."""
        return html_page(self.html, policy=CONTENT_SECURITY_POLICY)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.page)
