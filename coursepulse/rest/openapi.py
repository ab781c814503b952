"""The OpenAPI 3.1 description of the REST facade, served at {PREFIX}/openapi.json."""

from typing import Any

from coursepulse import __version__
from coursepulse.resolvers.roster import MAX_INACTIVE_DAYS, MAX_PER_PAGE, SEARCH_MAX
from coursepulse.rest import PREFIX
from coursepulse.rest.params import MAX_PAGE

JSON = dict[str, Any]

NULLABLE_DATETIME: JSON = {
    "type": ["string", "null"],
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$",
}
DATETIME: JSON = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"}
ID: JSON = {"type": "integer", "minimum": 1}

#: The characters Python's `str.strip()` removes (`str.isspace()`), as a regex class body:
#: the facade trims query values, so the patterns below allow them around a value.
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: Control characters other than tab and newlines (coursepulse/resolvers/validation.py).
CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"


def _any_case(word: str) -> str:
    """A regex for `word` in any letter case, without flags (portable across dialects)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def choice(values: list[str], default: str | None = None) -> JSON:
    """A query choice as the facade reads it (coursepulse/rest/params.py `choice`).

    Empty means the default, letter case is ignored and surrounding whitespace trimmed:
    a `pattern` says so truthfully where an `enum` would forbid `?status=` and `ASC`.
    """
    words = "|".join(_any_case(value) for value in values)
    schema: JSON = {
        "type": "string",
        "pattern": f"^(?:[{WHITESPACE}]*(?:{words})[{WHITESPACE}]*)?$",
    }
    if default is not None:
        schema["default"] = default
    return schema


def integer(low: int, high: int, default: int) -> JSON:
    """An integer query parameter within [low, high] (empty means the default)."""
    return {"type": "integer", "minimum": low, "maximum": high, "default": default}


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: JSON, required: list[str] | None = None) -> JSON:
    return {
        "type": "object",
        "properties": properties,
        "required": required if required is not None else list(properties),
    }


SCHEMAS: JSON = {
    "Error": _object(
        {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "data": {
                "type": "object",
                "properties": {"status": {"type": "integer"}},
                "required": ["status"],
            },
        }
    ),
    "NextLesson": {
        "oneOf": [
            {"type": "null"},
            _object(
                {"id": ID, "title": {"type": "string"}, "order": {"type": "integer"}},
                ["id", "title"],
            ),
        ]
    },
    "Progress": _object(
        {
            "course_id": ID,
            "user_id": ID,
            "progress_percentage": {"type": "integer", "minimum": 0, "maximum": 100},
            "completed_lessons": {"type": "integer", "minimum": 0},
            "total_lessons": {"type": "integer", "minimum": 0},
            "time_spent": {"type": "string"},
            "last_accessed": NULLABLE_DATETIME,
            "started_at": DATETIME,
            "completed_at": NULLABLE_DATETIME,
            "next_lesson": _ref("NextLesson"),
            "certificate_url": {"type": "string"},
        },
        [
            "course_id",
            "user_id",
            "progress_percentage",
            "completed_lessons",
            "total_lessons",
            "time_spent",
            "last_accessed",
            "started_at",
            "completed_at",
            "next_lesson",
        ],
    ),
    "Enrollment": _object(
        {"enrollment_id": ID, "course_id": ID, "user_id": ID, "enrolled_at": DATETIME}
    ),
    "LessonChange": _object(
        {
            "lesson_id": ID,
            "completed_at": NULLABLE_DATETIME,
            "progress_percentage": {"type": "integer", "minimum": 0, "maximum": 100},
            "next_lesson": _ref("NextLesson"),
        }
    ),
    "Student": _object(
        {
            "user_id": ID,
            "username": {"type": "string"},
            "display_name": {"type": "string"},
            "avatar": {"type": ["string", "null"]},
            "progress_percentage": {"type": "integer", "minimum": 0, "maximum": 100},
            "enrolled_at": DATETIME,
            "last_accessed": NULLABLE_DATETIME,
        }
    ),
    "Certificate": _object(
        {
            "certificate_url": {"type": "string"},
            "certificate_id": {"type": "string", "pattern": r"^CERT-\d{4}-\d{3,}$"},
            "issued_at": DATETIME,
            "course_title": {"type": "string"},
            "student_name": {"type": "string"},
        }
    ),
    "MyCourse": _object(
        {
            "course_id": ID,
            "title": {"type": "string"},
            "slug": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "completed", "unenrolled"]},
            "progress_percentage": {"type": "integer", "minimum": 0, "maximum": 100},
            "completed_lessons": {"type": "integer", "minimum": 0},
            "total_lessons": {"type": "integer", "minimum": 0},
            "enrolled_at": DATETIME,
            "last_accessed": NULLABLE_DATETIME,
            "completed_at": NULLABLE_DATETIME,
        }
    ),
}


def _error_responses(*statuses: int) -> JSON:
    reasons = {
        400: "Invalid input, already enrolled, or course not complete",
        401: "Authentication required, or invalid credentials",
        403: "Not enrolled, or not allowed",
        404: "No such course, lesson or route",
        405: "Method not allowed",
    }
    return {
        str(status): {
            "description": reasons[status],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for status in statuses
    }


def _ok(description: str, schema: JSON) -> JSON:
    return {
        "200": {"description": description, "content": {"application/json": {"schema": schema}}}
    }


def _ok_or_csv(description: str, schema: JSON) -> JSON:
    """200 with JSON, or text/csv where the request asked for `format=csv`."""
    answer = _ok(description, schema)
    answer["200"]["content"]["text/csv"] = {"schema": {"type": "string"}}
    return answer


def _data(schema: JSON) -> JSON:
    return _object({"data": schema})


def _message(data: JSON | None = None) -> JSON:
    properties: JSON = {"message": {"type": "string"}}
    if data is not None:
        properties["data"] = data
    return _object(properties)


COURSE_ID: JSON = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "Course ID",
    "schema": ID,
}
LESSON_ID: JSON = {
    "name": "lesson_id",
    "in": "path",
    "required": True,
    "description": "Lesson ID",
    "schema": ID,
}


def _operation(summary: str, operation_id: str, responses: JSON, parameters: list[JSON]) -> JSON:
    return {
        "summary": summary,
        "operationId": operation_id,
        "parameters": parameters,
        "responses": responses,
    }


def document() -> JSON:
    """The OpenAPI document (a fresh dict each call)."""
    lesson_change = _ok("The lesson's new state", _message(_ref("LessonChange")))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "coursepulse course-progress REST API",
            "version": __version__,
            "description": (
                "The Fluent Community course-progress API, served by coursepulse from the same"
                " rules as its GraphQL API. Datetimes are UTC without an offset."
            ),
        },
        "servers": [{"url": PREFIX}],
        "security": [{"basicAuth": []}, {"bearerAuth": []}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic"},
                "bearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
        "paths": {
            "/courses/{id}/enroll": {
                "post": _operation(
                    "Enroll the current user in a course",
                    "enroll",
                    _ok("Enrolled", _message(_ref("Enrollment")))
                    | _error_responses(400, 401, 403, 404),
                    [COURSE_ID],
                )
            },
            "/courses/{id}/unenroll": {
                "post": _operation(
                    "Unenroll the current user from a course (progress is kept)",
                    "unenroll",
                    _ok("Unenrolled", _message()) | _error_responses(400, 401, 403, 404),
                    [COURSE_ID],
                )
            },
            "/courses/{id}/progress": {
                "get": _operation(
                    "The current user's progress, or user_id's for instructors and admins",
                    "getProgress",
                    _ok("Progress", _data(_ref("Progress"))) | _error_responses(400, 401, 403, 404),
                    [
                        COURSE_ID,
                        {
                            "name": "user_id",
                            "in": "query",
                            "required": False,
                            "description": "Student user ID (instructors and admins)",
                            "schema": ID,
                        },
                    ],
                )
            },
            "/courses/{id}/lessons/{lesson_id}/complete": {
                "post": _operation(
                    "Mark a lesson as complete (a second call changes nothing)",
                    "completeLesson",
                    lesson_change | _error_responses(400, 401, 403, 404),
                    [COURSE_ID, LESSON_ID],
                )
            },
            "/courses/{id}/lessons/{lesson_id}/incomplete": {
                "post": _operation(
                    "Mark a lesson as incomplete (undo completion)",
                    "incompleteLesson",
                    lesson_change | _error_responses(400, 401, 403, 404),
                    [COURSE_ID, LESSON_ID],
                )
            },
            "/courses/{id}/students": {
                "get": _operation(
                    "Students enrolled in a course (instructors and admins)",
                    "getStudents",
                    _ok_or_csv(
                        "A page of students (format=csv: every student, as CSV)",
                        _object(
                            {
                                "data": {"type": "array", "items": _ref("Student")},
                                "meta": _object(
                                    {
                                        "total": {"type": "integer", "minimum": 0},
                                        "per_page": {"type": "integer", "minimum": 1},
                                        "current_page": {"type": "integer", "minimum": 1},
                                    }
                                ),
                            }
                        ),
                    )
                    | _error_responses(400, 401, 403, 404),
                    [
                        COURSE_ID,
                        {
                            "name": "page",
                            "in": "query",
                            "required": False,
                            "description": "Page number; empty means 1",
                            "schema": integer(1, MAX_PAGE, 1),
                        },
                        {
                            "name": "per_page",
                            "in": "query",
                            "required": False,
                            "description": "Students per page; empty means 20",
                            "schema": integer(1, MAX_PER_PAGE, 20),
                        },
                        {
                            "name": "orderby",
                            "in": "query",
                            "required": False,
                            "description": "Sort field, any letter case; empty means enrolled_at",
                            "schema": choice(
                                ["enrolled_at", "last_accessed", "progress", "display_name"],
                                "enrolled_at",
                            ),
                        },
                        {
                            "name": "order",
                            "in": "query",
                            "required": False,
                            "description": "Sort direction, any letter case; empty means desc",
                            "schema": choice(["asc", "desc"], "desc"),
                        },
                        {
                            "name": "search",
                            "in": "query",
                            "required": False,
                            "description": (
                                f"Part of a username or display name: at most {SEARCH_MAX}"
                                " characters once surrounding whitespace is trimmed, no control"
                                " characters other than tab and newlines"
                            ),
                            "schema": {
                                "type": "string",
                                "pattern": (
                                    f"^[{WHITESPACE}]*[^{CONTROL}]{{0,{SEARCH_MAX}}}[{WHITESPACE}]*$"
                                ),
                            },
                        },
                        {
                            "name": "status",
                            "in": "query",
                            "required": False,
                            "description": (
                                "Only students with this status, any letter case (unenrolled"
                                " lists those who left); empty means active and completed"
                            ),
                            "schema": choice(["active", "completed", "unenrolled"], ""),
                        },
                        {
                            "name": "inactive_days",
                            "in": "query",
                            "required": False,
                            "description": (
                                "Only students with no learner action (an access, else the"
                                " enrolment) for at least this many days; empty means any"
                            ),
                            "schema": integer(0, MAX_INACTIVE_DAYS, 0),
                        },
                        {
                            "name": "format",
                            "in": "query",
                            "required": False,
                            "description": (
                                "csv: every student the filters match (no paging) as CSV, a"
                                " header row first; empty means json"
                            ),
                            "schema": choice(["json", "csv"], "json"),
                        },
                    ],
                )
            },
            "/courses/{id}/certificate": {
                "get": _operation(
                    "Get or generate the current user's certificate for a completed course",
                    "getCertificate",
                    _ok("The certificate", _data(_ref("Certificate")))
                    | _error_responses(400, 401, 403, 404),
                    [COURSE_ID],
                )
            },
            "/courses/my-courses": {
                "get": _operation(
                    "The current user's courses with progress",
                    "getMyCourses",
                    _ok("Courses", _data({"type": "array", "items": _ref("MyCourse")}))
                    | _error_responses(400, 401),
                    [
                        {
                            "name": "status",
                            "in": "query",
                            "required": False,
                            "description": (
                                "Any letter case; without it, or empty: active and completed"
                            ),
                            "schema": choice(["active", "completed", "unenrolled"]),
                        }
                    ],
                )
            },
        },
    }
