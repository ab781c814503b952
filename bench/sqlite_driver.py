"""The SQLite driver: the standard library's sqlite3 on the event loop against aiosqlite.

coursepulse/models/sqlite.py runs statements with sqlite3 directly on the asyncio event
loop; aiosqlite runs every statement in the connection's own thread and hands the result
back to the loop. This script runs the same work both ways on one SQLite file in WAL mode,
migrated by the project's migrations and filled by bench/dataset.py (scale 1 by default:
50,000 enrolments, about 300,000 completions), and prints operations/s and CPU ms per
operation (time.process_time, so aiosqlite's threads count) of each, with their ratio.

- `progress read`: the statement `courseProgress` runs (`COURSE_WITH_ENROLLMENT` of
  coursepulse/resolvers/enrollments.py, compiled for SQLite by coursepulse/models/sql.py,
  its rows decoded as the service decodes them) for random enrolled (course, user) pairs,
  each in its own `BEGIN` ... `ROLLBACK` read transaction. One read connection per task.
- `completion write`: `BEGIN IMMEDIATE`, the course by id, the enrolment by user and
  course, INSERT a lesson_completions row, UPDATE the enrolment's counters, INSERT a
  progress_events row, `COMMIT`. A task's next operation undoes it (DELETE the completion,
  UPDATE, INSERT an event, COMMIT), as CompleteLesson and IncompleteLesson alternate. The
  tasks share one write connection and take turns on an asyncio.Lock; every
  CHECKPOINT_EVERY commits a PASSIVE checkpoint runs (in a thread for sqlite3), as the
  service does. Each task has its own enrolment and lesson.

Connections: sqlite3 through the service's own `connect` (`sqlite3.connect(path,
isolation_level=None, check_same_thread=False)` and its PRAGMAs); aiosqlite through
`aiosqlite.connect(path, isolation_level=None)` with the same PRAGMAs. aiosqlite does one
thread hop per statement here (`execute_fetchall` for reads), its cheapest way, so the
ratios are a lower bound of the difference. C tasks share the operations and yield to the
loop between two of them, as a server's requests do. The event loop is the service's
(uvloop when installed). The drivers alternate run by run; a cell is the median of the runs.
Writes are undone and their events deleted afterwards, so a reused dataset stays as it was.

    python bench/sqlite_driver.py                    # ~45 s on 2 cores (12 s: the dataset)
    python bench/sqlite_driver.py --operations 20000 --concurrency 1,4,16 --runs 5
    python bench/sqlite_driver.py --database /tmp/bench.db   # reuse (or create) a dataset

Results: printed, and written to bench/results/sqlite-driver.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import dataset
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

from coursepulse.models import (
    Course,
    Enrollment,
    EnrollmentStatus,
    LessonCompletion,
    ProgressEventKind,
    utcnow,
)
from coursepulse.models.sql import Query
from coursepulse.models.sqlite import CHECKPOINT_EVERY, connect
from coursepulse.resolvers.enrollments import COURSE_WITH_ENROLLMENT
from coursepulse.resolvers.outbox import ADD_EVENT as OUTBOX_ADD_EVENT
from coursepulse.serve import new_event_loop

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "sqlite-driver.md"
DRIVERS = ("sqlite3", "aiosqlite")
WORKLOADS = ("progress read", "completion write")
CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"
SEED = 20_261_127

DIALECT = SQLiteDialect_aiosqlite()
_COURSES = Course.__table__
_ENROLLMENTS = Enrollment.__table__
_COMPLETIONS = LessonCompletion.__table__

PROGRESS = COURSE_WITH_ENROLLMENT.compiled(DIALECT)
COURSE_BY_ID = Query(select(_COURSES).where(_COURSES.c.id == bindparam("course_id"))).compiled(
    DIALECT
)
ENROLLMENT_OF = Query(
    select(_ENROLLMENTS).where(
        _ENROLLMENTS.c.user_id == bindparam("user_id"),
        _ENROLLMENTS.c.course_id == bindparam("course_id"),
    )
).compiled(DIALECT)
ADD_COMPLETION = Query(
    insert(_COMPLETIONS).values(
        enrollment_id=bindparam("enrollment_id"),
        lesson_id=bindparam("lesson_id"),
        completed_at=bindparam("at"),
    )
).compiled(DIALECT)
REMOVE_COMPLETION = Query(
    delete(_COMPLETIONS).where(
        _COMPLETIONS.c.enrollment_id == bindparam("enrollment_id"),
        _COMPLETIONS.c.lesson_id == bindparam("lesson_id"),
    )
).compiled(DIALECT)
SAVE_COUNTERS = Query(
    update(_ENROLLMENTS)
    .where(_ENROLLMENTS.c.id == bindparam("row_id"))
    .values(
        completed_lessons=bindparam("new_completed_lessons"),
        last_accessed_at=bindparam("new_last_accessed_at"),
    )
).compiled(DIALECT)
ADD_EVENT = OUTBOX_ADD_EVENT.compiled(DIALECT)


def log(message: str) -> None:
    """Progress lines on stderr, with the time since start."""
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


STARTED = time.monotonic()


# --------------------------------------------------------------------------- connections


class Connection(Protocol):
    """What the operations need of a connection, whichever the driver."""

    async def run(self, sql: str, arguments: Sequence[Any] = ()) -> int:
        """Execute a statement; returns its rowcount."""
        ...

    async def fetch(self, sql: str, arguments: Sequence[Any]) -> list[Any]:
        """Execute a query; returns its rows."""
        ...

    async def checkpoint(self) -> None: ...

    async def close(self) -> None: ...


class Sqlite3Connection:
    """The service's way: sqlite3 called on the event loop (checkpoints in a thread)."""

    def __init__(self, path: str, *, read_only: bool) -> None:
        self._connection = connect(path, read_only=read_only)

    async def run(self, sql: str, arguments: Sequence[Any] = ()) -> int:
        return self._connection.execute(sql, arguments).rowcount

    async def fetch(self, sql: str, arguments: Sequence[Any]) -> list[Any]:
        return self._connection.execute(sql, arguments).fetchall()

    async def checkpoint(self) -> None:
        await asyncio.to_thread(self._connection.execute, CHECKPOINT)

    async def close(self) -> None:
        self._connection.close()


class AiosqliteConnection:
    """aiosqlite: each statement runs in the connection's thread, one hop per statement."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    @classmethod
    async def open(cls, path: str, *, read_only: bool) -> AiosqliteConnection:
        connection = await aiosqlite.connect(path, isolation_level=None)
        # The PRAGMAs of coursepulse.models.sqlite.connect.
        pragmas = ["busy_timeout=0", "foreign_keys=ON"]
        if read_only:
            pragmas.append("query_only=1")
        else:
            pragmas += ["journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=0"]
        for pragma in pragmas:
            await connection.execute(f"PRAGMA {pragma}")
        return cls(connection)

    async def run(self, sql: str, arguments: Sequence[Any] = ()) -> int:
        cursor = await self._connection.execute(sql, arguments)
        return cursor.rowcount

    async def fetch(self, sql: str, arguments: Sequence[Any]) -> list[Any]:
        return list(await self._connection.execute_fetchall(sql, arguments))

    async def checkpoint(self) -> None:
        await self._connection.execute(CHECKPOINT)

    async def close(self) -> None:
        await self._connection.close()


async def open_connection(driver: str, path: str, *, read_only: bool) -> Connection:
    if driver == "sqlite3":
        return Sqlite3Connection(path, read_only=read_only)
    return await AiosqliteConnection.open(path, read_only=read_only)


@dataclass(slots=True)
class Pool:
    """One driver's connections: a read connection per task, one shared write connection."""

    driver: str
    readers: list[Connection]
    writer: Connection
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    commits: int = 0

    @classmethod
    async def open(cls, driver: str, path: str, tasks: int) -> Pool:
        readers = [await open_connection(driver, path, read_only=True) for _ in range(tasks)]
        return cls(driver, readers, await open_connection(driver, path, read_only=False))

    async def close(self) -> None:
        for connection in (*self.readers, self.writer):
            await connection.close()


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True, slots=True)
class Target:
    """A task's enrolment and the lesson it completes and un-completes."""

    user_id: int
    course_id: int
    enrollment_id: int
    lesson_id: int


async def progress_read(connection: Connection, course_id: int, user_id: int) -> None:
    """courseProgress's statement in a read transaction, its row decoded."""
    await connection.run("BEGIN")
    try:
        raw = await connection.fetch(
            PROGRESS.sql, PROGRESS.arguments({"course_id": course_id, "user_id": user_id})
        )
    finally:
        await connection.run("ROLLBACK")
    _course, enrollment = PROGRESS.rows(raw)[0]
    if enrollment is None:
        raise RuntimeError(f"user {user_id} is not enrolled in course {course_id}")


async def lesson_change(pool: Pool, target: Target, *, complete: bool) -> None:
    """Complete (or un-complete) the target's lesson in one write transaction."""
    async with pool.turn:
        connection = pool.writer
        await connection.run("BEGIN IMMEDIATE")
        try:
            await _lesson_change(connection, target, complete=complete)
            await connection.run("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await connection.run("ROLLBACK")
            raise
        pool.commits += 1
        if pool.commits % CHECKPOINT_EVERY == 0:
            await connection.checkpoint()


async def _lesson_change(connection: Connection, target: Target, *, complete: bool) -> None:
    course_rows = await connection.fetch(
        COURSE_BY_ID.sql, COURSE_BY_ID.arguments({"course_id": target.course_id})
    )
    course = COURSE_BY_ID.rows(course_rows)[0]
    enrollment_rows = await connection.fetch(
        ENROLLMENT_OF.sql,
        ENROLLMENT_OF.arguments({"user_id": target.user_id, "course_id": target.course_id}),
    )
    enrollment = ENROLLMENT_OF.rows(enrollment_rows)[0]
    now = utcnow()
    lesson = {"enrollment_id": enrollment.id, "lesson_id": target.lesson_id}
    if complete:
        changed = await connection.run(
            ADD_COMPLETION.sql, ADD_COMPLETION.arguments({**lesson, "at": now})
        )
    else:
        changed = await connection.run(REMOVE_COMPLETION.sql, REMOVE_COMPLETION.arguments(lesson))
    if changed != 1:
        raise RuntimeError(f"{target}: the completion was not {'added' if complete else 'removed'}")
    enrollment = enrollment._replace(
        completed_lessons=enrollment.completed_lessons + (1 if complete else -1),
        last_accessed_at=now,
    )
    await connection.run(
        SAVE_COUNTERS.sql,
        SAVE_COUNTERS.arguments(
            {
                "row_id": enrollment.id,
                "new_completed_lessons": enrollment.completed_lessons,
                "new_last_accessed_at": now,
            }
        ),
    )
    kind = ProgressEventKind.LESSON_COMPLETED if complete else ProgressEventKind.LESSON_INCOMPLETED
    total = course.total_lessons
    event = {
        "event_kind": str(kind),
        "event_occurred_at": now,
        "event_course_id": enrollment.course_id,
        "event_user_id": enrollment.user_id,
        "event_lesson_id": target.lesson_id,
        "event_progress_percentage": enrollment.completed_lessons * 100 // total if total else 0,
        "event_completed_lessons": enrollment.completed_lessons,
        "event_total_lessons": total,
    }
    await connection.run(ADD_EVENT.sql, ADD_EVENT.arguments(event))


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True, slots=True)
class Measurement:
    operations: int
    seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds * 1000 / self.operations


async def drive(
    tasks: int, operations: int, operation: Callable[[int, int], Awaitable[None]]
) -> Measurement:
    """`operations` calls of operation(task, index), shared by `tasks` concurrent tasks."""
    counter = itertools.count()

    async def worker(task: int) -> None:
        while (index := next(counter)) < operations:
            await operation(task, index)
            await asyncio.sleep(0)  # the next request would come through the loop

    cpu = time.process_time()
    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for task in range(tasks):
            group.create_task(worker(task))
    return Measurement(operations, time.perf_counter() - started, time.process_time() - cpu)


@dataclass(slots=True)
class Writes:
    """The write workload of one pool: which task's lesson is completed right now."""

    pool: Pool
    targets: Sequence[Target]
    completed: list[bool]

    async def operation(self, task: int, _index: int) -> None:
        complete = not self.completed[task]
        await lesson_change(self.pool, self.targets[task], complete=complete)
        self.completed[task] = complete

    async def undo(self) -> None:
        """Un-complete what is still completed (not measured)."""
        for task, done in enumerate(self.completed):
            if done:
                await lesson_change(self.pool, self.targets[task], complete=False)
                self.completed[task] = False


async def measure_cell(
    workload: str,
    tasks: int,
    args: argparse.Namespace,
    pairs: Sequence[tuple[int, int]],
    targets: Sequence[Target],
) -> dict[str, list[Measurement]]:
    """Both drivers on one workload and task count: warm-up, then runs in alternating order."""
    pools = {driver: await Pool.open(driver, args.database_path, tasks) for driver in DRIVERS}
    writes = {
        driver: Writes(pool, targets[:tasks], [False] * tasks) for driver, pool in pools.items()
    }

    def operation_of(driver: str) -> Callable[[int, int], Awaitable[None]]:
        if workload == "completion write":
            return writes[driver].operation
        readers = pools[driver].readers

        def read(task: int, index: int) -> Awaitable[None]:
            course_id, user_id = pairs[index % len(pairs)]
            return progress_read(readers[task], course_id, user_id)

        return read

    found: dict[str, list[Measurement]] = {driver: [] for driver in DRIVERS}
    try:
        warmup = max(tasks * 4, min(1_000, args.operations // 10))
        for driver in DRIVERS:
            await drive(tasks, warmup, operation_of(driver))
            await writes[driver].undo()
        for run in range(args.runs):
            for driver in DRIVERS if run % 2 == 0 else DRIVERS[::-1]:
                result = await drive(tasks, args.operations, operation_of(driver))
                await writes[driver].undo()
                found[driver].append(result)
                log(
                    f"{workload}, {tasks} task(s), {driver}: {result.per_second:,.0f} ops/s, "
                    f"{result.cpu_ms:.3f} CPU ms/op"
                )
    finally:
        for driver in DRIVERS:
            await writes[driver].undo()
            await pools[driver].close()
    return found


# --------------------------------------------------------------------------- dataset


def read_pairs(path: str, count: int) -> list[tuple[int, int]]:
    """`count` random enrolled (course, user) pairs of the dataset."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        enrolled = connection.execute(
            "SELECT course_id, user_id FROM enrollments WHERE status IN (?, ?)",
            (str(EnrollmentStatus.ACTIVE), str(EnrollmentStatus.COMPLETED)),
        ).fetchall()
    if not enrolled:
        raise SystemExit(f"{path} has no enrolments: is it a bench/dataset.py database?")
    rng = random.Random(SEED)  # noqa: S311  (a benchmark's sample, not a secret)
    return [rng.choice(enrolled) for _ in range(count)]


def write_targets(path: str, count: int) -> list[Target]:
    """`count` active enrolments of distinct students, each with a lesson not completed yet.

    Two lessons short of the course's end, so a completion never completes the course.
    """
    with contextlib.closing(sqlite3.connect(path)) as connection:
        candidates = connection.execute(
            "SELECT e.id, e.user_id, e.course_id FROM enrollments e"
            " JOIN courses c ON c.id = e.course_id"
            " WHERE e.status = ? AND e.completed_lessons <= c.total_lessons - 2"
            " ORDER BY e.id",
            (str(EnrollmentStatus.ACTIVE),),
        ).fetchall()
        rng = random.Random(SEED)  # noqa: S311
        rng.shuffle(candidates)
        targets: list[Target] = []
        users: set[int] = set()
        for enrollment_id, user_id, course_id in candidates:
            if len(targets) == count:
                break
            if user_id in users:
                continue
            lesson = connection.execute(
                "SELECT l.id FROM lessons l WHERE l.course_id = ? AND NOT EXISTS"
                " (SELECT 1 FROM lesson_completions c"
                "  WHERE c.enrollment_id = ? AND c.lesson_id = l.id)"
                " ORDER BY l.position LIMIT 1",
                (course_id, enrollment_id),
            ).fetchone()
            if lesson is not None:
                users.add(user_id)
                targets.append(Target(user_id, course_id, enrollment_id, lesson[0]))
    if len(targets) < count:
        raise SystemExit(f"{path}: only {len(targets)} enrolments to write to, {count} needed")
    return targets


def dataset_counts(path: str) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return {
            table: int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
            for table in ("users", "enrollments", "lesson_completions", "progress_events")
        }


def last_event_id(path: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return int(
            connection.execute("SELECT COALESCE(MAX(id), 0) FROM progress_events").fetchone()[0]
        )


def restore(path: str, events_above: int, targets: Sequence[Target]) -> None:
    """Delete the events the run added, check the targets' counters, truncate the log."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("DELETE FROM progress_events WHERE id > ?", (events_above,))
        for target in targets:
            stored, counted = connection.execute(
                "SELECT e.completed_lessons, (SELECT COUNT(*) FROM lesson_completions c"
                " WHERE c.enrollment_id = e.id) FROM enrollments e WHERE e.id = ?",
                (target.enrollment_id,),
            ).fetchone()
            if stored != counted:
                raise RuntimeError(f"{target}: completed_lessons {stored}, {counted} rows")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@contextlib.contextmanager
def database_file(args: argparse.Namespace) -> Iterator[tuple[str, bool]]:
    """The dataset's path, and whether it has to be generated; a temporary one is deleted."""
    if args.database is not None:
        path = args.database.resolve()
        yield str(path), not path.exists()
        return
    with tempfile.TemporaryDirectory(prefix="coursepulse-sqlite-driver-") as work:
        yield str(Path(work) / "bench.db"), True


# --------------------------------------------------------------------------- results


def machine() -> str:
    cpu_model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return f"{cpu_model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def table(results: dict[tuple[str, int], dict[str, list[Measurement]]]) -> str:
    """The markdown table: medians of the runs, and the ratios sqlite3 / aiosqlite."""
    lines = [
        "| operation | tasks | sqlite3 ops/s | aiosqlite ops/s | ops/s sqlite3/aiosqlite "
        "| sqlite3 CPU ms/op | aiosqlite CPU ms/op | CPU sqlite3/aiosqlite |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (workload, tasks), found in results.items():
        rate = {d: statistics.median(m.per_second for m in found[d]) for d in DRIVERS}
        cpu = {d: statistics.median(m.cpu_ms for m in found[d]) for d in DRIVERS}
        lines.append(
            f"| {workload} | {tasks} | {rate['sqlite3']:,.0f} | {rate['aiosqlite']:,.0f} "
            f"| {rate['sqlite3'] / rate['aiosqlite']:.2f}x | {cpu['sqlite3']:.3f} "
            f"| {cpu['aiosqlite']:.3f} | {cpu['sqlite3'] / cpu['aiosqlite']:.2f}x |"
        )
    return "\n".join(lines)


def report(
    args: argparse.Namespace,
    counts: dict[str, int],
    results: dict[tuple[str, int], dict[str, list[Measurement]]],
    loop: str,
) -> str:
    command = " ".join(["python bench/sqlite_driver.py", *sys.argv[1:]])
    return (
        "# SQLite driver: sqlite3 on the event loop vs aiosqlite\n\n"
        f"`{command}`, {datetime.now(UTC):%Y-%m-%d %H:%M UTC}. {machine()}; Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, aiosqlite "
        f"{metadata.version('aiosqlite')}, event loop {loop}.\n\n"
        f"Dataset: {counts['enrollments']:,} enrolments, {counts['lesson_completions']:,} "
        f"completions, WAL mode. {args.operations:,} operations per cell, median of "
        f"{args.runs} runs (drivers alternating). CPU is time.process_time (all threads).\n\n"
        f"{table(results)}\n\n"
        "progress read: BEGIN; courseProgress's statement; ROLLBACK (one read connection per "
        "task). completion write: BEGIN IMMEDIATE; course; enrolment; INSERT completion; UPDATE "
        "enrolment; INSERT event; COMMIT, alternating with its undo (one write connection, "
        "an asyncio.Lock). Ratios above 1x mean sqlite3 is faster (ops/s) or costs more (CPU).\n"
    )


# --------------------------------------------------------------------------- main


async def main_async(args: argparse.Namespace) -> str:
    with database_file(args) as (path, generate):
        args.database_path = path
        if generate:
            layout = dataset.Layout.for_scale(args.scale)
            log(f"generating the dataset (scale {args.scale}) in {path}")
            summary = await dataset.generate(f"sqlite+aiosqlite:///{path}", layout, recreate=True)
            log(f"{summary.enrollments:,} enrolments, {summary.completions:,} completions")
        else:
            log(f"reusing the dataset in {path}")
        counts = dataset_counts(path)
        pairs = read_pairs(path, min(args.operations, 50_000))
        targets = write_targets(path, max(args.concurrency))
        events_above = last_event_id(path)
        results: dict[tuple[str, int], dict[str, list[Measurement]]] = {}
        try:
            for workload in WORKLOADS:
                for tasks in args.concurrency:
                    results[workload, tasks] = await measure_cell(
                        workload, tasks, args, pairs, targets
                    )
        finally:
            restore(path, events_above, targets)
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
        return report(args, counts, results, loop)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--operations", type=int, default=3_000, help="operations per run (default 3,000)"
    )
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(item) for item in text.split(",")],
        default=[1, 16],
        help="concurrent tasks, comma-separated (default 1,16)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per driver and cell (median)")
    parser.add_argument(
        "--database",
        type=Path,
        help="a bench/dataset.py SQLite file to reuse (generated there when missing)",
    )
    parser.add_argument("--scale", type=int, default=1, help="dataset scale when generating")
    parser.add_argument(
        "--loop",
        choices=("service", "asyncio"),
        default="service",
        help="the service's event loop (uvloop when installed) or asyncio's",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    if args.operations < 1 or args.runs < 1 or min(args.concurrency) < 1:
        parser.error("--operations, --runs and --concurrency must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    factory = new_event_loop if args.loop == "service" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        document = runner.run(main_async(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(document)
    print(document)
    log(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
