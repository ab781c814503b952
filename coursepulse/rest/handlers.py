"""The facade's endpoints: parse, call the resolver, shape the answer."""

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from aiohttp import web

from coursepulse.issuing import obtain_certificate
from coursepulse.models import EnrollmentStatus
from coursepulse.resolvers import completions, enrollments, lookups, roster
from coursepulse.resolvers.completions import LessonChange
from coursepulse.resolvers.errors import DomainError
from coursepulse.rest import params, shapes
from coursepulse.web.keys import CROSS_SITE, DATABASE, SETTINGS, VIEWER

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ORDER_FIELDS = {
    "enrolled_at": roster.StudentOrder.ENROLLED_AT,
    "last_accessed": roster.StudentOrder.LAST_ACCESSED,
    "progress": roster.StudentOrder.PROGRESS,
    "display_name": roster.StudentOrder.DISPLAY_NAME,
}
MY_COURSE_STATUSES = {
    "active": EnrollmentStatus.ACTIVE,
    "completed": EnrollmentStatus.COMPLETED,
    "unenrolled": EnrollmentStatus.UNENROLLED,
}


def json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def answers_domain_errors(handler: Handler) -> Handler:
    """Turns the domain's coded errors into the seed's error JSON and status."""

    @wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except DomainError as error:
            return json(shapes.error(error), status=error.status)

    return wrapped


@answers_domain_errors
async def enroll(request: web.Request) -> web.StreamResponse:
    course_id = params.path_id(request.match_info, "id")
    async with request.app[DATABASE].write() as tx:
        record = await enrollments.enroll(tx, request[VIEWER], course_id)
    return json({"message": enrollments.ENROLLED_MESSAGE, "data": shapes.enrollment(record)})


@answers_domain_errors
async def unenroll(request: web.Request) -> web.StreamResponse:
    course_id = params.path_id(request.match_info, "id")
    async with request.app[DATABASE].write() as tx:
        await enrollments.unenroll(tx, request[VIEWER], course_id)
    return json({"message": enrollments.UNENROLLED_MESSAGE})


@answers_domain_errors
async def progress(request: web.Request) -> web.StreamResponse:
    course_id = params.path_id(request.match_info, "id")
    user_id = params.path_id(request.query, "user_id") if request.query.get("user_id") else None
    async with request.app[DATABASE].read() as tx:
        record, following = await enrollments.course_progress_and_next_lesson(
            tx, request[VIEWER], course_id, user_id
        )
        issued = await lookups.certificates_by_enrollment(tx, [record.enrollment.id])
    certificate = issued.get(record.enrollment.id)
    base_url = request.app[SETTINGS].base_url
    return json({"data": shapes.progress(record, following, certificate, base_url)})


def _lesson_action(
    act: Callable[..., Awaitable[LessonChange]],
) -> Handler:
    """POST .../lessons/{lesson_id}/complete or /incomplete: the change and the next lesson."""

    @answers_domain_errors
    async def handler(request: web.Request) -> web.StreamResponse:
        course_id = params.path_id(request.match_info, "id")
        lesson_id = params.path_id(request.match_info, "lesson_id")
        async with request.app[DATABASE].write() as tx:
            change = await act(tx, request[VIEWER], course_id, lesson_id)
        return json(shapes.lesson_change(change))

    return handler


complete_lesson = _lesson_action(completions.complete_lesson)
incomplete_lesson = _lesson_action(completions.incomplete_lesson)


@answers_domain_errors
async def students(request: web.Request) -> web.StreamResponse:
    """A page of the roster as JSON, or (`format=csv`) every student it lists as CSV."""
    course_id = params.path_id(request.match_info, "id")
    query = request.query
    page = params.optional_int(query, "page", 1, low=1, high=params.MAX_PAGE)
    per_page = params.optional_int(query, "per_page", 20, low=1, high=roster.MAX_PER_PAGE)
    order_by = params.choice(query, "orderby", "enrolled_at", tuple(ORDER_FIELDS))
    order = params.choice(query, "order", "desc", ("asc", "desc"))
    status = params.choice(query, "status", "", tuple(MY_COURSE_STATUSES))
    inactive_days = (
        params.optional_int(query, "inactive_days", 0, low=0, high=roster.MAX_INACTIVE_DAYS)
        if query.get("inactive_days")
        else None
    )
    as_csv = params.choice(query, "format", "json", ("json", "csv")) == "csv"
    filters: dict[str, Any] = {
        "order_by": ORDER_FIELDS[order_by],
        "descending": order == "desc",
        "search": query.get("search") or None,
        "status": MY_COURSE_STATUSES[status] if status else None,
        "inactive_days": inactive_days,
    }
    async with request.app[DATABASE].read() as tx:
        if as_csv:
            course, rows = await roster.all_students(tx, request[VIEWER], course_id, **filters)
        else:
            result = await roster.course_students(
                tx, request[VIEWER], course_id, page=page, per_page=per_page, **filters
            )
    if as_csv:
        return web.Response(
            body=shapes.students_csv(course, rows).encode(),
            content_type="text/csv",
            charset="utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="course-{course_id}-students.csv"'
            },
        )
    return json(shapes.students(result))


@answers_domain_errors
async def certificate(request: web.Request) -> web.StreamResponse:
    course_id = params.path_id(request.match_info, "id")
    # The seed's GET issues on first call; a page on another site must not make it do so.
    row = await obtain_certificate(
        request.app[DATABASE], request[VIEWER], course_id, may_issue=not request[CROSS_SITE]
    )
    return json({"data": shapes.certificate(row, request.app[SETTINGS].base_url)})


@answers_domain_errors
async def my_courses(request: web.Request) -> web.StreamResponse:
    status = params.choice(request.query, "status", "", tuple(MY_COURSE_STATUSES))
    async with request.app[DATABASE].read() as tx:
        records = await enrollments.my_courses(tx, request[VIEWER], MY_COURSE_STATUSES.get(status))
    return json({"data": [shapes.my_course(record) for record in records]})
