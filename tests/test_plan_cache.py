"""PostgreSQL plans the service's statements once per connection, except those that ask
for a plan per run (a roster page by name), and only for that statement's transaction."""

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from coursepulse.models.db import Database
from coursepulse.resolvers import enrollments
from tests.conftest import School, StatementCounter, graphql, make_user

SHOW_MODE = text("SHOW plan_cache_mode")
ROSTER = """query($c: ID!, $o: StudentOrderField!) {
  courseStudents(courseId: $c, orderBy: $o, order: ASC) { total nodes { username } } }"""
PLAN_PER_RUN = "SET LOCAL plan_cache_mode = force_custom_plan"


@pytest.fixture(autouse=True)
def postgres_only(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite plans each statement once")


async def mode_of(db: Database) -> str:
    async with db.read() as tx:
        return str(await tx.scalar(SHOW_MODE))


async def test_connections_plan_once_unless_told_otherwise(db: Database) -> None:
    assert await mode_of(db) == "force_generic_plan"
    chosen = Database.from_url(
        str(db.url.render_as_string(hide_password=False)), plan_cache_mode="auto"
    )
    try:
        assert await mode_of(chosen) == "auto"
    finally:
        await chosen.dispose()
    with pytest.raises(ValueError, match="plan_cache_mode"):
        Database.from_url(str(db.url), plan_cache_mode="sometimes")


async def test_a_roster_page_by_name_is_planned_for_its_course_alone(
    client: TestClient, school: School, count_statements: StatementCounter, db: Database
) -> None:
    for name in ("carol", "alice", "bob"):
        student = await make_user(db, name, display_name=name.title())
        async with db.write() as tx:
            await enrollments.enroll(tx, student.viewer, school.course_id)
    pages: dict[str, list[str]] = {}
    for order in ("DISPLAY_NAME", "PROGRESS", "DISPLAY_NAME"):
        variables = {"c": str(school.course_id), "o": order}
        await graphql(client, ROSTER, variables, as_=school.instructor)  # learns its reads
        count_statements.statements.clear()
        count_statements.transactions = 0
        with count_statements:
            body = await graphql(client, ROSTER, variables, as_=school.instructor)
        assert "errors" not in body, body
        pages[order] = [node["username"] for node in body["data"]["courseStudents"]["nodes"]]
        planned = count_statements.statements.count(PLAN_PER_RUN)
        if order == "DISPLAY_NAME":
            # its own transaction, whose plans are made for this course
            assert (count_statements.transactions, planned) == (1, 1)
        else:
            assert (count_statements.transactions, planned) == (0, 0)
        # SET LOCAL ended with its transaction: every connection plans once again
        for _ in range(db.read_connections):
            assert await mode_of(db) == "force_generic_plan"
    assert pages["DISPLAY_NAME"] == ["alice", "bob", "carol"]
