"""Export, import and backup: a school moves between databases whole, with its ids, and a
SQLite database is copied while the service writes.

The source school is the benchmark's dataset (bench/dataset.py, small), then used through
the API until every table holds rows: study time, finished courses with certificates (one
revoked), a reset, an API token, a webhook with failed deliveries, a signing key.
"""

import asyncio
import base64
import gzip
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlmodel import SQLModel

from coursepulse.app import create_app
from coursepulse.models import Enrollment, LessonCompletion, ProgressEvent
from coursepulse.models.db import Database
from coursepulse.resolvers import completions, enrollments
from coursepulse.settings import Settings
from coursepulse.transfer import export as export_module
from coursepulse.transfer.backup import backup_sqlite
from coursepulse.transfer.export import export_school
from coursepulse.transfer.load import import_school
from coursepulse.transfer.progress import Progress
from coursepulse.transfer.records import TransferError, school_tables
from tests.conftest import Account, School, make_user
from tests.test_bench_dataset import load_generator

COURSES = 4
STUDENTS = 40
CLI_TIMEOUT = 120


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def ask(
    client: TestClient, query: str, headers: dict[str, str], **variables: Any
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    body = await response.json()
    assert response.status == 200, body
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
async def served() -> AsyncIterator[Any]:
    """`async with served(url) as client`: the app on that database, on a real port."""

    @asynccontextmanager
    async def start(url: str, **changes: Any) -> AsyncIterator[TestClient]:
        database = Database.from_url(url)
        settings = Settings(
            **{
                "database_url": url,
                "public_url": "http://testserver",
                "webhook_delivery": False,
                **changes,
            }
        )
        try:
            async with TestClient(TestServer(create_app(settings, database=database))) as client:
                yield client
        finally:
            await database.dispose()

    return start


async def lively_school(url: str, served: Any) -> dict[str, Any]:
    """The small benchmark school at `url`, then used until every table holds rows; returns
    what the comparisons need (logins, course ids, certificate numbers)."""
    bench = load_generator()
    layout = bench.Layout.for_scale(1, courses=COURSES, students=STUDENTS)
    await bench.generate(url, layout, recreate=True)
    admin = basic(bench.ADMIN_USERNAME, bench.ADMIN_PASSWORD)
    students = [basic(layout.username(u), bench.STUDENT_PASSWORD) for u in range(3)]
    numbers = []
    async with served(
        url,
        webhook_delivery=True,
        webhook_allow_private=True,
        webhook_poll_seconds=0.05,
        webhook_retry_first_seconds=0.05,
        webhook_retry_max_seconds=0.1,
    ) as client:
        await ask(client, 'mutation { createApiToken(name: "reports") { token } }', admin)
        teacher = await ask(
            client,
            'mutation { createUser(input: {username: "teacher", password: "a long password",'
            ' displayName: "Grace Hopper", role: INSTRUCTOR}) { id } }',
            admin,
        )
        await ask(
            client,
            'mutation($u: ID!) { addInstructor(courseId: "1", userId: $u) { id } }',
            admin,
            u=teacher["createUser"]["id"],
        )
        # Nothing listens on port 9: every delivery fails and is recorded.
        hook = await ask(
            client,
            "mutation($u: String!) { createWebhook(input: {url: $u}) { webhook { id } } }",
            admin,
            u="http://127.0.0.1:9/hooks",
        )
        for u in range(2):
            course = layout.courses_of(u)[0]
            first = layout.lesson_id(course, 1)
            await ask(
                client,
                "mutation($c: ID!, $l: ID!) { recordActivity(courseId: $c, seconds: 90,"
                " lessonId: $l) { timeSpentSeconds } }",
                students[u],
                c=str(course),
                l=str(first),
            )
            for position in range(layout.completed_count(u, course) + 1, 13):
                await ask(
                    client,
                    "mutation($c: ID!, $l: ID!) { completeLesson(courseId: $c, lessonId: $l)"
                    " { progressPercentage } }",
                    students[u],
                    c=str(course),
                    l=str(layout.lesson_id(course, position)),
                )
            issued = await ask(
                client,
                "query($c: ID!) { certificate(courseId: $c) { certificateId } }",
                students[u],
                c=str(course),
            )
            numbers.append(issued["certificate"]["certificateId"])
        await ask(
            client,
            'mutation($n: String!) { revokeCertificate(certificateId: $n, reason: "copied") {'
            " revokedAt } }",
            admin,
            n=numbers[1],
        )
        u = 2
        course = next(c for c in layout.courses_of(u) if layout.completed_count(u, c) > 0)
        await ask(
            client,
            'mutation($c: ID!, $u: ID!) { resetProgress(courseId: $c, userId: $u, reason: "retake")'
            " { completedLessons } }",
            admin,
            c=str(course),
            u=str(layout.user_id(u)),
        )
        badge = await client.get(f"/verify/{numbers[0]}/badge")
        assert badge.status == 200
        for _ in range(200):
            listed = await ask(
                client,
                "{ webhooks { id deliveries(first: 5) { id } } }",
                admin,
            )
            if listed["webhooks"][0]["deliveries"]:
                break
            await asyncio.sleep(0.05)
    return {
        "layout": layout,
        "admin": admin,
        "students": students,
        "numbers": numbers,
        "webhook": hook["createWebhook"]["webhook"]["id"],
    }


ROSTER = """query($c: ID!, $o: StudentOrderField!) {
  courseStudents(courseId: $c, perPage: 100, orderBy: $o, order: DESC) { total nodes {
    userId username displayName status progressPercentage completedLessons enrolledAt
    lastAccessed completedAt } } }"""
STATS = """query($c: ID!) { courseStats(courseId: $c) { enrolledCount activeCount completedCount
  averageProgress completionRate atRiskCount lastEventId } }"""
MINE = """{ me { id username } myCourses(status: null) { courseId status progressPercentage
  completedLessons timeSpentSeconds lastAccessed startedAt completedAt certificateUrl lastEventId
  nextLesson { id title } lessons { lesson { id } completed completedAt timeSpentSeconds }
  resets { id reason previousCompletedLessons resetBy { username } } } }"""
VERIFY = """query($n: String!) { verifyCertificate(certificateId: $n) { valid certificate {
  certificateId issuedAt courseTitle studentName revokedAt certificateUrl } } }"""
HOOKS = """{ webhooks { id url courseId events active lastEventId deliveries(first: 50) {
  id eventId attempt responseStatus succeeded attemptedAt error } } }"""
TOKENS = "{ myApiTokens { id name createdAt revokedAt } }"


async def answers(client: TestClient, school: dict[str, Any]) -> list[Any]:
    """What the API says of the school: rosters, statistics, students' progress, the
    certificates, tokens and webhooks, the published keys."""
    said: list[Any] = []
    for course in range(1, COURSES + 1):
        for order in ("PROGRESS", "DISPLAY_NAME", "LAST_ACCESSED"):
            said.append(await ask(client, ROSTER, school["admin"], c=str(course), o=order))
        said.append(await ask(client, STATS, school["admin"], c=str(course)))
    for student in school["students"]:
        said.append(await ask(client, MINE, student))
    for number in school["numbers"]:
        said.append(await ask(client, VERIFY, {}, n=number))
    said.append(await ask(client, HOOKS, school["admin"]))
    said.append(await ask(client, TOKENS, school["admin"]))
    keys = await client.get("/.well-known/jwks.json")
    said.append(await keys.json() if keys.status == 200 else keys.status)
    return said


def rows_of(path: Path) -> list[str]:
    """The export's row lines (the header carries the export's time and source)."""
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as compressed:
            return compressed.read().splitlines()[1:]
    return path.read_text(encoding="utf-8").splitlines()[1:]


async def test_a_school_moves_whole_and_keeps_its_ids(
    tmp_path: Path, database_url: str, db: Database, served: Any
) -> None:
    source = f"sqlite+aiosqlite:///{tmp_path / 'school.db'}"
    school = await lively_school(source, served)
    exported = await export_school(source, str(tmp_path / "school.jsonl"), bar=False)
    empty = [table.name for table in school_tables() if not exported.counts[table.name]]
    assert not empty, exported.counts

    loaded = await import_school(database_url, str(tmp_path / "school.jsonl"), bar=False)
    assert loaded.counts == exported.counts
    again = await export_school(database_url, str(tmp_path / "again.jsonl.gz"), bar=False)
    assert again.counts == exported.counts
    assert rows_of(tmp_path / "again.jsonl.gz") == rows_of(tmp_path / "school.jsonl")

    async with served(source) as before, served(database_url) as after:
        assert await answers(after, school) == await answers(before, school)

        # New rows continue after the imported ids: events, certificate numbers, users.
        last_event = await db_scalar(db, select(func.max(ProgressEvent.id)))
        u = 5
        layout = school["layout"]
        course = layout.courses_of(u)[0]
        student = basic(layout.username(u), load_generator().STUDENT_PASSWORD)
        for position in range(layout.completed_count(u, course) + 1, 13):
            await ask(
                after,
                "mutation($c: ID!, $l: ID!) { completeLesson(courseId: $c, lessonId: $l)"
                " { progressPercentage } }",
                student,
                c=str(course),
                l=str(layout.lesson_id(course, position)),
            )
        issued = await ask(
            after,
            "query($c: ID!) { certificate(courseId: $c) { certificateId } }",
            student,
            c=str(course),
        )
        assert (
            await db_scalar(
                db,
                select(func.min(ProgressEvent.id)).where(
                    ProgressEvent.user_id == layout.user_id(u),
                    ProgressEvent.id > last_event,
                ),
            )
            == last_event + 1
        )
        sequences = sorted(int(number.rsplit("-", 1)[1]) for number in school["numbers"])
        assert issued["certificate"]["certificateId"].endswith(f"-{sequences[-1] + 1:03d}")
    newcomer = await make_user(db, "newcomer")
    assert newcomer.id == STUDENTS + 3  # the admin, the students, the instructor


async def db_scalar(db: Database, statement: Any) -> Any:
    async with db.read() as tx:
        return await tx.scalar(statement)


async def small_school(tmp_path: Path, name: str = "small") -> tuple[str, Path]:
    """A tiny benchmark school in SQLite and its export."""
    bench = load_generator()
    url = f"sqlite+aiosqlite:///{tmp_path / (name + '.db')}"
    await bench.generate(url, bench.Layout.for_scale(1, courses=2, students=10), recreate=True)
    path = tmp_path / f"{name}.jsonl"
    await export_school(url, str(path), bar=False)
    return url, path


async def count_rows(db: Database) -> dict[str, int]:
    counts = {}
    async with db.read() as tx:
        for table in SQLModel.metadata.sorted_tables:
            counts[table.name] = await tx.scalar(select(func.count()).select_from(table))
    return counts


async def test_a_database_that_holds_a_school_is_refused_unless_replaced(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    await make_user(db, "already_here")
    _url, path = await small_school(tmp_path)
    with pytest.raises(TransferError, match=r"not empty \(users hold rows\).*--replace"):
        await import_school(database_url, str(path), bar=False)
    assert (await count_rows(db))["users"] == 1

    loaded = await import_school(database_url, str(path), replace=True, bar=False)
    assert await count_rows(db) == loaded.counts
    async with db.read() as tx:
        assert (
            await tx.scalar(select(func.count()).where(Enrollment.id > 0))
            == (loaded.counts["enrollments"])
        )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda lines: lines[:-5], "does not hold the rows its header announces"),
        (lambda lines: [*lines[:-1], lines[-1][:20]], "is not JSON"),
        (
            lambda lines: [lines[0], lines[-1], *lines[1:-1]],
            "must come before",
        ),
        (
            lambda lines: [
                lines[0],
                *[
                    line.replace('"status":"published"', '"status":"published","x":1')
                    for line in lines[1:]
                ],
            ],
            "must have exactly the columns",
        ),
        (lambda lines: ["{}", *lines[1:]], "not a coursepulse export"),
        (lambda lines: [lines[0].replace('"schema":"', '"schema":"0001x'), *lines[1:]], "schema"),
        (lambda lines: [], "empty"),
        (
            lambda lines: [
                lines[0],
                *[line.replace('"sequential":false', '"sequential":"yes"') for line in lines[1:]],
            ],
            "courses rows could not be stored",
        ),
        (
            lambda lines: [lines[0].replace('"users":11', '"users":"eleven"'), *lines[1:]],
            "not a number",
        ),
    ],
    ids=[
        "cut-short",
        "cut-mid-line",
        "out-of-order",
        "other-columns",
        "no-header",
        "old-schema",
        "empty",
        "wrong-type",
        "count-not-a-number",
    ],
)
async def test_a_damaged_file_imports_nothing(
    tmp_path: Path, database_url: str, db: Database, damage: Any, message: str
) -> None:
    _url, path = await small_school(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text("".join(line + "\n" for line in damage(lines)), encoding="utf-8")
    with pytest.raises(TransferError, match=message):
        await import_school(database_url, str(damaged), bar=False)
    assert set((await count_rows(db)).values()) == {0}


async def test_a_row_that_breaks_a_rule_imports_nothing(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    _url, path = await small_school(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    # A completion of an enrolment that is not in the file.
    broken = [
        line.replace('"enrollment_id":1,', '"enrollment_id":999999,', 1)
        if '"table":"lesson_completions"' in line
        else line
        for line in lines
    ]
    damaged = tmp_path / "broken.jsonl"
    damaged.write_text("\n".join(broken) + "\n", encoding="utf-8")
    with pytest.raises(TransferError, match="lesson_completions rows could not be stored"):
        await import_school(database_url, str(damaged), bar=False)
    assert set((await count_rows(db)).values()) == {0}


async def keep_learning(
    db: Database, student: Account, course_id: int, lessons: list[int], stop: asyncio.Event
) -> int:
    """Complete and un-complete lessons, one commit each, until told to stop; returns how
    many writes committed."""
    writes = 0
    while not stop.is_set():
        for change in (completions.complete_lesson, completions.incomplete_lesson):
            for lesson_id in lessons:
                async with db.write() as tx:
                    await change(tx, student.viewer, course_id, lesson_id)
                writes += 1
                await asyncio.sleep(0)
    return writes


def assert_consistent(path: Path) -> None:
    """Each enrolment's stored counter agrees with its completions (an export or a SQLite
    file): what a copy of one moment shows, and a copy of several moments need not."""
    counted: dict[int, int] = {}
    stored: dict[int, int] = {}
    if path.suffix == ".db":
        connection = sqlite3.connect(path)
        assert connection.execute("PRAGMA quick_check").fetchone() == ("ok",)
        stored = dict(connection.execute("SELECT id, completed_lessons FROM enrollments"))
        counted = dict(
            connection.execute(
                "SELECT enrollment_id, count(*) FROM lesson_completions GROUP BY enrollment_id"
            )
        )
        connection.close()
    else:
        for line in rows_of(path):
            record = json.loads(line)
            if record["table"] == "enrollments":
                stored[record["row"]["id"]] = record["row"]["completed_lessons"]
            elif record["table"] == "lesson_completions":
                enrollment = record["row"]["enrollment_id"]
                counted[enrollment] = counted.get(enrollment, 0) + 1
    assert stored, "no enrolments"
    assert {key: value for key, value in stored.items() if value} == counted


@pytest.fixture
async def learning(tmp_path: Path) -> AsyncIterator[tuple[str, Database, Any]]:
    """A small school in SQLite, and `start()`: a student learning in it until the test ends."""
    url, _path = await small_school(tmp_path, "live")
    db = Database.from_url(url)
    student = await make_user(db, "learner")
    lessons = load_generator().Layout.for_scale(1, courses=2, students=10)
    async with db.write() as tx:
        await enrollments.enroll(tx, student.viewer, 1)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[int]] = []

    def start() -> asyncio.Task[int]:
        lesson_ids = [lessons.lesson_id(1, position) for position in range(1, 13)]
        tasks.append(asyncio.create_task(keep_learning(db, student, 1, lesson_ids, stop)))
        return tasks[-1]

    yield url, db, start
    stop.set()
    await asyncio.gather(*tasks)
    await db.dispose()


def complete_elsewhere(database_url: str, student: Account, course_id: int, lesson: int) -> None:
    """Complete a lesson from another thread and event loop (another client of the
    database), and return once it has committed."""

    async def write() -> None:
        other = Database.from_url(database_url)
        try:
            async with other.write() as tx:
                await completions.complete_lesson(tx, student.viewer, course_id, lesson)
        finally:
            await other.dispose()

    worker = threading.Thread(target=asyncio.run, args=(write(),))
    worker.start()
    worker.join()


async def test_an_export_is_one_moment_while_students_keep_learning(
    tmp_path: Path, database_url: str, db: Database, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
        await completions.complete_lesson(
            tx, school.student.viewer, school.course_id, school.lesson_ids[0]
        )
    tables_begun = []

    class WriteBetweenTables(Progress):
        def table(self, name: str) -> None:
            # Enrolments are behind; their completions are next: a lesson is completed now.
            if name == "lesson_completions":
                complete_elsewhere(
                    database_url, school.student, school.course_id, school.lesson_ids[1]
                )
            tables_begun.append(name)
            super().table(name)

    monkeypatch.setattr(export_module, "Progress", WriteBetweenTables)
    await export_school(database_url, str(tmp_path / "live.jsonl"), bar=False)

    assert tables_begun.index("enrollments") < tables_begun.index("lesson_completions")
    assert await db_scalar(db, select(func.count()).select_from(LessonCompletion)) == 2
    exported = [json.loads(line) for line in rows_of(tmp_path / "live.jsonl")]
    assert [
        row["row"]["completed_lessons"] for row in exported if row["table"] == "enrollments"
    ] == [1]
    assert [
        row["row"]["lesson_id"] for row in exported if row["table"] == "lesson_completions"
    ] == [school.lesson_ids[0]]
    assert_consistent(tmp_path / "live.jsonl")


async def test_a_backup_is_one_sound_moment_while_students_keep_learning(
    tmp_path: Path, learning: tuple[str, Database, Any]
) -> None:
    url, _db, start = learning
    start()
    copies = []
    for number in range(5):
        copy = tmp_path / f"copy{number}.db"
        summary = await asyncio.to_thread(backup_sqlite, url, str(copy))
        assert summary.bytes == copy.stat().st_size > 0
        copies.append(copy)
        await asyncio.sleep(0.01)
    for copy in copies:
        assert_consistent(copy)
        assert not copy.with_name(copy.name + "-wal").exists()
    # A copy is a database the service opens as it is.
    restored = Database.from_url(f"sqlite+aiosqlite:///{copies[-1]}")
    try:
        async with restored.read() as tx:
            assert await tx.scalar(select(func.count()).select_from(Enrollment)) > 0
    finally:
        await restored.dispose()

    with pytest.raises(TransferError, match="exists"):
        backup_sqlite(url, str(copies[0]))
    backup_sqlite(url, str(copies[0]), overwrite=True)
    with pytest.raises(TransferError, match="cannot replace the database"):
        backup_sqlite(url, url.removeprefix("sqlite+aiosqlite:///"), overwrite=True)
    with pytest.raises(TransferError, match="pg_dump"):
        backup_sqlite("postgresql+asyncpg://postgres@127.0.0.1/school", str(tmp_path / "x.db"))


def run_cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coursepulse", *args],
        env={
            **os.environ,
            "COURSEPULSE_DATABASE_URL": database_url,
            "COURSEPULSE_LOG_FORMAT": "json",
        },
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


async def test_operators_export_import_and_back_up_from_the_command_line(tmp_path: Path) -> None:
    source, _path = await small_school(tmp_path, "cli")
    target = f"sqlite+aiosqlite:///{tmp_path / 'target.db'}"
    exported = run_cli("export", str(tmp_path / "school.jsonl.gz"), database_url=source)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("exported ")
    assert "users 11" in exported.stdout
    logged = [json.loads(line) for line in exported.stderr.splitlines()]
    assert {"level": "INFO", "logger": "coursepulse.transfer"}.items() <= logged[0].items()

    imported = run_cli("import", str(tmp_path / "school.jsonl.gz"), database_url=target)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("imported ")
    assert "users 11" in imported.stdout
    refused = run_cli("import", str(tmp_path / "school.jsonl.gz"), database_url=target)
    assert refused.returncode == 2
    assert "error (invalid_input): the database is not empty" in refused.stderr
    assert "Traceback" not in refused.stderr

    piped = run_cli("export", "-", database_url=target)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines()[1:] == rows_of(tmp_path / "school.jsonl.gz")

    backed_up = run_cli("backup", str(tmp_path / "copy.db"), database_url=target)
    assert backed_up.returncode == 0, backed_up.stderr
    assert backed_up.stdout.startswith("backed up ")
    assert_consistent(tmp_path / "copy.db")
    missing = run_cli("import", str(tmp_path / "nothing.jsonl"), database_url=target)
    assert missing.returncode == 2
    assert "no such file" in missing.stderr


async def test_a_terminal_sees_a_progress_bar(tmp_path: Path) -> None:
    source, _path = await small_school(tmp_path, "bar")
    primary, replica = os.openpty()  # stderr is a terminal, as when an operator types it

    def read_all() -> bytes:
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed with the process
                return shown
            if not chunk:
                return shown
            shown += chunk

    try:
        reading = asyncio.create_task(asyncio.to_thread(read_all))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "coursepulse",
            "export",
            str(tmp_path / "seen.jsonl"),
            env={**os.environ, "COURSEPULSE_DATABASE_URL": source},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=replica,
        )
        os.close(replica)
        assert await asyncio.wait_for(process.wait(), CLI_TIMEOUT) == 0
        shown = await asyncio.wait_for(reading, CLI_TIMEOUT)
    finally:
        os.close(primary)
    text = shown.decode(errors="replace")
    assert "exported" in text
    assert "100%|" in text  # tqdm's bar, filled
    assert '"level"' not in text  # readable lines on a terminal, not JSON


async def test_an_unreadable_file_is_refused_in_a_sentence_and_gzip_is_told_by_content(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    _url, path = await small_school(tmp_path)
    packed = gzip.compress(path.read_bytes())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    garbled = tmp_path / "garbled.jsonl.gz"
    middle = len(packed) // 2
    garbled.write_bytes(packed[:middle] + bytes(b ^ 0xFF for b in packed[middle:]))
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(path.read_bytes().replace(b'"Bench Admin"', b'"Bench \xe9dmin"'))
    for damaged in (cut, garbled, latin):
        # Said when the reading fails, or at the half line a cut stream ends with
        with pytest.raises(TransferError, match=r"cannot be read|cut short"):
            await import_school(database_url, str(damaged), bar=False)
    assert set((await count_rows(db)).values()) == {0}

    # Compression is told by the content, not the name
    misnamed = tmp_path / "school.jsonl"
    misnamed.write_bytes(packed)
    loaded = await import_school(database_url, str(misnamed), bar=False)
    assert loaded.counts["users"] == 11


async def test_what_an_export_writes_only_its_owner_reads(tmp_path: Path) -> None:
    url, path = await small_school(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    copy = backup_sqlite(url, str(tmp_path / "copy.db"))
    assert copy.path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(TransferError, match="cannot write"):
        await export_school(url, str(tmp_path / "no" / "such" / "folder.jsonl"), bar=False)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".partial")]
    with pytest.raises(TransferError, match="no database file"):
        await export_school(
            f"sqlite+aiosqlite:///{tmp_path / 'typo.db'}", str(tmp_path / "x.jsonl"), bar=False
        )
    assert not (tmp_path / "typo.db").exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(TransferError, match="at schema None"):
        await export_school(f"sqlite+aiosqlite:///{empty}", str(tmp_path / "x.jsonl"), bar=False)
