"""Tables, column types and database helpers. No GraphQL or HTTP here."""

from coursepulse.models.enums import (
    ENROLLED_STATUSES,
    CourseStatus,
    EnrollmentStatus,
    ProgressEventKind,
    Role,
)
from coursepulse.models.tables import (
    ApiToken,
    Certificate,
    CertificateCounter,
    Course,
    CourseInstructor,
    Enrollment,
    Lesson,
    LessonCompletion,
    LessonTime,
    ProgressEvent,
    ProgressReset,
    ResetCompletion,
    SigningKey,
    User,
    Webhook,
    WebhookDelivery,
)
from coursepulse.models.types import utcnow

__all__ = [
    "ENROLLED_STATUSES",
    "ApiToken",
    "Certificate",
    "CertificateCounter",
    "Course",
    "CourseInstructor",
    "CourseStatus",
    "Enrollment",
    "EnrollmentStatus",
    "Lesson",
    "LessonCompletion",
    "LessonTime",
    "ProgressEvent",
    "ProgressEventKind",
    "ProgressReset",
    "ResetCompletion",
    "Role",
    "SigningKey",
    "User",
    "Webhook",
    "WebhookDelivery",
    "utcnow",
]
