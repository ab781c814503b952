"""Batched reads behind the GraphQL DataLoaders: one statement per batch of keys."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import (
    Certificate,
    Course,
    CourseInstructor,
    Enrollment,
    Lesson,
    LessonCompletion,
    User,
)
from coursepulse.resolvers.progress import next_lesson


async def users_by_id(session: AsyncSession, ids: Sequence[int]) -> dict[int, User]:
    rows = await session.scalars(select(User).where(User.id.in_(ids)))  # type: ignore[union-attr]
    return {user.id: user for user in rows}  # type: ignore[misc]


async def courses_by_id(session: AsyncSession, ids: Sequence[int]) -> dict[int, Course]:
    rows = await session.scalars(select(Course).where(Course.id.in_(ids)))  # type: ignore[union-attr]
    return {course.id: course for course in rows}  # type: ignore[misc]


async def lessons_by_course(
    session: AsyncSession, course_ids: Sequence[int]
) -> dict[int, list[Lesson]]:
    """Each course's lessons in course order."""
    rows = await session.scalars(
        select(Lesson)
        .where(Lesson.course_id.in_(course_ids))  # type: ignore[attr-defined]
        .order_by(Lesson.course_id, Lesson.position)
    )
    grouped: dict[int, list[Lesson]] = defaultdict(list)
    for lesson in rows:
        grouped[lesson.course_id].append(lesson)
    return grouped


async def completions_by_enrollment(
    session: AsyncSession, enrollment_ids: Sequence[int]
) -> dict[int, list[LessonCompletion]]:
    rows = await session.scalars(
        select(LessonCompletion).where(
            LessonCompletion.enrollment_id.in_(enrollment_ids)  # type: ignore[attr-defined]
        )
    )
    grouped: dict[int, list[LessonCompletion]] = defaultdict(list)
    for completion in rows:
        grouped[completion.enrollment_id].append(completion)
    return grouped


async def instructors_by_course(
    session: AsyncSession, course_ids: Sequence[int]
) -> dict[int, list[User]]:
    rows = await session.execute(
        select(CourseInstructor.course_id, User)
        .join(User, User.id == CourseInstructor.user_id)
        .where(CourseInstructor.course_id.in_(course_ids))  # type: ignore[attr-defined]
        .order_by(CourseInstructor.course_id, User.id)
    )
    grouped: dict[int, list[User]] = defaultdict(list)
    for course_id, user in rows:
        grouped[course_id].append(user)
    return grouped


async def enrollments_of_user(
    session: AsyncSession, user_id: int, course_ids: Sequence[int]
) -> dict[int, Enrollment]:
    """The user's enrolments (any status) in the given courses, by course id."""
    rows = await session.scalars(
        select(Enrollment).where(
            Enrollment.user_id == user_id,
            Enrollment.course_id.in_(course_ids),  # type: ignore[attr-defined]
        )
    )
    return {enrollment.course_id: enrollment for enrollment in rows}


async def certificates_by_enrollment(
    session: AsyncSession, enrollment_ids: Sequence[int]
) -> dict[int, Certificate]:
    rows = await session.scalars(
        select(Certificate).where(
            Certificate.enrollment_id.in_(enrollment_ids)  # type: ignore[attr-defined]
        )
    )
    return {certificate.enrollment_id: certificate for certificate in rows}


@dataclass(frozen=True, slots=True)
class ProgressDetails:
    """What a single progress answer shows beyond the counters."""

    lessons: list[Lesson]
    completions: list[LessonCompletion]
    certificate: Certificate | None

    @property
    def next_lesson(self) -> Lesson | None:
        return next_lesson(self.lessons, {row.lesson_id for row in self.completions})


async def progress_details(
    session: AsyncSession, course_id: int, enrollment_id: int
) -> ProgressDetails:
    """Lessons, completions and certificate of one enrolment (three statements)."""
    lessons = await lessons_by_course(session, [course_id])
    done = await completions_by_enrollment(session, [enrollment_id])
    issued = await certificates_by_enrollment(session, [enrollment_id])
    return ProgressDetails(
        lessons.get(course_id, []), done.get(enrollment_id, []), issued.get(enrollment_id)
    )
