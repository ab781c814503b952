"""Queries that read with one statement run without a transaction, and answer the same.

A query's reads share one snapshot. One statement is a snapshot by itself, so a query
known (from its previous runs) to read with one statement runs without BEGIN and
ROLLBACK; if it then asks for a second statement it runs again in a transaction.
"""

import asyncio

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from coursepulse.models.db import Database
from coursepulse.models.transactions import SnapshotNeeded
from coursepulse.resolvers import completions, enrollments
from coursepulse.schema.read_plans import MAX_MISSES
from tests.conftest import School, StatementCounter, end_connections, graphql

PROGRESS = """query($c: ID!, $u: ID) { courseProgress(courseId: $c, userId: $u) {
  courseId userId status progressPercentage completedLessons totalLessons
  nextLesson { id title order } } }"""
#: One statement without the course's statistics, several with them.
PROGRESS_AND_STATS = """query($c: ID!, $u: ID, $stats: Boolean!) {
  courseProgress(courseId: $c, userId: $u) { progressPercentage completedLessons nextLesson { id } }
  courseStats(courseId: $c) @include(if: $stats) { enrolledCount completedCount } }"""


async def enrolled_with_one_lesson(db: Database, school: School) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
        await completions.complete_lesson(
            tx, school.student.viewer, school.course_id, school.lesson_ids[0]
        )


async def transactions_of(
    client: TestClient,
    counter: StatementCounter,
    query: str,
    variables: dict[str, object],
    school: School,
) -> tuple[int, int, dict[str, object]]:
    """Transactions begun and statements run by one request, and its answer."""
    counter.statements.clear()
    counter.transactions = 0
    with counter:
        body = await graphql(client, query, variables, as_=school.admin)
    return counter.transactions, counter.count, body


async def test_a_one_statement_query_runs_without_a_transaction_and_answers_the_same(
    client: TestClient, db: Database, school: School, count_statements: StatementCounter
) -> None:
    await enrolled_with_one_lesson(db, school)
    variables = {"c": str(school.course_id), "u": str(school.student.viewer.user_id)}
    # Given the query ran before (first on the full path, then once in a transaction)
    first = await graphql(client, PROGRESS, variables, as_=school.admin)
    assert "errors" not in first
    learned = await transactions_of(client, count_statements, PROGRESS, variables, school)
    assert learned[:2] == (1, 1)
    # When it runs again
    transactions, statements, body = await transactions_of(
        client, count_statements, PROGRESS, variables, school
    )
    # Then its one statement runs without BEGIN, and the answer is the same
    assert (transactions, statements) == (0, 1)
    assert body == first
    assert body["data"]["courseProgress"]["completedLessons"] == 1


async def test_a_query_that_asks_for_more_runs_again_in_a_transaction(
    client: TestClient, db: Database, school: School, count_statements: StatementCounter
) -> None:
    await enrolled_with_one_lesson(db, school)
    base = {"c": str(school.course_id), "u": str(school.student.viewer.user_id)}
    light, heavy = {**base, "stats": False}, {**base, "stats": True}
    expected = await graphql(client, PROGRESS_AND_STATS, heavy, as_=school.admin)
    assert "errors" not in expected
    assert expected["data"]["courseStats"] == {"enrolledCount": 1, "completedCount": 0}
    for miss in range(MAX_MISSES):
        # Given the light variables taught the operation that it reads with one statement
        await graphql(client, PROGRESS_AND_STATS, light, as_=school.admin)
        transactions, _, _ = await transactions_of(
            client, count_statements, PROGRESS_AND_STATS, light, school
        )
        assert transactions == 0, f"run {miss}: the light run should take no transaction"
        # When the statistics are asked for, it needs more than one statement
        transactions, _, body = await transactions_of(
            client, count_statements, PROGRESS_AND_STATS, heavy, school
        )
        # Then it ran again in a transaction, and its answer is whole and the same
        assert transactions == 1
        assert body == expected
    # And after MAX_MISSES such runs, it always reads in a transaction
    await graphql(client, PROGRESS_AND_STATS, light, as_=school.admin)
    transactions, _, body = await transactions_of(
        client, count_statements, PROGRESS_AND_STATS, light, school
    )
    assert transactions == 1
    assert "errors" not in body


async def test_a_one_statement_read_refuses_a_second_statement(db: Database) -> None:
    async with db.read(one_statement=True) as tx:
        assert await tx.scalar(text("SELECT 1")) == 1
        with pytest.raises(SnapshotNeeded):
            await tx.scalar(text("SELECT 2"))
    # A write is never a one-statement read
    async with db.write() as tx:
        assert not tx.one_statement


async def test_one_statement_reads_see_every_commit_and_keep_the_pool_clean(
    client: TestClient, db: Database, school: School
) -> None:
    await enrolled_with_one_lesson(db, school)
    variables = {"c": str(school.course_id), "u": str(school.student.viewer.user_id)}
    for _ in range(2):
        await graphql(client, PROGRESS, variables, as_=school.admin)

    async def read() -> int:
        body = await graphql(client, PROGRESS, variables, as_=school.admin)
        return int(body["data"]["courseProgress"]["completedLessons"])

    # Reads at once with writes: each sees a whole commit, and none is left open
    for lesson_id, expected in zip(school.lesson_ids[1:], (2, 3, 4), strict=True):
        async with db.write() as tx:
            await completions.complete_lesson(
                tx, school.student.viewer, school.course_id, lesson_id
            )
        seen = await asyncio.gather(*(read() for _ in range(12)))
        assert seen == [expected] * 12


async def test_a_one_statement_read_replaces_a_connection_the_server_dropped(
    client: TestClient, db: Database, school: School, database_url: str
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: a SQLite file has no server to drop the connection")
    await enrolled_with_one_lesson(db, school)
    variables = {"c": str(school.course_id), "u": str(school.student.viewer.user_id)}
    for _ in range(2):
        await graphql(client, PROGRESS, variables, as_=school.admin)
    for _ in range(10):
        await asyncio.gather(
            *(graphql(client, PROGRESS, variables, as_=school.admin) for _ in range(4))
        )
        await end_connections(database_url)
        body = await graphql(client, PROGRESS, variables, as_=school.admin)
        assert "errors" not in body, body
        assert body["data"]["courseProgress"]["completedLessons"] == 1
