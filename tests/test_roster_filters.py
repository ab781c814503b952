"""A roster that finds people: students by status, those who stopped coming, who is at
risk, and where students stop (the per-lesson funnel)."""

import csv
import io
from datetime import datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient

from coursepulse.models.db import Database
from coursepulse.models.types import utcnow
from coursepulse.resolvers import roster
from coursepulse.resolvers.errors import InvalidInput
from coursepulse.resolvers.roster import StudentOrder
from coursepulse.resolvers.users import create_user, viewer_of
from coursepulse.rest import PREFIX
from tests.conftest import PASSWORD, Account, School, StatementCounter, error_codes, graphql
from tests.test_roster import enrol_in, set_times

FILTERED = """
query Filtered(
  $courseId: ID!, $status: EnrollmentStatus, $inactiveDays: Int, $search: String,
  $orderBy: StudentOrderField, $order: SortOrder, $page: Int, $perPage: Int
) {
  courseStudents(
    courseId: $courseId, status: $status, inactiveDays: $inactiveDays, search: $search,
    orderBy: $orderBy, order: $order, page: $page, perPage: $perPage
  ) { total totalPages nodes { username status } }
}
"""
STATS = """
query Stats($courseId: ID!) {
  courseStats(courseId: $courseId) {
    enrolledCount activeCount completedCount atRiskCount
    lessons { lesson { order } completedCount reachedCount }
  }
}
"""

NOW = utcnow()

#: username: (lessons completed of 4, days since enrolment, days since last action or
#: None for never, left the course)
LEARNERS: dict[str, tuple[int, int, int | None, bool]] = {
    "ann_fresh": (1, 3, 1, False),  # active, seen yesterday
    "ben_fading": (2, 40, 20, False),  # active, gone for 20 days: at risk
    "cal_never": (0, 30, None, False),  # active, never opened it since enrolling 30 days ago
    "dee_new": (0, 2, None, False),  # active, enrolled 2 days ago, not started
    "eli_done": (4, 60, 30, False),  # completed, gone for 30 days: not at risk
    "fay_done": (4, 10, 5, False),  # completed recently
    "gus_left": (3, 90, 50, True),  # left 50 days ago
    "hal_left": (0, 5, 4, True),  # left 4 days ago
    "ida_skip": (0, 15, 16, False),  # completed lesson 3 only (see `completed_lessons`)
}


def ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


def completed_lessons(username: str, lesson_ids: list[int]) -> list[int]:
    """The lessons the learner completed: the first N, except ida who did only the third."""
    if username == "ida_skip":
        return [lesson_ids[2]]
    return lesson_ids[: LEARNERS[username][0]]


@pytest.fixture
async def people(db: Database, school: School) -> dict[str, Account]:
    """The school's 4-lesson course with the LEARNERS enrolled (and two gone)."""
    from coursepulse.resolvers import completions, enrollments

    accounts: dict[str, Account] = {}
    async with db.write() as tx:
        for username, (_, enrolled, seen, left) in LEARNERS.items():
            user = await create_user(
                tx, username=username, password=PASSWORD, display_name=username.title()
            )
            account = Account(viewer=viewer_of(user), username=username)
            await enrol_in(tx, account, school.course_id, school.lesson_ids, 0)
            for lesson_id in completed_lessons(username, school.lesson_ids):
                await completions.complete_lesson(tx, account.viewer, school.course_id, lesson_id)
            if left:
                await enrollments.unenroll(tx, account.viewer, school.course_id)
            await set_times(
                tx,
                account,
                school.course_id,
                enrolled_at=ago(enrolled),
                last_accessed=ago(seen) if seen is not None else None,
            )
            accounts[username] = account
    return accounts


async def names(
    client: TestClient, school: School, as_: Account | None = None, **arguments: object
) -> tuple[int, list[str]]:
    """The total and the usernames of one roster page with these arguments."""
    body = await graphql(
        client,
        FILTERED,
        {"courseId": str(school.course_id), **arguments},
        as_=as_ or school.instructor,
    )
    assert "errors" not in body, body
    page = body["data"]["courseStudents"]
    return page["total"], [node["username"] for node in page["nodes"]]


async def test_the_roster_lists_students_by_status(
    client: TestClient, school: School, people: dict[str, Account]
) -> None:
    by_name = {"orderBy": "DISPLAY_NAME", "order": "ASC"}
    assert await names(client, school, status="UNENROLLED", **by_name) == (
        2,
        ["gus_left", "hal_left"],
    )
    assert await names(client, school, status="COMPLETED", **by_name) == (
        2,
        ["eli_done", "fay_done"],
    )
    active = ["ann_fresh", "ben_fading", "cal_never", "dee_new", "ida_skip"]
    assert await names(client, school, status="ACTIVE", **by_name) == (5, active)
    # Without a status: everyone enrolled, as before
    total, everyone = await names(client, school, **by_name)
    assert total == 7
    assert everyone == sorted([*active, "eli_done", "fay_done"])


async def test_the_roster_finds_who_stopped_coming(
    client: TestClient, school: School, people: dict[str, Account]
) -> None:
    # No learner action for 14 days or more; never acted counts from the enrolment
    by_name = {"orderBy": "DISPLAY_NAME", "order": "ASC"}
    assert await names(client, school, inactiveDays=14, **by_name) == (
        4,
        ["ben_fading", "cal_never", "eli_done", "ida_skip"],
    )
    assert await names(client, school, inactiveDays=14, status="ACTIVE", **by_name) == (
        3,
        ["ben_fading", "cal_never", "ida_skip"],
    )
    assert await names(client, school, inactiveDays=14, status="UNENROLLED", **by_name) == (
        1,
        ["gus_left"],
    )
    # Combined with a search, each order, and pages
    assert await names(client, school, inactiveDays=14, search="ng", **by_name) == (
        1,
        ["ben_fading"],
    )
    for order in StudentOrder:
        for direction in ("ASC", "DESC"):
            field = order.name
            whole = await names(client, school, inactiveDays=14, orderBy=field, order=direction)
            pages = [
                await names(
                    client,
                    school,
                    inactiveDays=14,
                    orderBy=field,
                    order=direction,
                    perPage=3,
                    page=page,
                )
                for page in (1, 2)
            ]
            assert whole[0] == 4
            assert pages[0][1] + pages[1][1] == whole[1], (field, direction)
    progress = await names(client, school, inactiveDays=14, orderBy="PROGRESS", order="DESC")
    assert progress[1] == ["eli_done", "ben_fading", "ida_skip", "cal_never"]
    # 0 days: everyone enrolled
    assert (await names(client, school, inactiveDays=0))[0] == 7


async def test_bad_filters_are_invalid_input(
    client: TestClient, school: School, people: dict[str, Account]
) -> None:
    for days in (-1, 36_501, 2**31 - 1):
        body = await graphql(
            client,
            FILTERED,
            {"courseId": str(school.course_id), "inactiveDays": days},
            as_=school.instructor,
        )
        assert error_codes(body) == ["invalid_input"], (days, body)
        assert body["errors"][0]["extensions"]["field"] == "inactiveDays"
    body = await graphql(
        client,
        FILTERED,
        {"courseId": str(school.course_id), "status": "SLEEPING"},
        as_=school.instructor,
    )
    assert body.get("errors"), body


async def test_students_do_not_see_the_filtered_roster(
    client: TestClient, school: School, people: dict[str, Account]
) -> None:
    body = await graphql(
        client,
        FILTERED,
        {"courseId": str(school.course_id), "status": "UNENROLLED"},
        as_=people["ann_fresh"],
    )
    assert error_codes(body) == ["forbidden"]


async def test_statistics_count_who_is_at_risk_and_where_students_stop(
    client: TestClient, school: School, people: dict[str, Account]
) -> None:
    body = await graphql(client, STATS, {"courseId": str(school.course_id)}, as_=school.admin)
    assert "errors" not in body, body
    stats = body["data"]["courseStats"]
    assert stats["enrolledCount"] == 7
    # ACTIVE with no learner action for 14 days or more: ben, cal (never, enrolled 30 days
    # ago), ida; not eli (completed), not dee (enrolled 2 days ago)
    assert stats["atRiskCount"] == 3
    lessons = {item["lesson"]["order"]: item for item in stats["lessons"]}
    # Completed: lesson 1 by ann, ben, eli, fay; lesson 3 by eli, fay, ida
    assert [lessons[order]["completedCount"] for order in (1, 2, 3, 4)] == [4, 3, 3, 2]
    # Reached (this lesson or a later one): ida reached lesson 3 without lesson 1 or 2
    assert [lessons[order]["reachedCount"] for order in (1, 2, 3, 4)] == [5, 4, 3, 2]


async def test_filters_keep_the_statement_count(
    client: TestClient,
    db: Database,
    school: School,
    people: dict[str, Account],
    count_statements: StatementCounter,
) -> None:
    counts = []
    for filters in ({}, {"status": "ACTIVE", "inactiveDays": 14}, {"status": "UNENROLLED"}):
        variables = {"courseId": str(school.course_id), **filters}
        await graphql(client, FILTERED, variables, as_=school.instructor)
        count_statements.statements.clear()
        with count_statements:
            body = await graphql(client, FILTERED, variables, as_=school.instructor)
        assert "errors" not in body
        counts.append(count_statements.count)
    # Unfiltered: the course with its stored count of students, whether the viewer is its
    # staff and the page (one statement on PostgreSQL). Filtered: the course with its
    # count, its staff, the count of the students the filter keeps, the page; no other.
    assert counts == [1 if db.dialect == "postgresql" else 3, 4, 4]


async def test_the_resolver_refuses_a_bad_status(db: Database, school: School) -> None:
    async with db.read() as tx:
        with pytest.raises(InvalidInput):
            await roster.course_students(
                tx, school.instructor.viewer, school.course_id, inactive_days=-3
            )


async def test_rest_filters_the_roster_and_streams_it_as_csv(
    client: TestClient, school: School, people: dict[str, Account]
) -> None:
    base = f"{PREFIX}/courses/{school.course_id}/students"
    response = await client.get(
        f"{base}?status=active&inactive_days=14&orderby=display_name&order=asc",
        headers=school.instructor.auth,
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["meta"]["total"] == 3
    assert [item["username"] for item in body["data"]] == [
        "ben_fading",
        "cal_never",
        "ida_skip",
    ]
    response = await client.get(f"{base}?inactive_days=-2", headers=school.instructor.auth)
    assert response.status == 400
    assert (await response.json())["code"] == "invalid_input"
    # CSV: every matching student (no paging), a header row, RFC 4180 quoting
    response = await client.get(
        f"{base}?format=csv&status=active&orderby=display_name&order=asc",
        headers=school.instructor.auth,
    )
    assert response.status == 200, await response.text()
    assert response.content_type == "text/csv"
    assert response.charset == "utf-8"
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0][:2] == ["user_id", "username"]
    assert [row[1] for row in rows[1:]] == [
        "ann_fresh",
        "ben_fading",
        "cal_never",
        "dee_new",
        "ida_skip",
    ]
    # Students may not download it
    response = await client.get(f"{base}?format=csv", headers=people["ann_fresh"].auth)
    assert response.status == 403


async def test_the_csv_export_keeps_names_as_text(
    client: TestClient, db: Database, school: School
) -> None:
    tricky = {"formula": '=HYPERLINK("http://x")', "comma": 'Smith, "Jo"\nJr', "plain": "Zoë"}
    async with db.write() as tx:
        for username, display_name in tricky.items():
            user = await create_user(
                tx, username=username, password=PASSWORD, display_name=display_name
            )
            account = Account(viewer=viewer_of(user), username=username)
            await enrol_in(tx, account, school.course_id, school.lesson_ids, 1)
    response = await client.get(
        f"{PREFIX}/courses/{school.course_id}/students?format=csv&orderby=display_name&order=asc",
        headers=school.admin.auth,
    )
    assert response.status == 200
    raw = await response.read()
    assert raw.startswith(b"user_id,username,display_name,status,progress_percentage")
    assert b"\r\n" in raw
    rows = {row[1]: row for row in csv.reader(io.StringIO(raw.decode("utf-8")))}
    assert rows["formula"][2] == '\'=HYPERLINK("http://x")'
    assert rows["comma"][2] == 'Smith, "Jo"\nJr'
    assert rows["plain"][2] == "Zoë"
    assert rows["plain"][3:6] == ["active", "25", "1"]
