"""Progress follows the content: adding or deleting a lesson recomputes every student's
numbers in the same transaction and tells each student whose numbers moved, once, with a
PROGRESS_RECALCULATED event (and nobody else), in a fixed number of statements."""

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from coursepulse.models import ProgressEvent
from coursepulse.models.db import Database
from coursepulse.resolvers import completions, enrollments
from coursepulse.resolvers.users import create_user, viewer_of
from tests.conftest import PASSWORD, Account, School, StatementCounter, graphql
from tests.test_live import (
    COURSE_ACTIVITY,
    TRANSPORT_WS,
    LiveClient,
    course_is_followed,
    ws_url,
)

ADD_LESSON = """
mutation($c: ID!, $title: String!) { addLesson(courseId: $c, input: { title: $title }) { id } }
"""
DELETE_LESSON = "mutation($id: ID!) { deleteLesson(id: $id) { totalLessons } }"
REORDER = "mutation($c: ID!, $ids: [ID!]!) { reorderLessons(courseId: $c, lessonIds: $ids) { id } }"
PROGRESS = """query($c: ID!, $u: ID) { courseProgress(courseId: $c, userId: $u) {
  status progressPercentage completedLessons totalLessons } }"""

#: username: (lessons completed, by their index in the course; left the course)
STUDENTS: dict[str, tuple[tuple[int, ...], bool]] = {
    "active_quarter": ((0,), False),  # 25% -> 20%
    "active_half": ((1, 2), False),  # 50% -> 40%
    "finished": ((0, 1, 2, 3), False),  # COMPLETED 100% -> ACTIVE 80%
    "not_started": ((), False),  # 0% -> 0%: nothing moves
    "left_half": ((0, 3), True),  # UNENROLLED, 50% -> 40%
    "left_unstarted": ((), True),  # UNENROLLED, 0% -> 0%
}


async def populate(db: Database, school: School) -> dict[str, Account]:
    accounts: dict[str, Account] = {}
    async with db.write() as tx:
        for username, (done, left) in STUDENTS.items():
            user = await create_user(tx, username=username, password=PASSWORD)
            account = Account(viewer=viewer_of(user), username=username)
            await enrollments.enroll(tx, account.viewer, school.course_id)
            for index in done:
                await completions.complete_lesson(
                    tx, account.viewer, school.course_id, school.lesson_ids[index]
                )
            if left:
                await enrollments.unenroll(tx, account.viewer, school.course_id)
            accounts[username] = account
    return accounts


async def recalculations(db: Database, after: int) -> list[Any]:
    """The PROGRESS_RECALCULATED events after id `after`, in log order."""
    events = ProgressEvent.__table__
    async with db.read() as tx:
        return await tx.all(
            select(events)
            .where(events.c.id > after, events.c.kind == "progress_recalculated")
            .order_by(events.c.id)
        )


async def newest_event(db: Database) -> int:
    events = ProgressEvent.__table__
    async with db.read() as tx:
        return int(await tx.scalar(select(events.c.id).order_by(events.c.id.desc()).limit(1)))


def numbers(events: list[Any], accounts: dict[str, Account]) -> dict[str, tuple[int, int, int]]:
    names = {account.id: name for name, account in accounts.items()}
    return {
        names[event.user_id]: (
            event.progress_percentage,
            event.completed_lessons,
            event.total_lessons,
        )
        for event in events
    }


async def test_a_new_lesson_tells_each_student_whose_numbers_moved_once(
    client: TestClient, db: Database, school: School
) -> None:
    accounts = await populate(db, school)
    before = await newest_event(db)
    async with LiveClient(ws_url(client), TRANSPORT_WS, account=school.instructor) as live:
        stream = live.subscribe(COURSE_ACTIVITY, courseId=str(school.course_id))
        await course_is_followed(client.server.app, school.course_id)
        # When the instructor adds a fifth lesson
        body = await graphql(
            client,
            ADD_LESSON,
            {"c": str(school.course_id), "title": "Bonus"},
            as_=school.instructor,
        )
        assert "errors" not in body, body
        # Then the dashboard hears one PROGRESS_RECALCULATED per student whose numbers moved
        heard = [await stream.next() for _ in range(4)]
    assert [event["kind"] for event in heard] == ["PROGRESS_RECALCULATED"] * 4
    names = {str(account.id): name for name, account in accounts.items()}
    assert {names[event["userId"]]: event["progressPercentage"] for event in heard} == {
        "active_quarter": 20,
        "active_half": 40,
        "finished": 80,
        "left_half": 40,
    }
    # And the log holds exactly those, nobody else's
    logged = await recalculations(db, before)
    assert numbers(logged, accounts) == {
        "active_quarter": (20, 1, 5),
        "active_half": (40, 2, 5),
        "finished": (80, 4, 5),
        "left_half": (40, 2, 5),
    }
    # And what they read agrees with what they heard
    body = await graphql(
        client,
        PROGRESS,
        {"c": str(school.course_id), "u": str(accounts["finished"].id)},
        as_=school.instructor,
    )
    assert body["data"]["courseProgress"] == {
        "status": "ACTIVE",
        "progressPercentage": 80,
        "completedLessons": 4,
        "totalLessons": 5,
    }


async def test_a_deleted_lesson_tells_each_student_whose_numbers_moved_once(
    client: TestClient, db: Database, school: School
) -> None:
    accounts = await populate(db, school)
    before = await newest_event(db)
    # Lesson 3 (index 2): active_half had it; without it active_quarter stays at 1 of 3
    body = await graphql(
        client, DELETE_LESSON, {"id": str(school.lesson_ids[2])}, as_=school.instructor
    )
    assert body["data"]["deleteLesson"]["totalLessons"] == 3
    assert numbers(await recalculations(db, before), accounts) == {
        "active_quarter": (33, 1, 3),  # 25% -> 33%
        "active_half": (33, 1, 3),  # had it: 2 -> 1, 50% -> 33%
        "finished": (100, 3, 3),  # had it: 4 -> 3, stays complete
        "left_half": (66, 2, 3),  # 50% -> 66%
    }
    # Lesson 2 (index 1) next: active_half had only lessons 2 and 3; now 0 of 2
    before = await newest_event(db)
    await graphql(client, DELETE_LESSON, {"id": str(school.lesson_ids[1])}, as_=school.instructor)
    assert numbers(await recalculations(db, before), accounts) == {
        "active_quarter": (50, 1, 2),
        "active_half": (0, 0, 2),
        "finished": (100, 2, 2),
        "left_half": (100, 2, 2),
    }


async def test_deleting_what_was_left_completes_the_course_and_says_both(
    client: TestClient, db: Database, school: School
) -> None:
    accounts = await populate(db, school)
    # active_quarter did lesson 1 only: the other three go
    for index in (1, 2, 3):
        before = await newest_event(db)
        await graphql(
            client, DELETE_LESSON, {"id": str(school.lesson_ids[index])}, as_=school.instructor
        )
    events = ProgressEvent.__table__
    async with db.read() as tx:
        last = await tx.all(
            select(events.c.kind, events.c.progress_percentage)
            .where(events.c.id > before, events.c.user_id == accounts["active_quarter"].id)
            .order_by(events.c.id)
        )
    assert [tuple(row) for row in last] == [
        ("progress_recalculated", 100),
        ("course_completed", 100),
    ]
    # The last lesson gone: everyone who had it, or had finished, is back to 0 of 0
    before = await newest_event(db)
    await graphql(client, DELETE_LESSON, {"id": str(school.lesson_ids[0])}, as_=school.instructor)
    assert numbers(await recalculations(db, before), accounts) == {
        "active_quarter": (0, 0, 0),
        "finished": (0, 0, 0),
        "left_half": (0, 0, 0),
    }


async def test_reordering_moves_no_numbers_and_tells_nobody(
    client: TestClient, db: Database, school: School
) -> None:
    await populate(db, school)
    before = await newest_event(db)
    body = await graphql(
        client,
        REORDER,
        {"c": str(school.course_id), "ids": [str(i) for i in reversed(school.lesson_ids)]},
        as_=school.instructor,
    )
    assert "errors" not in body, body
    assert await recalculations(db, before) == []


async def test_recalculation_does_not_grow_with_the_students(
    client: TestClient, db: Database, school: School, count_statements: StatementCounter
) -> None:
    async def statements_to_add_and_delete() -> list[int]:
        counts = []
        body = await graphql(
            client, ADD_LESSON, {"c": str(school.course_id), "title": "Extra"}, as_=school.admin
        )
        lesson_id = body["data"]["addLesson"]["id"]
        for document, variables in (
            (ADD_LESSON, {"c": str(school.course_id), "title": "Extra"}),
            (DELETE_LESSON, {"id": lesson_id}),
        ):
            count_statements.statements.clear()
            with count_statements:
                body = await graphql(client, document, variables, as_=school.admin)
            assert "errors" not in body, body
            counts.append(count_statements.count)
        return counts

    few = await statements_to_add_and_delete()
    async with db.write() as tx:
        for number in range(120):
            user = await create_user(tx, username=f"crowd{number}", password=PASSWORD)
            await enrollments.enroll(tx, viewer_of(user), school.course_id)
            await completions.complete_lesson(
                tx, viewer_of(user), school.course_id, school.lesson_ids[0]
            )
    before = await newest_event(db)
    many = await statements_to_add_and_delete()
    assert many == few
    # ...while every one of them heard about both changes
    assert len(await recalculations(db, before)) == 3 * 120
