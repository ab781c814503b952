"""The benchmark driver: generates the dataset, starts the servers, runs the scenarios with
wrk, and writes bench/results/latest.json and latest.md (plus timestamped copies).

    python bench/run.py --quick          # make bench: a few minutes
    python bench/run.py --full           # make bench-full: longer runs, fanout 1k/5k/10k
    python bench/run.py --quick --scenarios baseline,progress --runs 1

The service under test is started as `python -m coursepulse serve` and pinned to CPU 0
with taskset (when available); wrk and the websocket clients run on CPU 1. Every result
is also given as a ratio to the raw baseline's requests/s (bench/baseline.py), measured
in the same invocation, interleaved with the other read scenarios.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
import dataset
import fanout
from sqlalchemy import text
from sqlalchemy.engine import make_url

from coursepulse.models.migrate import schema_engine

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
LUA_DIR = BENCH_DIR / "lua"
OPERATIONS_DIR = ROOT / "graphql" / "operations"
RESULTS_DIR = BENCH_DIR / "results"
SERVER_CPU = "0"
LOAD_CPU = "1"
POSTGRES_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
POSTGRES_BENCH_DATABASE = "coursepulse_bench"
COMPLETE_CLIENTS = 64
REST_PROGRESS_PATH = "/wp-json/fluent-community/v2/courses/%d/progress?user_id=%d"
PACKAGES = (
    "strawberry-graphql",
    "graphql-core",
    "aiohttp",
    "sqlalchemy",
    "sqlmodel",
    "aiosqlite",
    "asyncpg",
    "uvloop",
    "orjson",
    "argon2-cffi",
)

#: The `progress` scenario's document: the progress bar and "resume" button. Its answer is
#: what bench/baseline.py builds from the same three reads (no lesson list, no certificate).
PROGRESS_QUERY = """query CourseProgress($courseId: ID!, $userId: ID) {
  courseProgress(courseId: $courseId, userId: $userId) {
    courseId userId status progressPercentage completedLessons totalLessons
    timeSpent lastAccessed startedAt completedAt
    nextLesson { id title order }
  }
}"""
FANOUT_SUBSCRIPTION = """subscription CourseActivity($courseId: ID!) {
  courseActivity(courseId: $courseId) { id kind occurredAt userId lessonId progressPercentage }
}"""


def documents() -> dict[str, str]:
    """The GraphQL documents of the scenarios (the project's own operation files where they fit)."""
    return {
        "progress": PROGRESS_QUERY,
        "roster": (OPERATIONS_DIR / "CourseStudents.graphql").read_text(),
        "complete": (OPERATIONS_DIR / "CompleteLesson.graphql").read_text(),
        "incomplete": (OPERATIONS_DIR / "IncompleteLesson.graphql").read_text(),
        "fanout": FANOUT_SUBSCRIPTION,
    }


@dataclass(frozen=True, slots=True)
class Plan:
    """How long and how often each scenario runs."""

    name: str
    duration: int
    runs: int
    warmup: int
    connections: int
    fanout: tuple[int, ...]
    scale: int = 1
    #: COURSEPULSE_AUTH_CACHE_SECONDS for the servers; None keeps the service's default.
    auth_cache_seconds: float | None = None
    scenarios: tuple[str, ...] = (
        "baseline",
        "progress",
        "rest-progress",
        "roster",
        "complete",
        "fanout",
        "workers",
    )


QUICK = Plan("quick", duration=6, runs=3, warmup=2, connections=32, fanout=(1_000,))
FULL = Plan("full", duration=20, runs=5, warmup=3, connections=32, fanout=(1_000, 5_000, 10_000))
READ_SCENARIOS = ("baseline", "progress", "rest-progress", "roster")


def log(message: str) -> None:
    """Progress lines on stderr, with the time since start."""
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


STARTED = time.monotonic()


# --------------------------------------------------------------------------- machine


def have_taskset() -> bool:
    """True when taskset exists and the machine has at least two CPUs to split."""
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def pinned(cpus: str | None, argv: Sequence[str]) -> list[str]:
    """argv prefixed with `taskset -c cpus` when pinning is possible and wanted."""
    if cpus is None or not have_taskset():
        return list(argv)
    return ["taskset", "-c", cpus, *argv]


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian packages when missing (as root); exits otherwise."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        log("wrk is missing: apt-get install -y wrk")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit("wrk is required: apt-get install wrk (or brew install wrk)")


def machine_info(wrk: str) -> dict[str, Any]:
    """CPU, OS, Python and package versions, for the results."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
    versions: dict[str, str] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    wrk_version = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "coursepulse"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
        "wrk": " ".join((wrk_version.stdout or wrk_version.stderr).split()[:2]),
        "pinning": (
            f"server on CPU {SERVER_CPU}, load generator on CPU {LOAD_CPU} (taskset)"
            if have_taskset()
            else "none (taskset missing or one CPU)"
        ),
        "commit": commit.stdout.strip() + (" (coursepulse/ modified)" if dirty.stdout else ""),
    }


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of the processes, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


#: A fixed piece of pure Python work, timed on the server's CPU by `cpu_steadiness`.
_PROBE = (
    "import time\n"
    "for _ in range({samples}):\n"
    "    started = time.perf_counter(); total = 0\n"
    "    for i in range(200_000): total += i\n"
    "    print(round((time.perf_counter() - started) * 1000, 2), flush=True)\n"
    "    time.sleep(0.1)\n"
)


def cpu_steadiness(samples: int = 12) -> list[float]:
    """Milliseconds the same loop took, sample after sample, on the server's CPU.

    On a shared host a CPU's speed changes from one second to the next while the machine
    looks idle (the load shows nothing): the spread says how far requests/s of runs taken
    at different moments can be compared. Interleaved ratios hold better.
    """
    probe = subprocess.run(
        ["taskset", "-c", SERVER_CPU, sys.executable, "-c", _PROBE.format(samples=samples)]
        if shutil.which("taskset")
        else [sys.executable, "-c", _PROBE.format(samples=samples)],
        capture_output=True,
        text=True,
        check=False,
    )
    return [float(line) for line in probe.stdout.split()]


def steadiness_line(samples: list[float]) -> str | None:
    """The report's line on how steady the server's CPU was, or None without samples."""
    if not samples:
        return None
    fastest, slowest = min(samples), max(samples)
    return (
        f"- CPU {SERVER_CPU}'s speed: the same loop took {fastest:.1f}-{slowest:.1f} ms over "
        f"{len(samples)} samples taken outside the runs (median "
        f"{statistics.median(samples):.1f}; the slowest {100 * (slowest / fastest - 1):.0f}% "
        "over the fastest). Ratios of interleaved runs are steadier than requests/s."
    )


def busy_cpu_seconds() -> float:
    """CPU time the whole machine spent busy since boot (all CPUs, from /proc/stat)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = [int(item) for item in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    return 0.0


def rss_kb(pid: int) -> int:
    """VmRSS of a process in KiB (0 when it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class Server:
    """A server process of the benchmark: started, waited for, measured, stopped."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cpus: str | None = SERVER_CPU
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Server:
        """Start it; returns self."""
        with self.log_path.open("ab") as output:
            self.process = subprocess.Popen(
                pinned(self.cpus, self.argv),
                env={**os.environ, **self.env},
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        return self

    async def wait_ready(self, within: float = 90.0) -> None:
        """Poll /readyz until 200; raises with the log's tail when it never comes."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    break
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.2)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.name} did not become ready:\n{tail}")

    def pids(self) -> list[int]:
        return process_tree(self.pid)

    def stop(self) -> None:
        """SIGTERM (the service forwards it to its workers), then SIGKILL after 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            for pid in reversed(self.pids()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def coursepulse_server(
    name: str,
    database_url: str,
    work: Path,
    plan: Plan,
    *,
    workers: int = 1,
    cpus: str | None = SERVER_CPU,
    settings: dict[str, str] | None = None,
) -> Server:
    """`python -m coursepulse serve` on a free port with the service's default settings.

    `plan.auth_cache_seconds`, when set, replaces the auth cache's lifetime (default 30 s:
    a run that spans an expiry pays one password hash per credential). `settings` are
    more environment variables for the server.
    """
    port = free_port()
    argv = [sys.executable, "-m", "coursepulse", "serve", "--port", str(port)]
    argv += ["--database-url", database_url]
    if workers != 1:
        argv += ["--workers", str(workers)]
    env = dict(settings or {})
    if plan.auth_cache_seconds is not None:
        env["COURSEPULSE_AUTH_CACHE_SECONDS"] = str(plan.auth_cache_seconds)
    return Server(name, argv, port, work / f"{name}.log", env=env, cpus=cpus)


def baseline_server(database_path: Path, work: Path) -> Server:
    """bench/baseline.py on a free port."""
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "baseline.py"), "--database", str(database_path)]
    return Server("baseline", [*argv, "--port", str(port)], port, work / "baseline.log")


def serve_supports_workers() -> bool:
    """True when `coursepulse serve --help` lists --workers."""
    helped = subprocess.run(
        [sys.executable, "-m", "coursepulse", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    return "--workers" in helped.stdout


# --------------------------------------------------------------------------- wrk


def lua_value(value: Any) -> str:
    """A Lua literal for an int, str or list of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        level = 1
        while f"]{'=' * level}]" in value:
            level += 1
        return f"[{'=' * level}[{value}]{'=' * level}]"
    if isinstance(value, list | tuple):
        return "{" + ", ".join(lua_value(item) for item in value) + "}"
    raise TypeError(f"no Lua literal for {value!r}")


def graphql_body(query: str, variables: dict[str, Any]) -> str:
    """A JSON request body; variables given as '%d' become Lua string.format slots."""
    body = json.dumps({"query": query, "variables": variables}, separators=(",", ":"))
    return body.replace("%", "%%").replace("%%d", "%d")


def write_script(work: Path, scenario: str, constants: dict[str, Any]) -> Path:
    """constants + lua/common.lua + lua/<scenario>.lua, written into the work directory."""
    header = "\n".join(f"{name} = {lua_value(value)}" for name, value in constants.items())
    source = LUA_DIR / f"{scenario.replace('-', '_')}.lua"
    script = work / f"{scenario}.lua"
    script.write_text(f"{header}\n{(LUA_DIR / 'common.lua').read_text()}\n{source.read_text()}\n")
    return script


def layout_constants(layout: dataset.Layout) -> dict[str, Any]:
    """The dataset's layout for the Lua side (see Layout.courses_of)."""
    return {
        "C": layout.courses,
        "PER": layout.per_student,
        "STEP": layout.step,
        "STUDENTS": layout.students,
        "FIRST_ID": dataset.FIRST_STUDENT_ID,
        "LESSONS": layout.lessons_per_course,
        "BIG": dataset.BIG_COURSE_ID,
        "BIG_EVERY": dataset.BIG_COURSE_EVERY,
    }


@dataclass
class WrkRun:
    """One wrk run: its counters and the server's CPU time during it."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    graphql_errors: int
    changes: int
    server_cpu_seconds: float
    load_cpu_seconds: float
    #: Busy CPU time of everything else on the machine during the run (noise).
    other_cpu_seconds: float

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_seconds / max(self.requests, 1)


def run_wrk(
    wrk: str,
    script: Path,
    url: str,
    *,
    duration: float,
    connections: int,
    threads: int = 1,
    server_pids: Sequence[int] = (),
) -> WrkRun:
    """Run wrk pinned to the load CPU; returns its parsed summary (raises on no summary)."""
    argv = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{duration}s"]
    argv += ["--timeout", "10s", "-s", str(script), url]
    server_before = cpu_seconds(server_pids)
    busy_before = busy_cpu_seconds()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        pinned(LOAD_CPU, argv), capture_output=True, text=True, timeout=duration + 120, check=False
    )
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = cpu_seconds(server_pids)
    busy = busy_cpu_seconds() - busy_before
    line = next((item for item in done.stdout.splitlines() if item.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary:\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    load = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    seconds = data["duration_us"] / 1e6
    errors = sum(
        data[name] for name in ("errors_connect", "errors_read", "errors_write", "errors_timeout")
    )
    return WrkRun(
        requests=data["requests"],
        seconds=round(seconds, 3),
        rps=round(data["requests"] / seconds, 1),
        p50_ms=data["latency_p50_us"] / 1000,
        p90_ms=data["latency_p90_us"] / 1000,
        p99_ms=data["latency_p99_us"] / 1000,
        max_ms=data["latency_max_us"] / 1000,
        errors=errors + data["bad_status"],
        graphql_errors=data["graphql_errors"],
        changes=data["changes"],
        server_cpu_seconds=round(server_after - server_before, 3),
        load_cpu_seconds=round(load, 3),
        other_cpu_seconds=round(max(0.0, busy - load - (server_after - server_before)), 3),
    )


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    if not values:
        return {"median": 0.0, "min": 0.0, "max": 0.0}
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def summarize(runs: Sequence[WrkRun]) -> dict[str, Any]:
    """The scenario's result: medians and min-max over its runs, plus every run."""
    return {
        "requests_per_second": spread([run.rps for run in runs]),
        "p50_ms": spread([run.p50_ms for run in runs]),
        "p99_ms": spread([run.p99_ms for run in runs]),
        "server_cpu_ms_per_request": spread([run.cpu_ms_per_request for run in runs]),
        "server_cpu_utilisation": spread(
            [run.server_cpu_seconds / max(run.seconds, 1e-9) for run in runs]
        ),
        "other_cpu_utilisation": spread(
            [run.other_cpu_seconds / max(run.seconds, 1e-9) for run in runs]
        ),
        "load_generator_cpu_utilisation": spread(
            [run.load_cpu_seconds / max(run.seconds, 1e-9) for run in runs]
        ),
        "errors": sum(run.errors for run in runs),
        "graphql_errors": sum(run.graphql_errors for run in runs),
        "runs": [asdict(run) for run in runs],
    }


# --------------------------------------------------------------------------- helpers


def basic(username: str, password: str) -> str:
    """The Basic Authorization header for a login."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


ADMIN_AUTH = basic(dataset.ADMIN_USERNAME, dataset.ADMIN_PASSWORD)


async def graphql(
    session: aiohttp.ClientSession,
    url: str,
    query: str,
    variables: dict[str, Any] | None = None,
    auth: str = ADMIN_AUTH,
) -> dict[str, Any]:
    """POST a GraphQL request; returns the decoded answer (raises on errors)."""
    async with session.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": auth},
    ) as response:
        body: dict[str, Any] = await response.json(content_type=None)
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body


#: A request every server of the bench answers (the baseline serves only this one).
WARM_VARIABLES = {"courseId": str(dataset.BIG_COURSE_ID), "userId": str(dataset.FIRST_STUDENT_ID)}


async def warm_credentials(
    url: str, auths: Sequence[str], query: str = PROGRESS_QUERY, variables: Any = None
) -> float:
    """One request per credential so the server's auth cache holds them; returns seconds."""
    started = time.monotonic()
    variables = WARM_VARIABLES if variables is None else variables
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(
            *(graphql(session, url, query, variables, auth=auth) for auth in auths)
        )
    return time.monotonic() - started


# --------------------------------------------------------------------------- complete


@dataclass(frozen=True, slots=True)
class Toggler:
    """One `complete` client: a student, a course of theirs and the lesson they toggle."""

    u: int
    user_id: int
    course_id: int
    lesson_id: int
    auth: str


def complete_clients(layout: dataset.Layout, count: int = COMPLETE_CLIENTS) -> list[Toggler]:
    """`count` distinct students spread over the dataset (student 0 is kept for fanout)."""
    stride = max(1, (layout.students - 1) // count)
    clients = []
    for index in range(count):
        u = 1 + index * stride
        course = layout.courses_of(u)[0]
        position = (index % layout.lessons_per_course) + 1
        clients.append(
            Toggler(
                u=u,
                user_id=layout.user_id(u),
                course_id=course,
                lesson_id=layout.lesson_id(course, position),
                auth=basic(layout.username(u), dataset.STUDENT_PASSWORD),
            )
        )
    return clients


async def completion_state(database_url: str, clients: Sequence[Toggler]) -> dict[str, Any]:
    """Last event id, and whether each client's lesson is complete now."""
    engine = schema_engine(database_url)
    try:
        async with engine.connect() as connection:
            last = await connection.scalar(text("SELECT COALESCE(MAX(id), 0) FROM progress_events"))
            done = {}
            for client in clients:
                found = await connection.scalar(
                    text(
                        "SELECT COUNT(*) FROM lesson_completions c JOIN enrollments e"
                        " ON e.id = c.enrollment_id WHERE e.user_id = :u AND e.course_id = :c"
                        " AND c.lesson_id = :l"
                    ),
                    {"u": client.user_id, "c": client.course_id, "l": client.lesson_id},
                )
                done[client.u] = int(found or 0)
    finally:
        await engine.dispose()
    return {"last_event": int(last or 0), "done": done}


async def verify_completions(
    database_url: str, clients: Sequence[Toggler], before: dict[str, Any]
) -> dict[str, Any]:
    """Check the run against the database; returns counts that must be zero, and the changes.

    For every client, (completions now - completions before) must equal the lesson's
    completed events minus its incompleted events logged during the run; and every
    enrolment's counters must agree with its rows (bench/dataset.py check_consistency).
    """
    after = await completion_state(database_url, clients)
    engine = schema_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text(
                        "SELECT user_id, course_id, lesson_id, kind, COUNT(*) FROM progress_events"
                        " WHERE id > :after AND kind IN ('lesson_completed', 'lesson_incompleted')"
                        " GROUP BY user_id, course_id, lesson_id, kind"
                    ),
                    {"after": before["last_event"]},
                )
            ).all()
        consistency = await dataset.check_consistency(engine)
    finally:
        await engine.dispose()
    net: dict[tuple[int, int, int], int] = {}
    changes = 0
    for user_id, course_id, lesson_id, kind, count in rows:
        key = (int(user_id), int(course_id), int(lesson_id or 0))
        net[key] = net.get(key, 0) + (count if kind == "lesson_completed" else -count)
        changes += int(count)
    mismatched = sum(
        1
        for client in clients
        if after["done"][client.u] - before["done"][client.u]
        != net.get((client.user_id, client.course_id, client.lesson_id), 0)
    )
    return {
        "logged_changes": changes,
        "clients_with_lost_or_duplicated_changes": mismatched,
        **consistency,
    }


async def run_complete(
    wrk: str,
    plan: Plan,
    work: Path,
    database_url: str,
    layout: dataset.Layout,
    label: str,
) -> dict[str, Any]:
    """The `complete` scenario on one database: runs, rates and the verification of each run."""
    clients = complete_clients(layout)
    docs = documents()
    variables = {"courseId": "%d", "lessonId": "%d"}
    script = write_script(
        work,
        "complete",
        {
            **layout_constants(layout),
            "PATH": "/graphql",
            "COMPLETE_BODY": graphql_body(docs["complete"], variables),
            "INCOMPLETE_BODY": graphql_body(docs["incomplete"], variables),
            "STUDENT_AUTHS": [client.auth for client in clients],
            "STUDENT_COURSES": [client.course_id for client in clients],
            "STUDENT_LESSONS": [client.lesson_id for client in clients],
        },
    )
    server = coursepulse_server(f"coursepulse-{label}", database_url, work, plan).start()
    runs: list[WrkRun] = []
    checks: list[dict[str, Any]] = []
    warm_seconds: list[float] = []
    try:
        await server.wait_ready()
        for number in range(plan.runs):
            # The auth cache keeps a credential 30 s: warm the 64 students before each run so
            # no run pays their (deliberately slow) password hashes.
            warm_seconds.append(
                await warm_credentials(server.url, [c.auth for c in clients], "{ me { id } }", {})
            )
            before = await completion_state(database_url, clients)
            run = run_wrk(
                wrk,
                script,
                f"{server.url}/graphql",
                duration=plan.duration,
                connections=COMPLETE_CLIENTS,
                threads=COMPLETE_CLIENTS,
                server_pids=server.pids(),
            )
            await asyncio.sleep(1.0)  # requests in flight when wrk stopped finish
            check = await verify_completions(database_url, clients, before)
            # Changes the clients saw acknowledged within the run; the log also holds the ones
            # in flight when wrk stopped (at most one per client).
            check["changes_per_second"] = round(run.changes / run.seconds, 1)
            check["acknowledged_changes"] = run.changes
            # Every acknowledged change is logged; at most one unacknowledged per client.
            check["unlogged_acknowledged_changes"] = max(0, run.changes - check["logged_changes"])
            runs.append(run)
            checks.append(check)
            log(
                f"complete {label} run {number + 1}: {run.rps:.0f} requests/s, "
                f"{check['changes_per_second']:.0f} changes/s, errors {run.errors}, "
                f"lost/duplicated {check['clients_with_lost_or_duplicated_changes']}, "
                f"counter mismatches {check['counter_mismatch']}"
            )
    finally:
        server.stop()
    result = summarize(runs)
    result["changes_per_second"] = spread([check["changes_per_second"] for check in checks])
    result["verification"] = checks
    result["credential_warmup_seconds"] = [round(value, 2) for value in warm_seconds]
    result["violations"] = sum(
        check["clients_with_lost_or_duplicated_changes"]
        + check["unlogged_acknowledged_changes"]
        + check["counter_mismatch"]
        + check["duplicate_completions"]
        + check["status_mismatch"]
        + check["total_mismatch"]
        + check["roster_count_mismatch"]
        for check in checks
    )
    return result


# --------------------------------------------------------------------------- fanout


@dataclass
class LessonSwitch:
    """Makes one real progress change per call by toggling one lesson of one student."""

    url: str
    auth: str
    course_id: int
    lesson_id: int
    completed: bool | None = None

    async def change(self, session: aiohttp.ClientSession) -> float:
        """Send the mutation that changes something; returns the seconds it took."""
        docs = documents()
        variables = {"courseId": str(self.course_id), "lessonId": str(self.lesson_id)}
        started = time.monotonic()
        if self.completed is None:
            body = await graphql(session, self.url, docs["complete"], variables, self.auth)
            if not body["data"]["completeLesson"]["alreadyCompleted"]:
                self.completed = True
                return time.monotonic() - started
            self.completed = True
        name = "incomplete" if self.completed else "complete"
        await graphql(session, self.url, docs[name], variables, self.auth)
        self.completed = not self.completed
        return time.monotonic() - started


def _receive(pipes: Sequence[Any], timeout: float) -> list[Any]:
    """One message from each client process (raises when one stays silent)."""
    messages = []
    deadline = time.monotonic() + timeout
    for pipe in pipes:
        if not pipe.poll(max(0.1, deadline - time.monotonic())):
            raise RuntimeError("a fanout client process did not answer")
        messages.append(pipe.recv())
    return messages


async def run_fanout(
    subscribers: int,
    plan: Plan,
    work: Path,
    database_url: str,
    layout: dataset.Layout,
    profile: Path | None = None,
) -> dict[str, Any]:
    """N courseActivity subscribers, one change, delivery latency and RSS per connection;
    with `profile`, the server's delivery of the change is sampled by py-spy into it."""
    name = f"coursepulse-fanout-{subscribers}"
    # Every subscriber signs in as the one admin: the per-user websocket limits (20 sockets,
    # 100 operations by default) would refuse all but the first 20.
    limits = str(subscribers + COMPLETE_CLIENTS)
    settings = {
        "COURSEPULSE_MAX_WEBSOCKETS_PER_USER": limits,
        "COURSEPULSE_MAX_SUBSCRIPTIONS_PER_USER": limits,
    }
    server = coursepulse_server(name, database_url, work, plan, settings=settings).start()
    context = multiprocessing.get_context("spawn")
    processes: list[Any] = []
    pipes: list[Any] = []
    loop = asyncio.get_running_loop()
    try:
        await server.wait_ready()
        student_u = 0
        course = dataset.BIG_COURSE_ID
        assert course in layout.courses_of(student_u)
        student_auth = basic(layout.username(student_u), dataset.STUDENT_PASSWORD)
        await warm_credentials(server.url, [ADMIN_AUTH, student_auth])
        await asyncio.sleep(1.0)
        rss_before = rss_kb(server.pid)
        count = max(2, min(8, math.ceil(subscribers / 1_250)))
        shares = [
            subscribers // count + (1 if i < subscribers % count else 0) for i in range(count)
        ]
        ws_url = f"ws://127.0.0.1:{server.port}/graphql"
        started = time.monotonic()
        for share in shares:
            ours, theirs = context.Pipe()
            spec = fanout.ClientSpec(
                url=ws_url,
                subscribers=share,
                authorization=ADMIN_AUTH,
                query=documents()["fanout"],
                variables={"courseId": str(course)},
                cpu=int(LOAD_CPU) if have_taskset() else None,
            )
            process = context.Process(target=fanout.client_process, args=(theirs, spec))
            process.start()
            processes.append(process)
            pipes.append(ours)
        connected = await loop.run_in_executor(None, _receive, pipes, 600.0)
        connect_seconds = time.monotonic() - started
        ok = sum(item[1] for item in connected)
        failed = sum(item[2] for item in connected)
        first_error = next((item[3] for item in connected if item[3]), "")
        log(f"fanout {subscribers}: {ok} connected, {failed} failed in {connect_seconds:.1f} s")
        await asyncio.sleep(1.0 + subscribers / 5_000)  # subscriptions reach the feed
        switch = LessonSwitch(
            server.url, student_auth, course, layout.lesson_id(course, layout.lessons_per_course)
        )
        async with aiohttp.ClientSession() as session:
            await switch.change(session)  # the probe: proves every subscription is live
            for pipe in pipes:
                pipe.send("probe")
            probed = await loop.run_in_executor(None, _receive, pipes, 120.0)
            probe_delivered = sum(item[1] for item in probed)
            closed = sum(item[2] for item in probed)
            closed_reason = next((item[3] for item in probed if item[3]), "")
            await asyncio.sleep(2.0)
            rss_after = rss_kb(server.pid)
            changes = []
            for number in range(max(1, plan.runs)):
                spy = None
                if profile is not None and number == 0:
                    spy = start_profile(server, 3.0, profile.with_suffix(".collapsed"))
                    await asyncio.sleep(0.5)  # py-spy attaches
                changes.append(await _measure_change(server, switch, session, pipes, processes))
                if spy is not None and profile is not None:
                    await loop.run_in_executor(None, spy.wait)
                    summarize_profile(profile.with_suffix(".collapsed"), profile)
                await asyncio.sleep(1.0)
        for pipe in pipes:
            pipe.send("close")
        with contextlib.suppress(RuntimeError):
            await loop.run_in_executor(None, _receive, pipes, 60.0)
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        server.stop()

    grown = max(0, rss_after - rss_before)
    # The change whose p99 is the median of the changes' stands for them all (its row is
    # one measurement); every change's p99 is kept beside it.
    middle = sorted(changes, key=lambda change: change["p99_ms"])[(len(changes) - 1) // 2]
    return {
        "subscribers": subscribers,
        "client_processes": count,
        "connected": ok,
        "failed": failed,
        "first_error": first_error,
        "connect_seconds": round(connect_seconds, 1),
        "probe_delivered": probe_delivered,
        "closed_before_probe": closed,
        "closed_reason": closed_reason,
        **middle,
        "p99_ms_per_change": [change["p99_ms"] for change in changes],
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_after_mib": round(rss_after / 1024, 1),
        "kib_per_connection": round(grown / max(ok, 1), 1),
    }


async def _measure_change(
    server: Server,
    switch: LessonSwitch,
    session: aiohttp.ClientSession,
    pipes: Sequence[Any],
    processes: Sequence[Any],
) -> dict[str, Any]:
    """One measured change: each subscriber's delivery latency from the mutation's send,
    and the CPU the server and the subscribers spent until the last arrival."""
    loop = asyncio.get_running_loop()
    for pipe in pipes:
        pipe.send("arm")
    await loop.run_in_executor(None, _receive, pipes, 60.0)
    clients = [process.pid for process in processes]
    server_cpu, clients_cpu = cpu_seconds(server.pids()), cpu_seconds(clients)
    sent_at = time.monotonic()
    mutation_seconds = await switch.change(session)
    for pipe in pipes:
        pipe.send("measure")
    timed = await loop.run_in_executor(None, _receive, pipes, 120.0)
    # CPU each side spent from the change to the last arrival: which one the latencies
    # wait for (the subscribers share one CPU; the server has its own).
    server_cpu = cpu_seconds(server.pids()) - server_cpu
    clients_cpu = cpu_seconds(clients) - clients_cpu
    latencies = sorted(1000 * (moment - sent_at) for item in timed for moment in item[1])

    def percentile(share: float) -> float:
        if not latencies:
            return 0.0
        return round(latencies[min(len(latencies) - 1, int(share * len(latencies)))], 1)

    return {
        "delivered": len(latencies),
        "mutation_ms": round(1000 * mutation_seconds, 1),
        "first_ms": round(latencies[0], 1) if latencies else 0.0,
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": round(latencies[-1], 1) if latencies else 0.0,
        "server_cpu_ms": round(1000 * server_cpu, 1),
        "clients_cpu_ms": round(1000 * clients_cpu, 1),
    }


# --------------------------------------------------------------------------- profile


def profile_server(server: Server, seconds: float, output: Path) -> dict[str, Any] | None:
    """py-spy samples of the server for `seconds` (when py-spy is installed), top functions.

    The samples are kept beside `output` as <name>.collapsed (flame graph tools read it).

    Returns {"self": [...], "total": [...]} as (function, share of samples) pairs.
    """
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    raw = output.with_suffix(".collapsed")
    argv = [spy, "record", "-p", str(server.pid), "-d", str(int(seconds)), "-r", "250"]
    argv += ["-f", "raw", "-o", str(raw), "--nonblocking", "--gil"]
    return_code = subprocess.run(
        pinned(LOAD_CPU, argv), capture_output=True, check=False
    ).returncode
    if return_code != 0 or not raw.exists():
        return None
    return summarize_profile(raw, output)


def start_profile(server: Server, seconds: float, raw: Path) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the server for `seconds` at 1 kHz into `raw` (None without py-spy)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    raw.parent.mkdir(parents=True, exist_ok=True)
    argv = [spy, "record", "-p", str(server.pid), "-d", str(int(seconds)), "-r", "1000"]
    argv += ["-f", "raw", "-o", str(raw), "--nonblocking", "--gil"]
    return subprocess.Popen(
        pinned(LOAD_CPU, argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def summarize_profile(raw: Path, output: Path) -> dict[str, Any] | None:
    """The top functions of py-spy's raw samples, written to `output`; None without samples."""
    if not raw.exists():
        return None
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        count = int(number)
        frames = [frame.split(" (")[0] + " " + _short_location(frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + count

    def top(table: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(table.items(), key=lambda item: -item[1])[:30]
        return [(name, round(100 * value / max(samples, 1), 1)) for name, value in ranked]

    report = {"samples": samples, "self": top(own), "total": top(total)}
    lines = [f"py-spy: {samples} samples", "", "self %  function"]
    lines += [f"{share:6.1f}  {name}" for name, share in report["self"]]
    lines += ["", "total %  function"]
    lines += [f"{share:6.1f}  {name}" for name, share in report["total"]]
    output.write_text("\n".join(lines) + "\n")
    return report


def profile_under_load(
    wrk: str, script: Path, server: Server, url: str, plan: Plan, output: Path
) -> dict[str, Any] | None:
    """Profile the server (py-spy) while wrk loads it; returns profile_server's report."""
    argv = [wrk, "-t1", f"-c{plan.connections}", f"-d{plan.duration + 2}s", "-s", str(script)]
    loader = subprocess.Popen(pinned(LOAD_CPU, [*argv, url]), stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        return profile_server(server, plan.duration, output)
    finally:
        loader.wait()


def _short_location(frame: str) -> str:
    """'(site-packages/strawberry/x.py:12)' -> '(strawberry/x.py)'."""
    if " (" not in frame:
        return ""
    location = frame.split(" (", 1)[1].rstrip(")")
    path = location.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    if str(ROOT) in path:
        path = path.split(str(ROOT) + "/", 1)[1]
    return f"({path})"


# --------------------------------------------------------------------------- reads


async def run_reads(
    wrk: str,
    plan: Plan,
    work: Path,
    database_path: Path,
    layout: dataset.Layout,
    largest_course: int,
    profile: bool,
    output_dir: Path,
) -> dict[str, Any]:
    """baseline, progress, rest-progress and roster, interleaved run by run.

    With `profile`, each is then profiled with py-spy into output_dir/profile-<name>.txt.
    """
    wanted = [name for name in READ_SCENARIOS if name in plan.scenarios]
    if not wanted:
        return {}
    database_url = f"sqlite+aiosqlite:///{database_path}"
    docs = documents()
    common = {**layout_constants(layout), "AUTH": ADMIN_AUTH}
    progress_body = graphql_body(docs["progress"], {"courseId": "%d", "userId": "%d"})
    roster_body = graphql_body(
        docs["roster"],
        {"courseId": str(largest_course), "perPage": 20, "orderBy": "PROGRESS", "order": "DESC"},
    )
    scripts = {
        "baseline": write_script(
            work, "progress", {**common, "PATH": "/graphql", "BODY": progress_body}
        ),
        "progress": write_script(
            work, "progress", {**common, "PATH": "/graphql", "BODY": progress_body}
        ),
        "rest-progress": write_script(
            work, "rest-progress", {**common, "PATH": REST_PROGRESS_PATH}
        ),
        "roster": write_script(work, "roster", {**common, "PATH": "/graphql", "BODY": roster_body}),
    }
    paths = {
        "baseline": "/graphql",
        "progress": "/graphql",
        "rest-progress": "",
        "roster": "/graphql",
    }
    service = coursepulse_server("coursepulse", database_url, work, plan)
    raw = baseline_server(database_path, work)
    servers = {"baseline": raw}
    servers.update({name: service for name in wanted if name != "baseline"})
    started = [raw.start()] if "baseline" in wanted else []
    if any(name != "baseline" for name in wanted):
        started.append(service.start())
    runs: dict[str, list[WrkRun]] = {name: [] for name in wanted}
    profiles: dict[str, Any] = {}
    try:
        for server in started:
            await server.wait_ready()
            await warm_credentials(server.url, [ADMIN_AUTH])
        for name in wanted:  # warm-up: caches and connection pools
            server = servers[name]
            run_wrk(
                wrk,
                scripts[name],
                server.url + paths[name],
                duration=plan.warmup,
                connections=plan.connections,
            )
        for number in range(plan.runs):
            for name in wanted:
                server = servers[name]
                run = run_wrk(
                    wrk,
                    scripts[name],
                    server.url + paths[name],
                    duration=plan.duration,
                    connections=plan.connections,
                    server_pids=[server.pid],
                )
                runs[name].append(run)
                log(
                    f"{name} run {number + 1}: {run.rps:.0f} requests/s, p50 {run.p50_ms:.1f} ms,"
                    f" p99 {run.p99_ms:.1f} ms, {run.cpu_ms_per_request:.2f} ms CPU/request,"
                    f" errors {run.errors + run.graphql_errors}"
                )
        if profile:
            for name in wanted:
                server = servers[name]
                output = output_dir / f"profile-{name}.txt"
                profiles[name] = profile_under_load(
                    wrk, scripts[name], server, server.url + paths[name], plan, output
                )
                log(f"profile of {name}: {output}")
    finally:
        for server in started:
            server.stop()
    results = {name: summarize(items) for name, items in runs.items()}
    for name, item in results.items():
        if profiles.get(name):
            item["profile_top_self"] = profiles[name]["self"][:15]
    return results


async def run_workers(
    wrk: str, plan: Plan, work: Path, database_path: Path, layout: dataset.Layout
) -> dict[str, Any]:
    """progress against `serve --workers 2` and `--workers 1`, neither pinned, in alternate
    runs (1 2 1 2 ...): the ratio is the median of each pair's, so a drift of the host's
    CPU speed during the scenario moves both sides of a pair alike."""
    if not serve_supports_workers():
        return {"available": False, "note": "coursepulse serve has no --workers option"}
    database_url = f"sqlite+aiosqlite:///{database_path}"
    docs = documents()
    script = write_script(
        work,
        "progress",
        {
            **layout_constants(layout),
            "AUTH": ADMIN_AUTH,
            "PATH": "/graphql",
            "BODY": graphql_body(docs["progress"], {"courseId": "%d", "userId": "%d"}),
        },
    )
    counts = (1, 2)
    servers = {
        workers: coursepulse_server(
            f"coursepulse-workers-{workers}", database_url, work, plan, workers=workers, cpus=None
        )
        for workers in counts
    }
    runs: dict[int, list[WrkRun]] = {workers: [] for workers in counts}
    try:
        for server in servers.values():
            server.start()
        for server in servers.values():
            await server.wait_ready()
            await warm_credentials(server.url, [ADMIN_AUTH] * 8)  # each worker hashes once
        for number in range(plan.runs):
            for workers, server in servers.items():
                # Each run starts warm: the other server's run had the CPUs' caches.
                run_wrk(
                    wrk,
                    script,
                    f"{server.url}/graphql",
                    duration=plan.warmup,
                    connections=plan.connections,
                )
                run = run_wrk(
                    wrk,
                    script,
                    f"{server.url}/graphql",
                    duration=plan.duration,
                    connections=plan.connections,
                    server_pids=server.pids(),
                )
                runs[workers].append(run)
                log(f"workers {workers} run {number + 1}: {run.rps:.0f} requests/s")
    finally:
        for server in servers.values():
            server.stop()
    results: dict[str, Any] = {"available": True}
    for workers in counts:
        results[f"workers_{workers}"] = summarize(runs[workers])
    pairs = [
        round(two.rps / one.rps, 3) for one, two in zip(runs[1], runs[2], strict=True) if one.rps
    ]
    results["ratio_per_run"] = pairs
    results["ratio_2_to_1"] = round(statistics.median(pairs), 2) if pairs else 0.0
    return results


# --------------------------------------------------------------------------- report


def _fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _rps_cell(summary: dict[str, Any]) -> str:
    rps = summary["requests_per_second"]
    return f"{_fmt(rps['median'])} ({_fmt(rps['min'])}-{_fmt(rps['max'])})"


def _ratio(summary: dict[str, Any], baseline: float) -> str:
    if not baseline:
        return "-"
    return f"{summary['requests_per_second']['median'] / baseline:.2f}x"


def markdown(results: dict[str, Any]) -> str:
    """The results as a Markdown report: tables first, then the targets of issue 13."""
    machine, data, plan = results["machine"], results["dataset"], results["plan"]
    scenarios = results["scenarios"]
    base = scenarios.get("baseline", {}).get("requests_per_second", {}).get("median", 0.0)
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    lines = [
        f"# coursepulse benchmark ({plan['name']}, {results['started_at']})",
        "",
        f"- Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB, {machine['os']}, Python {machine['python']}; "
        f"{machine['pinning']}; {machine['wrk']}; commit {machine['commit']}.",
        f"- Packages: {packages}.",
        f"- Dataset (SQLite, generated in {data['seconds']} s): {data['users']:,} users, "
        f"{data['courses']} courses x {data['layout']['lessons_per_course']} lessons, "
        f"{data['enrollments']:,} enrolments, {data['completions']:,} completions; largest "
        f"course {data['largest_course_id']} with {data['largest_course_enrollments']:,} "
        "enrolments.",
        f"- Runs: {plan['runs']} x {plan['duration']} s per scenario after a "
        f"{plan['warmup']} s warm-up; {plan['connections']} connections (complete: 64, one "
        "student each); medians with min-max; latency percentiles are wrk's, at saturation; "
        + (
            "servers with default settings."
            if plan["auth_cache_seconds"] is None
            else f"servers with COURSEPULSE_AUTH_CACHE_SECONDS={plan['auth_cache_seconds']:g}."
        ),
        f"- Command: `{results['command']}` (took {results['total_seconds']:.0f} s).",
    ]
    others = [
        run["other_cpu_seconds"] / max(run["seconds"], 1e-9)
        for item in scenarios.values()
        if isinstance(item, dict)
        for run in item.get("runs", [])
    ]
    if others:
        lines.append(
            f"- Other processes kept {statistics.mean(others):.2f} CPUs busy on average during "
            f"the wrk runs (max {max(others):.2f}): 0 on a quiet machine."
        )
    steadiness = steadiness_line(machine.get("cpu_loop_ms", []))
    if steadiness:
        lines.append(steadiness)
    if base:
        low = scenarios["baseline"]["requests_per_second"]["min"]
        high = scenarios["baseline"]["requests_per_second"]["max"]
        if (high - low) / base > 0.2:
            lines.append(
                f"- Warning: the baseline's runs range over {100 * (high - low) / base:.0f}% of "
                "their median: something else was using the CPUs (see other_cpu_seconds in the "
                "JSON); ratios are rougher than usual."
            )
    lines += [
        "",
        "| scenario | requests/s median (min-max) | x baseline | p50 ms | p99 ms "
        "| server CPU ms/request | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {
        "baseline": "baseline: raw aiohttp + aiosqlite, same reads as progress",
        "progress": "progress: GraphQL courseProgress (admin, random pairs)",
        "rest-progress": "rest-progress: GET .../courses/{id}/progress?user_id=",
        "roster": "roster: courseStudents perPage 20, PROGRESS DESC, largest course",
        "complete-sqlite": "complete (SQLite): complete/incompleteLesson, 64 students",
        "complete-postgresql": "complete (PostgreSQL): complete/incompleteLesson, 64 students",
    }
    for name, label in labels.items():
        item = scenarios.get(name)
        if not item or "requests_per_second" not in item:
            if item and item.get("skipped"):
                lines.append(f"| {label} | skipped: {item['skipped']} | | | | | |")
            continue
        lines.append(
            f"| {label} | {_rps_cell(item)} | {_ratio(item, base)} "
            f"| {item['p50_ms']['median']:.1f} | {item['p99_ms']['median']:.1f} "
            f"| {item['server_cpu_ms_per_request']['median']:.2f} "
            f"| {item['errors'] + item['graphql_errors']} |"
        )
    workers = scenarios.get("workers")
    if workers and workers.get("available"):
        for count in (1, 2):
            item = workers[f"workers_{count}"]
            lines.append(
                f"| progress, `serve --workers {count}` (not pinned) | {_rps_cell(item)} "
                f"| {_ratio(item, base)} | {item['p50_ms']['median']:.1f} "
                f"| {item['p99_ms']['median']:.1f} "
                f"| {item['server_cpu_ms_per_request']['median']:.2f} "
                f"| {item['errors'] + item['graphql_errors']} |"
            )
    elif workers:
        lines.append(f"| workers | not available: {workers.get('note', '')} | | | | | |")
    lines.append("")
    for name in ("complete-sqlite", "complete-postgresql"):
        item = scenarios.get(name)
        if item and "changes_per_second" in item:
            rate = item["changes_per_second"]
            lines.append(
                f"- {name}: {_fmt(rate['median'])} changes/s ({_fmt(rate['min'])}-"
                f"{_fmt(rate['max'])}) acknowledged to the clients (each one also found in "
                "progress_events); lost or duplicated completions and counter mismatches "
                f"after the runs: {item['violations']}."
            )
    fan = scenarios.get("fanout") or []
    if fan:
        lines += [
            "",
            "| subscribers (courseActivity) | delivered | first ms | p50 ms | p99 ms | max ms "
            "| RSS before → after MiB | KiB per idle connection | connect s "
            "| CPU ms to deliver: server / subscribers |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for item in fan:
            lines.append(
                f"| {item['subscribers']:,} ({item['client_processes']} client processes) "
                f"| {item['delivered']:,}/{item['connected']:,} | {item['first_ms']} "
                f"| {item['p50_ms']} "
                f"| {item['p99_ms']}{_per_change(item)} | {item['max_ms']} "
                f"| {item['rss_before_mib']} → {item['rss_after_mib']} "
                f"| {item['kib_per_connection']} | {item['connect_seconds']} "
                f"| {item.get('server_cpu_ms', '-')} / {item.get('clients_cpu_ms', '-')} |"
            )
        lines.append(
            "- Each count's row is its median change (by p99) of the changes measured one"
            " after another on the same subscribers; the p99 of each is in brackets. CPU to"
            " deliver: what the server and the subscriber processes spent from the change to"
            " the last arrival. The subscribers share one CPU: when theirs exceeds the p99,"
            " arrivals wait for the subscribers to read them, not for the server."
        )
    statements = results.get("statements")
    if statements:
        lines += ["", "| operation | SQL statements | transactions (BEGIN) |", "|---|---|---|"]
        for name, item in statements.items():
            lines.append(f"| {name} | {item['statements']} | {item['transactions']} |")
    lines += ["", "## Targets of issue 13", "", "| target | measured | met |", "|---|---|---|"]
    for target in results["targets"]:
        lines.append(f"| {target['target']} | {target['measured']} | {target['met']} |")
    return "\n".join(lines) + "\n"


FANOUT_TARGET = "fanout: 10,000 subscribers, p99 < 250 ms, <= 32 KiB per idle connection"


def targets(results: dict[str, Any]) -> list[dict[str, str]]:
    """Issue 13's targets measured here, each with the measured value and whether it is
    met (its targets against PostGraphile are in the peers table, bench/peers.py)."""
    scenarios = results["scenarios"]
    base = scenarios.get("baseline", {}).get("requests_per_second", {}).get("median", 0.0)
    rows: list[dict[str, str]] = []

    def ratio_row(name: str, label: str, wanted: float) -> None:
        item = scenarios.get(name)
        if not item or not base or "requests_per_second" not in item:
            rows.append({"target": label, "measured": "not run", "met": "n/a"})
            return
        ratio = item["requests_per_second"]["median"] / base
        met = "yes" if ratio >= wanted else "no"
        rows.append({"target": label, "measured": f"{ratio:.2f}x", "met": met})

    ratio_row("progress", "progress >= 0.40x baseline", 0.40)
    ratio_row("roster", "roster >= 0.30x baseline", 0.30)
    statements = results.get("statements") or {}
    if "roster perPage 20" in statements:
        twenty = statements["roster perPage 20"]["statements"]
        hundred = statements["roster perPage 100"]["statements"]
        rows.append(
            {
                "target": "roster: same statement count for perPage 20 and 100",
                "measured": f"{twenty} and {hundred}",
                "met": "yes" if twenty == hundred else "no",
            }
        )
    for name, wanted in (("complete-sqlite", 1_000), ("complete-postgresql", 800)):
        item = scenarios.get(name)
        label = f"{name}: >= {wanted:,} changes/s, none lost or duplicated"
        if not item or "changes_per_second" not in item:
            reason = item.get("skipped", "not run") if item else "not run"
            rows.append({"target": label, "measured": reason, "met": "n/a"})
            continue
        rate = item["changes_per_second"]["median"]
        met = rate >= wanted and item["violations"] == 0
        rows.append(
            {
                "target": label,
                "measured": f"{rate:,.0f} changes/s, {item['violations']} violations",
                "met": "yes" if met else "no",
            }
        )
    fan = {item["subscribers"]: item for item in scenarios.get("fanout") or []}
    if 10_000 in fan:
        item = fan[10_000]
        met = item["p99_ms"] < 250 and item["kib_per_connection"] <= 32
        rows.append(
            {
                "target": FANOUT_TARGET,
                "measured": f"p99 {item['p99_ms']} ms{_per_change(item)}, "
                f"{item['kib_per_connection']} KiB",
                "met": "yes" if met else "no",
            }
        )
    elif fan:
        largest = fan[max(fan)]
        rows.append(
            {
                "target": FANOUT_TARGET,
                "measured": f"{largest['subscribers']:,} only (run bench-full): p99 "
                f"{largest['p99_ms']} ms, {largest['kib_per_connection']} KiB",
                "met": "n/a",
            }
        )
    workers = scenarios.get("workers")
    if workers and workers.get("available"):
        ratio = workers["ratio_2_to_1"]
        pairs = workers.get("ratio_per_run", [])
        measured = f"{ratio:.2f}x (both unpinned"
        measured += f"; median of {len(pairs)} alternate runs: " if pairs else ""
        measured += ", ".join(f"{pair:.2f}" for pair in pairs) + ")"
        pinned_one = scenarios.get("progress", {}).get("requests_per_second", {}).get("median")
        if pinned_one:
            two = workers["workers_2"]["requests_per_second"]["median"]
            measured += f"; {two / pinned_one:.2f}x the pinned single worker of `progress`"
        measured += "; " + _cpu_split(workers, int(results.get("machine", {}).get("nproc", 0)))
        rows.append(
            {
                "target": "--workers 2 >= 1.7x one worker on progress",
                "measured": measured,
                "met": "yes" if ratio >= 1.7 else "no",
            }
        )
    return rows


def _per_change(item: dict[str, Any]) -> str:
    """ " (median of N changes: a, b, c)" after a fan-out's p99, when several were measured."""
    p99s = item.get("p99_ms_per_change", [])
    if len(p99s) < 2:
        return ""
    return f" (median of {len(p99s)} changes: {', '.join(str(p99) for p99 in p99s)})"


def _cpu_split(workers: dict[str, Any], cpus: int) -> str:
    """Where the machine's CPUs went in the two-worker runs, against the single worker's:
    the load generator and the kernel share the CPUs that the workers would scale onto."""

    def median(run: str, name: str) -> float:
        return float(workers[run].get(name, {}).get("median", 0.0))

    return (
        f"CPUs used by the workers {median('workers_2', 'server_cpu_utilisation'):.2f} "
        f"(one worker: {median('workers_1', 'server_cpu_utilisation'):.2f}), by wrk "
        f"{median('workers_2', 'load_generator_cpu_utilisation'):.2f}, by the rest "
        f"{median('workers_2', 'other_cpu_utilisation'):.2f}, of {cpus}"
    )


def write_results(results: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    """latest.json and latest.md, plus timestamped copies; returns the two latest paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text_json = json.dumps(results, indent=2) + "\n"
    text_md = markdown(results)
    for name in (f"{stamp}-{results['plan']['name']}", "latest"):
        (output_dir / f"{name}.json").write_text(text_json)
        (output_dir / f"{name}.md").write_text(text_md)
    return output_dir / "latest.json", output_dir / "latest.md"


# --------------------------------------------------------------------------- main


@contextlib.contextmanager
def work_directory(keep: bool) -> Iterator[Path]:
    """A scratch directory for databases, scripts and server logs (removed unless kept)."""
    path = Path(tempfile.mkdtemp(prefix="coursepulse-bench-"))
    try:
        yield path
    finally:
        if keep:
            log(f"kept the work directory {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


async def postgres_reachable(url: str) -> str:
    """'' when the PostgreSQL server answers, else the reason."""
    engine = schema_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure means we skip, and say why
        return f"{type(error).__name__}: {error}"[:200]
    finally:
        await engine.dispose()
    return ""


async def main_async(args: argparse.Namespace, plan: Plan) -> dict[str, Any]:
    """Everything the invocation asked for; returns the results document."""
    wrk = ensure_wrk()
    fanout.raise_open_files_limit()  # inherited by the servers and client processes
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python bench/run.py", *sys.argv[1:]]),
        "plan": asdict(plan),
        "machine": machine_info(wrk),
        "scenarios": {},
    }
    results["machine"]["cpu_loop_ms"] = cpu_steadiness()
    scenarios: dict[str, Any] = results["scenarios"]
    layout = dataset.Layout.for_scale(plan.scale)
    with work_directory(args.keep) as work:
        database_path = work / "bench.db"
        database_url = f"sqlite+aiosqlite:///{database_path}"
        log(f"generating the SQLite dataset (scale {plan.scale}) in {database_path}")
        summary = await dataset.generate(database_url, layout, recreate=True)
        results["dataset"] = asdict(summary)
        log(
            f"{summary.enrollments:,} enrolments, {summary.completions:,} completions "
            f"in {summary.seconds} s"
        )
        largest = summary.largest_course_id
        if not args.no_statements:
            import statements

            results["statements"] = await statements.count_operations(
                database_url, layout, documents(), largest
            )
            log(f"statements per operation: {results['statements']}")
        scenarios.update(
            await run_reads(
                wrk, plan, work, database_path, layout, largest, args.profile, args.output_dir
            )
        )
        if "complete" in plan.scenarios:
            scenarios["complete-sqlite"] = await run_complete(
                wrk, plan, work, database_url, layout, "sqlite"
            )
            admin_url = args.postgres_url
            reason = await postgres_reachable(admin_url) if admin_url else "no --postgres-url"
            if reason:
                scenarios["complete-postgresql"] = {"skipped": reason}
                log(f"complete on PostgreSQL skipped: {reason}")
            else:
                pg_url = (
                    make_url(admin_url)
                    .set(database=POSTGRES_BENCH_DATABASE)
                    .render_as_string(hide_password=False)
                )
                log(f"generating the PostgreSQL dataset in {POSTGRES_BENCH_DATABASE}")
                pg_summary = await dataset.generate(
                    pg_url,
                    layout,
                    recreate=True,
                    admin_database=make_url(admin_url).database or "postgres",
                )
                scenarios["complete-postgresql"] = await run_complete(
                    wrk, plan, work, pg_url, layout, "postgresql"
                )
                scenarios["complete-postgresql"]["dataset_seconds"] = pg_summary.seconds
        if "fanout" in plan.scenarios:
            scenarios["fanout"] = []
            for count in plan.fanout:
                item = await run_fanout(
                    count,
                    plan,
                    work,
                    database_url,
                    layout,
                    args.output_dir / f"profile-fanout-{count}.txt" if args.profile else None,
                )
                log(
                    f"fanout {count}: p50 {item['p50_ms']} ms, p99 {item['p99_ms']} ms, "
                    f"{item['kib_per_connection']} KiB per connection"
                )
                scenarios["fanout"].append(item)
        if "workers" in plan.scenarios:
            scenarios["workers"] = await run_workers(wrk, plan, work, database_path, layout)
    return results


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Plan]:
    """The command line, and the plan it selects."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="make bench (default)")
    mode.add_argument("--full", action="store_true", help="make bench-full")
    parser.add_argument("--scale", type=int, help="dataset scale (10 for 10x)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, help="repetitions per scenario")
    parser.add_argument("--connections", type=int, help="wrk connections for read scenarios")
    parser.add_argument("--fanout", help="subscriber counts, e.g. 1000,5000,10000")
    parser.add_argument(
        "--auth-cache-seconds",
        type=float,
        help="COURSEPULSE_AUTH_CACHE_SECONDS for the servers (default: the service's, 30)",
    )
    parser.add_argument(
        "--scenarios", help="comma-separated subset of: " + ", ".join(QUICK.scenarios)
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("COURSEPULSE_BENCH_POSTGRES_URL")
        or os.environ.get("COURSEPULSE_TEST_POSTGRES_URL")
        or POSTGRES_DEFAULT,
        help=f"a PostgreSQL URL whose server gets the {POSTGRES_BENCH_DATABASE} database "
        "('' to skip PostgreSQL)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy profile of read scenarios and of the fan-out's delivery",
    )
    parser.add_argument("--no-statements", action="store_true", help="skip the statement counts")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    plan = FULL if args.full else QUICK
    overrides: dict[str, Any] = {}
    for name in ("scale", "duration", "runs", "connections", "auth_cache_seconds"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.fanout:
        overrides["fanout"] = tuple(int(item) for item in args.fanout.split(",") if item)
    if args.scenarios:
        chosen = tuple(item.strip() for item in args.scenarios.split(",") if item.strip())
        unknown = set(chosen) - set(QUICK.scenarios)
        if unknown:
            parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
        overrides["scenarios"] = chosen
    return args, replace(plan, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Run, write the results, print the Markdown table; returns the exit status."""
    args, plan = parse_args(argv)
    results = asyncio.run(main_async(args, plan))
    results["machine"]["cpu_loop_ms"] = [
        *results["machine"].get("cpu_loop_ms", []),
        *cpu_steadiness(),
    ]
    results["total_seconds"] = round(time.monotonic() - STARTED, 1)
    results["targets"] = targets(results)
    latest_json, latest_md = write_results(results, args.output_dir)
    print(latest_md.read_text())
    log(f"wrote {latest_json} and {latest_md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
