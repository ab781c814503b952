"""Export and import of the benchmark dataset: time, rows/s, file size and peak memory.

Generates the dataset in SQLite, then runs `coursepulse export` on it, `coursepulse import`
into an empty PostgreSQL database (and into a new SQLite file), `coursepulse export` of the
PostgreSQL copy, and checks that both exports hold the same rows. Each command is its own
process; its peak resident memory is read from the kernel when it ends (`os.wait4`).
Writes bench/results/transfer.md.

    python bench/transfer.py --postgres-url postgresql+asyncpg://postgres@127.0.0.1/postgres
    python bench/transfer.py --scale 4 --output bench/results/transfer-scale4.md
                                                # 1.2 million completions, SQLite only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset import Layout, expected_completions

from coursepulse.models.migrate import schema_engine

RESULTS = Path(__file__).resolve().parent / "results" / "transfer.md"


@dataclass
class Step:
    what: str
    seconds: float
    peak_mb: float
    rows: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def run(what: str, args: list[str], database_url: str, rows: int) -> Step:
    """Run `coursepulse ARGS` on the database; returns its time and peak memory."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "coursepulse", *args],
        env={**os.environ, "COURSEPULSE_DATABASE_URL": database_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    output = process.stdout.read().decode() if process.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{what} failed: {output}")
    print(f"{what}: {seconds:.1f} s, peak {usage.ru_maxrss / 1024:.0f} MB  ({output.strip()})")
    return Step(what, seconds, usage.ru_maxrss / 1024, rows)


async def recreate_postgres(url: str) -> None:
    admin = schema_engine(make_url(url).set(database="postgres"))
    name = make_url(url).database
    async with admin.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()


def same_rows(first: Path, second: Path) -> bool:
    """Whether two exports hold the same rows (their headers differ: time and source)."""
    with first.open(encoding="utf-8") as one, second.open(encoding="utf-8") as other:
        next(one)
        next(other)
        return all(a == b for a, b in zip(one, other, strict=False)) and not (
            next(one, None) or next(other, None)
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument(
        "--postgres-url",
        help="a PostgreSQL server URL; a database coursepulse_transfer_bench is made on it",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="the Markdown report")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="coursepulse-transfer-"))
    source = f"sqlite+aiosqlite:///{folder / 'school.db'}"
    # Each step is a process of its own, and this one stays small: a child's peak memory
    # counts the parent's pages it was forked with.
    dataset = Path(__file__).parent / "dataset.py"
    generate = [sys.executable, str(dataset), "--database-url", source, "--recreate"]
    subprocess.run([*generate, "--scale", str(args.scale)], check=True)
    layout = Layout.for_scale(args.scale)
    completions = expected_completions(layout)
    rows = 1 + layout.students + layout.courses * (1 + layout.lessons_per_course)
    rows += layout.enrollments + completions
    baseline = run("no data (export-schema)", ["export-schema", "--output", os.devnull], source, 0)
    steps = [run("export from SQLite", ["export", str(folder / "a.jsonl")], source, rows)]
    size_mb = (folder / "a.jsonl").stat().st_size / 1e6
    copy = f"sqlite+aiosqlite:///{folder / 'copy.db'}"
    steps.append(run("import into SQLite", ["import", str(folder / "a.jsonl")], copy, rows))
    same = None
    if args.postgres_url:
        target = make_url(args.postgres_url).set(database="coursepulse_transfer_bench")
        target_url = target.render_as_string(hide_password=False)
        asyncio.run(recreate_postgres(target_url))
        steps.append(
            run("import into PostgreSQL", ["import", str(folder / "a.jsonl")], target_url, rows)
        )
        steps.append(
            run("export from PostgreSQL", ["export", str(folder / "b.jsonl")], target_url, rows)
        )
        same = same_rows(folder / "a.jsonl", folder / "b.jsonl")
        print(f"SQLite -> PostgreSQL -> export gives the same rows: {same}")
    lines = [
        "# Export and import of the benchmark dataset",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores,"
        f" load {os.getloadavg()[0]:.2f}; dataset scale {args.scale}: {completions:,}"
        f" completions, {rows:,} rows; export file {size_mb:.0f} MB (JSON Lines, uncompressed).",
        "",
        "| step | seconds | rows/s | peak memory (MB) |",
        "|---|---|---|---|",
        *(
            f"| {step.what} | {step.seconds:.1f} | {step.rows_per_second:,.0f}"
            f" | {step.peak_mb:.0f} |"
            for step in steps
        ),
        "",
        "Peak memory is the whole process's (Python, the service's modules, the drivers);"
        " `coursepulse export-schema`, which loads the same modules and reads no data, peaks"
        f" at {baseline.peak_mb:.0f} MB.",
    ]
    if same is not None:
        lines.append(f"Round trip SQLite -> PostgreSQL -> export gives the same rows: {same}.")
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0 if same in (None, True) else 1


if __name__ == "__main__":
    sys.exit(main())
