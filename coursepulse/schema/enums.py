"""GraphQL enums of the contract, backed by the domain's enumerations."""

from enum import Enum

import strawberry

from coursepulse import models
from coursepulse.resolvers.roster import StudentOrder

Role = strawberry.enum(models.Role, name="Role")
EnrollmentStatus = strawberry.enum(
    models.EnrollmentStatus,
    name="EnrollmentStatus",
    description="Where a student stands in a course.",
)
CourseStatus = strawberry.enum(models.CourseStatus, name="CourseStatus")
ProgressEventKind = strawberry.enum(models.ProgressEventKind, name="ProgressEventKind")
StudentOrderField = strawberry.enum(StudentOrder, name="StudentOrderField")


@strawberry.enum
class SortOrder(Enum):
    ASC = "asc"
    DESC = "desc"
