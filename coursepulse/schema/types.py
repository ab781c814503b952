"""GraphQL object types of the contract, built from domain rows (`from_row`)."""

import dataclasses
from datetime import datetime
from typing import Any

import strawberry

from coursepulse import models
from coursepulse.models.rows import (
    ApiTokenRow,
    CertificateRow,
    CompletionRow,
    CourseRow,
    EnrollmentRow,
    LessonRow,
    ProgressEventRow,
    ProgressResetRow,
    UserRow,
    WebhookDeliveryRow,
    WebhookRow,
)
from coursepulse.models.types import utcnow
from coursepulse.resolvers.badges import badge_url
from coursepulse.resolvers.certificates import certificate_url
from coursepulse.resolvers.gates import OPEN, Gate, may_lock, student_gates
from coursepulse.resolvers.progress import (
    ProgressRecord,
    format_time_spent,
)
from coursepulse.resolvers.roster import CourseStats as CourseStatsRecord
from coursepulse.resolvers.roster import RosterPage, RosterUser
from coursepulse.resolvers.webhooks import deliveries_page_size, event_kinds
from coursepulse.schema.context import Context
from coursepulse.schema.enums import (
    CourseStatus,
    EnrollmentStatus,
    ProgressEventKind,
    Role,
)

#: Enrolment statuses by their stored value: a dict lookup, where calling the enum per row
#: of a roster page is a slow path of `enum`.
_STATUSES: dict[str, models.EnrollmentStatus] = {
    str(status): status for status in models.EnrollmentStatus
}


def enrollment_status(value: str) -> models.EnrollmentStatus:
    """The status a stored value names (ValueError for one that names none, as the enum)."""
    found = _STATUSES.get(value)
    return found if found is not None else models.EnrollmentStatus(value)


def gid(value: int | None) -> strawberry.ID:
    """The contract's ID form of a database integer."""
    return strawberry.ID(str(value))


@strawberry.type
class User:
    id: strawberry.ID
    username: str
    display_name: str
    avatar: str | None
    role: Role

    @classmethod
    def from_row(cls, user: UserRow) -> "User":
        return cls(
            id=gid(user.id),
            username=user.username,
            display_name=user.display_name,
            avatar=user.avatar,
            role=models.Role(user.role),
        )


@strawberry.type
class Lesson:
    id: strawberry.ID
    course_id: strawberry.ID
    title: str
    order: int = strawberry.field(description="1-based position in the course.")
    available_after_days: int | None = strawberry.field(
        description="Opens this many days after the student's enrolment (drip-fed)."
    )
    available_at: datetime | None = strawberry.field(
        description="Opens at this moment for everyone."
    )

    @classmethod
    def from_row(cls, lesson: LessonRow) -> "Lesson":
        return cls(
            id=gid(lesson.id),
            course_id=gid(lesson.course_id),
            title=lesson.title,
            order=lesson.position,
            available_after_days=lesson.available_after_days,
            available_at=lesson.available_at,
        )


@strawberry.type
class Course:
    id: strawberry.ID
    slug: str
    title: str
    description: str | None
    status: CourseStatus
    total_lessons: int
    sequential: bool = strawberry.field(
        description="A lesson opens once every lesson before it is complete."
    )
    _row: strawberry.Private[CourseRow]

    @classmethod
    def from_row(cls, course: CourseRow) -> "Course":
        return cls(
            id=gid(course.id),
            slug=course.slug,
            title=course.title,
            description=course.description,
            status=models.CourseStatus(course.status),
            total_lessons=course.total_lessons,
            sequential=bool(course.sequential),
            _row=course,
        )

    @strawberry.field
    async def lessons(self, info: strawberry.Info[Context]) -> list[Lesson]:
        rows = await info.context.loaders.lessons.load(self._row.id)  # type: ignore[arg-type]
        return [Lesson.from_row(row) for row in rows]

    @strawberry.field
    async def instructors(self, info: strawberry.Info[Context]) -> list[User]:
        rows = await info.context.loaders.instructors.load(self._row.id)  # type: ignore[arg-type]
        return [User.from_row(row) for row in rows]

    @strawberry.field(
        description="The viewer's own progress; null when the viewer is anonymous or not enrolled."
    )
    async def my_progress(self, info: strawberry.Info[Context]) -> "Progress | None":
        if info.context.viewer is None:
            return None
        enrollment = await info.context.loaders.my_enrollments.load(self._row.id)  # type: ignore[arg-type]
        if enrollment is None or enrollment.status not in models.ENROLLED_STATUSES:
            return None
        return Progress.from_record(ProgressRecord(enrollment, self._row))


@strawberry.type
class LessonProgress:
    lesson: Lesson
    completed: bool
    completed_at: datetime | None
    locked: bool = strawberry.field(
        description=(
            "Not open yet for this student (sequential order or drip date); completing it fails"
            " with lesson_locked."
        )
    )
    unlocks_at: datetime | None = strawberry.field(
        description="When a date opens it (null when it is open, or waits for earlier lessons)."
    )
    _enrollment_id: strawberry.Private[int]

    @strawberry.field(
        description="Study time recorded against this lesson (recordActivity with lessonId)."
    )
    async def time_spent_seconds(self, info: strawberry.Info[Context]) -> int:
        # One statement for every lesson of every enrolment asked for (a DataLoader).
        times = await info.context.loaders.lesson_times.load(self._enrollment_id)
        return times.get(int(self.lesson.id), 0)


@strawberry.type(
    description=(
        "A reset of one student's progress in one course: the audit trail keeps what was there."
    )
)
class ProgressReset:
    id: strawberry.ID
    course_id: strawberry.ID
    user_id: strawberry.ID
    reset_at: datetime
    reason: str | None
    previous_completed_lessons: int
    previous_progress_percentage: int
    previous_time_spent_seconds: int
    previous_completed_at: datetime | None
    _reset_by: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: ProgressResetRow) -> "ProgressReset":
        return cls(
            id=gid(row.id),
            course_id=gid(row.course_id),
            user_id=gid(row.user_id),
            reset_at=row.reset_at,
            reason=row.reason,
            previous_completed_lessons=row.previous_completed_lessons,
            previous_progress_percentage=row.previous_progress_percentage,
            previous_time_spent_seconds=row.previous_time_spent_seconds,
            previous_completed_at=row.previous_completed_at,
            _reset_by=row.reset_by,
        )

    @strawberry.field(description="Who reset it: the student, an instructor or an admin.")
    async def reset_by(self, info: strawberry.Info[Context]) -> User:
        user = await info.context.loaders.users.load(self._reset_by)
        assert user is not None  # a reset's author exists (foreign key)
        return User.from_row(user)


class _Unread:
    """Stands for a related row not read with its object (its loader reads it)."""


UNREAD = _Unread()


@strawberry.type(
    description="A student's progress through one course (the seed's progress object)."
)
class Progress:
    course_id: strawberry.ID
    user_id: strawberry.ID
    status: EnrollmentStatus
    progress_percentage: int = strawberry.field(
        description="floor(100 * completedLessons / totalLessons); 0 for a course without lessons."
    )
    completed_lessons: int
    total_lessons: int
    time_spent: str = strawberry.field(
        description="Human form, e.g. '3 hours 25 minutes', '1 hour', '0 minutes'."
    )
    time_spent_seconds: int
    last_accessed: datetime | None
    started_at: datetime
    completed_at: datetime | None
    _record: strawberry.Private[ProgressRecord]
    #: The next lesson's row when it was read with the progress (None: all complete).
    _next_lesson: strawberry.Private[LessonRow | _Unread | None] = UNREAD

    @classmethod
    def from_record(
        cls, record: ProgressRecord, next_lesson: LessonRow | _Unread | None = UNREAD
    ) -> "Progress":
        """The progress; `next_lesson`, when given, is what `nextLesson` answers."""
        enrollment = record.enrollment
        return cls(
            course_id=gid(enrollment.course_id),
            user_id=gid(enrollment.user_id),
            status=enrollment_status(enrollment.status),
            progress_percentage=record.percentage,
            completed_lessons=enrollment.completed_lessons,
            total_lessons=record.course.total_lessons,
            time_spent=format_time_spent(enrollment.time_spent_seconds),
            time_spent_seconds=enrollment.time_spent_seconds,
            last_accessed=enrollment.last_accessed_at,
            started_at=enrollment.enrolled_at,
            completed_at=enrollment.completed_at,
            _record=record,
            _next_lesson=next_lesson,
        )

    async def _lessons_and_done(
        self, info: strawberry.Info[Context]
    ) -> tuple[list[LessonRow], dict[int, CompletionRow]]:
        loaders = info.context.loaders
        lessons = await loaders.lessons.load(self._record.course.id)  # type: ignore[arg-type]
        completions = await loaders.completions.load(self._record.enrollment.id)  # type: ignore[arg-type]
        return lessons, {completion.lesson_id: completion for completion in completions}

    async def _gates(
        self, info: strawberry.Info[Context], lessons: list[LessonRow], completed: set[int]
    ) -> dict[int, Gate]:
        """Each lesson's gate for this student; none in a course where nothing can lock,
        nor for the course's instructors and admins (they preview)."""
        course, enrollment = self._record.course, self._record.enrollment
        if not may_lock(course, lessons):
            return {}
        loaders = info.context.loaders
        student = await loaders.users.load(enrollment.user_id)
        instructors = await loaders.instructors.load(course.id)  # type: ignore[arg-type]
        return student_gates(course, lessons, completed, enrollment, student, instructors, utcnow())

    @strawberry.field(description="The certificate's PDF address, once one was issued.")
    async def certificate_url(self, info: strawberry.Info[Context]) -> str | None:
        certificate = await info.context.loaders.certificates.load(
            self._record.enrollment.id  # type: ignore[arg-type]
        )
        if certificate is None:
            return None
        return certificate_url(info.context.settings.base_url, certificate)

    @strawberry.field(
        description=(
            "The newest of this student's events in the course, read with the rest of this"
            " progress in a query ('0' when none): pass it as `after` to progressUpdated to"
            " follow the bar from this value on, missing nothing."
        )
    )
    async def last_event_id(self, info: strawberry.Info[Context]) -> strawberry.ID:
        enrollment = self._record.enrollment
        key = (enrollment.user_id, enrollment.course_id)
        return gid(await info.context.loaders.last_events.load(key))  # type: ignore[arg-type]

    @strawberry.field(
        description="First lesson in course order not yet completed; null when all are complete."
    )
    def next_lesson(self, info: strawberry.Info[Context]) -> Lesson | None:
        # The lesson itself when it was read with the progress; else an awaitable of it
        # (graphql-core awaits what a resolver returns awaitable), batched by its loader.
        known = self._next_lesson
        if known is UNREAD:
            return self._load_next_lesson(info)  # type: ignore[return-value]
        return Lesson.from_row(known) if known is not None else None  # type: ignore[arg-type]

    async def _load_next_lesson(self, info: strawberry.Info[Context]) -> Lesson | None:
        lesson = await info.context.loaders.next_lessons.load(
            self._record.enrollment.id  # type: ignore[arg-type]
        )
        return Lesson.from_row(lesson) if lesson is not None else None

    @strawberry.field
    async def lessons(self, info: strawberry.Info[Context]) -> list[LessonProgress]:
        lessons, done = await self._lessons_and_done(info)
        enrollment_id: int = self._record.enrollment.id  # type: ignore[assignment]
        gates = await self._gates(info, lessons, set(done))
        return [
            LessonProgress(
                lesson=Lesson.from_row(lesson),
                completed=lesson.id in done,
                completed_at=done[lesson.id].completed_at if lesson.id in done else None,  # type: ignore[index]
                locked=gates.get(lesson.id, OPEN).locked,
                unlocks_at=gates.get(lesson.id, OPEN).unlocks_at,
                _enrollment_id=enrollment_id,
            )
            for lesson in lessons
        ]

    @strawberry.field(
        description=(
            "Earlier resets of this progress, newest first (the student, the course's staff"
            " and admins)."
        )
    )
    async def resets(self, info: strawberry.Info[Context]) -> list[ProgressReset]:
        enrollment_id: int = self._record.enrollment.id  # type: ignore[assignment]
        rows = await info.context.loaders.resets.load(enrollment_id)
        return [ProgressReset.from_row(row) for row in rows]

    @strawberry.field
    def course(self) -> Course:
        return Course.from_row(self._record.course)

    @strawberry.field
    async def student(self, info: strawberry.Info[Context]) -> "Student":
        user = await info.context.loaders.users.load(self._record.enrollment.user_id)
        assert user is not None  # an enrolment's user exists (foreign key)
        return Student.from_rows(self._record, user)


@strawberry.type(description="A user as enrolled in one course: a row of the course roster.")
class Student:
    user_id: strawberry.ID
    username: str
    display_name: str
    avatar: str | None
    status: EnrollmentStatus
    progress_percentage: int
    completed_lessons: int
    enrolled_at: datetime
    last_accessed: datetime | None
    completed_at: datetime | None
    _record: strawberry.Private[ProgressRecord]

    @classmethod
    def from_rows(cls, record: ProgressRecord, user: UserRow | RosterUser) -> "Student":
        enrollment = record.enrollment
        return cls(
            user_id=gid(user.id),
            username=user.username,
            display_name=user.display_name,
            avatar=user.avatar,
            status=enrollment_status(enrollment.status),
            progress_percentage=record.percentage,
            completed_lessons=enrollment.completed_lessons,
            enrolled_at=enrollment.enrolled_at,
            last_accessed=enrollment.last_accessed_at,
            completed_at=enrollment.completed_at,
            _record=record,
        )

    @strawberry.field
    def progress(self) -> Progress:
        return Progress.from_record(self._record)


@strawberry.type
class StudentPage:
    nodes: list[Student]
    total: int
    per_page: int
    current_page: int
    total_pages: int

    @classmethod
    def from_page(cls, page: RosterPage) -> "StudentPage":
        return cls(
            nodes=[
                Student.from_rows(ProgressRecord(row.enrollment, page.course), row.user)
                for row in page.rows
            ],
            total=page.total,
            per_page=page.per_page,
            current_page=page.page,
            total_pages=page.total_pages,
        )


@strawberry.type
class Certificate:
    certificate_id: str = strawberry.field(
        description="Human-readable number, e.g. CERT-2025-001; unique."
    )
    certificate_url: str = strawberry.field(
        description=(
            "Where the PDF is served by this service. Only its owner, the course's staff and"
            " admins learn this address; anyone else verifying a number gets the public"
            " verification page's address."
        )
    )
    issued_at: datetime
    course_id: strawberry.ID
    user_id: strawberry.ID
    course_title: str
    student_name: str
    revoked_at: datetime | None = strawberry.field(
        description=(
            "Set when an admin revoked the certificate; a revoked certificate verifies as invalid."
        )
    )
    open_badge_url: str | None = strawberry.field(
        description=(
            "The Open Badges 3.0 credential (a VC-JWT signed by this service,"
            " application/vc+jwt); its owner, the course's staff and admins."
        )
    )

    @classmethod
    def from_row(cls, certificate: CertificateRow, base_url: str) -> "Certificate":
        return cls(
            certificate_id=certificate.number,
            certificate_url=certificate_url(base_url, certificate),
            issued_at=certificate.issued_at,
            course_id=gid(certificate.course_id),
            user_id=gid(certificate.user_id),
            course_title=certificate.course_title,
            student_name=certificate.student_name,
            revoked_at=certificate.revoked_at,
            open_badge_url=badge_url(base_url, certificate),
        )


@strawberry.type
class CertificateVerification:
    valid: bool
    certificate: Certificate | None


@strawberry.type
class LessonStats:
    lesson: Lesson
    completed_count: int
    completion_rate: float = strawberry.field(
        description="Share of enrolled students who completed this lesson, 0..1."
    )
    reached_count: int = strawberry.field(
        description=(
            "Enrolled students who completed this lesson or any later one (the drop-off funnel)."
        )
    )
    average_time_spent_seconds: float = strawberry.field(
        description=(
            "Mean study time on this lesson over enrolled students who spent any, in seconds;"
            " 0 when none did."
        )
    )


@strawberry.type
class CourseStats:
    course_id: strawberry.ID
    enrolled_count: int
    active_count: int
    completed_count: int
    average_progress: float = strawberry.field(
        description="Mean progressPercentage of enrolled students, 0..100."
    )
    completion_rate: float = strawberry.field(description="completedCount / enrolledCount, 0..1.")
    lessons: list[LessonStats]
    last_event_id: strawberry.ID = strawberry.field(
        description=(
            "The course's newest event, read with these statistics ('0' when none): pass it as"
            " `after` to courseActivity to follow the course from this picture on. A query reads"
            " one snapshot, so a roster asked for beside it is the same picture."
        )
    )
    at_risk_count: int = strawberry.field(
        description="ACTIVE students with no learner action for 14 days or more."
    )

    @classmethod
    def from_record(cls, stats: CourseStatsRecord) -> "CourseStats":
        return cls(
            course_id=gid(stats.course_id),
            enrolled_count=stats.enrolled_count,
            active_count=stats.active_count,
            completed_count=stats.completed_count,
            average_progress=stats.average_progress,
            completion_rate=stats.completion_rate,
            lessons=[
                LessonStats(
                    lesson=Lesson.from_row(item.lesson),
                    completed_count=item.completed_count,
                    reached_count=item.reached_count,
                    average_time_spent_seconds=item.average_time_spent_seconds,
                    completion_rate=item.completion_rate,
                )
                for item in stats.lessons
            ],
            last_event_id=gid(stats.last_event_id),
            at_risk_count=stats.at_risk_count,
        )


@strawberry.type
class Enrollment:
    enrollment_id: strawberry.ID
    course_id: strawberry.ID
    user_id: strawberry.ID
    enrolled_at: datetime

    @classmethod
    def from_row(cls, enrollment: EnrollmentRow) -> "Enrollment":
        return cls(
            enrollment_id=gid(enrollment.id),
            course_id=gid(enrollment.course_id),
            user_id=gid(enrollment.user_id),
            enrolled_at=enrollment.enrolled_at,
        )


@strawberry.type
class EnrollPayload:
    message: str
    enrollment: Enrollment
    progress: Progress


@strawberry.type
class UnenrollPayload:
    message: str
    course_id: strawberry.ID


@strawberry.type
class LessonCompletionPayload:
    message: str
    lesson_id: strawberry.ID
    completed_at: datetime | None = strawberry.field(
        description="When the lesson was completed; null after incompleteLesson."
    )
    already_completed: bool = strawberry.field(
        description="True when completeLesson found the lesson already complete (nothing changed)."
    )
    progress_percentage: int
    progress: Progress
    _next_lesson: strawberry.Private[LessonRow | None]

    @strawberry.field(
        description=(
            "First lesson in course order not yet completed after the change; null when all are."
        )
    )
    def next_lesson(self) -> Lesson | None:
        return Lesson.from_row(self._next_lesson) if self._next_lesson is not None else None


@strawberry.type(
    description=(
        "One change to a student's progress, as pushed to subscribers and kept in the event log."
    )
)
class ProgressEvent:
    id: strawberry.ID = strawberry.field(
        description="Increasing; pass it back as `after` to resume without losing events."
    )
    kind: ProgressEventKind
    occurred_at: datetime
    course_id: strawberry.ID
    user_id: strawberry.ID
    lesson_id: strawberry.ID | None
    progress_percentage: int = strawberry.field(
        description="Snapshot taken when the event happened."
    )
    completed_lessons: int
    total_lessons: int
    #: Execution results of subscription documents on this event (schema/shared_events.py).
    shared_results: strawberry.Private[dict[Any, Any]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_row(cls, event: ProgressEventRow) -> "ProgressEvent":
        return cls(
            id=gid(event.id),
            kind=models.ProgressEventKind(event.kind),
            occurred_at=event.occurred_at,
            course_id=gid(event.course_id),
            user_id=gid(event.user_id),
            lesson_id=gid(event.lesson_id) if event.lesson_id is not None else None,
            progress_percentage=event.progress_percentage,
            completed_lessons=event.completed_lessons,
            total_lessons=event.total_lessons,
        )


@strawberry.type(
    description="An API token as its owner sees it; the secret itself is shown once, at creation."
)
class ApiToken:
    id: strawberry.ID
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, token: ApiTokenRow) -> "ApiToken":
        return cls(
            id=gid(token.id),
            name=token.name,
            created_at=token.created_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


@strawberry.type
class NewApiToken:
    token: str = strawberry.field(description="The secret, shown only here (cp_...).")
    api_token: ApiToken


@strawberry.type(
    description=(
        "A subscriber URL that receives the course-progress events, signed as Standard Webhooks."
    )
)
class Webhook:
    id: strawberry.ID
    url: str
    course_id: strawberry.ID | None = strawberry.field(
        description="Only this course's events; null for every course (admins only)."
    )
    events: list[ProgressEventKind] = strawberry.field(
        description="The event kinds sent; every kind when the list was left empty."
    )
    active: bool
    created_at: datetime
    disabled_at: datetime | None = strawberry.field(
        description="Set when deliveries kept failing and the webhook was switched off."
    )
    disabled_reason: str | None = strawberry.field(
        description=(
            "Why it was switched off: the failures, or its maker no longer managing the course."
        )
    )
    last_event_id: strawberry.ID = strawberry.field(
        description="Events up to this id were delivered (or are not for this webhook)."
    )
    _id: strawberry.Private[int]

    @classmethod
    def from_row(cls, webhook: WebhookRow) -> "Webhook":
        return cls(
            id=gid(webhook.id),
            url=webhook.url,
            course_id=gid(webhook.course_id) if webhook.course_id is not None else None,
            events=event_kinds(webhook),
            active=webhook.disabled_at is None,
            created_at=webhook.created_at,
            disabled_at=webhook.disabled_at,
            disabled_reason=webhook.disabled_reason,
            last_event_id=gid(webhook.last_event_id),
            _id=webhook.id,
        )

    @strawberry.field(description="Newest first.")
    async def deliveries(
        self, info: strawberry.Info[Context], first: int = 20
    ) -> list["WebhookDelivery"]:
        rows = await info.context.loaders.webhook_deliveries.load(
            (self._id, deliveries_page_size(first))
        )
        return [WebhookDelivery.from_row(row) for row in rows]


@strawberry.type
class WebhookDelivery:
    id: strawberry.ID
    event_id: strawberry.ID = strawberry.field(
        description=(
            "The event delivered; also the webhook-id header, so receivers can drop repeats."
        )
    )
    attempt: int
    response_status: int | None = strawberry.field(
        description="The receiver's HTTP status; null when no answer came."
    )
    succeeded: bool
    attempted_at: datetime
    next_attempt_at: datetime | None
    error: str | None

    @classmethod
    def from_row(cls, delivery: WebhookDeliveryRow) -> "WebhookDelivery":
        return cls(
            id=gid(delivery.id),
            event_id=gid(delivery.event_id),
            attempt=delivery.attempt,
            response_status=delivery.response_status,
            succeeded=delivery.succeeded,
            attempted_at=delivery.attempted_at,
            next_attempt_at=delivery.next_attempt_at,
            error=delivery.error,
        )


@strawberry.type
class NewWebhook:
    webhook: Webhook
    secret: str = strawberry.field(description="The signing secret (whsec_...), shown only here.")
