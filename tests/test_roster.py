"""What instructors see: the course roster, a student's progress, and course statistics.

Most tests go through GraphQL over real HTTP; a few call coursepulse.resolvers directly.
The roster fixture enrols seven students with known progress, then writes their
enrolment and access times with SQL UPDATEs so every ordering has a known answer.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from coursepulse.models import CourseStatus, Enrollment, Role
from coursepulse.models.db import Database
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers import completions, enrollments, roster, subscriptions
from coursepulse.resolvers.errors import Forbidden, InvalidInput, NotEnrolled, NotFound
from coursepulse.resolvers.roster import StudentOrder
from coursepulse.resolvers.users import create_user, viewer_of
from tests.conftest import (
    PASSWORD,
    Account,
    School,
    StatementCounter,
    error_codes,
    graphql,
    make_course,
    make_user,
)

# ---- GraphQL documents -------------------------------------------------------------------

ROSTER = """
query Roster(
  $courseId: ID!, $page: Int, $perPage: Int,
  $orderBy: StudentOrderField, $order: SortOrder, $search: String
) {
  courseStudents(
    courseId: $courseId, page: $page, perPage: $perPage,
    orderBy: $orderBy, order: $order, search: $search
  ) {
    total perPage currentPage totalPages
    nodes { username displayName lastAccessed }
  }
}
"""

# The same ordering asked for whole and in pages of two, in both directions, in one request.
ROSTER_BOTH_WAYS_PAGED = """
fragment Names on StudentPage { total totalPages currentPage nodes { username } }
query Paged($courseId: ID!, $orderBy: StudentOrderField!) {
  ascAll: courseStudents(courseId: $courseId, orderBy: $orderBy, order: ASC) { ...Names }
  asc1: courseStudents(courseId: $courseId, orderBy: $orderBy, order: ASC, perPage: 2, page: 1) {
    ...Names
  }
  asc2: courseStudents(courseId: $courseId, orderBy: $orderBy, order: ASC, perPage: 2, page: 2) {
    ...Names
  }
  asc3: courseStudents(courseId: $courseId, orderBy: $orderBy, order: ASC, perPage: 2, page: 3) {
    ...Names
  }
  asc4: courseStudents(courseId: $courseId, orderBy: $orderBy, order: ASC, perPage: 2, page: 4) {
    ...Names
  }
  descAll: courseStudents(courseId: $courseId, orderBy: $orderBy, order: DESC) { ...Names }
  desc1: courseStudents(courseId: $courseId, orderBy: $orderBy, order: DESC, perPage: 2, page: 1) {
    ...Names
  }
  desc2: courseStudents(courseId: $courseId, orderBy: $orderBy, order: DESC, perPage: 2, page: 2) {
    ...Names
  }
  desc3: courseStudents(courseId: $courseId, orderBy: $orderBy, order: DESC, perPage: 2, page: 3) {
    ...Names
  }
  desc4: courseStudents(courseId: $courseId, orderBy: $orderBy, order: DESC, perPage: 2, page: 4) {
    ...Names
  }
}
"""

ROSTER_FIELDS = """
query RosterFields($courseId: ID!) {
  courseStudents(courseId: $courseId, orderBy: DISPLAY_NAME, order: ASC) {
    nodes {
      userId username displayName status progressPercentage completedLessons
      enrolledAt lastAccessed completedAt
      progress { nextLesson { id } lessons { completed } }
    }
  }
}
"""

ROSTER_NESTED = """
query RosterNested($courseId: ID!, $perPage: Int!) {
  courseStudents(courseId: $courseId, perPage: $perPage, orderBy: DISPLAY_NAME, order: ASC) {
    total
    nodes {
      username progressPercentage
      progress {
        completedLessons
        nextLesson { id title }
        lessons { completed completedAt lesson { id order } }
        course { id title totalLessons lessons { id } }
      }
    }
  }
}
"""

COURSE_PROGRESS = """
query CourseProgress($courseId: ID!, $userId: ID) {
  courseProgress(courseId: $courseId, userId: $userId) {
    userId courseId status progressPercentage completedLessons totalLessons
    nextLesson { id }
    lessons { completed }
  }
}
"""

COURSE_STATS = """
query CourseStats($courseId: ID!) {
  courseStats(courseId: $courseId) {
    courseId enrolledCount activeCount completedCount averageProgress completionRate
    lessons { lesson { id order } completedCount completionRate }
  }
}
"""

# ---- building a roster ---------------------------------------------------------------------

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def day(number: int) -> datetime:
    return T0 + timedelta(days=number)


def iso(moment: datetime) -> str:
    """How the contract's DateTime renders a UTC moment."""
    return moment.isoformat()


@dataclass(frozen=True)
class Learner:
    username: str
    display_name: str
    completed: int  # lessons completed, in course order, out of 4
    enrolled_day: int
    accessed_day: int | None  # None: never accessed the course


# Enrolled in this order (enrolment ids ascending). Display names mix case so a
# case-sensitive sort would put "Bob", "Dave", "Frank" before "alice"; progress has a
# three-way tie at 50%; carol and eve never accessed the course.
LEARNERS = [
    Learner("alice_w", "alice Walker", 2, enrolled_day=3, accessed_day=10),
    Learner("bob.s", "Bob Stone", 4, enrolled_day=1, accessed_day=12),
    Learner("carol_k", "carol King", 1, enrolled_day=6, accessed_day=None),
    Learner("dave-n", "Dave Null", 2, enrolled_day=2, accessed_day=15),
    Learner("eve", "eve 100% Moss", 0, enrolled_day=7, accessed_day=None),
    Learner("frank_h", "Frank Hale", 2, enrolled_day=5, accessed_day=11),
    Learner("grace.p", "grace Poe", 3, enrolled_day=4, accessed_day=14),
]
# Completed every lesson, then left: never on the roster, never in the statistics.
LEAVER = Learner("henry_u", "Henry Gone", 4, enrolled_day=8, accessed_day=20)

EXPECTED_ORDER = {
    "ENROLLED_AT": {
        "ASC": ["bob.s", "dave-n", "alice_w", "grace.p", "frank_h", "carol_k", "eve"],
        "DESC": ["eve", "carol_k", "frank_h", "grace.p", "alice_w", "dave-n", "bob.s"],
    },
    # Never accessed (carol, eve) come last both ways, in enrolment order reversed for DESC.
    "LAST_ACCESSED": {
        "ASC": ["alice_w", "frank_h", "bob.s", "grace.p", "dave-n", "carol_k", "eve"],
        "DESC": ["dave-n", "grace.p", "bob.s", "frank_h", "alice_w", "eve", "carol_k"],
    },
    # alice, dave and frank tie at 50%: enrolment order breaks the tie (reversed for DESC).
    "PROGRESS": {
        "ASC": ["eve", "carol_k", "alice_w", "dave-n", "frank_h", "grace.p", "bob.s"],
        "DESC": ["bob.s", "grace.p", "frank_h", "dave-n", "alice_w", "carol_k", "eve"],
    },
    "DISPLAY_NAME": {
        "ASC": ["alice_w", "bob.s", "carol_k", "dave-n", "eve", "frank_h", "grace.p"],
        "DESC": ["grace.p", "frank_h", "eve", "dave-n", "carol_k", "bob.s", "alice_w"],
    },
}


async def enrol_in(
    tx: Transaction, account: Account, course_id: int, lesson_ids: list[int], completed: int
) -> None:
    """Enrol through the resolvers and complete the first `completed` lessons."""
    await enrollments.enroll(tx, account.viewer, course_id)
    for lesson_id in lesson_ids[:completed]:
        await completions.complete_lesson(tx, account.viewer, course_id, lesson_id)


async def enrol_with_progress(
    db: Database, account: Account, course_id: int, lesson_ids: list[int], completed: int
) -> None:
    async with db.write() as tx:
        await enrol_in(tx, account, course_id, lesson_ids, completed)


async def unenrol(db: Database, account: Account, course_id: int) -> None:
    async with db.write() as tx:
        await enrollments.unenroll(tx, account.viewer, course_id)


async def set_times(
    tx: Transaction,
    account: Account,
    course_id: int,
    *,
    enrolled_at: datetime,
    last_accessed: datetime | None,
) -> None:
    """Test data setup: write the enrolment's timestamps with SQL UPDATEs.

    A completed enrolment is dated as completed at its last access, so no
    completion predates the rewritten enrolment.
    """
    enrolments = Enrollment.__table__
    this_enrolment = (enrolments.c.user_id == account.id) & (enrolments.c.course_id == course_id)
    await tx.execute(
        update(enrolments)
        .where(this_enrolment)
        .values(enrolled_at=enrolled_at, last_accessed_at=last_accessed)
    )
    await tx.execute(
        update(enrolments)
        .where(this_enrolment, enrolments.c.completed_at.is_not(None))
        .values(completed_at=last_accessed)
    )


@dataclass
class Roster:
    school: School
    students: dict[str, Account]
    leaver: Account

    @property
    def course_id(self) -> int:
        return self.school.course_id

    @property
    def lesson_ids(self) -> list[int]:
        return self.school.lesson_ids


async def add_learner(tx: Transaction, school: School, learner: Learner) -> Account:
    """A new student enrolled in the school's course as `learner` describes (one transaction)."""
    user = await create_user(
        tx, username=learner.username, password=PASSWORD, display_name=learner.display_name
    )
    account = Account(viewer=viewer_of(user), username=learner.username)
    await enrol_in(tx, account, school.course_id, school.lesson_ids, learner.completed)
    if learner is LEAVER:
        await enrollments.unenroll(tx, account.viewer, school.course_id)
    await set_times(
        tx,
        account,
        school.course_id,
        enrolled_at=day(learner.enrolled_day),
        last_accessed=day(learner.accessed_day) if learner.accessed_day is not None else None,
    )
    return account


@pytest.fixture
async def roster_school(db: Database, school: School) -> Roster:
    """The school's 4-lesson course with the seven LEARNERS enrolled and one LEAVER gone."""
    async with db.write() as tx:
        students = {
            learner.username: await add_learner(tx, school, learner) for learner in LEARNERS
        }
        leaver = await add_learner(tx, school, LEAVER)
    return Roster(school=school, students=students, leaver=leaver)


def usernames(page: dict[str, Any]) -> list[str]:
    return [node["username"] for node in page["nodes"]]


# ---- courseStudents: who may see it ----------------------------------------------------


async def test_roster_is_for_the_course_instructors_and_admins(
    client: TestClient, db: Database, roster_school: Roster
) -> None:
    school = roster_school.school
    for staff in (school.instructor, school.admin):
        body = await graphql(client, ROSTER, {"courseId": str(school.course_id)}, as_=staff)
        assert "errors" not in body, body
        assert body["data"]["courseStudents"]["total"] == len(LEARNERS)


async def test_roster_is_refused_to_students_other_instructors_and_anonymous(
    client: TestClient, db: Database, roster_school: Roster
) -> None:
    # Given a student on the roster and an instructor who teaches another course
    school = roster_school.school
    enrolled_student = roster_school.students["alice_w"]
    other_instructor = await make_user(db, "other_teacher", role=Role.INSTRUCTOR)
    await make_course(db, other_instructor, title="Another Course", lessons=1)
    variables = {"courseId": str(school.course_id)}

    # When they ask for the roster, then they are refused with the contract's codes
    for outsider in (enrolled_student, school.other_student, other_instructor):
        body = await graphql(client, ROSTER, variables, as_=outsider)
        assert error_codes(body) == ["forbidden"], outsider.username
        assert body["errors"][0]["extensions"]["status"] == 403
        assert body["data"] is None

    body = await graphql(client, ROSTER, variables)
    assert error_codes(body) == ["unauthenticated"]
    assert body["errors"][0]["extensions"]["status"] == 401


async def test_a_draft_course_roster_is_its_staffs_alone(
    client: TestClient, db: Database, school: School
) -> None:
    # Given a draft course without students, and an instructor who does not teach it
    draft_id, _ = await make_course(
        db, school.instructor, title="Draft Course", status=CourseStatus.DRAFT
    )
    stranger = await make_user(db, "stranger_teacher", role=Role.INSTRUCTOR)
    variables = {"courseId": str(draft_id)}
    # Its instructor and an admin see an empty roster, twice (once its reads are learnt)
    for staff in (school.instructor, school.admin, school.instructor):
        body = await graphql(client, ROSTER, variables, as_=staff)
        assert "errors" not in body, body
        assert body["data"]["courseStudents"]["total"] == 0
        assert body["data"]["courseStudents"]["nodes"] == []
    # Others do not know it exists
    for outsider in (stranger, school.student, stranger):
        body = await graphql(client, ROSTER, variables, as_=outsider)
        assert error_codes(body) == ["not_found"], outsider.username


async def test_roster_of_a_missing_course_is_not_found(client: TestClient, school: School) -> None:
    for staff in (school.instructor, school.admin):
        body = await graphql(client, ROSTER, {"courseId": "999999"}, as_=staff)
        assert error_codes(body) == ["not_found"]
        assert body["errors"][0]["extensions"]["status"] == 404


# ---- courseStudents: ordering and paging ---------------------------------------------


async def test_roster_orders_by_each_field_both_ways_and_pages_without_gaps_or_repeats(
    client: TestClient, roster_school: Roster
) -> None:
    for order_by, expected_orders in EXPECTED_ORDER.items():
        body = await graphql(
            client,
            ROSTER_BOTH_WAYS_PAGED,
            {"courseId": str(roster_school.course_id), "orderBy": order_by},
            as_=roster_school.school.instructor,
        )
        assert "errors" not in body, body
        data = body["data"]
        for direction, prefix in (("ASC", "asc"), ("DESC", "desc")):
            expected, where = expected_orders[direction], f"{order_by} {direction}"
            assert usernames(data[f"{prefix}All"]) == expected, where

            pages = [data[f"{prefix}{number}"] for number in range(1, 5)]
            paged = [name for page in pages for name in usernames(page)]
            # Every student exactly once, in the same order as the single page.
            assert paged == expected, where
            assert [len(page["nodes"]) for page in pages] == [2, 2, 2, 1], where
            assert [page["currentPage"] for page in pages] == [1, 2, 3, 4], where
            assert {(page["total"], page["totalPages"]) for page in pages} == {(7, 4)}, where


async def test_students_who_never_accessed_sort_last_in_both_directions(
    client: TestClient, roster_school: Roster
) -> None:
    for direction in ("ASC", "DESC"):
        body = await graphql(
            client,
            ROSTER,
            {
                "courseId": str(roster_school.course_id),
                "orderBy": "LAST_ACCESSED",
                "order": direction,
            },
            as_=roster_school.school.instructor,
        )
        accessed = [node["lastAccessed"] for node in body["data"]["courseStudents"]["nodes"]]
        assert accessed[-2:] == [None, None], direction
        assert None not in accessed[:-2], direction
        seen = [datetime.fromisoformat(value) for value in accessed[:-2]]
        assert seen == sorted(seen, reverse=direction == "DESC")


async def test_roster_defaults_to_page_one_of_twenty_newest_enrolment_first(
    client: TestClient, roster_school: Roster
) -> None:
    body = await graphql(
        client,
        ROSTER,
        {"courseId": str(roster_school.course_id)},
        as_=roster_school.school.instructor,
    )
    page = body["data"]["courseStudents"]
    assert usernames(page) == EXPECTED_ORDER["ENROLLED_AT"]["DESC"]
    assert (page["currentPage"], page["perPage"], page["total"], page["totalPages"]) == (
        1,
        20,
        7,
        1,
    )


async def test_unenrolled_students_are_not_on_the_roster(
    client: TestClient, roster_school: Roster
) -> None:
    # Given henry completed every lesson and then left the course (newest enrolment and access)
    variables = {"courseId": str(roster_school.course_id), "perPage": 100}
    for order_by in EXPECTED_ORDER:
        body = await graphql(
            client, ROSTER, {**variables, "orderBy": order_by}, as_=roster_school.school.admin
        )
        page = body["data"]["courseStudents"]
        assert LEAVER.username not in usernames(page), order_by
        assert page["total"] == len(LEARNERS)

    body = await graphql(
        client, ROSTER, {**variables, "search": "henry"}, as_=roster_school.school.admin
    )
    assert body["data"]["courseStudents"]["total"] == 0
    assert body["data"]["courseStudents"]["nodes"] == []


async def test_a_returning_student_is_back_on_the_roster(
    client: TestClient, db: Database, roster_school: Roster
) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, roster_school.leaver.viewer, roster_school.course_id)
    body = await graphql(
        client,
        ROSTER,
        {"courseId": str(roster_school.course_id), "search": "henry"},
        as_=roster_school.school.instructor,
    )
    assert usernames(body["data"]["courseStudents"]) == [LEAVER.username]


# ---- courseStudents: search --------------------------------------------------------------


SEARCHES = [
    # (search, usernames it finds, what it shows)
    ("ALICE", {"alice_w"}, "case-insensitive"),
    ("stone", {"bob.s"}, "display name only"),
    ("DAVE-", {"dave-n"}, "username only"),
    ("Ra", {"frank_h", "grace.p"}, "substring inside words"),
    ("%", {"eve"}, "% is literal (as a wildcard it would match all)"),
    ("a%e", set(), "% is no wildcard (it would match 'alice')"),
    ("_", {"alice_w", "carol_k", "frank_h"}, "_ is literal (as a wildcard it would match all)"),
    ("b_s", set(), "_ is no wildcard (it would match 'bob.s')"),
    ("zzz", set(), "no match"),
    ("  ", {learner.username for learner in LEARNERS}, "a blank search filters nothing"),
]


async def test_search_matches_username_or_display_name(
    client: TestClient, roster_school: Roster
) -> None:
    for search, expected, why in SEARCHES:
        body = await graphql(
            client,
            ROSTER,
            {"courseId": str(roster_school.course_id), "search": search},
            as_=roster_school.school.instructor,
        )
        assert "errors" not in body, body
        page = body["data"]["courseStudents"]
        assert set(usernames(page)) == expected, why
        assert page["total"] == len(expected), why
        assert page["totalPages"] == (1 if expected else 0), why


async def test_search_total_counts_every_match_not_just_the_page(
    client: TestClient, roster_school: Roster
) -> None:
    body = await graphql(
        client,
        ROSTER,
        {
            "courseId": str(roster_school.course_id),
            "search": "_",
            "perPage": 2,
            "orderBy": "DISPLAY_NAME",
            "order": "ASC",
        },
        as_=roster_school.school.instructor,
    )
    page = body["data"]["courseStudents"]
    assert usernames(page) == ["alice_w", "carol_k"]
    assert (page["total"], page["totalPages"]) == (3, 2)


# ---- courseStudents: page bounds -----------------------------------------------------------


async def test_per_page_is_capped_at_one_hundred(client: TestClient, roster_school: Roster) -> None:
    body = await graphql(
        client,
        ROSTER,
        {"courseId": str(roster_school.course_id), "perPage": 500},
        as_=roster_school.school.instructor,
    )
    page = body["data"]["courseStudents"]
    assert (page["perPage"], page["total"], page["totalPages"]) == (100, 7, 1)
    assert len(page["nodes"]) == 7


@pytest.mark.parametrize(
    ("page", "per_page"),
    [(0, 20), (-1, 20), (1, 0), (1, -5)],
    ids=["page-0", "page-negative", "perPage-0", "perPage-negative"],
)
async def test_page_or_per_page_below_one_is_invalid_input(
    client: TestClient, school: School, page: int, per_page: int
) -> None:
    body = await graphql(
        client,
        ROSTER,
        {"courseId": str(school.course_id), "page": page, "perPage": per_page},
        as_=school.instructor,
    )
    assert error_codes(body) == ["invalid_input"]
    assert body["errors"][0]["extensions"]["status"] == 400
    assert body["data"] is None


async def test_a_page_beyond_the_end_is_empty_with_correct_totals(
    client: TestClient, roster_school: Roster
) -> None:
    for page_number in (5, 2**31 - 1):
        body = await graphql(
            client,
            ROSTER,
            {"courseId": str(roster_school.course_id), "perPage": 2, "page": page_number},
            as_=roster_school.school.instructor,
        )
        assert "errors" not in body, body
        page = body["data"]["courseStudents"]
        assert page == {
            "total": 7,
            "perPage": 2,
            "currentPage": page_number,
            "totalPages": 4,
            "nodes": [],
        }


async def test_roster_of_a_course_without_students_is_empty(
    client: TestClient, school: School
) -> None:
    body = await graphql(client, ROSTER, {"courseId": str(school.course_id)}, as_=school.admin)
    assert body["data"]["courseStudents"] == {
        "total": 0,
        "perPage": 20,
        "currentPage": 1,
        "totalPages": 0,
        "nodes": [],
    }


# ---- courseStudents: what a row shows ------------------------------------------------------


async def test_roster_rows_show_each_students_progress(
    client: TestClient, roster_school: Roster
) -> None:
    body = await graphql(
        client,
        ROSTER_FIELDS,
        {"courseId": str(roster_school.course_id)},
        as_=roster_school.school.instructor,
    )
    assert "errors" not in body, body
    rows = {row["username"]: row for row in body["data"]["courseStudents"]["nodes"]}
    lessons = roster_school.lesson_ids

    bob = rows["bob.s"]
    assert bob == {
        "userId": str(roster_school.students["bob.s"].id),
        "username": "bob.s",
        "displayName": "Bob Stone",
        "status": "COMPLETED",
        "progressPercentage": 100,
        "completedLessons": 4,
        "enrolledAt": iso(day(1)),
        "lastAccessed": iso(day(12)),
        "completedAt": iso(day(12)),
        "progress": {"nextLesson": None, "lessons": [{"completed": True}] * 4},
    }

    carol = rows["carol_k"]
    assert carol == {
        "userId": str(roster_school.students["carol_k"].id),
        "username": "carol_k",
        "displayName": "carol King",
        "status": "ACTIVE",
        "progressPercentage": 25,
        "completedLessons": 1,
        "enrolledAt": iso(day(6)),
        "lastAccessed": None,
        "completedAt": None,
        "progress": {
            "nextLesson": {"id": str(lessons[1])},
            "lessons": [{"completed": flag} for flag in (True, False, False, False)],
        },
    }

    grace = rows["grace.p"]
    assert (grace["status"], grace["progressPercentage"], grace["completedLessons"]) == (
        "ACTIVE",
        75,
        3,
    )
    assert grace["progress"]["nextLesson"] == {"id": str(lessons[3])}
    assert rows["eve"]["progressPercentage"] == 0
    assert rows["eve"]["progress"]["nextLesson"] == {"id": str(lessons[0])}


# ---- courseStudents: cost --------------------------------------------------------------


async def test_statements_per_roster_page_do_not_grow_with_per_page(
    client: TestClient, db: Database, school: School, count_statements: StatementCounter
) -> None:
    # Given 25 students, each with some lessons complete
    async with db.write() as tx:
        for number in range(25):
            user = await create_user(
                tx,
                username=f"learner{number:02d}",
                password=PASSWORD,
                display_name=f"Learner {number:02d}",
            )
            viewer = viewer_of(user)
            await enrollments.enroll(tx, viewer, school.course_id)
            for lesson_id in school.lesson_ids[: number % 5]:
                await completions.complete_lesson(tx, viewer, school.course_id, lesson_id)
    variables = {"courseId": str(school.course_id)}
    # The first request verifies the password; later ones use the credential cache.
    warm_up = await graphql(client, ROSTER_NESTED, {**variables, "perPage": 1}, as_=school.admin)
    assert "errors" not in warm_up, warm_up

    counts = {}
    for per_page in (5, 25):
        with count_statements:
            body = await graphql(
                client, ROSTER_NESTED, {**variables, "perPage": per_page}, as_=school.admin
            )
        assert "errors" not in body, body
        nodes = body["data"]["courseStudents"]["nodes"]
        assert len(nodes) == per_page
        # The nested fields really were resolved for every row.
        for node in nodes:
            assert len(node["progress"]["lessons"]) == 4
            done = sum(item["completed"] for item in node["progress"]["lessons"])
            assert done == node["progress"]["completedLessons"]
            assert len(node["progress"]["course"]["lessons"]) == 4
        counts[per_page] = count_statements.count
        count_statements.statements.clear()

    assert counts[5] > 0
    assert counts[25] == counts[5], counts


async def test_each_progress_names_its_students_newest_event_in_one_statement(
    client: TestClient, db: Database, school: School, count_statements: StatementCounter
) -> None:
    # Given John and Jane working through the course, and John through a second one
    second_id, second_lessons = await make_course(db, school.instructor, title="Second")
    await enrol_with_progress(db, school.student, school.course_id, school.lesson_ids, 2)
    await enrol_with_progress(db, school.other_student, school.course_id, school.lesson_ids, 1)
    await enrol_with_progress(db, school.student, second_id, second_lessons, 1)
    async with db.read() as tx:
        logged = await subscriptions.events_after(tx, school.course_id, 0)
        logged += await subscriptions.events_after(tx, second_id, 0)
    newest = {(event.user_id, event.course_id): event.id for event in logged}  # ids increase

    # When John reads his courses, and the instructor the roster with each student's progress
    mine = await graphql(client, "{ myCourses { courseId lastEventId } }", as_=school.student)
    roster_query = """query($c: ID!) {
      courseStudents(courseId: $c) { nodes { userId progress { lastEventId } } }
    }"""
    await graphql(client, roster_query, {"c": str(school.course_id)}, as_=school.instructor)
    with count_statements:
        roster = await graphql(
            client, roster_query, {"c": str(school.course_id)}, as_=school.instructor
        )

    # Then each names the newest event of that student in that course
    assert "errors" not in mine, mine
    john = school.student.viewer.user_id
    assert {item["courseId"]: item["lastEventId"] for item in mine["data"]["myCourses"]} == {
        str(school.course_id): str(newest[(john, school.course_id)]),
        str(second_id): str(newest[(john, second_id)]),
    }
    assert "errors" not in roster, roster
    nodes = roster["data"]["courseStudents"]["nodes"]
    assert {node["userId"]: node["progress"]["lastEventId"] for node in nodes} == {
        str(account.viewer.user_id): str(newest[(account.viewer.user_id, school.course_id)])
        for account in (school.student, school.other_student)
    }
    # And the roster read them in one statement for all its students
    assert sum("progress_events" in statement for statement in count_statements.statements) == 1


# ---- courseProgress for someone else ---------------------------------------------------


async def test_instructor_and_admin_read_a_students_progress(
    client: TestClient, roster_school: Roster
) -> None:
    grace = roster_school.students["grace.p"]
    for staff in (roster_school.school.instructor, roster_school.school.admin):
        body = await graphql(
            client,
            COURSE_PROGRESS,
            {"courseId": str(roster_school.course_id), "userId": str(grace.id)},
            as_=staff,
        )
        assert "errors" not in body, body
        assert body["data"]["courseProgress"] == {
            "userId": str(grace.id),
            "courseId": str(roster_school.course_id),
            "status": "ACTIVE",
            "progressPercentage": 75,
            "completedLessons": 3,
            "totalLessons": 4,
            "nextLesson": {"id": str(roster_school.lesson_ids[3])},
            "lessons": [{"completed": flag} for flag in (True, True, True, False)],
        }


async def test_a_student_cannot_read_another_students_progress(
    client: TestClient, db: Database, roster_school: Roster
) -> None:
    alice = roster_school.students["alice_w"]
    grace = roster_school.students["grace.p"]
    other_instructor = await make_user(db, "other_teacher", role=Role.INSTRUCTOR)
    variables = {"courseId": str(roster_school.course_id), "userId": str(grace.id)}

    for outsider in (alice, roster_school.school.other_student, other_instructor):
        body = await graphql(client, COURSE_PROGRESS, variables, as_=outsider)
        assert error_codes(body) == ["forbidden"], outsider.username
        assert body["data"] is None

    body = await graphql(client, COURSE_PROGRESS, variables)
    assert error_codes(body) == ["unauthenticated"]


async def test_a_student_naming_themselves_reads_their_own_progress(
    client: TestClient, db: Database, school: School
) -> None:
    await enrol_with_progress(db, school.student, school.course_id, school.lesson_ids, 2)
    body = await graphql(
        client,
        COURSE_PROGRESS,
        {"courseId": str(school.course_id), "userId": str(school.student.id)},
        as_=school.student,
    )
    assert body["data"]["courseProgress"]["userId"] == str(school.student.id)
    assert body["data"]["courseProgress"]["progressPercentage"] == 50


async def test_progress_of_a_user_not_enrolled_is_not_enrolled(
    client: TestClient, roster_school: Roster
) -> None:
    never_enrolled = roster_school.school.student
    for user in (never_enrolled, roster_school.leaver):
        body = await graphql(
            client,
            COURSE_PROGRESS,
            {"courseId": str(roster_school.course_id), "userId": str(user.id)},
            as_=roster_school.school.instructor,
        )
        assert error_codes(body) == ["not_enrolled"], user.username
        assert body["errors"][0]["extensions"]["status"] == 403


# ---- courseStats -----------------------------------------------------------------------


async def test_course_stats_count_enrolled_students_only(
    client: TestClient, db: Database, school: School
) -> None:
    # Given three students at 25%, 50% and 100%, and one who finished everything and left
    third = await make_user(db, "third_student", display_name="Third Student")
    leaver = await make_user(db, "leaver", display_name="Leaver")
    for account, completed in ((school.student, 1), (school.other_student, 2), (third, 4)):
        await enrol_with_progress(db, account, school.course_id, school.lesson_ids, completed)
    await enrol_with_progress(db, leaver, school.course_id, school.lesson_ids, 4)
    await unenrol(db, leaver, school.course_id)

    # When the instructor reads the statistics
    body = await graphql(
        client, COURSE_STATS, {"courseId": str(school.course_id)}, as_=school.instructor
    )

    # Then the leaver counts nowhere
    assert "errors" not in body, body
    stats = body["data"]["courseStats"]
    assert stats["courseId"] == str(school.course_id)
    assert (stats["enrolledCount"], stats["activeCount"], stats["completedCount"]) == (3, 2, 1)
    assert stats["averageProgress"] == 58.33  # (25 + 50 + 100) / 3, to 2 decimals
    assert stats["completionRate"] == pytest.approx(1 / 3)
    assert [item["lesson"]["id"] for item in stats["lessons"]] == [
        str(lesson_id) for lesson_id in school.lesson_ids
    ]
    assert [item["lesson"]["order"] for item in stats["lessons"]] == [1, 2, 3, 4]
    assert [item["completedCount"] for item in stats["lessons"]] == [3, 2, 1, 1]
    assert [item["completionRate"] for item in stats["lessons"]] == pytest.approx(
        [1.0, 2 / 3, 1 / 3, 1 / 3]
    )


async def test_course_stats_over_the_roster(client: TestClient, roster_school: Roster) -> None:
    body = await graphql(
        client,
        COURSE_STATS,
        {"courseId": str(roster_school.course_id)},
        as_=roster_school.school.admin,
    )
    stats = body["data"]["courseStats"]
    # progress 50, 100, 25, 50, 0, 50, 75; henry (unenrolled, 100%) left out
    assert (stats["enrolledCount"], stats["activeCount"], stats["completedCount"]) == (7, 6, 1)
    assert stats["averageProgress"] == 50.0
    assert stats["completionRate"] == pytest.approx(1 / 7)
    assert [item["completedCount"] for item in stats["lessons"]] == [6, 5, 2, 1]
    assert [item["completionRate"] for item in stats["lessons"]] == pytest.approx(
        [6 / 7, 5 / 7, 2 / 7, 1 / 7]
    )


async def test_course_stats_without_students_are_zeros(
    client: TestClient, db: Database, school: School
) -> None:
    empty_id, empty_lessons = await make_course(db, school.instructor, title="Empty", lessons=2)
    no_lessons_id, _ = await make_course(db, school.instructor, title="Bare", lessons=0)

    body = await graphql(client, COURSE_STATS, {"courseId": str(empty_id)}, as_=school.instructor)
    assert "errors" not in body, body
    assert body["data"]["courseStats"] == {
        "courseId": str(empty_id),
        "enrolledCount": 0,
        "activeCount": 0,
        "completedCount": 0,
        "averageProgress": 0.0,
        "completionRate": 0.0,
        "lessons": [
            {
                "lesson": {"id": str(lesson_id), "order": order},
                "completedCount": 0,
                "completionRate": 0.0,
            }
            for order, lesson_id in enumerate(empty_lessons, start=1)
        ],
    }

    # A course without lessons, with an enrolled student: nothing divides by zero either.
    await enrol_with_progress(db, school.student, no_lessons_id, [], 0)
    body = await graphql(
        client, COURSE_STATS, {"courseId": str(no_lessons_id)}, as_=school.instructor
    )
    assert "errors" not in body, body
    stats = body["data"]["courseStats"]
    assert (stats["enrolledCount"], stats["averageProgress"], stats["lessons"]) == (1, 0.0, [])


async def test_course_stats_name_the_newest_event_of_their_course(
    client: TestClient, db: Database, school: School
) -> None:
    # Given a course without events, and John working through another course
    quiet_id, _ = await make_course(db, school.instructor, title="Quiet", lessons=2)
    stats_query = "query($c: ID!) { courseStats(courseId: $c) { lastEventId } }"

    async def newest(course_id: int) -> str:
        body = await graphql(client, stats_query, {"c": str(course_id)}, as_=school.instructor)
        assert "errors" not in body, body
        return body["data"]["courseStats"]["lastEventId"]

    assert await newest(quiet_id) == "0"
    await enrol_with_progress(db, school.student, school.course_id, school.lesson_ids, 2)
    async with db.read() as tx:
        logged = await roster_events(tx, school.course_id)

    # Then the statistics name his course's newest event, and the quiet course still has none
    assert len(logged) == 3  # enrolled, two lessons completed
    assert await newest(school.course_id) == str(max(logged))
    assert await newest(quiet_id) == "0"


async def roster_events(tx: Transaction, course_id: int) -> list[int]:
    """Ids of the course's logged events."""
    events = await subscriptions.events_after(tx, course_id, 0)
    return [event.id for event in events]


async def test_course_stats_have_the_rosters_permissions(
    client: TestClient, db: Database, school: School
) -> None:
    await enrol_with_progress(db, school.student, school.course_id, school.lesson_ids, 1)
    other_instructor = await make_user(db, "other_teacher", role=Role.INSTRUCTOR)
    variables = {"courseId": str(school.course_id)}

    body = await graphql(client, COURSE_STATS, variables, as_=school.admin)
    assert body["data"]["courseStats"]["enrolledCount"] == 1
    for outsider in (school.student, school.other_student, other_instructor):
        body = await graphql(client, COURSE_STATS, variables, as_=outsider)
        assert error_codes(body) == ["forbidden"], outsider.username
    body = await graphql(client, COURSE_STATS, variables)
    assert error_codes(body) == ["unauthenticated"]
    body = await graphql(client, COURSE_STATS, {"courseId": "999999"}, as_=school.instructor)
    assert error_codes(body) == ["not_found"]


# ---- resolver level --------------------------------------------------------------------


async def test_resolver_pages_by_display_name_with_search(
    db: Database, roster_school: Roster
) -> None:
    instructor = roster_school.school.instructor.viewer
    async with db.read() as tx:
        second = await roster.course_students(
            tx,
            instructor,
            roster_school.course_id,
            page=2,
            per_page=3,
            order_by=StudentOrder.DISPLAY_NAME,
            descending=False,
        )
        matches = await roster.course_students(
            tx, instructor, roster_school.course_id, search="ALICE"
        )
    assert [row.user.username for row in second.rows] == ["dave-n", "eve", "frank_h"]
    assert (second.total, second.total_pages, second.per_page, second.page) == (7, 3, 3, 2)
    assert [row.user.username for row in matches.rows] == ["alice_w"]
    assert matches.total == 1


async def test_resolver_refuses_the_roster_and_checks_bounds(
    db: Database, roster_school: Roster
) -> None:
    alice = roster_school.students["alice_w"].viewer
    instructor = roster_school.school.instructor.viewer
    async with db.read() as tx:
        with pytest.raises(Forbidden):
            await roster.course_stats(tx, alice, roster_school.course_id)
    async with db.read() as tx:
        with pytest.raises(Forbidden):
            await roster.course_students(tx, alice, roster_school.course_id)
        with pytest.raises(NotFound):
            await roster.course_students(tx, instructor, 999_999)
        with pytest.raises(InvalidInput):
            await roster.course_students(tx, instructor, roster_school.course_id, page=0)
        with pytest.raises(InvalidInput):
            await roster.course_students(tx, instructor, roster_school.course_id, per_page=0)
        capped = await roster.course_students(
            tx, instructor, roster_school.course_id, per_page=1000
        )
    assert capped.per_page == 100
    assert len(capped.rows) == 7


async def test_resolver_average_is_the_mean_of_floored_percentages(
    db: Database, school: School
) -> None:
    # Given a 3-lesson course with students at 1/3 (33%), 2/3 (66%) and 3/3 (100%)
    course_id, lesson_ids = await make_course(db, school.instructor, title="Thirds", lessons=3)
    third = await make_user(db, "third_student")
    for account, completed in ((school.student, 1), (school.other_student, 2), (third, 3)):
        await enrol_with_progress(db, account, course_id, lesson_ids, completed)

    async with db.read() as tx:
        stats = await roster.course_stats(tx, school.instructor.viewer, course_id)

    # Then the mean is (33 + 66 + 100) / 3 = 66.33, not the unfloored 66.67
    assert stats.average_progress == 66.33
    assert stats.completed_count == 1
    assert stats.completion_rate == pytest.approx(1 / 3)
    assert [item.completed_count for item in stats.lessons] == [3, 2, 1]


async def test_resolver_course_progress_for_someone_else(
    db: Database, roster_school: Roster
) -> None:
    grace = roster_school.students["grace.p"]
    alice = roster_school.students["alice_w"]
    course_id = roster_school.course_id
    async with db.read() as tx:
        record = await enrollments.course_progress(
            tx, roster_school.school.admin.viewer, course_id, grace.id
        )
        assert (record.enrollment.user_id, record.percentage) == (grace.id, 75)
        with pytest.raises(Forbidden):
            await enrollments.course_progress(tx, alice.viewer, course_id, grace.id)
        with pytest.raises(NotEnrolled):
            await enrollments.course_progress(
                tx, roster_school.school.instructor.viewer, course_id, roster_school.leaver.id
            )


async def test_a_roster_reads_no_password_hash_or_email_and_its_total_in_the_course_read(
    client: TestClient, db: Database, roster_school: Roster, count_statements: StatementCounter
) -> None:
    """A page reads the accounts' shown columns only; its total comes with the course (on
    PostgreSQL in the page's own statement)."""
    variables = {"courseId": str(roster_school.course_id)}
    admin = roster_school.school.admin
    assert "errors" not in await graphql(client, ROSTER, variables, as_=admin)
    for order_by in EXPECTED_ORDER:
        count_statements.statements.clear()
        with count_statements:
            body = await graphql(client, ROSTER, {**variables, "orderBy": order_by}, as_=admin)
        assert body["data"]["courseStudents"]["total"] == len(LEARNERS)
        read = " ".join(count_statements.statements).lower()
        assert "password_hash" not in read, order_by
        assert "email" not in read, order_by
        # The course with its stored count and the page (in one statement on PostgreSQL,
        # by name after asking for a plan made for this course): no count of the enrolments.
        expected = 1 if db.dialect == "postgresql" else 2
        if db.dialect == "postgresql" and order_by == "DISPLAY_NAME":
            expected += 1
            assert count_statements.statements[0].startswith("SET LOCAL plan_cache_mode")
        assert count_statements.count == expected, count_statements.statements
        assert "count(" not in read, order_by
