"""The facade's routes under the seed's prefix."""

from typing import Any

from aiohttp import web

from coursepulse.rest import PREFIX, handlers, openapi, shapes
from coursepulse.web.middlewares import ERROR_SHAPES

NO_ROUTE = ("rest_no_route", "No route was found matching the URL and request method")


def failure(code: str, status: int, message: str, extra: dict[str, Any]) -> web.Response:
    """A failure outside the handlers (no route, refused, unavailable) in the seed's shape."""
    if status in (404, 405) and code in ("not_found", "invalid_input"):
        code, message = NO_ROUTE
    return web.json_response(shapes.error_document(code, status, message, extra), status=status)


async def openapi_json(_request: web.Request) -> web.Response:
    return web.json_response(openapi.document())


def add_routes(app: web.Application) -> None:
    """The facade's endpoints, and its error shape for failures outside them."""
    app.setdefault(ERROR_SHAPES, {})[PREFIX] = failure
    courses = f"{PREFIX}/courses"
    number = r"{id:[^/]+}"
    lesson = r"{lesson_id:[^/]+}"
    router = app.router
    router.add_get(f"{PREFIX}/openapi.json", openapi_json)
    router.add_get(f"{courses}/my-courses", handlers.my_courses)
    router.add_post(f"{courses}/{number}/enroll", handlers.enroll)
    router.add_post(f"{courses}/{number}/unenroll", handlers.unenroll)
    router.add_get(f"{courses}/{number}/progress", handlers.progress)
    router.add_post(f"{courses}/{number}/lessons/{lesson}/complete", handlers.complete_lesson)
    router.add_post(f"{courses}/{number}/lessons/{lesson}/incomplete", handlers.incomplete_lesson)
    router.add_get(f"{courses}/{number}/students", handlers.students)
    router.add_get(f"{courses}/{number}/certificate", handlers.certificate)
