"""Starting a course over: a reset keeps an audit trail and the completions as history,
logs PROGRESS_RESET, leaves a certificate valid, and races cleanly with completions."""

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from coursepulse.models import Enrollment, LessonCompletion, ProgressEvent, ResetCompletion
from coursepulse.models.db import Database
from coursepulse.resolvers import completions, enrollments
from coursepulse.resolvers.users import create_user, viewer_of
from tests.conftest import PASSWORD, Account, School, error_codes, graphql

RESET = """mutation($c: ID!, $u: ID, $reason: String) {
  resetProgress(courseId: $c, userId: $u, reason: $reason) {
    status progressPercentage completedLessons timeSpentSeconds completedAt
    nextLesson { title } lessons { completed }
    resets {
      courseId userId reason resetAt resetBy { username }
      previousCompletedLessons previousProgressPercentage previousTimeSpentSeconds
      previousCompletedAt
    }
  }
}"""
PROGRESS = """query($c: ID!, $u: ID) { courseProgress(courseId: $c, userId: $u) {
  status completedLessons resets { reason resetBy { username } previousCompletedLessons } } }"""
CERTIFICATE = "query($c: ID!) { certificate(courseId: $c) { certificateId } }"
VERIFY = "query($n: String!) { verifyCertificate(certificateId: $n) { valid } }"


async def progress_with(db: Database, school: School, student: Account, done: int) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, student.viewer, school.course_id)
        for lesson_id in school.lesson_ids[:done]:
            await completions.complete_lesson(tx, student.viewer, school.course_id, lesson_id)
        await enrollments.record_activity(tx, student.viewer, school.course_id, 600)


async def reset(
    client: TestClient, school: School, as_: Account, user: Account | None = None, **extra: Any
) -> dict[str, Any]:
    variables = {"c": str(school.course_id), "u": str(user.id) if user else None, **extra}
    return await graphql(client, RESET, variables, as_=as_)


async def counts(db: Database, table: Any, user_id: int) -> int:
    """Rows of `table` belonging to the user's enrolments."""
    enrolments = Enrollment.__table__
    mine = select(enrolments.c.id).where(enrolments.c.user_id == user_id)
    async with db.read() as tx:
        return int(
            await tx.scalar(
                select(func.count()).select_from(table).where(table.c.enrollment_id.in_(mine))
            )
        )


async def test_a_student_starts_over_and_the_old_state_is_kept(
    client: TestClient, db: Database, school: School
) -> None:
    await progress_with(db, school, school.student, 4)
    body = await reset(client, school, school.student, reason="  retaking it  ")
    assert "errors" not in body, body
    progress = body["data"]["resetProgress"]
    assert progress["status"] == "ACTIVE"
    assert (progress["progressPercentage"], progress["completedLessons"]) == (0, 0)
    assert progress["timeSpentSeconds"] == 0
    assert progress["completedAt"] is None
    assert progress["nextLesson"] == {"title": "Lesson 1"}
    assert [lesson["completed"] for lesson in progress["lessons"]] == [False] * 4
    (kept,) = progress["resets"]
    assert kept["reason"] == "retaking it"
    assert kept["resetBy"] == {"username": school.student.username}
    assert kept["userId"] == str(school.student.id)
    assert (kept["previousCompletedLessons"], kept["previousProgressPercentage"]) == (4, 100)
    assert kept["previousTimeSpentSeconds"] == 600
    assert kept["previousCompletedAt"] is not None
    # The completions are history, not gone; the live progress has none
    assert await counts(db, ResetCompletion.__table__, school.student.id) == 4
    assert await counts(db, LessonCompletion.__table__, school.student.id) == 0
    # One PROGRESS_RESET event with the new numbers
    events = ProgressEvent.__table__
    async with db.read() as tx:
        logged = await tx.all(
            select(events.c.progress_percentage, events.c.completed_lessons).where(
                events.c.kind == "progress_reset"
            )
        )
    assert [tuple(row) for row in logged] == [(0, 0)]
    # And the course can be taken again
    async with db.write() as tx:
        await completions.complete_lesson(
            tx, school.student.viewer, school.course_id, school.lesson_ids[0]
        )
    body = await graphql(client, PROGRESS, {"c": str(school.course_id)}, as_=school.student)
    assert body["data"]["courseProgress"]["completedLessons"] == 1


async def test_an_earned_certificate_stays_valid(
    client: TestClient, db: Database, school: School
) -> None:
    await progress_with(db, school, school.student, 4)
    body = await graphql(client, CERTIFICATE, {"c": str(school.course_id)}, as_=school.student)
    number = body["data"]["certificate"]["certificateId"]
    await reset(client, school, school.student)
    body = await graphql(client, VERIFY, {"n": number})
    assert body["data"]["verifyCertificate"]["valid"] is True
    body = await graphql(client, CERTIFICATE, {"c": str(school.course_id)}, as_=school.student)
    assert body["data"]["certificate"]["certificateId"] == number


async def test_staff_reset_a_student_and_students_may_not_reset_each_other(
    client: TestClient, db: Database, school: School
) -> None:
    await progress_with(db, school, school.student, 2)
    await progress_with(db, school, school.other_student, 1)
    body = await reset(client, school, school.other_student, school.student)
    assert error_codes(body) == ["forbidden"]
    body = await reset(client, school, school.instructor, school.student, reason="wrong account")
    assert "errors" not in body, body
    body = await reset(client, school, school.admin, school.student)
    assert "errors" not in body, body
    # Newest first, each with its author; the second had nothing to reset and is recorded
    body = await graphql(
        client,
        PROGRESS,
        {"c": str(school.course_id), "u": str(school.student.id)},
        as_=school.instructor,
    )
    assert body["data"]["courseProgress"]["resets"] == [
        {"reason": None, "resetBy": {"username": "admin"}, "previousCompletedLessons": 0},
        {
            "reason": "wrong account",
            "resetBy": {"username": school.instructor.username},
            "previousCompletedLessons": 2,
        },
    ]
    # The other student's progress is untouched
    body = await graphql(client, PROGRESS, {"c": str(school.course_id)}, as_=school.other_student)
    assert body["data"]["courseProgress"]["completedLessons"] == 1


async def test_bad_resets_are_refused_and_change_nothing(
    client: TestClient, db: Database, school: School
) -> None:
    body = await reset(client, school, school.student)
    assert error_codes(body) == ["not_enrolled"]
    await progress_with(db, school, school.student, 2)
    body = await reset(client, school, school.student, reason="x" * 501)
    assert error_codes(body) == ["invalid_input"]
    body = await reset(client, school, school.instructor, school.other_student)
    assert error_codes(body) == ["not_enrolled"]
    body = await graphql(client, RESET, {"c": "999999"}, as_=school.student)
    assert error_codes(body) == ["not_found"]
    body = await graphql(client, RESET, {"c": str(school.course_id)})
    assert error_codes(body) == ["unauthenticated"]
    body = await graphql(client, PROGRESS, {"c": str(school.course_id)}, as_=school.student)
    assert body["data"]["courseProgress"]["completedLessons"] == 2
    assert body["data"]["courseProgress"]["resets"] == []


async def test_two_resets_at_once_record_two_resets(
    client: TestClient, db: Database, school: School
) -> None:
    await progress_with(db, school, school.student, 3)
    bodies = await asyncio.gather(
        reset(client, school, school.student),
        reset(client, school, school.instructor, school.student),
    )
    assert all("errors" not in body for body in bodies), bodies
    body = await graphql(client, PROGRESS, {"c": str(school.course_id)}, as_=school.student)
    previous = sorted(
        item["previousCompletedLessons"] for item in body["data"]["courseProgress"]["resets"]
    )
    assert previous == [0, 3]


async def test_a_reset_racing_a_completion_keeps_one_order(
    client: TestClient, db: Database, school: School
) -> None:
    complete = """mutation($c: ID!, $l: ID!) {
      completeLesson(courseId: $c, lessonId: $l) { message } }"""
    for round_ in range(6):
        # Given a student with two lessons done
        async with db.write() as tx:
            user = await create_user(tx, username=f"racer{round_}", password=PASSWORD)
        student = Account(viewer=viewer_of(user), username=f"racer{round_}")
        await progress_with(db, school, student, 2)
        # When a reset and a third completion arrive at once
        variables = {"c": str(school.course_id), "l": str(school.lesson_ids[3])}
        await asyncio.gather(
            reset(client, school, student), graphql(client, complete, variables, as_=student)
        )
        # Then one went first: completion then reset (nothing left, 3 kept) or reset then
        # completion (one lesson, 2 kept); never a mix
        body = await graphql(client, PROGRESS, {"c": str(school.course_id)}, as_=student)
        progress = body["data"]["courseProgress"]
        live = await counts(db, LessonCompletion.__table__, student.id)
        assert progress["completedLessons"] == live
        (kept,) = progress["resets"]
        assert (live, kept["previousCompletedLessons"]) in ((0, 3), (1, 2))
