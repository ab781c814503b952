"""The seed's JSON shapes, mapped from domain rows in one place."""

import csv
import io
import re
from datetime import UTC, datetime
from typing import Any

from coursepulse.models.rows import CertificateRow, CourseRow, LessonRow
from coursepulse.resolvers.certificates import certificate_url
from coursepulse.resolvers.completions import LessonChange
from coursepulse.resolvers.errors import DomainError
from coursepulse.resolvers.progress import ProgressRecord, format_time_spent
from coursepulse.resolvers.roster import RosterPage, RosterRow

JSON = dict[str, Any]


def timestamp(moment: datetime | None) -> str | None:
    """The seed's datetime form: UTC, no offset, whole seconds ('2025-10-27T12:00:00')."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat()


def error_document(code: str, status: int, message: str, extra: dict[str, Any]) -> JSON:
    """{"code", "message", "data": {"status", ...context}} as the seed's errors (snake_case)."""
    data = {_snake(key): value for key, value in extra.items()}
    return {"code": code, "message": message, "data": {"status": status, **data}}


def error(error: DomainError) -> JSON:
    """A domain error as the seed's error JSON."""
    return error_document(error.code, error.status, error.message, error.extra)


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", name).lower()


def _lesson(lesson: LessonRow | None, *, with_order: bool = True) -> JSON | None:
    if lesson is None:
        return None
    shape: JSON = {"id": lesson.id, "title": lesson.title}
    if with_order:
        shape["order"] = lesson.position
    return shape


def enrollment(record: ProgressRecord) -> JSON:
    row = record.enrollment
    return {
        "enrollment_id": row.id,
        "course_id": row.course_id,
        "user_id": row.user_id,
        "enrolled_at": timestamp(row.enrolled_at),
    }


def progress(
    record: ProgressRecord,
    next_lesson: LessonRow | None,
    certificate: CertificateRow | None,
    base_url: str,
) -> JSON:
    """The seed's progress object, with next_lesson and, once issued, certificate_url."""
    row = record.enrollment
    shape: JSON = {
        "course_id": row.course_id,
        "user_id": row.user_id,
        "progress_percentage": record.percentage,
        "completed_lessons": row.completed_lessons,
        "total_lessons": record.course.total_lessons,
        "time_spent": format_time_spent(row.time_spent_seconds),
        "last_accessed": timestamp(row.last_accessed_at),
        "started_at": timestamp(row.enrolled_at),
        "completed_at": timestamp(row.completed_at),
        "next_lesson": _lesson(next_lesson),
    }
    if certificate is not None:
        shape["certificate_url"] = certificate_url(base_url, certificate)
    return shape


def my_course(record: ProgressRecord) -> JSON:
    """A dashboard row: the course and the student's standing in it."""
    row = record.enrollment
    return {
        "course_id": row.course_id,
        "title": record.course.title,
        "slug": record.course.slug,
        "status": row.status,
        "progress_percentage": record.percentage,
        "completed_lessons": row.completed_lessons,
        "total_lessons": record.course.total_lessons,
        "enrolled_at": timestamp(row.enrolled_at),
        "last_accessed": timestamp(row.last_accessed_at),
        "completed_at": timestamp(row.completed_at),
    }


def lesson_change(change: LessonChange) -> JSON:
    return {
        "message": change.message,
        "data": {
            "lesson_id": change.lesson_id,
            "completed_at": timestamp(change.completed_at),
            "progress_percentage": change.progress.percentage,
            "next_lesson": _lesson(change.next_lesson, with_order=False),
        },
    }


def students(page: RosterPage) -> JSON:
    return {
        "data": [
            {
                "user_id": row.user.id,
                "username": row.user.username,
                "display_name": row.user.display_name,
                "avatar": row.user.avatar,
                "progress_percentage": ProgressRecord(row.enrollment, page.course).percentage,
                "enrolled_at": timestamp(row.enrollment.enrolled_at),
                "last_accessed": timestamp(row.enrollment.last_accessed_at),
            }
            for row in page.rows
        ],
        "meta": {"total": page.total, "per_page": page.per_page, "current_page": page.page},
    }


#: The roster export's columns, in order.
STUDENT_COLUMNS = (
    "user_id",
    "username",
    "display_name",
    "status",
    "progress_percentage",
    "completed_lessons",
    "enrolled_at",
    "last_accessed",
    "completed_at",
)
#: A cell starting with one of these is a formula to a spreadsheet: it is kept as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A CSV cell: '' for none; text a spreadsheet would run as a formula gets a leading '."""
    if value is None:
        return ""
    text = str(value)
    return f"'{text}" if isinstance(value, str) and text.startswith(_FORMULA_STARTS) else text


def students_csv(course: CourseRow, rows: list[RosterRow]) -> str:
    """The roster as CSV (RFC 4180: a header row, CRLF line ends, quotes where needed)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(STUDENT_COLUMNS)
    for row in rows:
        enrollment = row.enrollment
        writer.writerow(
            _cell(value)
            for value in (
                row.user.id,
                row.user.username,
                row.user.display_name,
                str(enrollment.status),
                ProgressRecord(enrollment, course).percentage,
                enrollment.completed_lessons,
                timestamp(enrollment.enrolled_at),
                timestamp(enrollment.last_accessed_at),
                timestamp(enrollment.completed_at),
            )
        )
    return out.getvalue()


def certificate(row: CertificateRow, base_url: str) -> JSON:
    return {
        "certificate_url": certificate_url(base_url, row),
        "certificate_id": row.number,
        "issued_at": timestamp(row.issued_at),
        "course_title": row.course_title,
        "student_name": row.student_name,
    }
