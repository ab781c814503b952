"""The benchmark's dataset generator (bench/dataset.py) writes counters that agree with its rows.

Only a tiny dataset on a temporary SQLite file: the benchmarks themselves never run in tests.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import text

from coursepulse.models.migrate import schema_engine
from coursepulse.resolvers import users

BENCH_DATASET = Path(__file__).resolve().parent.parent / "bench" / "dataset.py"


def load_generator() -> ModuleType:
    """bench/dataset.py as a module (bench/ is a folder of scripts, not a package)."""
    name = "coursepulse_bench_dataset"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH_DATASET)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def test_tiny_dataset_counters_agree_with_rows(tmp_path: Path) -> None:
    bench = load_generator()
    layout = bench.Layout.for_scale(1, courses=3, students=20)
    url = f"sqlite+aiosqlite:///{tmp_path / 'bench.db'}"

    summary = await bench.generate(url, layout, recreate=True)

    assert (summary.users, summary.courses, summary.lessons) == (21, 3, 36)
    assert summary.enrollments == 20 * 3
    assert summary.completions == bench.expected_completions(layout) > 0
    assert summary.largest_course_id == bench.BIG_COURSE_ID
    engine = schema_engine(url)
    try:
        assert await bench.check_consistency(engine) == {
            "counter_mismatch": 0,
            "duplicate_completions": 0,
            "status_mismatch": 0,
            "total_mismatch": 0,
            "roster_count_mismatch": 0,
        }
        async with engine.connect() as connection:
            enrolled = (
                await connection.execute(text("SELECT user_id, course_id FROM enrollments"))
            ).all()
            # Completions are each enrolment's first k lessons, in course order.
            gaps = await connection.scalar(
                text(
                    "SELECT COUNT(*) FROM enrollments e WHERE e.completed_lessons <> "
                    "(SELECT COALESCE(MAX(l.position), 0) FROM lesson_completions c"
                    " JOIN lessons l ON l.id = c.lesson_id WHERE c.enrollment_id = e.id)"
                )
            )
            completed = await connection.scalar(
                text("SELECT COUNT(*) FROM enrollments WHERE status = 'completed'")
            )
            hashes = dict(
                (await connection.execute(text("SELECT username, password_hash FROM users"))).all()
            )
    finally:
        await engine.dispose()
    assert gaps == 0
    assert completed == summary.completed_enrollments
    # Scripts find enrolments by formula, without querying.
    expected = {
        (layout.user_id(u), course)
        for u in range(layout.students)
        for course in layout.courses_of(u)
    }
    assert set(enrolled) == expected
    assert users._verify(hashes[bench.ADMIN_USERNAME], bench.ADMIN_PASSWORD)
    assert users._verify(hashes[layout.username(7)], bench.STUDENT_PASSWORD)


async def test_generator_refuses_a_database_that_has_users(tmp_path: Path) -> None:
    bench = load_generator()
    layout = bench.Layout.for_scale(1, courses=2, students=3)
    url = f"sqlite+aiosqlite:///{tmp_path / 'bench.db'}"
    await bench.generate(url, layout)

    with pytest.raises(RuntimeError, match="--recreate"):
        await bench.generate(url, layout)
