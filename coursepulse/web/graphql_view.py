"""Strawberry's aiohttp view, with our context and JSON errors for malformed requests."""

import json
from typing import Any

from aiohttp import web
from cross_web import HTTPException
from strawberry.aiohttp.views import GraphQLView

from coursepulse.schema.context import Context
from coursepulse.schema.loaders import Loaders
from coursepulse.web.keys import DATABASE, REQUEST_ID, SETTINGS, VIEWER
from coursepulse.web.middlewares import error_body


class CoursepulseGraphQLView(GraphQLView[Context, None]):
    async def get_context(
        self, request: web.Request, response: web.Response | web.WebSocketResponse
    ) -> Context:
        viewer = request.get(VIEWER)
        db = request.app[DATABASE]
        return Context(
            db=db,
            settings=request.app[SETTINGS],
            viewer=viewer,
            request_id=request.get(REQUEST_ID) or "",
            loaders=Loaders(db, viewer.user_id if viewer else None),
            request=request,
            response=response,
        )

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self.run(request=request)
        except HTTPException as error:
            code = "invalid_input" if error.status_code < 500 else "internal_error"
            if error.status_code == 404:
                code = "not_found"
            return web.Response(
                text=json.dumps(error_body(code, error.status_code, error.reason)),
                status=error.status_code,
                content_type="application/json",
            )

    def encode_json(self, data: Any) -> str:
        return json.dumps(data, separators=(",", ":"))
