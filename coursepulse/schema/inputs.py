"""GraphQL input types of the contract."""

from datetime import datetime

import strawberry

from coursepulse import models
from coursepulse.schema.enums import CourseStatus, ProgressEventKind, Role


@strawberry.input
class CourseInput:
    title: str
    slug: str | None = None
    description: str | None = None
    status: CourseStatus | None = models.CourseStatus.DRAFT
    sequential: bool | None = strawberry.field(
        default=False, description="A lesson opens once every lesson before it is complete."
    )


@strawberry.input
class CourseUpdateInput:
    title: str | None = None
    slug: str | None = None
    description: str | None = None
    status: CourseStatus | None = None
    sequential: bool | None = None


@strawberry.input
class LessonInput:
    title: str
    order: int | None = strawberry.field(
        default=None, description="Position to insert at (1-based); appended when omitted."
    )
    available_after_days: int | None = None
    available_at: datetime | None = None


@strawberry.input
class LessonUpdateInput:
    """Omitted fields stay as they are; null clears a date."""

    title: str | None = strawberry.UNSET
    available_after_days: int | None = strawberry.field(
        default=strawberry.UNSET, description="Opens this many days after the student's enrolment."
    )
    available_at: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="Opens at this moment for everyone."
    )


@strawberry.input
class UserInput:
    username: str
    password: str
    display_name: str | None = None
    email: str | None = None
    role: Role = models.Role.STUDENT


@strawberry.input
class WebhookInput:
    url: str
    course_id: strawberry.ID | None = None
    events: list[ProgressEventKind] | None = strawberry.field(default_factory=list)
