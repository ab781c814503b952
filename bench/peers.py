"""The peers benchmark: the raw baseline, coursepulse and PostGraphile 5 side by side.

All three serve the same PostgreSQL dataset (bench/dataset.py, in the
`coursepulse_bench` database) on CPU 0, one at a time, while wrk loads them from CPU 1:

- progress: one student's progress in one course (random enrolled pairs);
- roster: the first 20 students of the largest course by completed lessons, with names
  and the total count.

Runs are interleaved (A B C A B C ...). Each row gives requests/s, the server's CPU per
request and PostgreSQL's CPU per request (both from /proc). Before any timing, sampled
pairs are read from every server and must agree on the facts (status, counters,
percentage, next lesson; the roster's order and total).

PostGraphile (bench/peers/postgraphile: pinned package.json and lockfile, Node 22 from
the npm package `node`) is installed with `npm ci` on first use and skipped, with a line
saying why, where npm is missing. Without PostgreSQL the whole benchmark is skipped.

    python bench/peers.py                 # make bench-peers
    python bench/peers.py --runs 1 --duration 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import dataset
import run
from sqlalchemy.engine import make_url

PEERS_DIR = run.BENCH_DIR / "peers"
POSTGRAPHILE_DIR = PEERS_DIR / "postgraphile"
MARKER_START = "<!-- peers: written by bench/peers.py -->"
MARKER_END = "<!-- /peers -->"
SCENARIOS = ("progress", "roster")
SAMPLED_PAIRS = 25

#: PostGraphile's equivalent of the progress read: the enrolment by (user, course) with
#: its completions and the course's lessons (the client works out the percentage and the
#: next lesson from them, as a PostGraphile user would).
POSTGRAPHILE_PROGRESS = """query Progress($courseId: BigInt!, $userId: BigInt!) {
  enrollmentByUserIdAndCourseId(userId: $userId, courseId: $courseId) {
    status completedLessons timeSpentSeconds lastAccessedAt enrolledAt completedAt
    lessonCompletionsByEnrollmentId { nodes { lessonId } }
    courseByCourseId {
      status totalLessons
      lessonsByCourseId(orderBy: POSITION_ASC) { nodes { rowId title position } }
    }
  }
}"""
#: The roster page: enrolments of a course by completed lessons, first 20, with names and
#: the total count. (The dataset's enrolments are all active or completed, the statuses
#: coursepulse's roster shows, so no status condition is needed for the same answer.)
POSTGRAPHILE_ROSTER = """query Roster($courseId: BigInt!) {
  allEnrollments(
    condition: { courseId: $courseId }
    orderBy: [COMPLETED_LESSONS_DESC, PRIMARY_KEY_DESC]
    first: 20
  ) {
    totalCount
    nodes {
      userId status completedLessons enrolledAt lastAccessedAt
      userByUserId { username displayName }
    }
  }
}"""


@dataclass(frozen=True, slots=True)
class Peer:
    """One server under test and how to ask it each scenario's question."""

    name: str
    server: run.Server
    progress_body: str
    roster_body: str
    ready_path: str  # GET for 200, or "" to POST a trivial query


def log(message: str) -> None:
    run.log(message)


def postgres_cpu() -> tuple[dict[int, float], float]:
    """CPU seconds of every PostgreSQL process by pid, and what its reaped children used."""
    ticks = os.sysconf("SC_CLK_TCK")
    alive: dict[int, float] = {}
    reaped = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() not in ("postgres", "postmaster"):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        alive[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
        reaped += (int(fields[13]) + int(fields[14])) / ticks
    return alive, reaped


def postgres_cpu_between(
    before: tuple[dict[int, float], float], after: tuple[dict[int, float], float]
) -> float:
    """PostgreSQL's CPU seconds between two readings, counting backends that started in
    between (a pool opening connections) and those that ended (their time moves to the
    postmaster's children total)."""
    (alive_before, reaped_before), (alive_after, reaped_after) = before, after
    still = sum(seconds - alive_before.get(pid, 0.0) for pid, seconds in alive_after.items())
    ended = sum(seconds for pid, seconds in alive_before.items() if pid not in alive_after)
    return max(0.0, still + (reaped_after - reaped_before) - ended)


def ensure_postgraphile() -> str:
    """'' once PostGraphile's packages are installed (npm ci), else why not."""
    node = POSTGRAPHILE_DIR / "node_modules" / ".bin" / "node"
    if node.exists():
        return ""
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed (PostGraphile needs it: apt-get install npm)"
    log("installing PostGraphile (npm ci in bench/peers/postgraphile)")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=POSTGRAPHILE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not node.exists():
        return f"npm ci failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return ""


def postgraphile_server(dsn: str, work: Path) -> run.Server:
    """PostGraphile 5 in production mode on a free port (graphile.config.mjs)."""
    port = run.free_port()
    node = str(POSTGRAPHILE_DIR / "node_modules" / ".bin" / "node")
    cli = str(POSTGRAPHILE_DIR / "node_modules" / "postgraphile" / "dist" / "cli-run.js")
    argv = [node, cli, "--config", str(POSTGRAPHILE_DIR / "graphile.config.mjs")]
    env = {"DATABASE_URL": dsn, "PORT": str(port), "NODE_ENV": "production"}
    return run.Server("postgraphile", argv, port, work / "postgraphile.log", env=env)


async def wait_ready(peer: Peer, within: float = 90.0) -> None:
    """Until the peer answers 200 (GET its readiness path, or POST `{ __typename }`)."""
    if peer.ready_path:
        await peer.server.wait_ready(within)
        return
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.post(
                    f"{peer.server.url}/graphql", json={"query": "{ __typename }"}
                ) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.3)
    tail = peer.server.log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"{peer.name} did not become ready:\n{tail}")


async def ask(session: aiohttp.ClientSession, peer: Peer, body: str) -> dict[str, Any]:
    async with session.post(
        f"{peer.server.url}/graphql",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": run.ADMIN_AUTH},
    ) as response:
        answer = await response.json(content_type=None)
    if "errors" in answer:
        raise RuntimeError(f"{peer.name} answered with errors: {answer['errors']}")
    return answer["data"]


def progress_facts(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """What a progress bar shows, from either kind of answer."""
    if name != "postgraphile":
        item = data["courseProgress"]
        following = item["nextLesson"]
        return {
            "status": item["status"],
            "completed": item["completedLessons"],
            "total": item["totalLessons"],
            "percentage": item["progressPercentage"],
            "next": following["id"] if following else None,
        }
    enrollment = data["enrollmentByUserIdAndCourseId"]
    course = enrollment["courseByCourseId"]
    done = {node["lessonId"] for node in enrollment["lessonCompletionsByEnrollmentId"]["nodes"]}
    lessons = course["lessonsByCourseId"]["nodes"]
    following = next((lesson for lesson in lessons if lesson["rowId"] not in done), None)
    total = course["totalLessons"]
    completed = enrollment["completedLessons"]
    return {
        "status": enrollment["status"].upper(),
        "completed": completed,
        "total": total,
        "percentage": min(100, math.floor(100 * completed / total)) if total else 0,
        "next": str(following["rowId"]) if following else None,
    }


def roster_facts(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """The page's students in order, with their counters, and the total."""
    if name != "postgraphile":
        page = data["courseStudents"]
        return {
            "total": page["total"],
            "students": [(node["userId"], node["username"]) for node in page["nodes"]],
        }
    page = data["allEnrollments"]
    return {
        "total": page["totalCount"],
        "students": [
            (str(node["userId"]), node["userByUserId"]["username"]) for node in page["nodes"]
        ],
    }


async def check_answers(peers: list[Peer], layout: dataset.Layout, largest: int) -> dict[str, Any]:
    """Sampled pairs and the roster page read from every peer: the facts must agree."""
    chance = random.Random(11)  # noqa: S311  (sampling, not secrets)
    pairs = []
    for _ in range(SAMPLED_PAIRS):
        u = chance.randrange(layout.students)
        pairs.append((chance.choice(layout.courses_of(u)), layout.user_id(u)))
    mismatches: list[str] = []
    async with aiohttp.ClientSession() as session:
        for course_id, user_id in pairs:
            seen = {}
            for peer in peers:
                body = peer.progress_body % (course_id, user_id)
                seen[peer.name] = progress_facts(peer.name, await ask(session, peer, body))
            if len({json.dumps(facts, sort_keys=True) for facts in seen.values()}) != 1:
                mismatches.append(f"progress of user {user_id} in course {course_id}: {seen}")
        rosters = {
            peer.name: roster_facts(peer.name, await ask(session, peer, peer.roster_body))
            for peer in peers
        }
    if len({json.dumps(facts, sort_keys=True) for facts in rosters.values()}) != 1:
        mismatches.append(f"roster of course {largest}: {rosters}")
    if mismatches:
        raise RuntimeError("the peers disagree:\n" + "\n".join(mismatches[:5]))
    return {"pairs": len(pairs), "roster_students": len(next(iter(rosters.values()))["students"])}


def measure(wrk: str, peer: Peer, script: Path, plan: run.Plan, connections: int) -> dict[str, Any]:
    """One wrk run against the peer, with its CPU and PostgreSQL's per request."""
    before = postgres_cpu()
    result = run.run_wrk(
        wrk,
        script,
        f"{peer.server.url}/graphql",
        duration=plan.duration,
        connections=connections,
        server_pids=peer.server.pids(),
    )
    database_seconds = postgres_cpu_between(before, postgres_cpu())
    requests = max(result.requests, 1)
    return {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "errors": result.errors + result.graphql_errors,
        "server_cpu_ms": round(1000 * result.server_cpu_seconds / requests, 3),
        "postgres_cpu_ms": round(1000 * database_seconds / requests, 3),
        "seconds": result.seconds,
        "other_cpu_seconds": result.other_cpu_seconds,
    }


def write_script(work: Path, name: str, scenario: str, constants: dict[str, Any]) -> Path:
    """run.write_script under its own file name (one per peer and scenario)."""
    script = run.write_script(work, scenario, constants)
    return script.rename(work / f"{name}-{scenario}.lua")


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians (and the spread of requests/s) over a peer's runs of one scenario."""

    def median(key: str) -> float:
        return float(statistics.median(item[key] for item in runs))

    return {
        "rps": round(median("rps"), 1),
        "rps_min": min(item["rps"] for item in runs),
        "rps_max": max(item["rps"] for item in runs),
        "server_cpu_ms": round(median("server_cpu_ms"), 3),
        "postgres_cpu_ms": round(median("postgres_cpu_ms"), 3),
        "p99_ms": round(median("p99_ms"), 1),
        "errors": sum(item["errors"] for item in runs),
        "runs": runs,
    }


def markdown(results: dict[str, Any]) -> str:
    """The peers table for bench/results/latest.md."""
    lines = [
        MARKER_START,
        "## Peers on PostgreSQL (`make bench-peers`)",
        "",
        f"- Command: `{results['command']}`, {results['started_at']}; {results['plan']}.",
        f"- Load before the runs: {results['load_average']} (1, 5, 15 min).",
        f"- Answers checked before timing: {results['check']}.",
    ]
    steadiness = run.steadiness_line(results.get("cpu_loop_ms", []))
    if steadiness:
        lines.append(steadiness)
    if results.get("skipped"):
        lines.append(f"- Skipped: {results['skipped']}")
    lines += [
        "",
        "| scenario | server | requests/s (min-max) | vs PostGraphile | server CPU ms/req "
        "| PostgreSQL CPU ms/req | p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        rows = results["scenarios"].get(scenario, {})
        peer_rps = rows.get("postgraphile", {}).get("rps")
        for name, item in rows.items():
            ratio = f"{item['rps'] / peer_rps:.2f}x" if peer_rps else "-"
            lines.append(
                f"| {scenario} | {name} | {item['rps']:,.0f} ({item['rps_min']:,.0f}-"
                f"{item['rps_max']:,.0f}) | {ratio} | {item['server_cpu_ms']} | "
                f"{item['postgres_cpu_ms']} | {item['p99_ms']} | {item['errors']} |"
            )
    lines += ["", MARKER_END, ""]
    return "\n".join(lines)


def merge_into_latest(output_dir: Path, table: str) -> None:
    """Put the peers table into latest.md, replacing an earlier one."""
    latest = output_dir / "latest.md"
    text = latest.read_text() if latest.exists() else "# Benchmark results\n\n"
    if MARKER_START in text and MARKER_END in text:
        head, rest = text.split(MARKER_START, 1)
        text = head + table + rest.split(MARKER_END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + table
    latest.write_text(text)


async def benchmark(args: argparse.Namespace, plan: run.Plan) -> dict[str, Any]:
    """Dataset, servers, the answers check, then the interleaved runs."""
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python bench/peers.py", *sys.argv[1:]]),
        "plan": f"{plan.runs} runs of {plan.duration} s per peer and scenario, "
        f"{args.connections} connections",
        "load_average": ", ".join(f"{value:.2f}" for value in os.getloadavg()),
        "scenarios": {},
        "check": "-",
        "cpu_loop_ms": run.cpu_steadiness(),
    }
    reason = await run.postgres_reachable(args.postgres_url)
    if reason:
        results["skipped"] = f"PostgreSQL is not reachable at {args.postgres_url}: {reason}"
        return results
    wrk = run.ensure_wrk()
    admin = make_url(args.postgres_url)
    pg_url = admin.set(database=run.POSTGRES_BENCH_DATABASE).render_as_string(hide_password=False)
    dsn = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    layout = dataset.Layout.for_scale(plan.scale)
    log(f"generating the PostgreSQL dataset in {run.POSTGRES_BENCH_DATABASE}")
    summary_ = await dataset.generate(
        pg_url, layout, recreate=True, admin_database=admin.database or "postgres"
    )
    largest = summary_.largest_course_id
    results["dataset"] = {"enrollments": summary_.enrollments, "completions": summary_.completions}
    missing = ensure_postgraphile()
    with run.work_directory(args.keep) as work:
        constants = {**run.layout_constants(layout), "AUTH": run.ADMIN_AUTH, "PATH": "/graphql"}
        ours_progress = run.graphql_body(run.PROGRESS_QUERY, {"courseId": "%d", "userId": "%d"})
        ours_roster = run.graphql_body(
            run.documents()["roster"],
            {"courseId": str(largest), "perPage": 20, "orderBy": "PROGRESS", "order": "DESC"},
        )
        peers = [
            Peer(
                "baseline",
                run.Server(
                    "baseline",
                    [
                        sys.executable,
                        str(run.BENCH_DIR / "baseline.py"),
                        "--database",
                        dsn,
                        "--port",
                        str(port := run.free_port()),
                    ],
                    port,
                    work / "baseline.log",
                ),
                ours_progress,
                ours_roster,
                "/readyz",
            ),
            Peer(
                "coursepulse",
                run.coursepulse_server("coursepulse", pg_url, work, plan),
                ours_progress,
                ours_roster,
                "/readyz",
            ),
        ]
        if missing:
            results["skipped"] = f"PostGraphile: {missing}"
            log(f"PostGraphile skipped: {missing}")
        else:
            peers.append(
                Peer(
                    "postgraphile",
                    postgraphile_server(dsn, work),
                    run.graphql_body(POSTGRAPHILE_PROGRESS, {"courseId": "%d", "userId": "%d"}),
                    run.graphql_body(POSTGRAPHILE_ROSTER, {"courseId": str(largest)}),
                    "",
                )
            )
        try:
            for peer in peers:
                peer.server.start()
            for peer in peers:
                await wait_ready(peer)
            results["check"] = await check_answers(peers, layout, largest)
            log(f"answers agree: {results['check']}")
            scripts = {
                (peer.name, scenario): write_script(
                    work,
                    peer.name,
                    scenario,
                    {
                        **constants,
                        "BODY": peer.progress_body if scenario == "progress" else peer.roster_body,
                    },
                )
                for peer in peers
                for scenario in SCENARIOS
            }
            warm = replace(plan, duration=plan.warmup)
            for (name, _scenario), script in scripts.items():
                peer = next(item for item in peers if item.name == name)
                measure(wrk, peer, script, warm, args.connections)
            runs: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in scripts}
            for number in range(plan.runs):
                for scenario in SCENARIOS:
                    for peer in peers:
                        item = measure(
                            wrk, peer, scripts[(peer.name, scenario)], plan, args.connections
                        )
                        runs[(peer.name, scenario)].append(item)
                        log(
                            f"run {number + 1} {scenario} {peer.name}: {item['rps']:.0f} req/s,"
                            f" {item['server_cpu_ms']} ms CPU,"
                            f" PostgreSQL {item['postgres_cpu_ms']} ms"
                        )
        finally:
            for peer in peers:
                peer.server.stop()
    for scenario in SCENARIOS:
        results["scenarios"][scenario] = {
            name: summary(items) for (name, kind), items in runs.items() if kind == scenario
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--scale", type=int, default=1, help="dataset scale")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("COURSEPULSE_BENCH_POSTGRES_URL")
        or os.environ.get("COURSEPULSE_TEST_POSTGRES_URL")
        or run.POSTGRES_DEFAULT,
    )
    parser.add_argument("--output-dir", type=Path, default=run.RESULTS_DIR)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    plan = run.Plan(
        "peers",
        duration=args.duration,
        runs=args.runs,
        warmup=2,
        connections=args.connections,
        fanout=(),
        scale=args.scale,
    )
    results = asyncio.run(benchmark(args, plan))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "peers.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.output_dir / "peers.md").write_text(table)
    merge_into_latest(args.output_dir, table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
