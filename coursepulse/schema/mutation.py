"""The Mutation root: one write transaction per field; the payload is read after commit."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse import models
from coursepulse.resolvers import certificates, completions, courses, enrollments, users
from coursepulse.resolvers.completions import LessonChange
from coursepulse.resolvers.courses import CourseChanges
from coursepulse.resolvers.validation import parse_id
from coursepulse.schema.context import Context
from coursepulse.schema.inputs import CourseInput, CourseUpdateInput, LessonInput, UserInput
from coursepulse.schema.types import (
    ApiToken,
    Certificate,
    Course,
    Enrollment,
    EnrollPayload,
    Lesson,
    LessonCompletionPayload,
    NewApiToken,
    Progress,
    UnenrollPayload,
    User,
)

Info = strawberry.Info[Context]


@asynccontextmanager
async def _writing(info: Info) -> AsyncIterator[AsyncSession]:
    """A write transaction; afterwards the request's loaders forget what they read before."""
    async with info.context.db.write() as session:
        yield session
    await info.context.refresh()


def _lesson_payload(change: LessonChange) -> LessonCompletionPayload:
    return LessonCompletionPayload(
        message=change.message,
        lesson_id=strawberry.ID(str(change.lesson_id)),
        completed_at=change.completed_at,
        already_completed=change.already_completed,
        progress_percentage=change.progress.percentage,
        progress=Progress.from_record(change.progress),
    )


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def enroll(self, info: Info, courseId: strawberry.ID) -> EnrollPayload:
        course_id = parse_id(courseId, field="courseId")
        async with _writing(info) as session:
            record = await enrollments.enroll(session, info.context.viewer, course_id)
        return EnrollPayload(
            message="Successfully enrolled in course",
            enrollment=Enrollment.from_model(record.enrollment),
            progress=Progress.from_record(record),
        )

    @strawberry.mutation
    async def unenroll(self, info: Info, courseId: strawberry.ID) -> UnenrollPayload:
        course_id = parse_id(courseId, field="courseId")
        async with _writing(info) as session:
            await enrollments.unenroll(session, info.context.viewer, course_id)
        return UnenrollPayload(
            message="Successfully unenrolled from course", course_id=strawberry.ID(str(course_id))
        )

    @strawberry.mutation
    async def complete_lesson(
        self, info: Info, courseId: strawberry.ID, lessonId: strawberry.ID
    ) -> LessonCompletionPayload:
        course_id = parse_id(courseId, field="courseId")
        lesson_id = parse_id(lessonId, field="lessonId")
        viewer = info.context.viewer
        change = await info.context.db.change(
            lambda transaction: completions.complete_lesson(
                transaction, viewer, course_id, lesson_id
            )
        )
        await info.context.refresh()
        return _lesson_payload(change)

    @strawberry.mutation
    async def incomplete_lesson(
        self, info: Info, courseId: strawberry.ID, lessonId: strawberry.ID
    ) -> LessonCompletionPayload:
        course_id = parse_id(courseId, field="courseId")
        lesson_id = parse_id(lessonId, field="lessonId")
        viewer = info.context.viewer
        change = await info.context.db.change(
            lambda transaction: completions.incomplete_lesson(
                transaction, viewer, course_id, lesson_id
            )
        )
        await info.context.refresh()
        return _lesson_payload(change)

    @strawberry.mutation(
        description="Adds study time (a heartbeat from the player): 1..3600 seconds per call."
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
        async with _writing(info) as session:
            record = await enrollments.record_activity(
                session, info.context.viewer, course_id, seconds, lesson_id
            )
        return Progress.from_record(record)

    @strawberry.mutation
    async def create_course(self, info: Info, input: CourseInput) -> Course:
        async with _writing(info) as session:
            course = await courses.create_course(
                session,
                info.context.viewer,
                title=input.title,
                slug=input.slug,
                description=input.description,
                status=models.CourseStatus(input.status or models.CourseStatus.DRAFT),
            )
        return Course.from_model(course)

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
        )
        course_id = parse_id(id)
        async with _writing(info) as session:
            course = await courses.update_course(session, info.context.viewer, course_id, changes)
        return Course.from_model(course)

    @strawberry.mutation
    async def add_lesson(self, info: Info, courseId: strawberry.ID, input: LessonInput) -> Lesson:
        course_id = parse_id(courseId, field="courseId")
        async with _writing(info) as session:
            lesson = await courses.add_lesson(
                session, info.context.viewer, course_id, title=input.title, order=input.order
            )
        return Lesson.from_model(lesson)

    @strawberry.mutation
    async def rename_lesson(self, info: Info, id: strawberry.ID, title: str) -> Lesson:
        lesson_id = parse_id(id)
        async with _writing(info) as session:
            lesson = await courses.rename_lesson(session, info.context.viewer, lesson_id, title)
        return Lesson.from_model(lesson)

    @strawberry.mutation(description="Progress of every student is recomputed without the lesson.")
    async def delete_lesson(self, info: Info, id: strawberry.ID) -> Course:
        lesson_id = parse_id(id)
        async with _writing(info) as session:
            course = await courses.delete_lesson(session, info.context.viewer, lesson_id)
        return Course.from_model(course)

    @strawberry.mutation(description="lessonIds must list every lesson of the course exactly once.")
    async def reorder_lessons(
        self, info: Info, courseId: strawberry.ID, lessonIds: list[strawberry.ID]
    ) -> Course:
        course_id = parse_id(courseId, field="courseId")
        lesson_ids = [parse_id(value, field="lessonIds") for value in lessonIds]
        async with _writing(info) as session:
            course = await courses.reorder_lessons(
                session, info.context.viewer, course_id, lesson_ids
            )
        return Course.from_model(course)

    @strawberry.mutation
    async def add_instructor(
        self, info: Info, courseId: strawberry.ID, userId: strawberry.ID
    ) -> Course:
        course_id = parse_id(courseId, field="courseId")
        user_id = parse_id(userId, field="userId")
        async with _writing(info) as session:
            course = await courses.add_instructor(session, info.context.viewer, course_id, user_id)
        return Course.from_model(course)

    @strawberry.mutation(description="Admins only.")
    async def create_user(self, info: Info, input: UserInput) -> User:
        async with _writing(info) as session:
            user = await users.create_user_as(
                session,
                info.context.viewer,
                username=input.username,
                password=input.password,
                display_name=input.display_name,
                email=input.email,
                role=models.Role(input.role),
            )
        return User.from_model(user)

    @strawberry.mutation(
        description="Admins only; the certificate stays on record and verifies as invalid."
    )
    async def revoke_certificate(self, info: Info, certificateId: str, reason: str) -> Certificate:
        async with _writing(info) as session:
            row = await certificates.revoke(session, info.context.viewer, certificateId, reason)
        return Certificate.from_model(row, info.context.settings.base_url)

    @strawberry.mutation(
        description=(
            "Ends the viewer's credentials everywhere: cached sign-ins and open websockets"
            " that used the old password."
        )
    )
    async def change_password(self, info: Info, currentPassword: str, newPassword: str) -> User:
        async with _writing(info) as session:
            user = await users.change_password(
                session, info.context.viewer, currentPassword, newPassword
            )
        return User.from_model(user)

    @strawberry.mutation
    async def create_api_token(self, info: Info, name: str) -> NewApiToken:
        async with _writing(info) as session:
            token, row = await users.create_api_token(session, info.context.viewer, name)
        return NewApiToken(token=token, api_token=ApiToken.from_model(row))

    @strawberry.mutation(description="The token stops working at once, on open websockets too.")
    async def revoke_api_token(self, info: Info, id: strawberry.ID) -> ApiToken:
        token_id = parse_id(id)
        async with _writing(info) as session:
            row = await users.revoke_api_token(session, info.context.viewer, token_id)
        return ApiToken.from_model(row)

    @strawberry.mutation(description="Their live courseActivity subscriptions end with forbidden.")
    async def remove_instructor(
        self, info: Info, courseId: strawberry.ID, userId: strawberry.ID
    ) -> Course:
        course_id = parse_id(courseId, field="courseId")
        user_id = parse_id(userId, field="userId")
        async with _writing(info) as session:
            course = await courses.remove_instructor(
                session, info.context.viewer, course_id, user_id
            )
        return Course.from_model(course)
