"""Rows: what every read gives back, one named type per table, derived from the table.

A row is an immutable named tuple of its table's columns (`course.title`,
`enrollment._replace(status=...)`), built by the statement that read it
(models/sql.py). It costs a fraction of an ORM instance and is never written back:
changes are statements in a write transaction. Adding a column to a table adds it
to the row; there is no second list of columns to keep in step.
"""

from collections import namedtuple
from functools import cache
from typing import Any

from sqlalchemy import Table

from coursepulse.models.tables import (
    ApiToken,
    Certificate,
    Course,
    CourseInstructor,
    Enrollment,
    Lesson,
    LessonCompletion,
    ProgressEvent,
    ProgressReset,
    SigningKey,
    User,
    Webhook,
    WebhookDelivery,
)


@cache
def row_type_of(table: Table) -> Any:
    """The named row type of a table: its columns' keys, in table order."""
    singular = str(table.name).removesuffix("s")
    name = "".join(part.title() for part in singular.split("_")) + "Row"
    return namedtuple(name, [column.key for column in table.columns])


def _row_of(model: Any) -> Any:
    return row_type_of(model.__table__)


# Named tuples with the columns (and their types) that the SQLModel class of the table declares.
UserRow = _row_of(User)
ApiTokenRow = _row_of(ApiToken)
CourseRow = _row_of(Course)
CourseInstructorRow = _row_of(CourseInstructor)
LessonRow = _row_of(Lesson)
EnrollmentRow = _row_of(Enrollment)
CompletionRow = _row_of(LessonCompletion)
ProgressEventRow = _row_of(ProgressEvent)
ProgressResetRow = _row_of(ProgressReset)
SigningKeyRow = _row_of(SigningKey)
CertificateRow = _row_of(Certificate)
WebhookRow = _row_of(Webhook)
WebhookDeliveryRow = _row_of(WebhookDelivery)
