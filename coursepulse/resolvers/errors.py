"""The domain's error taxonomy, shared by every front door (GraphQL, REST).

Each error has a stable `code`, the HTTP `status` the REST facade answers, a
human message, and optional context fields (e.g. `progress_percentage`).
"""

from typing import Any


class DomainError(Exception):
    """An expected failure a client can act on."""

    code: str = "invalid_input"
    status: int = 400
    default_message: str = "Invalid input"

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        self.extra = extra
        super().__init__(self.message)


class Unauthenticated(DomainError):
    code, status, default_message = "unauthenticated", 401, "Authentication required"


class InvalidCredentials(DomainError):
    code, status, default_message = "invalid_credentials", 401, "Invalid username or password"


class Forbidden(DomainError):
    code, status, default_message = "forbidden", 403, "You are not allowed to do this"


class NotFound(DomainError):
    code, status, default_message = "not_found", 404, "Not found"


class InvalidInput(DomainError):
    """Bad input; `field` names the argument at fault."""

    code, status, default_message = "invalid_input", 400, "Invalid input"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        if field is None:
            super().__init__(message)
        else:
            super().__init__(message, field=field)


class NotEnrolled(DomainError):
    code, status, default_message = "not_enrolled", 403, "You must be enrolled in this course"


class AlreadyEnrolled(DomainError):
    code, status = "already_enrolled", 400
    default_message = "You are already enrolled in this course"


class CourseNotComplete(DomainError):
    code, status = "course_not_complete", 400
    default_message = "You must complete all lessons to get a certificate"


class IssueRefused(DomainError):
    """A certificate would be issued by a request that must not change anything."""

    code, status = "forbidden", 403
    default_message = (
        "A certificate is issued only by a POST request from this site; "
        "send the same query by POST to receive it"
    )


class RateLimited(DomainError):
    code, status, default_message = "rate_limited", 429, "Too many requests"


class ResumeRequired(DomainError):
    """A live subscription fell too far behind; resubscribe with `after: lastEventId`."""

    code, status = "resume_required", 409
    default_message = "Too many events are waiting: subscribe again with `after` to resume"


class LessonLocked(DomainError):
    """A sequential or drip-fed lesson that is not open yet for this student (`unlocksAt`
    when a date opens it)."""

    code, status = "lesson_locked", 403
    default_message = "This lesson is not open yet"
