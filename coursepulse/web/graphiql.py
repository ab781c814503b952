"""The GraphiQL explorer page: every file it loads comes from the service (static_files.py),
and its Content-Security-Policy allows nothing else."""

from __future__ import annotations

from aiohttp import web

from coursepulse.web.static_files import StaticFiles, html_document, html_page, page_policy

#: The files only this page loads (not served when the explorer is switched off).
FILES = (
    "graphiql.min.css",
    "plugin-explorer.css",
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "plugin-explorer.umd.js",
    "graphiql-start.js",
)
#: React and CodeMirror set styles on elements; the fonts are data: URLs in graphiql.min.css.
CONTENT_SECURITY_POLICY = page_policy(inline_styles=True)


def page_html(files: StaticFiles) -> str:
    """The explorer's HTML, loading every file from the service with its integrity hash."""
    return html_document(
        "coursepulse GraphiQL",
        head=[files.stylesheet("graphiql.min.css"), files.stylesheet("plugin-explorer.css")],
        body_tag='<body style="margin:0;height:100vh;overflow:hidden">',
        body=[
            '<div id="graphiql" style="height:100vh">Loading GraphiQL…</div>',
            files.script("react.production.min.js"),
            files.script("react-dom.production.min.js"),
            files.script("graphiql.min.js"),
            files.script("plugin-explorer.umd.js"),
            files.script("graphiql-start.js"),
        ],
    )


class GraphiQLPage:
    """The explorer page, built once per application."""

    def __init__(self, files: StaticFiles) -> None:
        self.html = page_html(files)

    def response(self) -> web.Response:
        """The explorer page, under a policy that allows only the service's origin."""
        return html_page(self.html, policy=CONTENT_SECURITY_POLICY)
