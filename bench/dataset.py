"""Benchmark dataset: a school written straight into a migrated database with bulk INSERTs.

Default (scale 1): 100 published courses x 12 lessons, 10,000 students, 50,000 enrolments
and about 300,000 lesson completions; `--scale 10` multiplies students, enrolments and
completions by ten (the course count stays, so rosters grow).

The layout is a formula (`Layout`), so load scripts pick valid (course, student) pairs,
lesson ids and credentials without querying:

- user 1 is `bench_admin` (role admin, password `ADMIN_PASSWORD`, hashed by the service's
  `hash_password`);
- student u (0-based) is user id `u + 2`, username `student<u>`, password `STUDENT_PASSWORD`
  (one shared hash with lighter argon2id parameters: see `student_password_hash`);
- student u is enrolled in `Layout.courses_of(u)`: courses ((u*7 + k*step) % C) + 1 for k in
  0..per_student-1, except that every 4th student has course 1 (the largest course) instead
  of its last one;
- the lesson at position p (1-based) of course c has id (c-1)*L + p;
- an enrolment has completed the first `Layout.completed_count(u, course)` lessons, in order;
  the stored counters (courses.total_lessons, enrollments.completed_lessons, status COMPLETED
  with completed_at when every lesson is done) agree with the rows.

Runs on SQLite and PostgreSQL URLs:

    python bench/dataset.py --database-url sqlite+aiosqlite:///bench.db --recreate
    python bench/dataset.py --database-url postgresql+asyncpg://postgres@127.0.0.1/cp_bench \\
        --recreate --scale 10
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import SQLModel

from coursepulse import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from coursepulse.models.migrate import migrate, schema_engine
from coursepulse.resolvers.course_counts import recount
from coursepulse.resolvers.users import hash_password
from coursepulse.transfer.load import move_sequences

ADMIN_USERNAME = "bench_admin"
ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105  (a benchmark fixture, not a secret)
STUDENT_PASSWORD = "bench-student-password"  # noqa: S105
ADMIN_ID = 1
FIRST_STUDENT_ID = 2
#: The course every `BIG_COURSE_EVERY`-th student is also enrolled in: the largest roster.
BIG_COURSE_ID = 1
BIG_COURSE_EVERY = 4
BATCH = 5_000
#: Enrolment times start here, so every timestamp is in the past.
EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Layout:
    """The deterministic shape of the dataset; every id is a formula of it."""

    courses: int = 100
    lessons_per_course: int = 12
    students: int = 10_000
    per_student: int = 5

    @classmethod
    def for_scale(cls, scale: int = 1, *, courses: int = 100, students: int = 10_000) -> Layout:
        """The layout of `scale` times the default number of students (and so enrolments)."""
        return cls(courses=courses, students=students * scale, per_student=min(5, courses))

    @property
    def step(self) -> int:
        """Distance between a student's courses: 13 when that keeps them distinct, else 1."""
        offsets = {(k * 13) % self.courses for k in range(self.per_student)}
        return 13 if len(offsets) == self.per_student else 1

    def courses_of(self, u: int) -> list[int]:
        """Course ids student u is enrolled in, distinct, in enrolment order."""
        step = self.step
        chosen = [((u * 7 + k * step) % self.courses) + 1 for k in range(self.per_student)]
        if u % BIG_COURSE_EVERY == 0 and BIG_COURSE_ID not in chosen:
            chosen[-1] = BIG_COURSE_ID
        return chosen

    def user_id(self, u: int) -> int:
        return FIRST_STUDENT_ID + u

    def username(self, u: int) -> str:
        return f"student{u}"

    def lesson_id(self, course_id: int, position: int) -> int:
        return (course_id - 1) * self.lessons_per_course + position

    def enrollment_id(self, u: int, k: int) -> int:
        return u * self.per_student + k + 1

    def completed_count(self, u: int, course_id: int) -> int:
        """Lessons completed by student u in the course (0..L, mean about L/2)."""
        mixed = ((u + 1) * 2_654_435_761 + course_id * 40_503) & 0xFFFFFFFF
        return (mixed >> 7) % (self.lessons_per_course + 1)

    @property
    def enrollments(self) -> int:
        return self.students * self.per_student


@dataclass(frozen=True, slots=True)
class Summary:
    """What was written, and how long it took."""

    database: str
    layout: dict[str, int]
    users: int
    courses: int
    lessons: int
    enrollments: int
    completions: int
    completed_enrollments: int
    largest_course_id: int
    largest_course_enrollments: int
    seconds: float


def student_password_hash() -> str:
    """The students' shared hash: real argon2id, verified by the service's own code path.

    Its parameters are lighter than the service's (t=1, 16 MiB, one lane: ~12 ms instead of
    ~200 ms on one core), so the `complete` scenario's 64 students fill the auth cache in
    about a second instead of a quarter of a minute. The admin keeps the service's hash.
    """
    return PasswordHasher(time_cost=1, memory_cost=16_384, parallelism=1).hash(STUDENT_PASSWORD)


def _table(name: str) -> Table:
    return SQLModel.metadata.tables[name]


def _batches(rows: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _insert_all(
    connection: AsyncConnection, table: Table, rows: Iterator[dict[str, Any]]
) -> int:
    """Insert rows with executemany in batches; returns how many."""
    count = 0
    for batch in _batches(rows):
        await connection.execute(insert(table), batch)
        count += len(batch)
    return count


def _users(layout: Layout, admin_hash: str, student_hash: str) -> Iterator[dict[str, Any]]:
    yield {
        "id": ADMIN_ID,
        "username": ADMIN_USERNAME,
        "display_name": "Bench Admin",
        "email": "bench_admin@example.com",
        "avatar": None,
        "role": "admin",
        "password_hash": admin_hash,
        "created_at": EPOCH,
    }
    for u in range(layout.students):
        yield {
            "id": layout.user_id(u),
            "username": layout.username(u),
            "display_name": f"Student {u:06d}",
            "email": f"student{u}@example.com",
            "avatar": None,
            "role": "student",
            "password_hash": student_hash,
            "created_at": EPOCH,
        }


def _courses(layout: Layout) -> Iterator[dict[str, Any]]:
    for c in range(1, layout.courses + 1):
        yield {
            "id": c,
            "slug": f"bench-course-{c}",
            "title": f"Bench course {c}",
            "description": "A course of the benchmark dataset.",
            "status": "published",
            "total_lessons": layout.lessons_per_course,
            "created_at": EPOCH,
            "updated_at": EPOCH,
        }


def _lessons(layout: Layout) -> Iterator[dict[str, Any]]:
    for c in range(1, layout.courses + 1):
        for p in range(1, layout.lessons_per_course + 1):
            yield {
                "id": layout.lesson_id(c, p),
                "course_id": c,
                "title": f"Lesson {p} of course {c}",
                "position": p,
            }


def _enrolled_at(u: int, k: int) -> datetime:
    return EPOCH + timedelta(minutes=(u * 5 + k) % 200_000)


def _completion_time(enrolled_at: datetime, position: int) -> datetime:
    return enrolled_at + timedelta(hours=position)


def _enrollments(layout: Layout) -> Iterator[dict[str, Any]]:
    total = layout.lessons_per_course
    for u in range(layout.students):
        for k, course_id in enumerate(layout.courses_of(u)):
            done = layout.completed_count(u, course_id)
            enrolled_at = _enrolled_at(u, k)
            finished = done >= total > 0
            yield {
                "id": layout.enrollment_id(u, k),
                "user_id": layout.user_id(u),
                "course_id": course_id,
                "status": "completed" if finished else "active",
                "enrolled_at": enrolled_at,
                "completed_at": _completion_time(enrolled_at, total) if finished else None,
                "last_accessed_at": _completion_time(enrolled_at, done),
                "time_spent_seconds": done * 1_500 + (u % 7) * 60,
                "completed_lessons": done,
            }


def _completions(layout: Layout) -> Iterator[dict[str, Any]]:
    for u in range(layout.students):
        for k, course_id in enumerate(layout.courses_of(u)):
            enrolled_at = _enrolled_at(u, k)
            enrollment_id = layout.enrollment_id(u, k)
            for position in range(1, layout.completed_count(u, course_id) + 1):
                yield {
                    "enrollment_id": enrollment_id,
                    "lesson_id": layout.lesson_id(course_id, position),
                    "completed_at": _completion_time(enrolled_at, position),
                }


def _delete_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


async def recreate_database(database_url: str, *, admin_database: str = "postgres") -> None:
    """Start from nothing: delete the SQLite file, or drop and create the PostgreSQL database.

    For PostgreSQL the statements run on `admin_database` of the same server.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            _delete_sqlite_files(Path(url.database))
        return
    name = url.database
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"refusing to recreate database {name!r}: use letters, digits and _")
    engine = schema_engine(url.set(database=admin_database).render_as_string(hide_password=False))
    try:
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await autocommit.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


async def _largest_course(connection: AsyncConnection) -> tuple[int, int]:
    enrollments = _table("enrollments")
    row = (
        await connection.execute(
            select(enrollments.c.course_id, func.count())
            .group_by(enrollments.c.course_id)
            .order_by(func.count().desc(), enrollments.c.course_id)
            .limit(1)
        )
    ).one()
    return int(row[0]), int(row[1])


async def fill(engine: AsyncEngine, layout: Layout, *, database: str = "") -> Summary:
    """Migrate the (empty) database and write the dataset; returns what was written."""
    started = time.perf_counter()
    await migrate(engine.url)
    async with engine.connect() as connection:
        existing = await connection.scalar(select(func.count()).select_from(_table("users")))
    if existing:
        raise RuntimeError("the database already has users: pass --recreate to start over")
    # Two hashes in all: every student shares one password (hashing 10,000 times is slow).
    admin_hash = hash_password(ADMIN_PASSWORD)
    student_hash = student_password_hash()
    counts: dict[str, int] = {}
    async with engine.begin() as connection:
        counts["users"] = await _insert_all(
            connection, _table("users"), _users(layout, admin_hash, student_hash)
        )
        counts["courses"] = await _insert_all(connection, _table("courses"), _courses(layout))
        counts["lessons"] = await _insert_all(connection, _table("lessons"), _lessons(layout))
    async with engine.begin() as connection:
        counts["enrollments"] = await _insert_all(
            connection, _table("enrollments"), _enrollments(layout)
        )
        for statement in recount():  # the stored roster totals of the rows just written
            await connection.execute(statement)
    async with engine.begin() as connection:
        counts["completions"] = await _insert_all(
            connection, _table("lesson_completions"), _completions(layout)
        )
    if engine.dialect.name == "postgresql":
        # As autovacuum leaves a table some time after a bulk load: statistics, and the
        # visibility map that lets index-only scans (the roster's count) skip the heap.
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE"))
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await move_sequences(connection, list(SQLModel.metadata.sorted_tables))
        else:
            await connection.execute(text("ANALYZE"))
        completed = await connection.scalar(
            select(func.count())
            .select_from(_table("enrollments"))
            .where(_table("enrollments").c.status == "completed")
        )
        largest, largest_count = await _largest_course(connection)
    if engine.dialect.name == "sqlite":
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return Summary(
        database=database or engine.url.render_as_string(hide_password=True),
        layout=asdict(layout),
        users=counts["users"],
        courses=counts["courses"],
        lessons=counts["lessons"],
        enrollments=counts["enrollments"],
        completions=counts["completions"],
        completed_enrollments=int(completed or 0),
        largest_course_id=largest,
        largest_course_enrollments=largest_count,
        seconds=round(time.perf_counter() - started, 2),
    )


async def generate(
    database_url: str, layout: Layout, *, recreate: bool = False, admin_database: str = "postgres"
) -> Summary:
    """Write the dataset of `layout` into the database at `database_url`; returns a summary.

    With `recreate`, start from an empty database (PostgreSQL: dropped and created from
    `admin_database` on the same server).
    """
    if recreate:
        await recreate_database(database_url, admin_database=admin_database)
    engine = schema_engine(database_url)
    try:
        return await fill(engine, layout, database=make_url(database_url).render_as_string())
    finally:
        await engine.dispose()


async def check_consistency(engine: AsyncEngine) -> dict[str, int]:
    """Counts of rows that break the stored-counter rules; all zero when consistent.

    - `counter_mismatch`: enrolments whose completed_lessons differs from their completion rows;
    - `duplicate_completions`: (enrolment, lesson) pairs stored more than once;
    - `status_mismatch`: COMPLETED without every lesson done (or the reverse, for enrolled
      students), or a completed_at that disagrees with the status;
    - `total_mismatch`: courses whose total_lessons differs from their lessons;
    - `roster_count_mismatch`: courses whose stored count of students differs from their
      active and completed enrolments.
    """
    statements = {
        "counter_mismatch": """
            SELECT COUNT(*) FROM enrollments e
            LEFT JOIN (SELECT enrollment_id, COUNT(*) AS n FROM lesson_completions
                       GROUP BY enrollment_id) c ON c.enrollment_id = e.id
            WHERE e.completed_lessons <> COALESCE(c.n, 0)""",
        "duplicate_completions": """
            SELECT COUNT(*) FROM (SELECT enrollment_id, lesson_id FROM lesson_completions
                                  GROUP BY enrollment_id, lesson_id HAVING COUNT(*) > 1) d""",
        "status_mismatch": """
            SELECT COUNT(*) FROM enrollments e JOIN courses c ON c.id = e.course_id
            WHERE (e.status = 'completed' AND (e.completed_lessons < c.total_lessons
                                               OR e.completed_at IS NULL))
               OR (e.status = 'active' AND c.total_lessons > 0
                   AND e.completed_lessons >= c.total_lessons)
               OR (e.status <> 'completed' AND e.completed_at IS NOT NULL)""",
        "total_mismatch": """
            SELECT COUNT(*) FROM courses c
            LEFT JOIN (SELECT course_id, COUNT(*) AS n FROM lessons GROUP BY course_id) l
              ON l.course_id = c.id
            WHERE c.total_lessons <> COALESCE(l.n, 0)""",
        "roster_count_mismatch": """
            SELECT COUNT(*) FROM courses c
            LEFT JOIN course_counts k ON k.course_id = c.id
            LEFT JOIN (SELECT course_id, COUNT(*) AS n FROM enrollments
                       WHERE status IN ('active', 'completed') GROUP BY course_id) e
              ON e.course_id = c.id
            WHERE COALESCE(k.enrolled_students, 0) <> COALESCE(e.n, 0)""",
    }
    found: dict[str, int] = {}
    async with engine.connect() as connection:
        for name, statement in statements.items():
            found[name] = int(await connection.scalar(text(statement)) or 0)
    return found


def expected_completions(layout: Layout) -> int:
    """How many completion rows the layout writes (computed, not queried)."""
    return sum(
        layout.completed_count(u, course_id)
        for u in range(layout.students)
        for course_id in layout.courses_of(u)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate, then print the summary; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="sqlite+aiosqlite:///... or PG URL")
    parser.add_argument("--scale", type=int, default=1, help="multiply students (default 1)")
    parser.add_argument("--courses", type=int, default=100)
    parser.add_argument("--students", type=int, default=10_000, help="students at scale 1")
    parser.add_argument(
        "--recreate", action="store_true", help="delete the SQLite file or drop the PG database"
    )
    parser.add_argument("--check", action="store_true", help="verify the counters afterwards")
    args = parser.parse_args(argv)
    layout = Layout.for_scale(args.scale, courses=args.courses, students=args.students)
    summary = asyncio.run(generate(args.database_url, layout, recreate=args.recreate))
    rate = summary.completions / max(summary.seconds, 1e-9)
    print(
        f"{summary.users:,} users, {summary.courses} courses x {layout.lessons_per_course} "
        f"lessons, {summary.enrollments:,} enrolments ({summary.completed_enrollments:,} "
        f"completed), {summary.completions:,} completions in {summary.seconds:.1f} s "
        f"({math.floor(rate):,} completions/s); largest course {summary.largest_course_id} "
        f"with {summary.largest_course_enrollments:,} enrolments"
    )
    if args.check:

        async def check() -> dict[str, int]:
            engine = schema_engine(args.database_url)
            try:
                return await check_consistency(engine)
            finally:
                await engine.dispose()

        problems = asyncio.run(check())
        print("consistency:", problems)
        return 1 if any(problems.values()) else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
