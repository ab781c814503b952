"""The Query root: each field parses its arguments and hands the work to a resolver."""

from typing import Annotated

import strawberry

from coursepulse import models
from coursepulse.issuing import obtain_certificate
from coursepulse.resolvers import (
    access,
    certificates,
    courses,
    enrollments,
    roster,
    users,
    webhooks,
)
from coursepulse.resolvers.validation import parse_id
from coursepulse.schema.context import Context
from coursepulse.schema.enums import EnrollmentStatus, SortOrder, StudentOrderField
from coursepulse.schema.types import (
    ApiToken,
    Certificate,
    CertificateVerification,
    Course,
    CourseStats,
    Progress,
    StudentPage,
    User,
    Webhook,
)

Info = strawberry.Info[Context]


@strawberry.type
class Query:
    @strawberry.field(description="The authenticated user; null for anonymous requests.")
    async def me(self, info: Info) -> User | None:
        viewer = info.context.viewer
        if viewer is None:
            return None
        user = await info.context.loaders.users.load(viewer.user_id)
        return User.from_row(user) if user is not None else None

    @strawberry.field(
        description="Published courses (instructors and admins also see their drafts)."
    )
    async def courses(self, info: Info) -> list[Course]:
        rows = await courses.list_courses(await info.context.tx(), info.context.viewer)
        return [Course.from_row(row) for row in rows]

    @strawberry.field
    async def course(self, info: Info, id: strawberry.ID) -> Course | None:
        row = await access.course_if_visible(
            await info.context.tx(), info.context.viewer, parse_id(id)
        )
        return Course.from_row(row) if row is not None else None

    @strawberry.field(
        description="The viewer's courses with progress; no status means ACTIVE and COMPLETED."
    )
    async def my_courses(
        self, info: Info, status: EnrollmentStatus | None = None
    ) -> list[Progress]:
        records = await enrollments.my_courses(
            await info.context.tx(),
            info.context.viewer,
            models.EnrollmentStatus(status) if status else None,
        )
        return [Progress.from_record(record) for record in records]

    @strawberry.field(
        description=(
            "The viewer's progress, or userId's for the course's instructors and admins."
            " Fails with not_enrolled."
        )
    )
    async def course_progress(
        self, info: Info, courseId: strawberry.ID, userId: strawberry.ID | None = None
    ) -> Progress:
        course_id = parse_id(courseId, field="courseId")
        user_id = parse_id(userId, field="userId") if userId is not None else None
        record, following = await enrollments.course_progress_and_next_lesson(
            await info.context.tx(), info.context.viewer, course_id, user_id
        )
        # Read in the same statement: `nextLesson` needs no statement of its own.
        return Progress.from_record(record, next_lesson=following)

    @strawberry.field(
        description=(
            "The course roster, for the course's instructors and admins. perPage is capped at 100."
        )
    )
    async def course_students(
        self,
        info: Info,
        courseId: strawberry.ID,
        page: int = 1,
        perPage: int = 20,
        orderBy: StudentOrderField = StudentOrderField.ENROLLED_AT,
        order: SortOrder = SortOrder.DESC,
        search: str | None = None,
        status: Annotated[
            EnrollmentStatus | None,
            strawberry.argument(
                description="Only students with this status (UNENROLLED lists those who left)."
            ),
        ] = None,
        inactiveDays: Annotated[
            int | None,
            strawberry.argument(
                description="Only students with no learner action for at least this many days."
            ),
        ] = None,
    ) -> StudentPage:
        result = await roster.course_students(
            await info.context.tx(),
            info.context.viewer,
            parse_id(courseId, field="courseId"),
            page=page,
            per_page=perPage,
            order_by=orderBy,
            descending=order == SortOrder.DESC,
            search=search,
            status=models.EnrollmentStatus(status) if status else None,
            inactive_days=inactiveDays,
        )
        return StudentPage.from_page(result)

    @strawberry.field
    async def course_stats(self, info: Info, courseId: strawberry.ID) -> CourseStats:
        stats = await roster.course_stats(
            await info.context.tx(), info.context.viewer, parse_id(courseId, field="courseId")
        )
        return CourseStats.from_record(stats)

    @strawberry.field(
        description=(
            "Get or issue the viewer's certificate (idempotent). Fails with course_not_complete."
        )
    )
    async def certificate(self, info: Info, courseId: strawberry.ID) -> Certificate:
        course_id = parse_id(courseId, field="courseId")
        row = await obtain_certificate(
            info.context.db, info.context.viewer, course_id, may_issue=info.context.may_change
        )
        return Certificate.from_row(row, info.context.settings.base_url)

    @strawberry.field(description="The viewer's API tokens, revoked ones included.")
    async def my_api_tokens(self, info: Info) -> list[ApiToken]:
        rows = await users.my_api_tokens(await info.context.tx(), info.context.viewer)
        return [ApiToken.from_row(row) for row in rows]

    @strawberry.field(description="Public: anyone may check a certificate number.")
    async def verify_certificate(self, info: Info, certificateId: str) -> CertificateVerification:
        found = await certificates.verify(
            await info.context.tx(),
            info.context.viewer,
            certificateId,
            base_url=info.context.settings.base_url,
        )
        if found.certificate is None:
            return CertificateVerification(valid=False, certificate=None)
        certificate = Certificate.from_row(found.certificate, info.context.settings.base_url)
        certificate.certificate_url = found.certificate_url
        if not found.owner_view:
            certificate.open_badge_url = None
        return CertificateVerification(valid=found.valid, certificate=certificate)

    @strawberry.field(
        description="Webhooks the viewer may manage: a course's (its staff) or all (admins)."
    )
    async def webhooks(self, info: Info, courseId: strawberry.ID | None = None) -> list[Webhook]:
        course_id = parse_id(courseId, field="courseId") if courseId is not None else None
        rows = await webhooks.webhooks_for(await info.context.tx(), info.context.viewer, course_id)
        return [Webhook.from_row(row) for row in rows]
