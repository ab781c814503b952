"""GraphQL input types of the contract."""

import strawberry

from coursepulse import models
from coursepulse.schema.enums import CourseStatus, Role


@strawberry.input
class CourseInput:
    title: str
    slug: str | None = None
    description: str | None = None
    status: CourseStatus | None = models.CourseStatus.DRAFT


@strawberry.input
class CourseUpdateInput:
    title: str | None = None
    slug: str | None = None
    description: str | None = None
    status: CourseStatus | None = None


@strawberry.input
class LessonInput:
    title: str
    order: int | None = strawberry.field(
        default=None, description="Position to insert at (1-based); appended when omitted."
    )


@strawberry.input
class UserInput:
    username: str
    password: str
    display_name: str | None = None
    email: str | None = None
    role: Role = models.Role.STUDENT
