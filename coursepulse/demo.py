"""A small demo school: three courses, an instructor, students with progress."""

from dataclasses import dataclass

from sqlalchemy import bindparam, select

from coursepulse.models import Course, CourseStatus, Role, User
from coursepulse.models.db import Database
from coursepulse.models.rows import UserRow
from coursepulse.models.sql import Query
from coursepulse.models.transactions import Transaction
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

_USERS = User.__table__
_USER_NAMED = Query(select(_USERS).where(_USERS.c.username == bindparam("username")))
_ANY_COURSE = Query(select(Course.__table__.c.id).limit(1))


async def _account(tx: Transaction, login: DemoLogin, new: users.NewUser) -> UserRow:
    """The login's user: the one already there, else the prepared one, stored now."""
    existing = await tx.first(_USER_NAMED, username=login.username)
    if existing is not None:
        return existing
    return await users.add_user(tx, new)


async def load_demo(db: Database) -> list[DemoLogin]:
    """Create the demo users and catalogue unless already there; returns the logins."""
    # Passwords are hashed before the write transaction takes the database.
    prepared = [
        await users.prepare_user(
            username=login.username,
            password=login.password,
            display_name=login.display_name,
            role=login.role,
        )
        for login in LOGINS
    ]
    async with db.write() as tx:
        accounts = {
            login.username: await _account(tx, login, new)
            for login, new in zip(LOGINS, prepared, strict=True)
        }
        if await tx.first(_ANY_COURSE) is not None:
            return LOGINS
        teacher = viewer_of(accounts["instructor"])
        created = []
        for title, description, status, lesson_titles in CATALOGUE:
            course = await courses.create_course(
                tx, teacher, title=title, description=description, status=status
            )
            lessons = [
                await courses.add_lesson(tx, teacher, course.id, title=lesson_title)
                for lesson_title in lesson_titles
            ]
            created.append((course, [lesson.id for lesson in lessons]))
        web_course, lesson_ids = created[0]
        john = viewer_of(accounts["john_doe"])
        jane = viewer_of(accounts["jane_roe"])
        await enrollments.enroll(tx, john, web_course.id)
        await enrollments.enroll(tx, jane, web_course.id)
        for lesson_id in lesson_ids[:5]:
            await completions.complete_lesson(tx, john, web_course.id, lesson_id)
        for seconds in (3600, 3600, 3600, 25 * 60):  # "3 hours 25 minutes" of study
            await enrollments.record_activity(tx, john, web_course.id, seconds)
        for lesson_id in lesson_ids:
            await completions.complete_lesson(tx, jane, web_course.id, lesson_id)
    return LOGINS
