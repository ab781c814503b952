"""Fixtures: a real, migrated database per test (SQLite file and PostgreSQL), a real HTTP app.

Every test that takes `db` (or `client`) runs twice: on SQLite and on PostgreSQL.
PostgreSQL runs when COURSEPULSE_TEST_POSTGRES_URL is set (CI sets it) and is
skipped, with the reason shown, when it is not. A fresh PostgreSQL database is
created for the test session and dropped at its end.
"""

import asyncio
import base64
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from coursepulse.app import create_app
from coursepulse.models import CourseStatus, Role
from coursepulse.models.db import BACKGROUND_WORK, Database
from coursepulse.models.migrate import migrate, schema_engine
from coursepulse.resolvers import courses, users
from coursepulse.resolvers.users import viewer_of
from coursepulse.resolvers.viewer import Viewer
from coursepulse.settings import Settings

POSTGRES_ENV = "COURSEPULSE_TEST_POSTGRES_URL"
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing() -> Iterator[None]:
    """Real argon2, with the cheapest parameters: tests create many users."""
    original = users._hasher
    users._hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    yield
    users._hasher = original


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file that each test copies."""
    path = tmp_path_factory.mktemp("template") / "template.db"

    async def build() -> None:
        url = f"sqlite+aiosqlite:///{path}"
        await migrate(url)
        engine = schema_engine(url)
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        await engine.dispose()

    asyncio.run(build())
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a migrated PostgreSQL database made for this test session."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PostgreSQL tests: set {POSTGRES_ENV}")
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+asyncpg://postgres@127.0.0.1/test)"
        )
    url = make_url(base)
    name = f"coursepulse_test_{uuid.uuid4().hex[:10]}"

    async def admin(statement: str) -> None:
        engine = schema_engine(url)
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.exec_driver_sql(statement)
        await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    test_url = url.set(database=name).render_as_string(hide_password=False)

    asyncio.run(migrate(test_url))
    yield test_url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "coursepulse.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database.from_url(database_url)
    if database.dialect == "postgresql":
        tables = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
        async with database.write() as tx:
            await tx.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield database
    await database.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        public_url="http://testserver",
        allowed_origins=["http://spa.example"],
        auth_cache_seconds=30,
    )


@pytest.fixture
async def client(db: Database, settings: Settings) -> AsyncIterator[TestClient]:
    """An HTTP client for the real app, served on a real local port."""
    app = create_app(settings, database=db)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
async def serve(db: Database) -> AsyncIterator[Any]:
    """`await serve(settings)`: a client of an app built from those settings on this test's
    database, served on a real port; every one is closed at the end of the test."""
    clients: list[TestClient] = []

    async def start(settings: Settings) -> TestClient:
        test_client = TestClient(TestServer(create_app(settings, database=db)))
        await test_client.start_server()
        clients.append(test_client)
        return test_client

    yield start
    for test_client in clients:
        await test_client.close()


class StatementCounter:
    """Counts SQL statements sent to the database while active."""

    def __init__(self, database: Database) -> None:
        self.observers = database.observers
        self.statements: list[str] = []
        #: Transactions begun while active.
        self.transactions = 0

    def _observe(self, statement: str) -> None:
        if BACKGROUND_WORK.get():
            return  # the webhook worker's, not the request's
        words = statement.lstrip().upper()
        if words.startswith("BEGIN"):
            self.transactions += 1
        elif not words.startswith("PRAGMA"):
            self.statements.append(statement)

    def __enter__(self) -> "StatementCounter":
        self.observers.append(self._observe)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.observers.remove(self._observe)

    @property
    def count(self) -> int:
        return len(self.statements)


#: Ends every connection to a database but the caller's: what the service sees of a restart.
END_OTHER_CONNECTIONS = text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = :name AND pid <> pg_backend_pid()"
)


async def end_connections(database_url: str) -> None:
    """PostgreSQL ends every connection to the test database, the service's pool included."""
    admin = schema_engine(database_url)
    try:
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(
                END_OTHER_CONNECTIONS, {"name": make_url(database_url).database}
            )
    finally:
        await admin.dispose()


@pytest.fixture
def count_statements(db: Database) -> StatementCounter:
    return StatementCounter(db)


# ---- building a school ---------------------------------------------------------------


@dataclass
class Account:
    viewer: Viewer
    username: str
    password: str = PASSWORD

    @property
    def id(self) -> int:
        return self.viewer.user_id

    @property
    def auth(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


async def make_user(
    db: Database,
    username: str,
    *,
    role: Role = Role.STUDENT,
    display_name: str | None = None,
) -> Account:
    async with db.write() as tx:
        user = await users.create_user(
            tx, username=username, password=PASSWORD, role=role, display_name=display_name
        )
    return Account(viewer=viewer_of(user), username=username)


@dataclass
class School:
    admin: Account
    instructor: Account
    student: Account
    other_student: Account
    course_id: int
    lesson_ids: list[int]


async def make_course(
    db: Database,
    instructor: Account,
    *,
    title: str = "Introduction to Web Development",
    lessons: int = 4,
    status: CourseStatus = CourseStatus.PUBLISHED,
) -> tuple[int, list[int]]:
    async with db.write() as tx:
        course = await courses.create_course(tx, instructor.viewer, title=title, status=status)
        lesson_ids = []
        for number in range(1, lessons + 1):
            lesson = await courses.add_lesson(
                tx,
                instructor.viewer,
                course.id,
                title=f"Lesson {number}",
            )
            lesson_ids.append(lesson.id)
    return course.id, lesson_ids


@pytest.fixture
async def school(db: Database) -> School:
    """An admin, an instructor teaching a published 4-lesson course, two students."""
    admin = await make_user(db, "admin", role=Role.ADMIN, display_name="Ada Admin")
    instructor = await make_user(
        db, "instructor", role=Role.INSTRUCTOR, display_name="Grace Hopper"
    )
    student = await make_user(db, "john_doe", display_name="John Doe")
    other = await make_user(db, "jane_roe", display_name="Jane Roe")
    course_id, lesson_ids = await make_course(db, instructor)
    return School(admin, instructor, student, other, course_id, lesson_ids)


async def graphql(
    client: TestClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    as_: Account | None = None,
    expect_status: int = 200,
) -> dict[str, Any]:
    """POST a GraphQL document over HTTP; returns the JSON body."""
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers=as_.auth if as_ else {},
    )
    assert response.status == expect_status, await response.text()
    return await response.json()


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]
