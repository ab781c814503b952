"""Enumerations stored as short strings in the tables."""

from enum import StrEnum


class Role(StrEnum):
    STUDENT = "student"
    INSTRUCTOR = "instructor"
    ADMIN = "admin"


class CourseStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    UNENROLLED = "unenrolled"


#: Enrolments that count as "enrolled": on the roster, in statistics, allowed to learn.
ENROLLED_STATUSES: tuple[EnrollmentStatus, ...] = (
    EnrollmentStatus.ACTIVE,
    EnrollmentStatus.COMPLETED,
)


class ProgressEventKind(StrEnum):
    ENROLLED = "enrolled"
    UNENROLLED = "unenrolled"
    LESSON_COMPLETED = "lesson_completed"
    LESSON_INCOMPLETED = "lesson_incompleted"
    COURSE_COMPLETED = "course_completed"
    CERTIFICATE_ISSUED = "certificate_issued"
    ACTIVITY = "activity"
    #: The student's progress was reset (kept in progress_resets).
    PROGRESS_RESET = "progress_reset"
    #: The course's lessons changed (added, deleted) and the student's numbers with them.
    PROGRESS_RECALCULATED = "progress_recalculated"
