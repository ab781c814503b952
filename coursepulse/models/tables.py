"""The SQLModel tables of the course-progress domain.

Counters that lists sort or page by (`courses.total_lessons`,
`enrollments.completed_lessons`, `course_counts.enrolled_students`) are stored and kept
current by the resolvers in the same transaction as the rows they count.
"""

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlmodel import Field, SQLModel

from coursepulse.models.enums import CourseStatus, EnrollmentStatus, Role
from coursepulse.models.types import BigCount, BigId, UTCDateTime, utcnow

#: `info` key of a schema object that exists on one engine only (the migrations and their
#: check skip it elsewhere: models/migrate.include_on).
ONLY_ON = "only_on"

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _timestamp(*, nullable: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(UTCDateTime(), nullable=nullable)


def _fk(target: str, *, index: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(BigId, ForeignKey(target, ondelete="CASCADE"), nullable=False, index=index)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    username: str = Field(sa_column=Column(String(60), nullable=False, unique=True))
    display_name: str = Field(sa_column=Column(String(120), nullable=False))
    email: str | None = Field(default=None, sa_column=Column(String(254), nullable=True))
    avatar: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    role: str = Field(default=Role.STUDENT, sa_column=Column(String(16), nullable=False))
    password_hash: str = Field(sa_column=Column(String(255), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


_USERS = User.__table__  # type: ignore[attr-defined]
#: The roster by name: a walk down the users in name order, each probed for the enrolment.
Index("ix_users_display_name_lower", func.lower(_USERS.c.display_name), _USERS.c.id)


class ApiToken(SQLModel, table=True):
    """An API token; only the SHA-256 digest of the secret is kept."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    user_id: int = Field(sa_column=_fk("users.id", index=True))
    name: str = Field(sa_column=Column(String(100), nullable=False))
    token_digest: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    #: When the token last signed a request in, to the minute (not written per request).
    last_used_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    #: Set when the token was revoked; a revoked token no longer authenticates.
    revoked_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class Course(SQLModel, table=True):
    __tablename__ = "courses"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    slug: str = Field(sa_column=Column(String(120), nullable=False, unique=True))
    title: str = Field(sa_column=Column(String(200), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(default=CourseStatus.DRAFT, sa_column=Column(String(16), nullable=False))
    total_lessons: int = Field(default=0, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    #: A lesson opens once every lesson before it is complete.
    sequential: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )


class CourseInstructor(SQLModel, table=True):
    __tablename__ = "course_instructors"

    course_id: int = Field(
        sa_column=Column(BigId, ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True)
    )
    user_id: int = Field(
        sa_column=Column(
            BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
        )
    )


class CourseCount(SQLModel, table=True):
    """How many students a course's roster lists (enrolments active or completed).

    A row of its own, not a column of `courses`: enrolling updates it under a row lock,
    which must not queue behind the share lock learner actions hold on the course row.
    A course nobody ever enrolled in may have no row (0 students).
    """

    __tablename__ = "course_counts"

    course_id: int = Field(
        sa_column=Column(BigId, ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True)
    )
    enrolled_students: int = Field(default=0, nullable=False)


class Lesson(SQLModel, table=True):
    __tablename__ = "lessons"
    __table_args__ = (Index("ix_lessons_course_id_position", "course_id", "position"),)

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    course_id: int = Field(sa_column=_fk("courses.id"))
    title: str = Field(sa_column=Column(String(200), nullable=False))
    #: 1-based position in the course; positions of a course are 1..total_lessons.
    position: int = Field(nullable=False)
    #: Opens this many days after the student's enrolment (drip-fed); None: no such wait.
    available_after_days: int | None = Field(default=None, nullable=True)
    #: Opens at this moment for everyone; None: no such date.
    available_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class Enrollment(SQLModel, table=True):
    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("user_id", "course_id"),
        # Counts and statistics by status within a course (covering).
        Index("ix_enrollments_course_progress", "course_id", "status", "completed_lessons", "id"),
        # Roster orderings: a page is a walk down one of these within the course, stopping
        # after perPage rows (the status filter is checked on the way).
        Index("ix_enrollments_roster_progress", "course_id", "completed_lessons", "id"),
        Index("ix_enrollments_roster_enrolled_at", "course_id", "enrolled_at", "id"),
        Index("ix_enrollments_roster_last_accessed", "course_id", "last_accessed_at", "id"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    user_id: int = Field(sa_column=_fk("users.id"))
    course_id: int = Field(sa_column=_fk("courses.id"))
    status: str = Field(
        default=EnrollmentStatus.ACTIVE, sa_column=Column(String(16), nullable=False)
    )
    enrolled_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    completed_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    last_accessed_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    time_spent_seconds: int = Field(default=0, sa_type=BigCount, nullable=False)
    completed_lessons: int = Field(default=0, nullable=False)
    #: How far the study time credited so far reaches on the clock (an allowance that
    #: refills one second per second: recorded time never outruns the clock); None: the
    #: allowance is full.
    activity_credited_to: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    #: When the last ACTIVITY event was logged (heartbeats are coalesced against it).
    last_activity_event_at: datetime | None = Field(
        default=None, sa_column=_timestamp(nullable=True)
    )


_ENROLLMENTS = Enrollment.__table__  # type: ignore[attr-defined]
# The roster by last access, never-accessed last in both directions (models/sql.nulls_last):
# PostgreSQL walks this index for the descending order, SQLite this one for the ascending.
Index(
    "ix_enrollments_roster_last_accessed_desc",
    _ENROLLMENTS.c.course_id,
    _ENROLLMENTS.c.last_accessed_at.desc().nulls_last(),
    _ENROLLMENTS.c.id.desc(),
    info={ONLY_ON: "postgresql"},
).ddl_if(dialect="postgresql")
Index(
    "ix_enrollments_roster_never_accessed",
    _ENROLLMENTS.c.course_id,
    _ENROLLMENTS.c.last_accessed_at.is_(None),
    _ENROLLMENTS.c.last_accessed_at,
    _ENROLLMENTS.c.id,
    info={ONLY_ON: "sqlite"},
).ddl_if(dialect="sqlite")


class LessonCompletion(SQLModel, table=True):
    __tablename__ = "lesson_completions"
    __table_args__ = (UniqueConstraint("enrollment_id", "lesson_id"),)

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    enrollment_id: int = Field(sa_column=_fk("enrollments.id"))
    lesson_id: int = Field(sa_column=_fk("lessons.id", index=True))
    completed_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class LessonTime(SQLModel, table=True):
    """Study time an enrolment recorded against one lesson (recordActivity with lessonId)."""

    __tablename__ = "lesson_times"

    enrollment_id: int = Field(
        sa_column=Column(BigId, ForeignKey("enrollments.id", ondelete="CASCADE"), primary_key=True)
    )
    lesson_id: int = Field(
        sa_column=Column(
            BigId, ForeignKey("lessons.id", ondelete="CASCADE"), primary_key=True, index=True
        )
    )
    seconds: int = Field(default=0, sa_type=BigCount, nullable=False)


class ProgressReset(SQLModel, table=True):
    """A reset of one enrolment's progress: who, when, why, and what was there before."""

    __tablename__ = "progress_resets"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    enrollment_id: int = Field(sa_column=_fk("enrollments.id", index=True))
    course_id: int = Field(sa_column=_fk("courses.id"))
    user_id: int = Field(sa_column=_fk("users.id"))
    reset_at: datetime = Field(sa_column=_timestamp())
    reset_by: int = Field(sa_column=_fk("users.id"))
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    previous_completed_lessons: int = Field(nullable=False)
    previous_progress_percentage: int = Field(nullable=False)
    previous_time_spent_seconds: int = Field(sa_type=BigCount, nullable=False)
    previous_completed_at: datetime | None = Field(
        default=None, sa_column=_timestamp(nullable=True)
    )


class ResetCompletion(SQLModel, table=True):
    """A lesson completion that a reset took out of the live progress, kept as history."""

    __tablename__ = "reset_completions"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    reset_id: int = Field(sa_column=_fk("progress_resets.id", index=True))
    enrollment_id: int = Field(sa_column=_fk("enrollments.id"))
    lesson_id: int = Field(sa_column=_fk("lessons.id", index=True))
    completed_at: datetime = Field(sa_column=_timestamp())


class ProgressEvent(SQLModel, table=True):
    """The event log (outbox): one row per change to a student's progress."""

    __tablename__ = "progress_events"
    __table_args__ = (
        Index("ix_progress_events_course_id_id", "course_id", "id"),
        Index("ix_progress_events_user_id_course_id_id", "user_id", "course_id", "id"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    occurred_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    course_id: int = Field(sa_column=_fk("courses.id"))
    user_id: int = Field(sa_column=_fk("users.id"))
    lesson_id: int | None = Field(default=None, sa_type=BigId, nullable=True)
    progress_percentage: int = Field(nullable=False)
    completed_lessons: int = Field(nullable=False)
    total_lessons: int = Field(nullable=False)


class Certificate(SQLModel, table=True):
    """A certificate of completion: one per enrolment, kept on record when revoked.

    Course title and student name are snapshots taken at issue time.
    """

    __tablename__ = "certificates"
    __table_args__ = (UniqueConstraint("year", "sequence"),)

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    #: Human-readable number, e.g. CERT-2025-001.
    number: str = Field(sa_column=Column(String(32), nullable=False, unique=True))
    #: Unguessable id used in the PDF's URL.
    token: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    enrollment_id: int = Field(
        sa_column=Column(
            BigId, ForeignKey("enrollments.id", ondelete="CASCADE"), nullable=False, unique=True
        )
    )
    course_id: int = Field(sa_column=_fk("courses.id", index=True))
    user_id: int = Field(sa_column=_fk("users.id", index=True))
    year: int = Field(nullable=False)
    sequence: int = Field(nullable=False)
    issued_at: datetime = Field(sa_column=_timestamp())
    course_title: str = Field(sa_column=Column(String(200), nullable=False))
    student_name: str = Field(sa_column=Column(String(120), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    revoked_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class CertificateCounter(SQLModel, table=True):
    """The last certificate sequence number handed out in a year (a row lock serializes issuers)."""

    __tablename__ = "certificate_counters"

    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_sequence: int = Field(default=0, nullable=False)


class SigningKey(SQLModel, table=True):
    """A key that signs the Open Badges credentials (a private JWK). The newest one not
    retired signs; every key stays published, so what older keys signed still verifies."""

    __tablename__ = "signing_keys"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    kid: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    private_jwk: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    retired_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class Webhook(SQLModel, table=True):
    """A subscriber URL that receives course-progress events from the log, signed as
    Standard Webhooks. Delivery follows the log with a cursor (`last_event_id`), one
    event at a time, so a receiver sees a course's events in order."""

    __tablename__ = "webhooks"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    url: str = Field(sa_column=Column(String(2048), nullable=False))
    #: Only this course's events; None: every course (admins only).
    course_id: int | None = Field(
        default=None,
        sa_column=Column(BigId, ForeignKey("courses.id", ondelete="CASCADE"), index=True),
    )
    #: The event kinds sent, comma-separated; empty: every kind.
    events: str = Field(default="", sa_column=Column(String(400), nullable=False))
    #: The signing secret (whsec_...): kept, since every delivery is signed with it.
    secret: str = Field(sa_column=Column(String(100), nullable=False))
    created_by: int = Field(sa_column=_fk("users.id", index=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    #: Set when deliveries kept failing (or its maker lost the right to it): switched off.
    disabled_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    disabled_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: Events up to this id were delivered (or were not for this webhook).
    last_event_id: int = Field(default=0, sa_type=BigId, nullable=False)
    #: Failed attempts at the next event so far.
    failed_attempts: int = Field(default=0, nullable=False)
    #: When the next event's first failed attempt was made (None: not failing).
    failing_since: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    #: No attempt before this moment (the retry's backoff).
    next_attempt_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    #: The process delivering now (a random token) and until when its claim holds.
    claim_token: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    claimed_until: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class WebhookDelivery(SQLModel, table=True):
    """One attempt to deliver one event to one webhook (kept for a while, for its owner)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),)

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    webhook_id: int = Field(sa_column=_fk("webhooks.id"))
    event_id: int = Field(sa_type=BigId, nullable=False)
    #: 1 for the first attempt at this event, 2 for the first retry, ...
    attempt: int = Field(nullable=False)
    response_status: int | None = Field(default=None, nullable=True)
    succeeded: bool = Field(sa_column=Column(Boolean, nullable=False))
    attempted_at: datetime = Field(sa_column=_timestamp())
    #: When the event is tried again (None: delivered, or the webhook was switched off).
    next_attempt_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


_DELIVERIES = WebhookDelivery.__table__  # type: ignore[attr-defined]
#: Old deliveries are pruned by age.
Index("ix_webhook_deliveries_attempted_at", _DELIVERIES.c.attempted_at)
