"""The raw baseline: aiohttp + aiosqlite or asyncpg, no SQLAlchemy, no GraphQL, no coursepulse code.

It answers the `progress` scenario's request (POST /graphql with the CourseProgress
variables and Basic auth) with the same data and JSON shape as the service, doing the SQL
a progress read needs: the course row, the enrolment row, and the course's lessons joined
with the enrolment's completions (for nextLesson). A request whose variables carry
`perPage` is the `roster` scenario's: the service's two roster statements (the count and
a page by completed lessons). Credentials are verified with argon2 the first time and
then remembered by the SHA-256 of the header, as the service's cache does.

With `--one-statement`, the progress read is one statement (the course, the enrolment
and its next lesson, as the service reads them): what a raw handler reaches in one
round trip, the ceiling for the service's progress read on this stack.

SQLite: one aiosqlite connection per process, statements in autocommit (a shared
connection cannot hold one transaction per concurrent request). PostgreSQL: an asyncpg
pool of 10 connections, each statement on its own.

    python bench/baseline.py --database /tmp/bench.db --port 8100
    python bench/baseline.py --database postgresql://postgres@127.0.0.1/coursepulse_bench
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import asyncpg
from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Store:
    """Statements with `?` placeholders on SQLite (aiosqlite) or PostgreSQL (asyncpg)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.postgres = database.startswith("postgresql://")
        self._sqlite: aiosqlite.Connection | None = None
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        if self.postgres:
            self._pool = await asyncpg.create_pool(self.database, min_size=10, max_size=10)
            return
        self._sqlite = await aiosqlite.connect(self.database, isolation_level=None)
        await self._sqlite.execute("PRAGMA journal_mode=WAL")
        await self._sqlite.execute("PRAGMA busy_timeout=30000")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        if self._sqlite is not None:
            await self._sqlite.close()

    async def all(self, sql: str, arguments: tuple[Any, ...]) -> list[Any]:
        if self._pool is not None:
            return list(await self._pool.fetch(_numbered(sql), *arguments))
        assert self._sqlite is not None
        async with self._sqlite.execute(sql, arguments) as cursor:
            return list(await cursor.fetchall())

    async def one(self, sql: str, arguments: tuple[Any, ...]) -> Any | None:
        rows = await self.all(sql, arguments)
        return rows[0] if rows else None


def _numbered(sql: str) -> str:
    """`?` placeholders as asyncpg's `$1`, `$2`, ..."""
    parts = sql.split("?")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], start=1)) + parts[-1]


CONNECTION: web.AppKey[Store] = web.AppKey("connection", Store)
VIEWERS: web.AppKey[dict[str, tuple[int, str]]] = web.AppKey("viewers", dict)
ONE_STATEMENT: web.AppKey[bool] = web.AppKey("one_statement", bool)
ENROLLED = ("active", "completed")
_hasher = PasswordHasher()

COURSE_SQL = "SELECT id, status, total_lessons FROM courses WHERE id = ?"
ENROLLMENT_SQL = (
    "SELECT id, user_id, course_id, status, enrolled_at, completed_at, last_accessed_at,"
    " time_spent_seconds, completed_lessons FROM enrollments WHERE user_id = ? AND course_id = ?"
)
LESSONS_SQL = (
    "SELECT l.id, l.title, l.position, c.id IS NOT NULL FROM lessons l"
    " LEFT JOIN lesson_completions c ON c.lesson_id = l.id AND c.enrollment_id = ?"
    " WHERE l.course_id = ? ORDER BY l.position"
)
#: `--one-statement`: the course, the enrolment and its next lesson in one statement, as the
#: service reads them (coursepulse/resolvers/enrollments.py COURSE_WITH_ENROLLMENT).
ONE_SQL = (
    "SELECT c.id, c.status, c.total_lessons, e.id, e.user_id, e.course_id, e.status,"
    " e.enrolled_at, e.completed_at, e.last_accessed_at, e.time_spent_seconds,"
    " e.completed_lessons, l.id, l.title, l.position FROM courses c"
    " LEFT JOIN enrollments e ON e.course_id = c.id AND e.user_id = ?"
    " LEFT JOIN lessons l ON l.id = (SELECT f.id FROM lessons f WHERE f.course_id = c.id"
    " AND NOT EXISTS (SELECT 1 FROM lesson_completions lc WHERE lc.enrollment_id = e.id"
    " AND lc.lesson_id = f.id) ORDER BY f.position LIMIT 1)"
    " WHERE c.id = ?"
)
USER_SQL = "SELECT id, role, password_hash FROM users WHERE username = ?"
ROSTER_COUNT_SQL = (
    "SELECT count(*) FROM enrollments WHERE course_id = ?"
    " AND (status = 'active' OR status = 'completed')"
)
ROSTER_PAGE_SQL = (
    "SELECT e.user_id, u.username, u.display_name, e.status, e.completed_lessons,"
    " e.enrolled_at, e.last_accessed_at FROM enrollments e JOIN users u ON u.id = e.user_id"
    " WHERE e.course_id = ? AND (e.status = 'active' OR e.status = 'completed')"
    " ORDER BY e.completed_lessons DESC, e.id DESC LIMIT ? OFFSET ?"
)


def _error(code: str, status: int, message: str) -> web.Response:
    body = {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def _timestamp(value: str | datetime | None) -> str | None:
    """SQLite's naive UTC text or asyncpg's aware value as the service prints it (ISO 8601)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return datetime.fromisoformat(value).replace(tzinfo=UTC).isoformat()


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def _time_spent(seconds: int) -> str:
    """The service's human form of study time, e.g. '3 hours 25 minutes'."""
    hours, minutes = divmod(max(0, seconds) // 60, 60)
    if hours and minutes:
        return f"{_plural(hours, 'hour')} {_plural(minutes, 'minute')}"
    if hours:
        return _plural(hours, "hour")
    return _plural(minutes, "minute")


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def _viewer(request: web.Request) -> tuple[int, str] | None:
    """(user id, role) for the Basic header, verified once and then cached by digest."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    digest = hashlib.sha256(header.encode()).hexdigest()
    cache = request.app[VIEWERS]
    found = cache.get(digest)
    if found is not None:
        return found
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, _, password = base64.b64decode(value).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    row = await request.app[CONNECTION].one(USER_SQL, (username,))
    if row is None or not await asyncio.to_thread(_verify, row[2], password):
        return None
    cache[digest] = (int(row[0]), str(row[1]))
    return cache[digest]


async def progress(request: web.Request) -> web.Response:
    """courseProgress(courseId, userId) with the scenario's fields, from three statements."""
    viewer = await _viewer(request)
    if viewer is None:
        return _error("invalid_credentials", 401, "Invalid username or password")
    try:
        variables = json.loads(await request.read())["variables"]
        if "perPage" in variables:
            return await roster(request, viewer, variables)
        course_id = int(variables["courseId"])
        user_id = int(variables.get("userId") or viewer[0])
    except (ValueError, KeyError, TypeError):
        return _error("invalid_input", 400, "Expected courseId and userId variables")
    if user_id != viewer[0] and viewer[1] != "admin":
        return _error("forbidden", 200, "Only admins may see other students' progress")
    store = request.app[CONNECTION]
    if request.app[ONE_STATEMENT]:
        row = await store.one(ONE_SQL, (user_id, course_id))
        course, enrollment = (row[0:3], row[3:12]) if row is not None else (None, None)
        following = row[12:15] if row is not None and row[12] is not None else None
    else:
        course = await store.one(COURSE_SQL, (course_id,))
        enrollment = await store.one(ENROLLMENT_SQL, (user_id, course_id))
    if course is None or course[1] != "published":
        return _error("not_found", 200, f"Course {course_id} not found")
    if enrollment is None or enrollment[0] is None or enrollment[3] not in ENROLLED:
        return _error("not_enrolled", 200, "This student is not enrolled in this course")
    if not request.app[ONE_STATEMENT]:
        lessons = await store.all(LESSONS_SQL, (enrollment[0], course_id))
        following = next((row for row in lessons if not row[3]), None)
    total, done = int(course[2]), int(enrollment[8])
    body: dict[str, Any] = {
        "data": {
            "courseProgress": {
                "courseId": str(course_id),
                "userId": str(user_id),
                "status": str(enrollment[3]).upper(),
                "progressPercentage": min(100, math.floor(100 * done / total)) if total else 0,
                "completedLessons": done,
                "totalLessons": total,
                "timeSpent": _time_spent(int(enrollment[7])),
                "lastAccessed": _timestamp(enrollment[6]),
                "startedAt": _timestamp(enrollment[4]),
                "completedAt": _timestamp(enrollment[5]),
                "nextLesson": (
                    {"id": str(following[0]), "title": following[1], "order": following[2]}
                    if following is not None
                    else None
                ),
            }
        }
    }
    return web.Response(
        text=json.dumps(body, separators=(",", ":")), content_type="application/json"
    )


async def roster(
    request: web.Request, viewer: tuple[int, str], variables: dict[str, Any]
) -> web.Response:
    """courseStudents(courseId, perPage, page), by progress descending: count and page."""
    if viewer[1] != "admin":
        return _error("forbidden", 200, "Only staff may see the roster")
    course_id, per_page = int(variables["courseId"]), min(100, int(variables["perPage"]))
    page = int(variables.get("page") or 1)
    store = request.app[CONNECTION]
    course = await store.one(COURSE_SQL, (course_id,))
    if course is None:
        return _error("not_found", 200, f"Course {course_id} not found")
    total = int((await store.one(ROSTER_COUNT_SQL, (course_id,)))[0])
    rows = await store.all(ROSTER_PAGE_SQL, (course_id, per_page, (page - 1) * per_page))
    lessons = int(course[2])
    nodes = [
        {
            "userId": str(row[0]),
            "username": row[1],
            "displayName": row[2],
            "status": str(row[3]).upper(),
            "progressPercentage": min(100, math.floor(100 * row[4] / lessons)) if lessons else 0,
            "enrolledAt": _timestamp(row[5]),
            "lastAccessed": _timestamp(row[6]),
        }
        for row in rows
    ]
    body = {
        "data": {
            "courseStudents": {
                "total": total,
                "perPage": per_page,
                "currentPage": page,
                "totalPages": max(1, math.ceil(total / per_page)),
                "nodes": nodes,
            }
        }
    }
    return web.Response(
        text=json.dumps(body, separators=(",", ":")), content_type="application/json"
    )


async def readyz(request: web.Request) -> web.Response:
    """200 once the database answers (the bench driver waits for it)."""
    await request.app[CONNECTION].one("SELECT 1", ())
    return web.json_response({"status": "ok"})


def create_app(database: str, *, one_statement: bool = False) -> web.Application:
    """The baseline application over a SQLite file or a postgresql:// DSN."""
    app = web.Application()
    app[VIEWERS] = {}
    app[ONE_STATEMENT] = one_statement

    async def connection_ctx(app: web.Application) -> Any:
        store = Store(database)
        await store.open()
        app[CONNECTION] = store
        yield
        await store.close()

    app.cleanup_ctx.append(connection_ctx)
    app.router.add_post("/graphql", progress)
    app.router.add_get("/readyz", readyz)
    return app


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    """uvloop's loop for `uvloop` (or `auto` when installed), else asyncio's."""
    if kind in ("uvloop", "auto"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def main() -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description="raw aiohttp + aiosqlite/asyncpg baseline")
    parser.add_argument(
        "--database", required=True, help="path of the SQLite file, or a postgresql:// DSN"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    parser.add_argument(
        "--one-statement",
        action="store_true",
        help="read a progress in one statement, as the service does (default: three)",
    )
    args = parser.parse_args()
    loop = _new_loop(args.loop)
    asyncio.set_event_loop(loop)
    web.run_app(
        create_app(args.database, one_statement=args.one_statement),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        loop=loop,
    )


if __name__ == "__main__":
    main()
