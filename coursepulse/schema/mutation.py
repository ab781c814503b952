"""The Mutation root: one write transaction per field; the payload is read after commit."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import strawberry

from coursepulse import models
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers import (
    certificates,
    completions,
    courses,
    enrollments,
    resets,
    users,
    webhooks,
)
from coursepulse.resolvers.completions import LessonChange
from coursepulse.resolvers.courses import CourseChanges
from coursepulse.resolvers.validation import parse_id
from coursepulse.schema.context import Context
from coursepulse.schema.inputs import (
    CourseInput,
    CourseUpdateInput,
    LessonInput,
    LessonUpdateInput,
    UserInput,
    WebhookInput,
)
from coursepulse.schema.types import (
    ApiToken,
    Certificate,
    Course,
    Enrollment,
    EnrollPayload,
    Lesson,
    LessonCompletionPayload,
    NewApiToken,
    NewWebhook,
    Progress,
    UnenrollPayload,
    User,
    Webhook,
)

Info = strawberry.Info[Context]


@asynccontextmanager
async def _writing(info: Info) -> AsyncIterator[Transaction]:
    """A write transaction; afterwards the request's loaders forget what they read before."""
    async with info.context.db.write() as tx:
        yield tx
    await info.context.refresh()


def _lesson_payload(change: LessonChange) -> LessonCompletionPayload:
    return LessonCompletionPayload(
        message=change.message,
        lesson_id=strawberry.ID(str(change.lesson_id)),
        completed_at=change.completed_at,
        already_completed=change.already_completed,
        progress_percentage=change.progress.percentage,
        progress=Progress.from_record(change.progress),
        _next_lesson=change.next_lesson,
    )


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def enroll(self, info: Info, courseId: strawberry.ID) -> EnrollPayload:
        course_id = parse_id(courseId, field="courseId")
        async with _writing(info) as tx:
            record = await enrollments.enroll(tx, info.context.viewer, course_id)
        return EnrollPayload(
            message=enrollments.ENROLLED_MESSAGE,
            enrollment=Enrollment.from_row(record.enrollment),
            progress=Progress.from_record(record),
        )

    @strawberry.mutation
    async def unenroll(self, info: Info, courseId: strawberry.ID) -> UnenrollPayload:
        course_id = parse_id(courseId, field="courseId")
        async with _writing(info) as tx:
            await enrollments.unenroll(tx, info.context.viewer, course_id)
        return UnenrollPayload(
            message=enrollments.UNENROLLED_MESSAGE, course_id=strawberry.ID(str(course_id))
        )

    @strawberry.mutation
    async def complete_lesson(
        self, info: Info, courseId: strawberry.ID, lessonId: strawberry.ID
    ) -> LessonCompletionPayload:
        course_id = parse_id(courseId, field="courseId")
        lesson_id = parse_id(lessonId, field="lessonId")
        async with _writing(info) as tx:
            change = await completions.complete_lesson(
                tx, info.context.viewer, course_id, lesson_id
            )
        return _lesson_payload(change)

    @strawberry.mutation
    async def incomplete_lesson(
        self, info: Info, courseId: strawberry.ID, lessonId: strawberry.ID
    ) -> LessonCompletionPayload:
        course_id = parse_id(courseId, field="courseId")
        lesson_id = parse_id(lessonId, field="lessonId")
        async with _writing(info) as tx:
            change = await completions.incomplete_lesson(
                tx, info.context.viewer, course_id, lesson_id
            )
        return _lesson_payload(change)

    @strawberry.mutation(
        description=(
            "Adds study time (a heartbeat from the player): 1..3600 seconds per call, credited"
            " as far as the enrolment's allowance goes (recorded time never outruns the clock)."
        )
    )
    async def record_activity(
        self,
        info: Info,
        courseId: strawberry.ID,
        seconds: int,
        lessonId: strawberry.ID | None = None,
    ) -> Progress:
        course_id = parse_id(courseId, field="courseId")
        lesson_id = parse_id(lessonId, field="lessonId") if lessonId is not None else None
        async with _writing(info) as tx:
            record = await enrollments.record_activity(
                tx,
                info.context.viewer,
                course_id,
                seconds,
                lesson_id,
                allowance=info.context.settings.activity_allowance_seconds,
            )
        return Progress.from_record(record)

    @strawberry.mutation
    async def create_course(self, info: Info, input: CourseInput) -> Course:
        async with _writing(info) as tx:
            course = await courses.create_course(
                tx,
                info.context.viewer,
                title=input.title,
                slug=input.slug,
                description=input.description,
                status=models.CourseStatus(input.status or models.CourseStatus.DRAFT),
                sequential=bool(input.sequential),
            )
        return Course.from_row(course)

    @strawberry.mutation
    async def update_course(
        self,
        info: Info,
        id: strawberry.ID,
        input: CourseUpdateInput,
    ) -> Course:
        changes = CourseChanges(
            title=input.title,
            slug=input.slug,
            description=input.description,
            status=models.CourseStatus(input.status) if input.status is not None else None,
            sequential=input.sequential,
        )
        course_id = parse_id(id)
        async with _writing(info) as tx:
            course = await courses.update_course(tx, info.context.viewer, course_id, changes)
        return Course.from_row(course)

    @strawberry.mutation
    async def add_lesson(self, info: Info, courseId: strawberry.ID, input: LessonInput) -> Lesson:
        course_id = parse_id(courseId, field="courseId")
        async with _writing(info) as tx:
            lesson = await courses.add_lesson(
                tx,
                info.context.viewer,
                course_id,
                title=input.title,
                order=input.order,
                available_after_days=input.available_after_days,
                available_at=input.available_at,
            )
        return Lesson.from_row(lesson)

    @strawberry.mutation(description="Omitted fields stay as they are; null clears a date.")
    async def update_lesson(
        self, info: Info, id: strawberry.ID, input: LessonUpdateInput
    ) -> Lesson:
        lesson_id = parse_id(id)
        changes = courses.LessonChanges(
            title=input.title if input.title is not strawberry.UNSET else None,
            available_after_days=_unless_unset(input.available_after_days),
            available_at=_unless_unset(input.available_at),
        )
        async with _writing(info) as tx:
            lesson = await courses.update_lesson(tx, info.context.viewer, lesson_id, changes)
        return Lesson.from_row(lesson)

    @strawberry.mutation
    async def rename_lesson(self, info: Info, id: strawberry.ID, title: str) -> Lesson:
        lesson_id = parse_id(id)
        async with _writing(info) as tx:
            lesson = await courses.rename_lesson(tx, info.context.viewer, lesson_id, title)
        return Lesson.from_row(lesson)

    @strawberry.mutation(description="Progress of every student is recomputed without the lesson.")
    async def delete_lesson(self, info: Info, id: strawberry.ID) -> Course:
        lesson_id = parse_id(id)
        async with _writing(info) as tx:
            course = await courses.delete_lesson(tx, info.context.viewer, lesson_id)
        return Course.from_row(course)

    @strawberry.mutation(description="lessonIds must list every lesson of the course exactly once.")
    async def reorder_lessons(
        self, info: Info, courseId: strawberry.ID, lessonIds: list[strawberry.ID]
    ) -> Course:
        course_id = parse_id(courseId, field="courseId")
        lesson_ids = [parse_id(value, field="lessonIds") for value in lessonIds]
        async with _writing(info) as tx:
            course = await courses.reorder_lessons(tx, info.context.viewer, course_id, lesson_ids)
        return Course.from_row(course)

    @strawberry.mutation
    async def add_instructor(
        self, info: Info, courseId: strawberry.ID, userId: strawberry.ID
    ) -> Course:
        course_id = parse_id(courseId, field="courseId")
        user_id = parse_id(userId, field="userId")
        async with _writing(info) as tx:
            course = await courses.add_instructor(tx, info.context.viewer, course_id, user_id)
        return Course.from_row(course)

    @strawberry.mutation(description="Admins only.")
    async def create_user(self, info: Info, input: UserInput) -> User:
        async with _writing(info) as tx:
            user = await users.create_user_as(
                tx,
                info.context.viewer,
                username=input.username,
                password=input.password,
                display_name=input.display_name,
                email=input.email,
                role=models.Role(input.role),
            )
        return User.from_row(user)

    @strawberry.mutation(
        description="Admins only; the certificate stays on record and verifies as invalid."
    )
    async def revoke_certificate(self, info: Info, certificateId: str, reason: str) -> Certificate:
        async with _writing(info) as tx:
            row = await certificates.revoke(tx, info.context.viewer, certificateId, reason)
        return Certificate.from_row(row, info.context.settings.base_url)

    @strawberry.mutation(
        description=(
            "Ends the viewer's credentials everywhere: cached sign-ins and open websockets"
            " that used the old password."
        )
    )
    async def change_password(self, info: Info, currentPassword: str, newPassword: str) -> User:
        # The passwords are verified and hashed between the read and the write, in no
        # transaction (argon2 is slow by design).
        holder = await users.password_holder(await info.context.tx(), info.context.viewer)
        await info.context.refresh()
        change = await users.prepare_password_change(holder, currentPassword, newPassword)
        async with _writing(info) as tx:
            user = await users.change_password(tx, info.context.viewer, change)
        return User.from_row(user)

    @strawberry.mutation
    async def create_api_token(self, info: Info, name: str) -> NewApiToken:
        async with _writing(info) as tx:
            token, row = await users.create_api_token(tx, info.context.viewer, name)
        return NewApiToken(token=token, api_token=ApiToken.from_row(row))

    @strawberry.mutation(description="The token stops working at once, on open websockets too.")
    async def revoke_api_token(self, info: Info, id: strawberry.ID) -> ApiToken:
        token_id = parse_id(id)
        async with _writing(info) as tx:
            row = await users.revoke_api_token(tx, info.context.viewer, token_id)
        return ApiToken.from_row(row)

    @strawberry.mutation(
        description=(
            "Starts the course over for a student (own progress, or userId's for the course's"
            " staff and admins); the old state is kept in Progress.resets."
        )
    )
    async def reset_progress(
        self,
        info: Info,
        courseId: strawberry.ID,
        userId: strawberry.ID | None = None,
        reason: str | None = None,
    ) -> Progress:
        course_id = parse_id(courseId, field="courseId")
        user_id = parse_id(userId, field="userId") if userId is not None else None
        async with _writing(info) as tx:
            record = await resets.reset_progress(
                tx, info.context.viewer, course_id, user_id, reason
            )
        return Progress.from_record(record)

    @strawberry.mutation(description="Their live courseActivity subscriptions end with forbidden.")
    async def remove_instructor(
        self, info: Info, courseId: strawberry.ID, userId: strawberry.ID
    ) -> Course:
        course_id = parse_id(courseId, field="courseId")
        user_id = parse_id(userId, field="userId")
        async with _writing(info) as tx:
            course = await courses.remove_instructor(tx, info.context.viewer, course_id, user_id)
        return Course.from_row(course)

    @strawberry.mutation
    async def create_webhook(self, info: Info, input: WebhookInput) -> NewWebhook:
        course_id = parse_id(input.course_id, field="courseId") if input.course_id else None
        async with _writing(info) as tx:
            secret, row = await webhooks.create_webhook(
                tx,
                info.context.viewer,
                url=input.url,
                course_id=course_id,
                events=[models.ProgressEventKind(kind) for kind in input.events or ()],
                allow_private=info.context.settings.webhook_allow_private,
            )
        return NewWebhook(webhook=Webhook.from_row(row), secret=secret)

    @strawberry.mutation
    async def delete_webhook(self, info: Info, id: strawberry.ID) -> Webhook:
        webhook_id = parse_id(id)
        async with _writing(info) as tx:
            row = await webhooks.delete_webhook(tx, info.context.viewer, webhook_id)
        return Webhook.from_row(row)

    @strawberry.mutation(
        description=(
            "Sends the webhook's events after afterEventId again, in order"
            " (replay after an outage)."
        )
    )
    async def redeliver_webhook(
        self, info: Info, id: strawberry.ID, afterEventId: strawberry.ID
    ) -> Webhook:
        webhook_id = parse_id(id)
        after = webhooks.parse_event_cursor(afterEventId)
        async with _writing(info) as tx:
            row = await webhooks.redeliver_webhook(tx, info.context.viewer, webhook_id, after)
        return Webhook.from_row(row)


def _unless_unset(value: Any) -> Any:
    """An input field's value, or courses.UNCHANGED when the request left it out."""
    return courses.UNCHANGED if value is strawberry.UNSET else value
