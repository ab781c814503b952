"""Every roster order is a walk down an index on both engines, never a sort of the course.

A page of 20 costs the same in a course of 30 students as in one of 30,000 only if the
engine can stop after 20 rows: each order (both directions, with and without a name
search) must come out of an index already in that order. The plans are read on a course
of 2,000 students among 3,000 users, with the engines' statistics up to date. PostgreSQL
is told to avoid sorts and sequential scans wherever it can (at this size it would rather
read everything): what remains is what no index can serve. Its plans are read both as
the service runs them (one generic plan per prepared statement, for any parameters) and
as planned for the parameters at hand (`COURSEPULSE_DB_PLAN_CACHE_MODE=auto` may choose
those).
"""

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from coursepulse.models import Course, Enrollment, User
from coursepulse.models.db import Database
from coursepulse.models.migrate import schema_engine
from coursepulse.models.postgres import PLAN_CACHE_MODE
from coursepulse.models.sql import Query
from coursepulse.resolvers.roster import (
    StudentOrder,
    _count_query,
    _course_page_query,
    _page_query,
)

USERS = 3_000
LARGE_COURSE_STUDENTS = 2_000
ORDERS = [
    (order, descending, searching)
    for order in StudentOrder
    for descending in (True, False)
    for searching in (False, True)
]
#: The roster's filters: none, one status, no action since a date, both.
FILTERS = [(False, False), (True, False), (False, True), (True, True)]


async def _fill(connection: AsyncConnection) -> None:
    """Three courses (2,000, 600 and 60 students) and 3,000 users, some never active."""
    chance = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    await connection.execute(
        insert(User.__table__),
        [
            {
                "id": number,
                "username": f"student{number}",
                "display_name": f"Student {chance.randrange(10_000):04d}",
                "role": "student",
                "password_hash": "-",
                "created_at": start,
            }
            for number in range(1, USERS + 1)
        ],
    )
    await connection.execute(
        insert(Course.__table__),
        [
            {
                "id": number,
                "slug": f"course-{number}",
                "title": f"Course {number}",
                "description": "",
                "status": "published",
                "total_lessons": 12,
                "created_at": start,
                "updated_at": start,
            }
            for number in (1, 2, 3)
        ],
    )
    rows: list[dict[str, Any]] = []
    for course_id, students in ((1, LARGE_COURSE_STUDENTS), (2, 600), (3, 60)):
        for user_id in chance.sample(range(1, USERS + 1), students):
            accessed = chance.random() < 0.8
            rows.append(
                {
                    "user_id": user_id,
                    "course_id": course_id,
                    "status": chance.choice(("active", "active", "completed", "unenrolled")),
                    "enrolled_at": start + timedelta(minutes=chance.randrange(500_000)),
                    "last_accessed_at": (
                        start + timedelta(minutes=chance.randrange(500_000)) if accessed else None
                    ),
                    "time_spent_seconds": 0,
                    "completed_lessons": chance.randrange(13),
                }
            )
    await connection.execute(insert(Enrollment.__table__), rows)
    await connection.execute(text("ANALYZE"))


def _postgres_problems(plan: dict[str, Any]) -> list[str]:
    """Sorts and sequential scans of users or enrolments anywhere in a JSON plan."""
    problems: list[str] = []
    node_type = plan["Node Type"]
    if node_type == "Sort":
        problems.append(f"Sort on {plan.get('Sort Key')}")
    if node_type == "Seq Scan" and plan.get("Relation Name") in ("users", "enrollments"):
        problems.append(f"Seq Scan on {plan['Relation Name']}")
    for child in plan.get("Plans", []):
        problems += _postgres_problems(child)
    return problems


def _page_sorted_alone(plan: dict[str, Any]) -> list[str]:
    """`_postgres_problems` of a statement that reads a page and sorts it again: its top
    Sort is one of the page's rows when a Limit (the page) is below it."""
    if plan["Node Type"] == "Sort" and _has_limit(plan):
        return [problem for child in plan.get("Plans", []) for problem in _postgres_problems(child)]
    return _postgres_problems(plan)


def _has_limit(plan: dict[str, Any]) -> bool:
    return plan["Node Type"] == "Limit" or any(_has_limit(child) for child in plan.get("Plans", []))


def _sqlite_problems(details: list[str]) -> list[str]:
    """Temporary sort trees and table scans in an EXPLAIN QUERY PLAN."""
    return [
        detail
        for detail in details
        if "TEMP B-TREE" in detail
        or (detail.startswith("SCAN") and "USING" not in detail and "INDEX" not in detail)
    ]


#: PostgreSQL's plan_cache_mode values the plans are read under: the service's (a
#: generic plan) and a plan made for the parameters (which `auto` may choose).
PLAN_CACHE_MODES = [PLAN_CACHE_MODE, "force_custom_plan"]


def _literal(value: Any) -> str:
    """A parameter's value written in SQL (EXECUTE takes values, not parameters)."""
    if isinstance(value, bool | int):
        return str(int(value))
    if isinstance(value, datetime):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"


async def _postgres_plan(
    connection: AsyncConnection, sql: str, arguments: tuple[Any, ...], mode: str
) -> dict[str, Any]:
    """The plan PostgreSQL runs the statement with, prepared as the service prepares it,
    under plan_cache_mode `mode`."""
    await connection.exec_driver_sql(f"SET plan_cache_mode = {mode}")
    await connection.exec_driver_sql(f"PREPARE roster_plan AS {sql}")
    try:
        values = ", ".join(_literal(argument) for argument in arguments)
        result = await connection.exec_driver_sql(
            f"EXPLAIN (FORMAT JSON) EXECUTE roster_plan({values})"
        )
        document = result.scalar_one()
    finally:
        await connection.exec_driver_sql("DEALLOCATE roster_plan")
    return (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]


def _mode_of(query: Query, mode: str) -> str:
    """The plan_cache_mode the statement runs with on connections in `mode`: a statement
    planned per run is, where the others are planned once."""
    return "force_custom_plan" if query.plan_per_run and mode == PLAN_CACHE_MODE else mode


async def _problems(
    connection: AsyncConnection, query: Query, params: dict[str, Any], mode: str
) -> list[str]:
    compiled = query.compiled(connection.dialect)
    sql, arguments = compiled.sql, compiled.arguments(params)
    if connection.dialect.name == "postgresql":
        plan = await _postgres_plan(connection, sql, arguments, _mode_of(query, mode))
        return _postgres_problems(plan)
    result = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", arguments)
    return _sqlite_problems([row[-1] for row in result.all()])


@pytest.fixture
async def filled(db: Database) -> Database:
    engine = schema_engine(db.url)
    try:
        async with engine.begin() as connection:
            await _fill(connection)
    finally:
        await engine.dispose()
    return db


@pytest.mark.parametrize("mode", PLAN_CACHE_MODES)
async def test_every_roster_page_order_walks_an_index(filled: Database, mode: str) -> None:
    if filled.dialect != "postgresql" and mode != PLAN_CACHE_MODE:
        pytest.skip("SQLite plans each statement once")
    engine = schema_engine(filled.url)
    found: dict[str, list[str]] = {}
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                await connection.exec_driver_sql("SET enable_seqscan = off")
                await connection.exec_driver_sql("SET enable_sort = off")
            params = {
                "course_id": 1,
                "limit": 20,
                "offset": 40,
                "pattern": "%student 1%",
                "status": "unenrolled",
                "idle_since": datetime(2026, 6, 1, tzinfo=UTC),
            }
            for order, descending, searching in ORDERS:
                for status, idle in FILTERS:
                    query = _page_query(order, descending, searching, status=status, idle=idle)
                    problems = await _problems(connection, query, params, mode)
                    if problems:
                        direction = "descending" if descending else "ascending"
                        name = f"{order} {direction} search={searching} status={status}"
                        found[f"{name} idle={idle}"] = problems
            for status, idle in FILTERS:
                counted = _count_query(False, status, idle)
                if problems := await _problems(connection, counted, params, mode):
                    found[f"count status={status} idle={idle}"] = problems
    finally:
        await engine.dispose()
    assert found == {}


@pytest.mark.parametrize("mode", PLAN_CACHE_MODES)
async def test_a_roster_page_read_with_its_course_sorts_the_page_alone(
    filled: Database, mode: str
) -> None:
    """On PostgreSQL the unfiltered roster reads its course, count and page in one
    statement: the page walks its index as above; what is sorted again is its own rows (at
    most a page)."""
    if filled.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite reads the course and the page apart")
    engine = schema_engine(filled.url)
    found: dict[str, list[str]] = {}
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql("SET enable_seqscan = off")
            params = {"course_id": 1, "user_id": 2, "limit": 20, "offset": 40}
            for order in StudentOrder:
                for descending in (True, False):
                    query = _course_page_query(order, descending)
                    compiled = query.compiled(connection.dialect)
                    plan = await _postgres_plan(
                        connection, compiled.sql, compiled.arguments(params), _mode_of(query, mode)
                    )
                    if problems := _page_sorted_alone(plan):
                        found[f"{order} descending={descending}"] = problems
    finally:
        await engine.dispose()
    assert found == {}
