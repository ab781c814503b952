"""Read-only rows of the tables, as the lean read path (models/reads.py) gives them.

Each class has its table's columns, in table order, so `CourseRow(*row)` takes a
row of `select(Course.__table__)`; a test keeps them in step with the tables.
They cost a fraction of an ORM instance and are never written back: changes go
through the ORM in a write transaction.
"""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    username: str
    display_name: str
    email: str | None
    avatar: str | None
    role: str
    password_hash: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CourseRow:
    id: int
    slug: str
    title: str
    description: str | None
    status: str
    total_lessons: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class LessonRow:
    id: int
    course_id: int
    title: str
    position: int


@dataclass(frozen=True, slots=True)
class EnrollmentRow:
    id: int
    user_id: int
    course_id: int
    status: str
    enrolled_at: datetime
    completed_at: datetime | None
    last_accessed_at: datetime | None
    time_spent_seconds: int
    completed_lessons: int


@dataclass(frozen=True, slots=True)
class CompletionRow:
    id: int
    enrollment_id: int
    lesson_id: int
    completed_at: datetime


@dataclass(frozen=True, slots=True)
class CertificateRow:
    id: int
    number: str
    token: str
    enrollment_id: int
    course_id: int
    user_id: int
    year: int
    sequence: int
    issued_at: datetime
    course_title: str
    student_name: str
    revoked_at: datetime | None
    revoked_reason: str | None
