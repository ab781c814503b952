"""SQL statements and transactions per operation, counted in-process on a bench dataset.

The service runs in this process (its app factory over aiohttp's test server) on a
database whose statements are counted (`Database.observers`), so a query per row shows up
as a count that grows with the page size. Operations are the bench scenarios' requests, sent
after one warm-up request per credential (cached credentials cost no statement).

    python bench/statements.py --database-url sqlite+aiosqlite:////tmp/bench.db
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from dataclasses import dataclass
from typing import Any

import dataset
from aiohttp.test_utils import TestClient, TestServer

from coursepulse.app import create_app
from coursepulse.models.db import Database
from coursepulse.settings import Settings


@dataclass(slots=True)
class Counter:
    """Statements seen since the last reset (BEGIN is counted as a transaction instead)."""

    statements: int = 0
    transactions: int = 0
    recording: bool = False

    def reset(self) -> None:
        self.statements = 0
        self.transactions = 0


def basic(username: str, password: str) -> str:
    """The Basic Authorization header for a login."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _attach(db: Database, counter: Counter) -> None:
    """Counts the statements and transactions (BEGINs) the database's transactions send."""

    def _observe(sql: str) -> None:
        if not counter.recording:
            return
        statement = sql.strip().upper()
        if statement.startswith("BEGIN"):
            counter.transactions += 1
        elif not statement.startswith("PRAGMA"):
            counter.statements += 1

    db.observers.append(_observe)


async def count_operations(
    database_url: str, layout: dataset.Layout, queries: dict[str, str], largest_course: int
) -> dict[str, dict[str, int]]:
    """{operation: {"statements": n, "transactions": m, "status": http status}}."""
    db = Database(database_url)
    counter = Counter()
    _attach(db, counter)
    # The webhook worker's periodic look for webhooks to deliver is not an operation's: it
    # would be counted in whichever request it happened to run beside.
    settings = Settings(database_url=database_url, log_level="WARNING", webhook_delivery=False)
    app = create_app(settings, database=db)
    admin = basic(dataset.ADMIN_USERNAME, dataset.ADMIN_PASSWORD)
    student_u = 1
    student = basic(layout.username(student_u), dataset.STUDENT_PASSWORD)
    course = layout.courses_of(student_u)[0]
    lesson = layout.lesson_id(course, layout.lessons_per_course)
    user_id = layout.user_id(student_u)
    results: dict[str, dict[str, int]] = {}
    try:
        async with TestClient(TestServer(app)) as client:

            async def measure(name: str, method: str, path: str, auth: str, body: Any) -> None:
                counter.recording = True
                counter.reset()
                kwargs: dict[str, Any] = {"headers": {"Authorization": auth}}
                if body is not None:
                    kwargs["json"] = body
                response = await client.request(method, path, **kwargs)
                payload = await response.text()
                counter.recording = False
                if response.status == 200 and '"errors"' in payload:
                    raise RuntimeError(f"{name}: {payload[:300]}")
                results[name] = {
                    "statements": counter.statements,
                    "transactions": counter.transactions,
                    "status": response.status,
                }

            for auth in (admin, student):  # warm the credential cache
                await client.post(
                    "/graphql", json={"query": "{ me { id } }"}, headers={"Authorization": auth}
                )
            progress = {"courseId": str(course), "userId": str(user_id)}
            await measure(
                "progress",
                "POST",
                "/graphql",
                admin,
                {"query": queries["progress"], "variables": progress},
            )
            await measure(
                "rest-progress",
                "GET",
                f"/wp-json/fluent-community/v2/courses/{course}/progress?user_id={user_id}",
                admin,
                None,
            )
            for per_page in (20, 100):
                await measure(
                    f"roster perPage {per_page}",
                    "POST",
                    "/graphql",
                    admin,
                    {
                        "query": queries["roster"],
                        "variables": {
                            "courseId": str(largest_course),
                            "perPage": per_page,
                            "orderBy": "PROGRESS",
                            "order": "DESC",
                        },
                    },
                )
            change = {"courseId": str(course), "lessonId": str(lesson)}
            for name in ("complete", "incomplete"):
                await measure(
                    name,
                    "POST",
                    "/graphql",
                    student,
                    {"query": queries[name], "variables": change},
                )
    finally:
        await db.dispose()
    return results


def main() -> None:
    """Print the counts as JSON."""
    import run  # the scenario documents live with the driver

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--largest-course", type=int, default=dataset.BIG_COURSE_ID)
    args = parser.parse_args()
    layout = dataset.Layout.for_scale(args.scale)
    counts = asyncio.run(
        count_operations(args.database_url, layout, run.documents(), args.largest_course)
    )
    print(json.dumps(counts, indent=2))


if __name__ == "__main__":
    main()
