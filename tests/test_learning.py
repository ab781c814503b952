"""What a student does in a course: enrol, leave, complete lessons, study, and read progress.

End to end over GraphQL HTTP (the real aiohttp app) and at the resolver level
(coursepulse.resolvers.enrollments), on SQLite and PostgreSQL.
"""

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, text, update

from coursepulse.models import (
    CourseStatus,
    Enrollment,
    LessonCompletion,
    ProgressEventKind,
)
from coursepulse.models.db import Database
from coursepulse.resolvers import completions, courses, enrollments
from coursepulse.resolvers.access import get_course
from coursepulse.resolvers.errors import (
    AlreadyEnrolled,
    InvalidInput,
    NotEnrolled,
    NotFound,
    Unauthenticated,
)
from coursepulse.resolvers.progress import format_time_spent, progress_percentage
from tests.conftest import Account, School, error_codes, graphql, make_course

# ---- GraphQL documents ------------------------------------------------------------------

PROGRESS_FIELDS = """
fragment ProgressFields on Progress {
  courseId
  userId
  status
  progressPercentage
  completedLessons
  totalLessons
  timeSpent
  timeSpentSeconds
  lastAccessed
  startedAt
  completedAt
  nextLesson { id order }
}
"""

ENROLL = (
    """
mutation Enroll($courseId: ID!) {
  enroll(courseId: $courseId) {
    message
    enrollment { enrollmentId courseId userId enrolledAt }
    progress { ...ProgressFields }
  }
}
"""
    + PROGRESS_FIELDS
)

UNENROLL = """
mutation Unenroll($courseId: ID!) {
  unenroll(courseId: $courseId) { message courseId }
}
"""

LESSON_CHANGE_FIELDS = """
  message
  lessonId
  completedAt
  alreadyCompleted
  progressPercentage
  nextLesson { id order }
  progress { ...ProgressFields }
"""

COMPLETE_LESSON = (
    """
mutation CompleteLesson($courseId: ID!, $lessonId: ID!) {
  completeLesson(courseId: $courseId, lessonId: $lessonId) {"""
    + LESSON_CHANGE_FIELDS
    + "} }"
    + PROGRESS_FIELDS
)

INCOMPLETE_LESSON = (
    """
mutation IncompleteLesson($courseId: ID!, $lessonId: ID!) {
  incompleteLesson(courseId: $courseId, lessonId: $lessonId) {"""
    + LESSON_CHANGE_FIELDS
    + "} }"
    + PROGRESS_FIELDS
)

RECORD_ACTIVITY = (
    """
mutation RecordActivity($courseId: ID!, $lessonId: ID, $seconds: Int!) {
  recordActivity(courseId: $courseId, lessonId: $lessonId, seconds: $seconds) {
    ...ProgressFields
  }
}
"""
    + PROGRESS_FIELDS
)

COURSE_PROGRESS = (
    """
query CourseProgress($courseId: ID!) {
  courseProgress(courseId: $courseId) {
    ...ProgressFields
    lessons { lesson { id order courseId } completed completedAt }
    course { id title totalLessons }
    student { userId username displayName status progressPercentage completedLessons }
  }
}
"""
    + PROGRESS_FIELDS
)

MY_COURSES = (
    """
query MyCourses($status: EnrollmentStatus) {
  myCourses(status: $status) { ...ProgressFields course { id } }
}
"""
    + PROGRESS_FIELDS
)

COURSE_MY_PROGRESS = (
    """
query CourseMyProgress($id: ID!) {
  course(id: $id) { id myProgress { ...ProgressFields } }
}
"""
    + PROGRESS_FIELDS
)

LONG_AGO = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


# ---- helpers ------------------------------------------------------------------------------


def ts(value: str) -> datetime:
    """A DateTime of the contract: ISO 8601 in UTC with an offset."""
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


def now_second() -> datetime:
    """Now, to the second: the precision the API stores."""
    return datetime.now(UTC).replace(microsecond=0)


def the_error(body: dict[str, Any]) -> dict[str, Any]:
    """The one error of a failed operation, after checking that nothing else came back."""
    assert body.get("data") is None, body
    assert len(body.get("errors", [])) == 1, body
    return body["errors"][0]


def assert_error(
    body: dict[str, Any], code: str, status: int, message: str | None = None
) -> dict[str, Any]:
    error = the_error(body)
    assert error["extensions"]["code"] == code, body
    assert error["extensions"]["status"] == status, body
    if message is not None:
        assert error["message"] == message
    return error


def ok(body: dict[str, Any], field: str) -> Any:
    assert "errors" not in body, body
    return body["data"][field]


async def enroll(client: TestClient, account: Account, course_id: int) -> dict[str, Any]:
    body = await graphql(client, ENROLL, {"courseId": str(course_id)}, as_=account)
    return ok(body, "enroll")


async def unenroll(client: TestClient, account: Account, course_id: int) -> dict[str, Any]:
    body = await graphql(client, UNENROLL, {"courseId": str(course_id)}, as_=account)
    return ok(body, "unenroll")


async def complete(
    client: TestClient, account: Account, course_id: int, lesson_id: int
) -> dict[str, Any]:
    body = await graphql(
        client,
        COMPLETE_LESSON,
        {"courseId": str(course_id), "lessonId": str(lesson_id)},
        as_=account,
    )
    return ok(body, "completeLesson")


async def incomplete(
    client: TestClient, account: Account, course_id: int, lesson_id: int
) -> dict[str, Any]:
    body = await graphql(
        client,
        INCOMPLETE_LESSON,
        {"courseId": str(course_id), "lessonId": str(lesson_id)},
        as_=account,
    )
    return ok(body, "incompleteLesson")


async def record_activity(
    client: TestClient, account: Account, course_id: int, seconds: int
) -> dict[str, Any]:
    body = await graphql(
        client, RECORD_ACTIVITY, {"courseId": str(course_id), "seconds": seconds}, as_=account
    )
    return ok(body, "recordActivity")


async def progress_of(client: TestClient, account: Account, course_id: int) -> dict[str, Any]:
    body = await graphql(client, COURSE_PROGRESS, {"courseId": str(course_id)}, as_=account)
    return ok(body, "courseProgress")


async def my_courses(
    client: TestClient, account: Account, status: str | None = None
) -> list[dict[str, Any]]:
    variables = {} if status is None else {"status": status}
    return ok(await graphql(client, MY_COURSES, variables, as_=account), "myCourses")


async def backdate_last_accessed(db: Database, account: Account, course_id: int) -> None:
    """Push the enrolment's lastAccessed into the past, so a fresh update shows."""
    async with db.write() as tx:
        await tx.execute(
            update(Enrollment)
            .where(Enrollment.user_id == account.id, Enrollment.course_id == course_id)
            .values(last_accessed_at=LONG_AGO)
        )


async def backdate_completions(
    db: Database, account: Account, course_id: int, start: datetime
) -> list[datetime]:
    """Give the student's completions distinct past times (lesson id order); returns them."""
    async with db.write() as tx:
        enrollment_id = await tx.scalar(
            select(Enrollment.id).where(
                Enrollment.user_id == account.id, Enrollment.course_id == course_id
            )
        )
        completions = await tx.scalars(
            select(LessonCompletion)
            .where(LessonCompletion.enrollment_id == enrollment_id)
            .order_by(LessonCompletion.lesson_id)
        )
        times = []
        for number, completion in enumerate(completions):
            moment = start + timedelta(hours=number)
            await tx.execute(
                update(LessonCompletion)
                .where(LessonCompletion.id == completion.id)
                .values(completed_at=moment)
            )
            times.append(moment)
    return times


async def enrollment_rows(db: Database, account: Account | None = None) -> int:
    """How many enrolments (any status) the account has; every enrolment without one."""
    query = select(func.count()).select_from(Enrollment)
    if account is not None:
        query = query.where(Enrollment.user_id == account.id)
    async with db.read() as tx:
        return await tx.scalar(query)


async def events(db: Database, account: Account, course_id: int) -> list[tuple[Any, ...]]:
    """The student's rows of the event log, oldest first, straight from SQL."""
    async with db.read() as tx:
        rows = await tx.all(
            text(
                "SELECT kind, lesson_id, progress_percentage, completed_lessons, total_lessons"
                " FROM progress_events WHERE user_id = :user AND course_id = :course ORDER BY id"
            ),
            user=account.id,
            course=course_id,
        )
        return [tuple(row) for row in rows]


def ids(values: list[int]) -> list[str]:
    return [str(value) for value in values]


# ---- enrolling ---------------------------------------------------------------------------


async def test_enrolling_a_published_course_answers_enrollment_and_fresh_progress(
    client: TestClient, school: School
) -> None:
    # given a published 4-lesson course
    before = now_second()

    # when john enrolls
    payload = await enroll(client, school.student, school.course_id)

    # then the payload carries the seed's message, the enrolment and a fresh progress
    assert payload["message"] == "Successfully enrolled in course"
    enrollment = payload["enrollment"]
    assert enrollment["enrollmentId"].isdigit()
    assert enrollment["courseId"] == str(school.course_id)
    assert enrollment["userId"] == str(school.student.id)
    assert before <= ts(enrollment["enrolledAt"]) <= now_second()
    progress = payload["progress"]
    assert progress["courseId"] == str(school.course_id)
    assert progress["userId"] == str(school.student.id)
    assert progress["status"] == "ACTIVE"
    assert progress["progressPercentage"] == 0
    assert progress["completedLessons"] == 0
    assert progress["totalLessons"] == 4
    assert progress["timeSpent"] == "0 minutes"
    assert progress["timeSpentSeconds"] == 0
    assert progress["completedAt"] is None
    assert ts(progress["startedAt"]) == ts(enrollment["enrolledAt"])
    assert ts(progress["lastAccessed"]) >= before
    assert progress["nextLesson"] == {"id": str(school.lesson_ids[0]), "order": 1}


async def test_enrolling_twice_is_already_enrolled(
    client: TestClient, db: Database, school: School
) -> None:
    await enroll(client, school.student, school.course_id)

    body = await graphql(client, ENROLL, {"courseId": str(school.course_id)}, as_=school.student)

    assert_error(body, "already_enrolled", 400, "You are already enrolled in this course")
    assert await enrollment_rows(db, school.student) == 1


async def test_a_student_who_completed_the_course_is_still_enrolled(
    client: TestClient, school: School
) -> None:
    # given john completed every lesson
    await enroll(client, school.student, school.course_id)
    for lesson_id in school.lesson_ids:
        last = await complete(client, school.student, school.course_id, lesson_id)

    # when he enrolls again, then he is told so and his completion stays
    body = await graphql(client, ENROLL, {"courseId": str(school.course_id)}, as_=school.student)
    assert_error(body, "already_enrolled", 400, "You are already enrolled in this course")
    progress = await progress_of(client, school.student, school.course_id)
    assert (progress["status"], progress["completedLessons"]) == ("COMPLETED", 4)
    assert ts(progress["completedAt"]) == ts(last["completedAt"])


@pytest.mark.parametrize("course", ["draft", "archived", "missing"])
async def test_students_cannot_enroll_in_a_course_that_is_not_published(
    client: TestClient, db: Database, school: School, course: str
) -> None:
    # given a course a student cannot see
    if course == "missing":
        course_id = 987_654
    else:
        status = CourseStatus.DRAFT if course == "draft" else CourseStatus.ARCHIVED
        course_id, _ = await make_course(db, school.instructor, title=f"A {course}", status=status)

    # when john tries to enroll, then it does not exist for him, and nothing was written
    body = await graphql(client, ENROLL, {"courseId": str(course_id)}, as_=school.student)
    assert_error(body, "not_found", 404)
    assert await enrollment_rows(db, school.student) == 0


LEARNER_OPERATIONS = {
    "enroll": (ENROLL, {}),
    "unenroll": (UNENROLL, {}),
    "completeLesson": (COMPLETE_LESSON, {"lessonId": "LESSON"}),
    "incompleteLesson": (INCOMPLETE_LESSON, {"lessonId": "LESSON"}),
    "recordActivity": (RECORD_ACTIVITY, {"seconds": 60}),
    "courseProgress": (COURSE_PROGRESS, {}),
}


@pytest.mark.parametrize("operation", [*LEARNER_OPERATIONS, "myCourses"])
async def test_anonymous_learner_operations_are_unauthenticated(
    client: TestClient, db: Database, school: School, operation: str
) -> None:
    if operation == "myCourses":
        document, variables = MY_COURSES, {}
    else:
        document, extra = LEARNER_OPERATIONS[operation]
        variables = {"courseId": str(school.course_id)}
        for key, value in extra.items():
            variables[key] = str(school.lesson_ids[0]) if value == "LESSON" else value

    body = await graphql(client, document, variables)

    assert_error(body, "unauthenticated", 401)
    assert await enrollment_rows(db) == 0


# ---- unenrolling and coming back ---------------------------------------------------------


async def test_unenrolling_keeps_progress_which_re_enrolling_restores(
    client: TestClient, school: School
) -> None:
    # given john enrolled and completed lessons 1 and 3
    first = await enroll(client, school.student, school.course_id)
    await complete(client, school.student, school.course_id, school.lesson_ids[0])
    await complete(client, school.student, school.course_id, school.lesson_ids[2])

    # when he leaves the course
    left = await unenroll(client, school.student, school.course_id)

    # then the course leaves his dashboard but the progress stays, as UNENROLLED
    assert left == {
        "message": "Successfully unenrolled from course",
        "courseId": str(school.course_id),
    }
    assert await my_courses(client, school.student) == []
    [kept] = await my_courses(client, school.student, "UNENROLLED")
    assert kept["courseId"] == str(school.course_id)
    assert kept["status"] == "UNENROLLED"
    assert kept["completedLessons"] == 2
    assert kept["completedAt"] is None
    body = await graphql(
        client, COURSE_PROGRESS, {"courseId": str(school.course_id)}, as_=school.student
    )
    assert_error(body, "not_enrolled", 403)

    # when he enrolls again, then the same enrolment comes back with its progress
    again = await enroll(client, school.student, school.course_id)
    assert again["enrollment"]["enrollmentId"] == first["enrollment"]["enrollmentId"]
    assert again["progress"]["status"] == "ACTIVE"
    assert again["progress"]["completedLessons"] == 2
    assert again["progress"]["progressPercentage"] == 50
    assert again["progress"]["nextLesson"]["id"] == str(school.lesson_ids[1])
    progress = await progress_of(client, school.student, school.course_id)
    assert [item["completed"] for item in progress["lessons"]] == [True, False, True, False]
    assert await my_courses(client, school.student, "UNENROLLED") == []


async def test_re_enrolling_after_finishing_every_lesson_restores_completed_status(
    client: TestClient, db: Database, school: School
) -> None:
    # given john completed every lesson, at known times in the past, then left
    await enroll(client, school.student, school.course_id)
    for lesson_id in school.lesson_ids:
        await complete(client, school.student, school.course_id, lesson_id)
    times = await backdate_completions(db, school.student, school.course_id, LONG_AGO)
    await unenroll(client, school.student, school.course_id)
    [kept] = await my_courses(client, school.student, "UNENROLLED")
    assert (kept["status"], kept["completedLessons"], kept["completedAt"]) == (
        "UNENROLLED",
        4,
        None,
    )

    # when he enrolls again
    again = await enroll(client, school.student, school.course_id)

    # then the course is COMPLETED again, completed when its last lesson was
    progress = again["progress"]
    assert progress["status"] == "COMPLETED"
    assert progress["progressPercentage"] == 100
    assert progress["nextLesson"] is None
    assert ts(progress["completedAt"]) == max(times)
    [dashboard] = await my_courses(client, school.student, "COMPLETED")
    assert ts(dashboard["completedAt"]) == max(times)


async def test_unenrolling_when_not_enrolled_is_not_enrolled(
    client: TestClient, school: School
) -> None:
    variables = {"courseId": str(school.course_id)}

    never = await graphql(client, UNENROLL, variables, as_=school.student)
    assert_error(never, "not_enrolled", 403, "You must be enrolled in this course")

    await enroll(client, school.student, school.course_id)
    await unenroll(client, school.student, school.course_id)
    twice = await graphql(client, UNENROLL, variables, as_=school.student)
    assert_error(twice, "not_enrolled", 403, "You must be enrolled in this course")


# ---- completing lessons ------------------------------------------------------------------


@pytest.mark.parametrize("document", [COMPLETE_LESSON, INCOMPLETE_LESSON])
@pytest.mark.parametrize("situation", ["never enrolled", "unenrolled"])
async def test_lesson_changes_need_an_active_enrollment(
    client: TestClient, school: School, document: str, situation: str
) -> None:
    if situation == "unenrolled":
        await enroll(client, school.student, school.course_id)
        await unenroll(client, school.student, school.course_id)

    body = await graphql(
        client,
        document,
        {"courseId": str(school.course_id), "lessonId": str(school.lesson_ids[0])},
        as_=school.student,
    )

    assert_error(body, "not_enrolled", 403, "You must be enrolled in this course")


@pytest.mark.parametrize("document", [COMPLETE_LESSON, INCOMPLETE_LESSON])
async def test_lesson_changes_need_a_lesson_of_that_course(
    client: TestClient, db: Database, school: School, document: str
) -> None:
    # given john enrolled in the course and lesson 1 complete; another course exists
    _, other_lessons = await make_course(db, school.instructor, title="Other course", lessons=2)
    await enroll(client, school.student, school.course_id)
    await complete(client, school.student, school.course_id, school.lesson_ids[0])

    # when he names a lesson of another course, or no lesson at all
    for lesson_id in (other_lessons[0], 987_654):
        body = await graphql(
            client,
            document,
            {"courseId": str(school.course_id), "lessonId": str(lesson_id)},
            as_=school.student,
        )
        # then it is not found, and his progress did not move
        assert_error(body, "not_found", 404)
    progress = await progress_of(client, school.student, school.course_id)
    assert progress["completedLessons"] == 1
    assert [item["completed"] for item in progress["lessons"]] == [True, False, False, False]


async def test_completing_a_lesson_answers_the_change_and_new_progress(
    client: TestClient, school: School
) -> None:
    await enroll(client, school.student, school.course_id)
    before = now_second()

    payload = await complete(client, school.student, school.course_id, school.lesson_ids[1])

    assert payload["message"] == "Lesson marked as complete"
    assert payload["lessonId"] == str(school.lesson_ids[1])
    assert payload["alreadyCompleted"] is False
    assert before <= ts(payload["completedAt"]) <= now_second()
    assert payload["progressPercentage"] == 25
    assert payload["progress"]["completedLessons"] == 1
    assert payload["progress"]["progressPercentage"] == 25
    assert payload["nextLesson"] == {"id": str(school.lesson_ids[0]), "order": 1}
    [lesson_2] = [
        item
        for item in (await progress_of(client, school.student, school.course_id))["lessons"]
        if item["lesson"]["id"] == str(school.lesson_ids[1])
    ]
    assert lesson_2["completed"] is True
    assert ts(lesson_2["completedAt"]) == ts(payload["completedAt"])


async def test_completing_an_already_complete_lesson_changes_nothing(
    client: TestClient, db: Database, school: School
) -> None:
    # given lesson 1 was completed at a known time in the past
    await enroll(client, school.student, school.course_id)
    await complete(client, school.student, school.course_id, school.lesson_ids[0])
    [original] = await backdate_completions(db, school.student, school.course_id, LONG_AGO)

    # when john completes it again
    again = await complete(client, school.student, school.course_id, school.lesson_ids[0])

    # then nothing changed: the original time, the same counts
    assert again["message"] == "Lesson already marked as complete"
    assert again["alreadyCompleted"] is True
    assert again["lessonId"] == str(school.lesson_ids[0])
    assert ts(again["completedAt"]) == original
    assert again["progressPercentage"] == 25
    assert again["progress"]["completedLessons"] == 1
    assert again["nextLesson"]["id"] == str(school.lesson_ids[1])
    progress = await progress_of(client, school.student, school.course_id)
    assert progress["completedLessons"] == 1
    assert ts(progress["lessons"][0]["completedAt"]) == original


async def test_incompleting_a_lesson_that_is_not_complete_is_a_harmless_no_op(
    client: TestClient, school: School
) -> None:
    await enroll(client, school.student, school.course_id)
    await complete(client, school.student, school.course_id, school.lesson_ids[0])

    payload = await incomplete(client, school.student, school.course_id, school.lesson_ids[1])

    assert payload["lessonId"] == str(school.lesson_ids[1])
    assert payload["completedAt"] is None
    assert payload["alreadyCompleted"] is False
    assert payload["progressPercentage"] == 25
    assert payload["progress"]["completedLessons"] == 1
    progress = await progress_of(client, school.student, school.course_id)
    assert [item["completed"] for item in progress["lessons"]] == [True, False, False, False]


async def test_progress_percentage_is_rounded_down(
    client: TestClient, db: Database, school: School
) -> None:
    course_id, lessons = await make_course(db, school.instructor, title="Thirds", lessons=3)
    await enroll(client, school.student, course_id)

    seen = [
        (await complete(client, school.student, course_id, lesson_id))["progressPercentage"]
        for lesson_id in lessons
    ]

    assert seen == [33, 66, 100]
    assert (await incomplete(client, school.student, course_id, lessons[0]))[
        "progressPercentage"
    ] == 66


async def test_a_course_without_lessons_is_zero_percent_and_not_completed(
    client: TestClient, db: Database, school: School
) -> None:
    course_id, _ = await make_course(db, school.instructor, title="Empty", lessons=0)

    progress = (await enroll(client, school.student, course_id))["progress"]

    assert progress["totalLessons"] == 0
    assert progress["progressPercentage"] == 0
    assert progress["status"] == "ACTIVE"
    assert progress["completedAt"] is None
    assert progress["nextLesson"] is None
    assert (await progress_of(client, school.student, course_id))["lessons"] == []


async def test_the_last_lesson_completes_the_course_and_incompleting_reopens_it(
    client: TestClient, school: School
) -> None:
    await enroll(client, school.student, school.course_id)
    for lesson_id in school.lesson_ids[:-1]:
        payload = await complete(client, school.student, school.course_id, lesson_id)
        assert payload["progress"]["status"] == "ACTIVE"
        assert payload["progress"]["completedAt"] is None

    # when the last lesson completes, the course is COMPLETED at that moment
    last = await complete(client, school.student, school.course_id, school.lesson_ids[-1])
    assert last["progressPercentage"] == 100
    assert last["progress"]["status"] == "COMPLETED"
    assert ts(last["progress"]["completedAt"]) == ts(last["completedAt"])
    assert last["nextLesson"] is None
    completed = await progress_of(client, school.student, school.course_id)
    assert completed["status"] == "COMPLETED"
    assert ts(completed["completedAt"]) == ts(last["completedAt"])

    # when a lesson is made incomplete again, the course is ACTIVE and has no completedAt
    reopened = await incomplete(client, school.student, school.course_id, school.lesson_ids[1])
    assert reopened["message"] == "Lesson marked as incomplete"
    assert reopened["completedAt"] is None
    assert reopened["progressPercentage"] == 75
    assert reopened["progress"]["status"] == "ACTIVE"
    assert reopened["progress"]["completedAt"] is None
    assert reopened["nextLesson"]["id"] == str(school.lesson_ids[1])
    progress = await progress_of(client, school.student, school.course_id)
    assert (progress["status"], progress["completedAt"], progress["completedLessons"]) == (
        "ACTIVE",
        None,
        3,
    )


async def test_next_lesson_is_the_first_incomplete_lesson_in_course_order(
    client: TestClient, school: School
) -> None:
    lesson_1, lesson_2, lesson_3, lesson_4 = school.lesson_ids
    await enroll(client, school.student, school.course_id)

    # completing out of order: 3, then 1
    after_3 = await complete(client, school.student, school.course_id, lesson_3)
    assert after_3["nextLesson"] == {"id": str(lesson_1), "order": 1}
    after_1 = await complete(client, school.student, school.course_id, lesson_1)
    assert after_1["nextLesson"] == {"id": str(lesson_2), "order": 2}
    progress = await progress_of(client, school.student, school.course_id)
    assert progress["nextLesson"] == {"id": str(lesson_2), "order": 2}

    after_2 = await complete(client, school.student, school.course_id, lesson_2)
    assert after_2["nextLesson"] == {"id": str(lesson_4), "order": 4}
    after_4 = await complete(client, school.student, school.course_id, lesson_4)
    assert after_4["nextLesson"] is None
    assert (await progress_of(client, school.student, school.course_id))["nextLesson"] is None


async def test_the_answer_to_each_change_names_the_next_lesson_as_the_progress_read_does(
    client: TestClient, school: School
) -> None:
    lesson_1, lesson_2, lesson_3, lesson_4 = school.lesson_ids
    await enroll(client, school.student, school.course_id)
    for lesson_id in (lesson_1, lesson_2, lesson_4):
        await complete(client, school.student, school.course_id, lesson_id)

    async def read_next() -> dict[str, object] | None:
        return (await progress_of(client, school.student, school.course_id))["nextLesson"]

    # undoing a lesson after the first open one (3) leaves 3 next
    after = await incomplete(client, school.student, school.course_id, lesson_4)
    assert after["nextLesson"] == {"id": str(lesson_3), "order": 3} == await read_next()
    # undoing one before it makes the undone lesson next
    after = await incomplete(client, school.student, school.course_id, lesson_2)
    assert after["nextLesson"] == {"id": str(lesson_2), "order": 2} == await read_next()
    # undoing a lesson that is not complete changes nothing
    after = await incomplete(client, school.student, school.course_id, lesson_3)
    assert after["message"] == "Lesson is not marked as complete"
    assert after["nextLesson"] == {"id": str(lesson_2), "order": 2} == await read_next()
    # completing a lesson that is complete changes nothing
    after = await complete(client, school.student, school.course_id, lesson_1)
    assert after["alreadyCompleted"] is True
    assert after["nextLesson"] == {"id": str(lesson_2), "order": 2} == await read_next()
    # completing a lesson after the next one leaves the next one
    after = await complete(client, school.student, school.course_id, lesson_3)
    assert after["nextLesson"] == {"id": str(lesson_2), "order": 2} == await read_next()
    after = await complete(client, school.student, school.course_id, lesson_2)
    assert after["nextLesson"] == {"id": str(lesson_4), "order": 4} == await read_next()


async def test_next_lesson_follows_course_order_not_creation_order(
    client: TestClient, db: Database, school: School
) -> None:
    # given a lesson added last but inserted at the front of the course
    async with db.write() as tx:
        intro = await courses.add_lesson(
            tx, school.instructor.viewer, school.course_id, title="Welcome", order=1
        )
    await enroll(client, school.student, school.course_id)

    # then it is the next lesson, and after it the lesson now at order 2
    progress = await progress_of(client, school.student, school.course_id)
    assert progress["nextLesson"] == {"id": str(intro.id), "order": 1}
    after_intro = await complete(client, school.student, school.course_id, intro.id)
    assert after_intro["nextLesson"] == {"id": str(school.lesson_ids[0]), "order": 2}
    assert after_intro["progressPercentage"] == 20


# ---- study time --------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, -5, 3601])
async def test_record_activity_outside_one_second_to_one_hour_is_invalid_input(
    client: TestClient, school: School, seconds: int
) -> None:
    await enroll(client, school.student, school.course_id)

    body = await graphql(
        client,
        RECORD_ACTIVITY,
        {"courseId": str(school.course_id), "seconds": seconds},
        as_=school.student,
    )

    assert_error(body, "invalid_input", 400)
    assert (await progress_of(client, school.student, school.course_id))["timeSpentSeconds"] == 0


async def test_record_activity_accepts_the_bounds(client: TestClient, school: School) -> None:
    await enroll(client, school.student, school.course_id)

    started = time.monotonic()
    await record_activity(client, school.student, school.course_id, 1)
    progress = await record_activity(client, school.student, school.course_id, 3600)
    elapsed = time.monotonic() - started

    # Both bounds are accepted; the allowance (3600 s, refilling one second per second on
    # a clock of whole seconds) credits 3600 of the 3601 sent, plus one for each tick of
    # that clock between the two calls: recorded time never outruns the clock.
    assert 3600 <= progress["timeSpentSeconds"] <= 3600 + math.ceil(elapsed)
    assert progress["timeSpent"] == "1 hour"


async def test_record_activity_needs_an_enrollment(client: TestClient, school: School) -> None:
    body = await graphql(
        client,
        RECORD_ACTIVITY,
        {"courseId": str(school.course_id), "seconds": 60},
        as_=school.student,
    )

    assert_error(body, "not_enrolled", 403, "You must be enrolled in this course")


async def an_hour_passes(db: Database) -> None:
    """The study-time allowance refills as the clock moves: as after an hour, it is full."""
    async with db.write() as tx:
        await tx.execute(update(Enrollment.__table__).values(activity_credited_to=None))


async def test_time_spent_accumulates_and_reads_in_whole_minutes(
    client: TestClient, school: School, db: Database
) -> None:
    await enroll(client, school.student, school.course_id)
    steps = [
        (59, 59, "0 minutes"),
        (1, 60, "1 minute"),
        (3540, 3600, "1 hour"),
        (3600, 7200, "2 hours"),
        (3600, 10800, "3 hours"),
        (25 * 60 + 59, 3600 * 3 + 25 * 60 + 59, "3 hours 25 minutes"),
    ]

    for seconds, total, shown in steps:
        await an_hour_passes(db)
        progress = await record_activity(client, school.student, school.course_id, seconds)
        assert (progress["timeSpentSeconds"], progress["timeSpent"]) == (total, shown)

    progress = await progress_of(client, school.student, school.course_id)
    assert progress["timeSpent"] == "3 hours 25 minutes"
    assert progress["timeSpentSeconds"] == 12359


@pytest.mark.parametrize(
    "action", ["re-enroll", "completeLesson", "incompleteLesson", "recordActivity", "unenroll"]
)
async def test_every_learner_action_updates_last_accessed(
    client: TestClient, db: Database, school: School, action: str
) -> None:
    # given john enrolled, lesson 1 complete, and his last access long ago
    await enroll(client, school.student, school.course_id)
    await complete(client, school.student, school.course_id, school.lesson_ids[0])
    if action == "re-enroll":
        await unenroll(client, school.student, school.course_id)
    await backdate_last_accessed(db, school.student, school.course_id)
    before = now_second()

    # when he acts
    course = school.course_id
    if action == "re-enroll":
        await enroll(client, school.student, course)
    elif action == "completeLesson":
        await complete(client, school.student, course, school.lesson_ids[1])
    elif action == "incompleteLesson":
        await incomplete(client, school.student, course, school.lesson_ids[0])
    elif action == "recordActivity":
        await record_activity(client, school.student, course, 30)
    else:
        await unenroll(client, school.student, course)

    # then his last access is now
    status = "UNENROLLED" if action == "unenroll" else None
    [progress] = await my_courses(client, school.student, status)
    assert before <= ts(progress["lastAccessed"]) <= now_second()


async def test_enrolling_sets_last_accessed(client: TestClient, school: School) -> None:
    before = now_second()

    progress = (await enroll(client, school.student, school.course_id))["progress"]

    assert before <= ts(progress["lastAccessed"]) <= now_second()


# ---- reading progress --------------------------------------------------------------------


async def test_course_progress_lists_every_lesson_with_course_and_student(
    client: TestClient, school: School
) -> None:
    await enroll(client, school.student, school.course_id)
    done = await complete(client, school.student, school.course_id, school.lesson_ids[2])
    await record_activity(client, school.student, school.course_id, 125)

    progress = await progress_of(client, school.student, school.course_id)

    assert progress["courseId"] == str(school.course_id)
    assert progress["userId"] == str(school.student.id)
    assert (progress["completedLessons"], progress["totalLessons"]) == (1, 4)
    assert progress["progressPercentage"] == 25
    assert progress["timeSpent"] == "2 minutes"
    assert [item["lesson"]["id"] for item in progress["lessons"]] == ids(school.lesson_ids)
    assert [item["lesson"]["order"] for item in progress["lessons"]] == [1, 2, 3, 4]
    assert {item["lesson"]["courseId"] for item in progress["lessons"]} == {str(school.course_id)}
    assert [item["completed"] for item in progress["lessons"]] == [False, False, True, False]
    assert [item["completedAt"] is None for item in progress["lessons"]] == [
        True,
        True,
        False,
        True,
    ]
    assert ts(progress["lessons"][2]["completedAt"]) == ts(done["completedAt"])
    assert progress["course"] == {
        "id": str(school.course_id),
        "title": "Introduction to Web Development",
        "totalLessons": 4,
    }
    assert progress["student"] == {
        "userId": str(school.student.id),
        "username": "john_doe",
        "displayName": "John Doe",
        "status": "ACTIVE",
        "progressPercentage": 25,
        "completedLessons": 1,
    }


async def test_course_progress_when_not_enrolled_is_not_enrolled(
    client: TestClient, school: School
) -> None:
    await enroll(client, school.other_student, school.course_id)

    body = await graphql(
        client, COURSE_PROGRESS, {"courseId": str(school.course_id)}, as_=school.student
    )

    assert_error(body, "not_enrolled", 403, "You must be enrolled in this course")


async def test_my_courses_shows_active_and_completed_unless_a_status_is_asked(
    client: TestClient, db: Database, school: School
) -> None:
    # given john ACTIVE in the school course, COMPLETED in a short one, UNENROLLED from a third
    short_id, [short_lesson] = await make_course(db, school.instructor, title="Short", lessons=1)
    left_id, _ = await make_course(db, school.instructor, title="Left", lessons=2)
    for course_id in (school.course_id, short_id, left_id):
        await enroll(client, school.student, course_id)
    await complete(client, school.student, short_id, short_lesson)
    await unenroll(client, school.student, left_id)
    # and jane's enrolments are hers alone
    await enroll(client, school.other_student, left_id)

    def statuses(items: list[dict[str, Any]]) -> dict[str, str]:
        return {item["courseId"]: item["status"] for item in items}

    assert statuses(await my_courses(client, school.student)) == {
        str(school.course_id): "ACTIVE",
        str(short_id): "COMPLETED",
    }
    assert statuses(await my_courses(client, school.student, "ACTIVE")) == {
        str(school.course_id): "ACTIVE"
    }
    assert statuses(await my_courses(client, school.student, "COMPLETED")) == {
        str(short_id): "COMPLETED"
    }
    assert statuses(await my_courses(client, school.student, "UNENROLLED")) == {
        str(left_id): "UNENROLLED"
    }
    [mine] = await my_courses(client, school.student, "COMPLETED")
    assert mine["course"] == {"id": str(short_id)}
    assert mine["userId"] == str(school.student.id)


async def test_course_my_progress_is_only_for_enrolled_viewers(
    client: TestClient, school: School
) -> None:
    variables = {"id": str(school.course_id)}
    await enroll(client, school.student, school.course_id)
    await complete(client, school.student, school.course_id, school.lesson_ids[0])

    anonymous = ok(await graphql(client, COURSE_MY_PROGRESS, variables), "course")
    stranger = ok(
        await graphql(client, COURSE_MY_PROGRESS, variables, as_=school.other_student), "course"
    )
    enrolled = ok(
        await graphql(client, COURSE_MY_PROGRESS, variables, as_=school.student), "course"
    )

    assert anonymous == {"id": str(school.course_id), "myProgress": None}
    assert stranger == {"id": str(school.course_id), "myProgress": None}
    mine = enrolled["myProgress"]
    assert mine["userId"] == str(school.student.id)
    assert (mine["status"], mine["completedLessons"], mine["progressPercentage"]) == (
        "ACTIVE",
        1,
        25,
    )

    await unenroll(client, school.student, school.course_id)
    left = ok(await graphql(client, COURSE_MY_PROGRESS, variables, as_=school.student), "course")
    assert left["myProgress"] is None


# ---- concurrency -------------------------------------------------------------------------


async def test_concurrent_completions_of_the_same_lesson_count_once(
    client: TestClient, db: Database, school: School
) -> None:
    await enroll(client, school.student, school.course_id)
    variables = {"courseId": str(school.course_id)}

    for lesson_id in school.lesson_ids[:2]:
        # when the same lesson is completed by two requests at once (a double click)
        bodies = await asyncio.gather(
            *(
                graphql(
                    client,
                    COMPLETE_LESSON,
                    {**variables, "lessonId": str(lesson_id)},
                    as_=school.student,
                )
                for _ in range(2)
            )
        )
        # then both succeed, exactly one of them did the completion
        payloads = [ok(body, "completeLesson") for body in bodies]
        assert sorted(payload["alreadyCompleted"] for payload in payloads) == [False, True]
        assert payloads[0]["completedAt"] == payloads[1]["completedAt"]

    progress = await progress_of(client, school.student, school.course_id)
    assert progress["completedLessons"] == 2
    assert progress["progressPercentage"] == 50
    completed_events = [
        row
        for row in await events(db, school.student, school.course_id)
        if row[0] == "lesson_completed"
    ]
    assert len(completed_events) == 2


async def test_concurrent_enrolls_make_one_enrollment_and_one_already_enrolled(
    client: TestClient, db: Database, school: School
) -> None:
    bodies = await asyncio.gather(
        *(
            graphql(client, ENROLL, {"courseId": str(school.course_id)}, as_=school.student)
            for _ in range(2)
        )
    )

    codes = sorted(code for body in bodies for code in error_codes(body))
    assert codes == ["already_enrolled"], bodies
    assert sum(1 for body in bodies if body.get("data") and body["data"]["enroll"]) == 1
    assert await enrollment_rows(db, school.student) == 1
    kinds = [row[0] for row in await events(db, school.student, school.course_id)]
    assert kinds == ["enrolled"]


async def test_concurrent_completions_of_different_lessons_all_count(
    client: TestClient, db: Database, school: School
) -> None:
    await enroll(client, school.student, school.course_id)

    bodies = await asyncio.gather(
        *(
            graphql(
                client,
                COMPLETE_LESSON,
                {"courseId": str(school.course_id), "lessonId": str(lesson_id)},
                as_=school.student,
            )
            for lesson_id in school.lesson_ids
        )
    )

    payloads = [ok(body, "completeLesson") for body in bodies]
    assert not any(payload["alreadyCompleted"] for payload in payloads)
    progress = await progress_of(client, school.student, school.course_id)
    assert (progress["completedLessons"], progress["progressPercentage"]) == (4, 100)
    assert progress["status"] == "COMPLETED"
    assert progress["completedAt"] is not None
    kinds = [row[0] for row in await events(db, school.student, school.course_id)]
    assert kinds.count("lesson_completed") == 4
    assert kinds.count("course_completed") == 1


async def test_a_completion_waits_for_a_lesson_set_change_without_a_deadlock(
    db: Database, school: School
) -> None:
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
    course_locked = asyncio.Event()

    async def change_lessons() -> None:
        # as a change to the course's lessons does: the course first, then its enrolments
        async with db.write() as tx:
            await get_course(tx, school.course_id, lock=True)
            course_locked.set()
            await asyncio.sleep(0.3)  # the completion is waiting for the course meanwhile
            await tx.first(
                enrollments.ENROLLMENT_FOR_UPDATE,
                user_id=school.student.id,
                course_id=school.course_id,
            )

    async def complete_one() -> completions.LessonChange:
        await course_locked.wait()
        async with db.write() as tx:
            return await completions.complete_lesson(
                tx, school.student.viewer, school.course_id, school.lesson_ids[0]
            )

    # when both run at once, the completion takes the course's lock before the enrolment's,
    # so it waits its turn instead of holding the enrolment the change needs
    async with asyncio.timeout(10), asyncio.TaskGroup() as both:
        both.create_task(change_lessons())
        completing = both.create_task(complete_one())
    assert completing.result().progress.enrollment.completed_lessons == 1


# ---- resolver level ----------------------------------------------------------------------


async def test_each_progress_change_appends_an_event_with_its_snapshot(
    db: Database, school: School
) -> None:
    viewer = school.student.viewer
    course_id, (lesson_1, lesson_2) = await make_course(
        db, school.instructor, title="Two", lessons=2
    )

    async def act(operation: Any, *args: Any) -> Any:
        async with db.write() as tx:
            return await operation(tx, viewer, course_id, *args)

    await act(enrollments.enroll)
    await act(completions.complete_lesson, lesson_1)
    repeated = await act(completions.complete_lesson, lesson_1)
    await act(completions.complete_lesson, lesson_2)
    await act(completions.incomplete_lesson, lesson_2)
    await act(enrollments.record_activity, 30, lesson_1)
    await act(enrollments.unenroll)

    assert repeated.already_completed is True
    assert await events(db, school.student, course_id) == [
        (ProgressEventKind.ENROLLED, None, 0, 0, 2),
        (ProgressEventKind.LESSON_COMPLETED, lesson_1, 50, 1, 2),
        (ProgressEventKind.LESSON_COMPLETED, lesson_2, 100, 2, 2),
        (ProgressEventKind.COURSE_COMPLETED, None, 100, 2, 2),
        (ProgressEventKind.LESSON_INCOMPLETED, lesson_2, 50, 1, 2),
        (ProgressEventKind.ACTIVITY, lesson_1, 50, 1, 2),
        (ProgressEventKind.UNENROLLED, None, 50, 1, 2),
    ]


async def test_no_ops_and_failures_append_no_event(db: Database, school: School) -> None:
    viewer = school.student.viewer
    course_id = school.course_id
    lesson_1, lesson_2 = school.lesson_ids[:2]
    async with db.write() as tx:
        await enrollments.enroll(tx, viewer, course_id)
        await completions.complete_lesson(tx, viewer, course_id, lesson_1)
    logged = await events(db, school.student, course_id)

    async with db.write() as tx:
        again = await completions.complete_lesson(tx, viewer, course_id, lesson_1)
    async with db.write() as tx:
        nothing = await completions.incomplete_lesson(tx, viewer, course_id, lesson_2)
    with pytest.raises(AlreadyEnrolled):
        async with db.write() as tx:
            await enrollments.enroll(tx, viewer, course_id)
    with pytest.raises(InvalidInput):
        async with db.write() as tx:
            await enrollments.record_activity(tx, viewer, course_id, 3601)

    assert (again.already_completed, again.progress.enrollment.completed_lessons) == (True, 1)
    assert (nothing.completed_at, nothing.progress.enrollment.completed_lessons) == (None, 1)
    assert await events(db, school.student, course_id) == logged


async def test_resolvers_enforce_the_learner_rules(db: Database, school: School) -> None:
    student = school.student.viewer
    course_id = school.course_id
    _, [foreign_lesson] = await make_course(db, school.instructor, title="Foreign", lessons=1)
    draft_id, _ = await make_course(db, school.instructor, title="Draft", status=CourseStatus.DRAFT)

    async def attempt(operation: Any, viewer: Any, *args: Any) -> Any:
        async with db.write() as tx:
            return await operation(tx, viewer, *args)

    with pytest.raises(Unauthenticated):
        await attempt(enrollments.enroll, None, course_id)
    with pytest.raises(Unauthenticated):
        async with db.read() as reads:
            await enrollments.my_courses(reads, None)
    with pytest.raises(NotFound):
        await attempt(enrollments.enroll, student, draft_id)
    with pytest.raises(NotEnrolled):
        await attempt(completions.complete_lesson, student, course_id, school.lesson_ids[0])
    with pytest.raises(NotEnrolled):
        await attempt(enrollments.record_activity, student, course_id, 60)
    with pytest.raises(NotEnrolled):
        async with db.read() as reads:
            await enrollments.course_progress(reads, student, course_id)

    record = await attempt(enrollments.enroll, student, course_id)
    assert (record.enrollment.status, record.percentage) == ("active", 0)
    with pytest.raises(NotFound):
        await attempt(completions.complete_lesson, student, course_id, foreign_lesson)
    for seconds in (0, -5, 3601):
        with pytest.raises(InvalidInput):
            await attempt(enrollments.record_activity, student, course_id, seconds)
    for lesson_id in school.lesson_ids[:3]:
        await attempt(completions.complete_lesson, student, course_id, lesson_id)
    record = await attempt(enrollments.record_activity, student, course_id, 61)
    assert (record.percentage, record.enrollment.time_spent_seconds) == (75, 61)
    async with db.read() as reads:
        progress = await enrollments.course_progress(reads, student, course_id)
    assert progress.enrollment.completed_lessons == 3


# ---- arithmetic --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completed", "total", "percentage"),
    [(0, 0, 0), (0, 3, 0), (1, 3, 33), (2, 3, 66), (3, 3, 100), (1, 4, 25), (99, 100, 99)],
)
def test_progress_percentage_is_floor_of_the_share(
    completed: int, total: int, percentage: int
) -> None:
    assert progress_percentage(completed, total) == percentage


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 minutes"),
        (59, "0 minutes"),
        (60, "1 minute"),
        (119, "1 minute"),
        (120, "2 minutes"),
        (3600, "1 hour"),
        (3660, "1 hour 1 minute"),
        (7200, "2 hours"),
        (3600 * 3 + 25 * 60 + 59, "3 hours 25 minutes"),
    ],
)
def test_time_spent_reads_in_whole_minutes(seconds: int, shown: str) -> None:
    assert format_time_spent(seconds) == shown
