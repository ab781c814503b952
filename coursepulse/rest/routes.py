"""The facade's routes under the seed's prefix."""

from aiohttp import web

from coursepulse.rest import PREFIX, handlers, openapi


async def openapi_json(_request: web.Request) -> web.Response:
    return web.json_response(openapi.document())


def add_routes(app: web.Application) -> None:
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
