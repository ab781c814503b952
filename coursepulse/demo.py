"""A small demo school: three courses, an instructor, students with progress."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import Course, CourseStatus, Role, User
from coursepulse.models.db import Database
from coursepulse.resolvers import completions, courses, enrollments, users
from coursepulse.resolvers.users import viewer_of


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: Role
    display_name: str


LOGINS = [
    DemoLogin("admin", "admin-password", Role.ADMIN, "Ada Admin"),
    DemoLogin("instructor", "instructor-password", Role.INSTRUCTOR, "Grace Hopper"),
    DemoLogin("john_doe", "student-password", Role.STUDENT, "John Doe"),
    DemoLogin("jane_roe", "student-password", Role.STUDENT, "Jane Roe"),
]

CATALOGUE = [
    (
        "Introduction to Web Development",
        "HTML, CSS and JavaScript from the first tag to a working page.",
        CourseStatus.PUBLISHED,
        [
            "How the Web Works",
            "HTML Structure",
            "Semantic HTML",
            "CSS Selectors",
            "The Box Model",
            "JavaScript Basics",
            "The DOM",
            "Events",
            "Fetching Data",
            "Forms",
            "Accessibility",
            "Shipping Your Site",
        ],
    ),
    (
        "Python for Data Analysis",
        "From lists and loops to tidy tables.",
        CourseStatus.PUBLISHED,
        ["Python Refresher", "Reading Files", "Tables", "Grouping", "Plotting"],
    ),
    (
        "Advanced GraphQL",
        "Schema design, DataLoaders and subscriptions (in preparation).",
        CourseStatus.DRAFT,
        ["Schema Design", "Batching", "Subscriptions"],
    ),
]


async def _user(session: AsyncSession, login: DemoLogin) -> User:
    existing = await session.scalar(select(User).where(User.username == login.username))
    if existing is not None:
        return existing
    return await users.create_user(
        session,
        username=login.username,
        password=login.password,
        display_name=login.display_name,
        role=login.role,
    )


async def load_demo(db: Database) -> list[DemoLogin]:
    """Create the demo users and catalogue unless already there; returns the logins."""
    async with db.write() as session:
        accounts = {login.username: await _user(session, login) for login in LOGINS}
        if await session.scalar(select(Course.id).limit(1)) is not None:
            return LOGINS
        teacher = viewer_of(accounts["instructor"])
        created = []
        for title, description, status, lessons in CATALOGUE:
            course = await courses.create_course(
                session, teacher, title=title, description=description, status=status
            )
            for lesson_title in lessons:
                await courses.add_lesson(session, teacher, course.id, title=lesson_title)  # type: ignore[arg-type]
            created.append(course)
        web_course = created[0]
        john = viewer_of(accounts["john_doe"])
        jane = viewer_of(accounts["jane_roe"])
        await enrollments.enroll(session, john, web_course.id)  # type: ignore[arg-type]
        await enrollments.enroll(session, jane, web_course.id)  # type: ignore[arg-type]
        lesson_ids = [
            lesson.id
            for lesson in await courses.course_lessons(session, web_course.id)  # type: ignore[arg-type]
        ]
        for lesson_id in lesson_ids[:5]:
            await completions.complete_lesson(session, john, web_course.id, lesson_id)  # type: ignore[arg-type]
        for seconds in (3600, 3600, 3600, 25 * 60):  # "3 hours 25 minutes" of study
            await enrollments.record_activity(session, john, web_course.id, seconds)  # type: ignore[arg-type]
        for lesson_id in lesson_ids:
            await completions.complete_lesson(session, jane, web_course.id, lesson_id)  # type: ignore[arg-type]
    return LOGINS
