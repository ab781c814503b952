"""Progress arithmetic: percentages, time spent, and the enrolment status rule."""

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from coursepulse.models import EnrollmentStatus
from coursepulse.models.rows import CourseRow, EnrollmentRow


def progress_percentage(completed: int, total: int) -> int:
    """floor(100 * completed / total); 0 for a course without lessons."""
    if total <= 0:
        return 0
    return min(100, (100 * completed) // total)


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def format_time_spent(seconds: int) -> str:
    """Whole minutes, rounded down: '3 hours 25 minutes', '1 hour', '1 minute', '0 minutes'."""
    minutes_total = max(0, seconds) // 60
    hours, minutes = divmod(minutes_total, 60)
    if hours and minutes:
        return f"{_plural(hours, 'hour')} {_plural(minutes, 'minute')}"
    if hours:
        return _plural(hours, "hour")
    return _plural(minutes, "minute")


@dataclass(frozen=True, slots=True)
class Standing:
    """An enrolment's status and completedAt as its counters make them."""

    status: str
    completed_at: datetime | None
    #: True when this change completed the course.
    just_completed: bool


def settled(
    status: str, completed_at: datetime | None, completed: int, total_lessons: int, now: datetime
) -> Standing:
    """The status rule: COMPLETED exactly when every lesson of a non-empty course is complete.

    completedAt is null whenever the status is not COMPLETED; UNENROLLED stays as it is.
    """
    if status == EnrollmentStatus.UNENROLLED:
        return Standing(status, None, False)
    done = total_lessons > 0 and completed >= total_lessons
    if done and status != EnrollmentStatus.COMPLETED:
        return Standing(EnrollmentStatus.COMPLETED, now, True)
    if not done and status == EnrollmentStatus.COMPLETED:
        return Standing(EnrollmentStatus.ACTIVE, None, False)
    return Standing(status, completed_at, False)


def settle(enrollment: EnrollmentRow, total_lessons: int, now: datetime) -> Standing:
    """`settled` for an enrolment row's counters."""
    return settled(
        enrollment.status, enrollment.completed_at, enrollment.completed_lessons, total_lessons, now
    )


class ProgressRecord(NamedTuple):
    """A student's enrolment together with its course: what a Progress is built from (a
    tuple: a roster page makes one per student)."""

    enrollment: EnrollmentRow
    course: CourseRow

    @property
    def percentage(self) -> int:
        return progress_percentage(self.enrollment.completed_lessons, self.course.total_lessons)
