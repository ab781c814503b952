"""The peers benchmark's own arithmetic (bench/peers.py): CPU accounting, the answers check
and the results table. The benchmark itself never runs in tests."""

import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def peers() -> ModuleType:
    """bench/peers.py, imported the way `python bench/peers.py` sees its siblings."""
    sys.path.insert(0, str(BENCH))
    try:
        import peers as module  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_postgres_cpu_counts_backends_that_started_and_ended_during_a_run(
    peers: ModuleType,
) -> None:
    before = ({1: 10.0, 2: 3.0, 3: 1.0}, 50.0)
    # 1 (postmaster) used 0.5 s; 2 used 1 s; 3 ended after using 0.25 s more (its whole
    # life, 1.25 s, moved to the reaped total); 4 started and used 2 s
    after = ({1: 10.5, 2: 4.0, 4: 2.0}, 51.25)
    assert peers.postgres_cpu_between(before, after) == pytest.approx(0.5 + 1.0 + 0.25 + 2.0)


def test_both_kinds_of_progress_answer_give_the_same_facts(peers: ModuleType) -> None:
    ours = {
        "courseProgress": {
            "status": "ACTIVE",
            "completedLessons": 1,
            "totalLessons": 3,
            "progressPercentage": 33,
            "nextLesson": {"id": "12", "title": "Two", "order": 2},
        }
    }
    theirs = {
        "enrollmentByUserIdAndCourseId": {
            "status": "active",
            "completedLessons": 1,
            "lessonCompletionsByEnrollmentId": {"nodes": [{"lessonId": "11"}]},
            "courseByCourseId": {
                "totalLessons": 3,
                "lessonsByCourseId": {
                    "nodes": [
                        {"rowId": "11", "title": "One", "position": 1},
                        {"rowId": "12", "title": "Two", "position": 2},
                        {"rowId": "13", "title": "Three", "position": 3},
                    ]
                },
            },
        }
    }
    assert peers.progress_facts("coursepulse", ours) == peers.progress_facts("postgraphile", theirs)
    theirs["enrollmentByUserIdAndCourseId"]["completedLessons"] = 2
    assert peers.progress_facts("coursepulse", ours) != peers.progress_facts("postgraphile", theirs)


def test_the_peers_table_replaces_an_earlier_one_in_latest_md(
    peers: ModuleType, tmp_path: Path
) -> None:
    (tmp_path / "latest.md").write_text("# quick run\n\n| a | b |\n")
    for first in ("first", "second"):
        table = f"{peers.MARKER_START}\n{first}\n{peers.MARKER_END}\n"
        peers.merge_into_latest(tmp_path, table)
    text = (tmp_path / "latest.md").read_text()
    assert text.startswith("# quick run\n\n| a | b |\n")
    assert text.count(peers.MARKER_START) == 1
    assert "second" in text
    assert "first" not in text
