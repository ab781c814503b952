"""Sequential courses and drip-fed lessons: where each student stands, what completing a
locked lesson answers on both front doors, and staff who preview."""

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from coursepulse.models import Enrollment
from coursepulse.models.db import Database
from coursepulse.models.types import utcnow
from coursepulse.resolvers import completions, enrollments
from coursepulse.rest import PREFIX
from tests.conftest import Account, School, error_codes, graphql

UPDATE_COURSE = """mutation($id: ID!, $seq: Boolean) {
  updateCourse(id: $id, input: { sequential: $seq }) { sequential } }"""
UPDATE_LESSON = """mutation($id: ID!, $input: LessonUpdateInput!) {
  updateLesson(id: $id, input: $input) { id title availableAfterDays availableAt } }"""
ADD_LESSON = """mutation($c: ID!, $input: LessonInput!) {
  addLesson(courseId: $c, input: $input) { id order availableAfterDays availableAt } }"""
COMPLETE = """mutation($c: ID!, $l: ID!) {
  completeLesson(courseId: $c, lessonId: $l) { message } }"""
INCOMPLETE = """mutation($c: ID!, $l: ID!) {
  incompleteLesson(courseId: $c, lessonId: $l) { message } }"""
PROGRESS = """query($c: ID!, $u: ID) { courseProgress(courseId: $c, userId: $u) {
  completedLessons nextLesson { order }
  lessons { lesson { order } completed locked unlocksAt } } }"""
CREATE = """mutation { createCourse(input: { title: "Step by step", sequential: true }) {
  id sequential } }"""


async def enrol(db: Database, school: School, student: Account) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, student.viewer, school.course_id)


async def stands(
    client: TestClient, school: School, student: Account, as_: Account | None = None
) -> list[tuple[bool, bool, Any]]:
    """(completed, locked, unlocksAt) of each lesson, for the student."""
    variables = {"c": str(school.course_id), "u": str(student.id) if as_ else None}
    body = await graphql(client, PROGRESS, variables, as_=as_ or student)
    assert "errors" not in body, body
    return [
        (item["completed"], item["locked"], item["unlocksAt"])
        for item in body["data"]["courseProgress"]["lessons"]
    ]


async def complete(
    client: TestClient, school: School, student: Account, index: int, undo: bool = False
) -> dict[str, Any]:
    variables = {"c": str(school.course_id), "l": str(school.lesson_ids[index])}
    return await graphql(client, INCOMPLETE if undo else COMPLETE, variables, as_=student)


async def test_a_sequential_course_opens_lessons_one_after_another(
    client: TestClient, db: Database, school: School
) -> None:
    body = await graphql(
        client, UPDATE_COURSE, {"id": str(school.course_id), "seq": True}, as_=school.instructor
    )
    assert body["data"]["updateCourse"] == {"sequential": True}
    await enrol(db, school, school.student)
    assert await stands(client, school, school.student) == [
        (False, False, None),
        (False, True, None),
        (False, True, None),
        (False, True, None),
    ]
    # Completing a locked lesson fails and changes nothing
    body = await complete(client, school, school.student, 2)
    assert error_codes(body) == ["lesson_locked"]
    assert "unlocksAt" not in body["errors"][0]["extensions"]
    assert (await stands(client, school, school.student))[2] == (False, True, None)
    # In order, each opens the next
    for index in range(2):
        body = await complete(client, school, school.student, index)
        assert "errors" not in body, body
    assert [locked for _, locked, _ in await stands(client, school, school.student)] == [
        False,
        False,
        False,
        True,
    ]
    # Undoing lesson 1 does not undo lesson 2; lesson 3 waits for lesson 1 again
    await complete(client, school, school.student, 0, undo=True)
    assert await stands(client, school, school.student) == [
        (False, False, None),
        (True, False, None),
        (False, True, None),
        (False, True, None),
    ]
    # The staff see where the student stands, and nextLesson points at lesson 1
    assert await stands(client, school, school.student, as_=school.instructor) == await stands(
        client, school, school.student
    )


async def test_next_lesson_is_returned_even_when_it_is_locked(
    client: TestClient, db: Database, school: School
) -> None:
    opens = (utcnow() + timedelta(days=3)).replace(microsecond=0)
    body = await graphql(
        client,
        UPDATE_LESSON,
        {"id": str(school.lesson_ids[0]), "input": {"availableAt": opens.isoformat()}},
        as_=school.instructor,
    )
    assert body["data"]["updateLesson"]["availableAt"] == opens.isoformat()
    await enrol(db, school, school.student)
    body = await graphql(client, PROGRESS, {"c": str(school.course_id)}, as_=school.student)
    progress = body["data"]["courseProgress"]
    assert progress["nextLesson"] == {"order": 1}
    assert progress["lessons"][0] == {
        "lesson": {"order": 1},
        "completed": False,
        "locked": True,
        "unlocksAt": opens.isoformat(),
    }
    body = await complete(client, school, school.student, 0)
    assert error_codes(body) == ["lesson_locked"]
    assert body["errors"][0]["extensions"]["unlocksAt"] == opens.isoformat()


async def test_drip_fed_lessons_open_days_after_each_enrolment(
    client: TestClient, db: Database, school: School
) -> None:
    body = await graphql(
        client,
        ADD_LESSON,
        {"c": str(school.course_id), "input": {"title": "Week two", "availableAfterDays": 7}},
        as_=school.instructor,
    )
    assert body["data"]["addLesson"]["availableAfterDays"] == 7
    await enrol(db, school, school.student)
    await enrol(db, school, school.other_student)
    # John enrolled ten days ago: open for him; Jane just now: opens in a week
    enrolments = Enrollment.__table__
    async with db.write() as tx:
        await tx.execute(
            update(enrolments)
            .where(enrolments.c.user_id == school.student.id)
            .values(enrolled_at=utcnow() - timedelta(days=10))
        )
    assert (await stands(client, school, school.student))[4] == (False, False, None)
    _, locked, unlocks_at = (await stands(client, school, school.other_student))[4]
    assert locked is True
    assert unlocks_at is not None
    lesson = {"c": str(school.course_id), "l": body["data"]["addLesson"]["id"]}
    assert "errors" not in await graphql(client, COMPLETE, lesson, as_=school.student)
    assert error_codes(await graphql(client, COMPLETE, lesson, as_=school.other_student)) == [
        "lesson_locked"
    ]
    # The REST facade answers the same, in the seed's error form
    response = await client.post(
        f"{PREFIX}/courses/{school.course_id}/lessons/{lesson['l']}/complete",
        headers=school.other_student.auth,
    )
    assert response.status == 403
    error = await response.json()
    assert error["code"] == "lesson_locked"
    assert error["data"]["unlocks_at"] == unlocks_at
    # Clearing the wait opens it (null clears; an omitted field stays as it is)
    body = await graphql(
        client,
        UPDATE_LESSON,
        {"id": lesson["l"], "input": {"availableAfterDays": None}},
        as_=school.instructor,
    )
    assert body["data"]["updateLesson"]["availableAfterDays"] is None
    assert body["data"]["updateLesson"]["title"] == "Week two"
    assert "errors" not in await graphql(client, COMPLETE, lesson, as_=school.other_student)


async def test_staff_previewing_are_never_locked_out(
    client: TestClient, db: Database, school: School
) -> None:
    await graphql(
        client, UPDATE_COURSE, {"id": str(school.course_id), "seq": True}, as_=school.instructor
    )
    for staff in (school.instructor, school.admin):
        await enrol(db, school, staff)
        assert [locked for _, locked, _ in await stands(client, school, staff)] == [False] * 4
        body = await complete(client, school, staff, 3)
        assert "errors" not in body, body


async def test_bad_lesson_settings_are_invalid_input(client: TestClient, school: School) -> None:
    for days in (-1, 3651):
        body = await graphql(
            client,
            UPDATE_LESSON,
            {"id": str(school.lesson_ids[0]), "input": {"availableAfterDays": days}},
            as_=school.instructor,
        )
        assert error_codes(body) == ["invalid_input"]
        assert body["errors"][0]["extensions"]["field"] == "availableAfterDays"
    body = await graphql(
        client,
        UPDATE_LESSON,
        {"id": str(school.lesson_ids[0]), "input": {"title": "x"}},
        as_=school.other_student,
    )
    assert error_codes(body) == ["forbidden"]


async def test_a_course_is_created_sequential(client: TestClient, school: School) -> None:
    body = await graphql(client, CREATE, as_=school.instructor)
    assert body["data"]["createCourse"]["sequential"] is True


async def test_the_resolver_refuses_a_locked_lesson_and_changes_nothing(
    db: Database, school: School
) -> None:
    from coursepulse.resolvers.errors import LessonLocked

    await enrol(db, school, school.student)
    async with db.write() as tx:
        await tx.execute(
            update(Enrollment.__table__.metadata.tables["courses"])
            .where(Enrollment.__table__.metadata.tables["courses"].c.id == school.course_id)
            .values(sequential=True)
        )
    try:
        async with db.write() as tx:
            await completions.complete_lesson(
                tx, school.student.viewer, school.course_id, school.lesson_ids[1]
            )
    except LessonLocked:
        pass
    else:
        raise AssertionError("a locked lesson was completed")
    async with db.read() as tx:
        record = await enrollments.course_progress(tx, school.student.viewer, school.course_id)
    assert record.enrollment.completed_lessons == 0


async def test_a_date_without_a_time_zone_is_invalid_input(
    client: TestClient, school: School
) -> None:
    for document, variables in (
        (
            ADD_LESSON,
            {
                "c": str(school.course_id),
                "input": {"title": "Later", "availableAt": "2030-01-01T09:00:00"},
            },
        ),
        (
            UPDATE_LESSON,
            {"id": str(school.lesson_ids[0]), "input": {"availableAt": "2030-01-01T09:00:00"}},
        ),
    ):
        body = await graphql(client, document, variables, as_=school.instructor)
        assert error_codes(body) == ["invalid_input"], body
        assert body["errors"][0]["extensions"]["field"] == "availableAt"
