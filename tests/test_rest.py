"""The seed's REST facade under /wp-json/fluent-community/v2, over real HTTP.

Every curl command of the seed runs against the real app (host replaced, `-u` with a
real test user), the seed's use cases are walked end to end, errors are checked
against the seed's exact JSON, bad input is checked to get the error form (never a
500), and one test shows both front doors (REST and GraphQL) see the same domain.
Runs on SQLite and PostgreSQL.
"""

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from coursepulse.models import LessonCompletion
from coursepulse.models.db import Database
from coursepulse.resolvers import users
from tests.conftest import Account, School, graphql, make_course, make_user

PREFIX = "/wp-json/fluent-community/v2"
SEED_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
HUGE_ID = "99999999999999999999"

# The seed's curl URLs, verbatim. Its example ids (course 10, lessons 101/112, user 1)
# are mapped onto the test school's real ids by `seed_url`.
SEED_ENROLL = "https://your-site.com/wp-json/fluent-community/v2/courses/10/enroll"
SEED_UNENROLL = "https://your-site.com/wp-json/fluent-community/v2/courses/10/unenroll"
SEED_PROGRESS = "https://your-site.com/wp-json/fluent-community/v2/courses/10/progress"
SEED_COMPLETE = "https://your-site.com/wp-json/fluent-community/v2/courses/10/lessons/101/complete"
SEED_INCOMPLETE = (
    "https://your-site.com/wp-json/fluent-community/v2/courses/10/lessons/101/incomplete"
)
SEED_STUDENTS = "https://your-site.com/wp-json/fluent-community/v2/courses/10/students?per_page=20"
SEED_CERTIFICATE = "https://your-site.com/wp-json/fluent-community/v2/courses/10/certificate"
# The use-case snippets abbreviate the host as "...".
SEED_MY_COURSES_ACTIVE = ".../courses/my-courses?status=active"
SEED_STUDENT_PROGRESS = ".../courses/10/progress?user_id=1"
SEED_FINAL_LESSON_COMPLETE = ".../courses/10/lessons/112/complete"

NOT_ENROLLED = {
    "code": "not_enrolled",
    "message": "You must be enrolled in this course",
    "data": {"status": 403},
}
ALREADY_ENROLLED = {
    "code": "already_enrolled",
    "message": "You are already enrolled in this course",
    "data": {"status": 400},
}

COURSE_PROGRESS = """
query CourseProgress($courseId: ID!) {
  courseProgress(courseId: $courseId) {
    progressPercentage
    completedLessons
    nextLesson { id }
    lessons { lesson { id } completed completedAt }
  }
}
"""

COMPLETE_LESSON = """
mutation CompleteLesson($courseId: ID!, $lessonId: ID!) {
  completeLesson(courseId: $courseId, lessonId: $lessonId) {
    message
    completedAt
    alreadyCompleted
    progressPercentage
  }
}
"""


# ---- helpers ------------------------------------------------------------------------------


def seed_url(
    url: str,
    school: School,
    *,
    lesson_id: int | None = None,
    user_id: int | None = None,
) -> str:
    """The seed's URL with the host dropped and its example ids replaced by real ones."""
    url = url.replace(".../", f"{PREFIX}/", 1) if url.startswith("...") else url
    parts = urlsplit(url)
    path = parts.path.replace("/courses/10/", f"/courses/{school.course_id}/")
    if lesson_id is not None:
        path = re.sub(r"/lessons/\d+/", f"/lessons/{lesson_id}/", path)
    query = parts.query
    if user_id is not None:
        query = re.sub(r"user_id=\d+", f"user_id={user_id}", query)
    return f"{path}?{query}" if query else path


async def call(
    client: TestClient,
    method: str,
    url: str,
    *,
    as_: Account | None = None,
    headers: dict[str, str] | None = None,
    expect: int = 200,
    **kwargs: Any,
) -> Any:
    """One HTTP request; asserts the status and a JSON body, returns the body."""
    if not url.startswith(PREFIX):
        url = PREFIX + url
    response = await client.request(
        method, url, headers={**(as_.auth if as_ else {}), **(headers or {})}, **kwargs
    )
    text = await response.text()
    assert response.status == expect, f"{method} {url} -> {response.status}: {text}"
    assert response.content_type == "application/json", text
    return await response.json()


async def enroll(client: TestClient, school: School, account: Account) -> dict[str, Any]:
    return await call(client, "POST", f"/courses/{school.course_id}/enroll", as_=account)


async def complete(
    client: TestClient, school: School, account: Account, lesson_id: int
) -> dict[str, Any]:
    path = f"/courses/{school.course_id}/lessons/{lesson_id}/complete"
    return await call(client, "POST", path, as_=account)


async def progress_of(
    client: TestClient, school: School, account: Account, **kwargs: Any
) -> dict[str, Any]:
    body = await call(client, "GET", f"/courses/{school.course_id}/progress", as_=account, **kwargs)
    return body["data"]


def assert_error(body: Any, status: int, code: str) -> dict[str, Any]:
    """The seed's error form: exactly code, message and data with the status."""
    assert set(body) == {"code", "message", "data"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str), body
    assert body["message"], body
    assert body["data"]["status"] == status, body
    return body


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def seconds(rest_timestamp: str) -> datetime:
    return datetime.fromisoformat(rest_timestamp).replace(tzinfo=UTC)


def graphql_seconds(graphql_timestamp: str) -> datetime:
    return datetime.fromisoformat(graphql_timestamp).astimezone(UTC).replace(microsecond=0)


async def backdate_completion(db: Database, lesson_id: int, moment: datetime) -> None:
    async with db.write() as tx:
        await tx.execute(
            update(LessonCompletion)
            .where(LessonCompletion.lesson_id == lesson_id)  # type: ignore[arg-type]
            .values(completed_at=moment)
        )


# ---- each curl command of the seed ----------------------------------------------------------


async def test_seed_enroll_answers_the_seed_message_and_enrollment(
    client: TestClient, school: School
) -> None:
    body = await call(client, "POST", seed_url(SEED_ENROLL, school), as_=school.student)

    assert body["message"] == "Successfully enrolled in course"
    assert set(body) == {"message", "data"}
    data = body["data"]
    assert list(data) == ["enrollment_id", "course_id", "user_id", "enrolled_at"]
    assert all(is_int(data[key]) for key in ("enrollment_id", "course_id", "user_id"))
    assert data["course_id"] == school.course_id
    assert data["user_id"] == school.student.id
    assert SEED_DATETIME.match(data["enrolled_at"])
    assert abs((seconds(data["enrolled_at"]) - datetime.now(UTC)).total_seconds()) < 60


async def test_seed_unenroll_answers_only_the_message(client: TestClient, school: School) -> None:
    await enroll(client, school, school.student)

    body = await call(client, "POST", seed_url(SEED_UNENROLL, school), as_=school.student)

    assert body == {"message": "Successfully unenrolled from course"}
    after = await call(
        client, "GET", seed_url(SEED_PROGRESS, school), as_=school.student, expect=403
    )
    assert after == NOT_ENROLLED


async def test_seed_progress_of_a_fresh_enrollment(client: TestClient, school: School) -> None:
    enrolled = (await enroll(client, school, school.student))["data"]

    body = await call(client, "GET", seed_url(SEED_PROGRESS, school), as_=school.student)

    assert set(body) == {"data"}
    data = body["data"]
    assert list(data) == [
        "course_id",
        "user_id",
        "progress_percentage",
        "completed_lessons",
        "total_lessons",
        "time_spent",
        "last_accessed",
        "started_at",
        "completed_at",
        "next_lesson",
    ]
    assert data["course_id"] == school.course_id
    assert data["user_id"] == school.student.id
    assert data["progress_percentage"] == 0
    assert data["completed_lessons"] == 0
    assert data["total_lessons"] == 4
    assert data["time_spent"] == "0 minutes"
    assert data["started_at"] == enrolled["enrolled_at"]
    assert SEED_DATETIME.match(data["last_accessed"])
    assert data["completed_at"] is None
    assert data["next_lesson"] == {"id": school.lesson_ids[0], "title": "Lesson 1", "order": 1}
    assert "certificate_url" not in data


async def test_seed_complete_lesson_answers_the_new_progress_and_next_lesson(
    client: TestClient, school: School
) -> None:
    await enroll(client, school, school.student)
    first, second = school.lesson_ids[:2]

    body = await call(
        client, "POST", seed_url(SEED_COMPLETE, school, lesson_id=first), as_=school.student
    )

    assert body["message"] == "Lesson marked as complete"
    data = body["data"]
    assert list(data) == ["lesson_id", "completed_at", "progress_percentage", "next_lesson"]
    assert data["lesson_id"] == first
    assert SEED_DATETIME.match(data["completed_at"])
    assert data["progress_percentage"] == 25
    assert data["next_lesson"] == {"id": second, "title": "Lesson 2"}


async def test_completing_a_lesson_again_keeps_its_original_completed_at(
    client: TestClient, db: Database, school: School
) -> None:
    # Given a lesson completed on 2025-10-25 at 10:00 (the seed's example)
    await enroll(client, school, school.student)
    first = school.lesson_ids[0]
    await complete(client, school, school.student, first)
    await backdate_completion(db, first, datetime(2025, 10, 25, 10, 0, tzinfo=UTC))

    # When it is completed again
    body = await call(
        client, "POST", seed_url(SEED_COMPLETE, school, lesson_id=first), as_=school.student
    )

    # Then nothing changes and the answer says when it was first completed
    assert body["message"] == "Lesson already marked as complete"
    assert body["data"]["completed_at"] == "2025-10-25T10:00:00"
    assert body["data"]["lesson_id"] == first
    assert body["data"]["progress_percentage"] == 25
    assert (await progress_of(client, school, school.student))["completed_lessons"] == 1


async def test_seed_incomplete_undoes_a_completion(client: TestClient, school: School) -> None:
    await enroll(client, school, school.student)
    first = school.lesson_ids[0]
    await complete(client, school, school.student, first)

    body = await call(
        client, "POST", seed_url(SEED_INCOMPLETE, school, lesson_id=first), as_=school.student
    )

    assert body["message"] == "Lesson marked as incomplete"
    assert body["data"] == {
        "lesson_id": first,
        "completed_at": None,
        "progress_percentage": 0,
        "next_lesson": {"id": first, "title": "Lesson 1"},
    }
    progress = await progress_of(client, school, school.student)
    assert progress["completed_lessons"] == 0
    assert progress["next_lesson"]["id"] == first


async def test_incomplete_on_a_lesson_not_completed_changes_nothing(
    client: TestClient, school: School
) -> None:
    await enroll(client, school, school.student)
    await complete(client, school, school.student, school.lesson_ids[0])

    body = await call(
        client,
        "POST",
        seed_url(SEED_INCOMPLETE, school, lesson_id=school.lesson_ids[2]),
        as_=school.student,
    )

    assert body["message"] == "Lesson is not marked as complete"
    assert body["data"]["completed_at"] is None
    assert body["data"]["progress_percentage"] == 25


async def test_seed_students_lists_the_roster_for_the_instructor(
    client: TestClient, school: School
) -> None:
    john = (await enroll(client, school, school.student))["data"]
    await enroll(client, school, school.other_student)
    await complete(client, school, school.student, school.lesson_ids[0])

    body = await call(client, "GET", seed_url(SEED_STUDENTS, school), as_=school.instructor)

    assert set(body) == {"data", "meta"}
    assert body["meta"] == {"total": 2, "per_page": 20, "current_page": 1}
    rows = {row["username"]: row for row in body["data"]}
    assert set(rows) == {"john_doe", "jane_roe"}
    row = rows["john_doe"]
    assert list(row) == [
        "user_id",
        "username",
        "display_name",
        "avatar",
        "progress_percentage",
        "enrolled_at",
        "last_accessed",
    ]
    assert row["user_id"] == school.student.id
    assert row["display_name"] == "John Doe"
    assert row["avatar"] is None
    assert row["progress_percentage"] == 25
    assert row["enrolled_at"] == john["enrolled_at"]
    assert SEED_DATETIME.match(row["last_accessed"])
    assert rows["jane_roe"]["progress_percentage"] == 0


async def test_seed_certificate_is_issued_for_a_completed_course(
    client: TestClient, school: School
) -> None:
    await enroll(client, school, school.student)
    for lesson_id in school.lesson_ids:
        await complete(client, school, school.student, lesson_id)

    body = await call(client, "GET", seed_url(SEED_CERTIFICATE, school), as_=school.student)

    data = body["data"]
    assert list(data) == [
        "certificate_url",
        "certificate_id",
        "issued_at",
        "course_title",
        "student_name",
    ]
    assert re.fullmatch(rf"CERT-{datetime.now(UTC).year}-\d{{3,}}", data["certificate_id"])
    assert re.fullmatch(
        r"http://testserver/certificates/[A-Za-z0-9_-]+\.pdf", data["certificate_url"]
    )
    assert SEED_DATETIME.match(data["issued_at"])
    assert data["course_title"] == "Introduction to Web Development"
    assert data["student_name"] == "John Doe"
    again = await call(client, "GET", seed_url(SEED_CERTIFICATE, school), as_=school.student)
    assert again == body


async def test_seed_my_courses_filters_by_status(
    client: TestClient, db: Database, school: School
) -> None:
    # Given john completed the school's course and is half-way through another
    other_id, other_lessons = await make_course(db, school.instructor, title="CSS", lessons=2)
    await enroll(client, school, school.student)
    for lesson_id in school.lesson_ids:
        await complete(client, school, school.student, lesson_id)
    await call(client, "POST", f"/courses/{other_id}/enroll", as_=school.student)
    await call(
        client,
        "POST",
        f"/courses/{other_id}/lessons/{other_lessons[0]}/complete",
        as_=school.student,
    )

    active = await call(client, "GET", seed_url(SEED_MY_COURSES_ACTIVE, school), as_=school.student)
    completed = await call(
        client, "GET", "/courses/my-courses?status=completed", as_=school.student
    )
    everything = await call(client, "GET", "/courses/my-courses", as_=school.student)

    assert [row["course_id"] for row in active["data"]] == [other_id]
    assert active["data"][0]["progress_percentage"] == 50
    assert active["data"][0]["status"] == "active"
    assert [row["course_id"] for row in completed["data"]] == [school.course_id]
    assert completed["data"][0]["progress_percentage"] == 100
    assert SEED_DATETIME.match(completed["data"][0]["completed_at"])
    assert {row["course_id"] for row in everything["data"]} == {other_id, school.course_id}
    nobody = await call(client, "GET", "/courses/my-courses", as_=school.other_student)
    assert nobody == {"data": []}


async def test_seed_instructor_reads_one_students_progress(
    client: TestClient, school: School
) -> None:
    await enroll(client, school, school.student)
    await complete(client, school, school.student, school.lesson_ids[0])

    body = await call(
        client,
        "GET",
        seed_url(SEED_STUDENT_PROGRESS, school, user_id=school.student.id),
        as_=school.instructor,
    )

    assert body["data"]["user_id"] == school.student.id
    assert body["data"]["completed_lessons"] == 1
    assert body["data"]["progress_percentage"] == 25
    assert body["data"]["next_lesson"]["id"] == school.lesson_ids[1]


# ---- the seed's use cases ---------------------------------------------------------------------


async def test_use_case_course_completion(client: TestClient, school: School) -> None:
    # Given john enrolled and completed every lesson but the last
    await enroll(client, school, school.student)
    for lesson_id in school.lesson_ids[:-1]:
        await complete(client, school, school.student, lesson_id)
    not_yet = await call(
        client, "GET", seed_url(SEED_CERTIFICATE, school), as_=school.student, expect=400
    )
    assert not_yet == {
        "code": "course_not_complete",
        "message": "You must complete all lessons to get a certificate",
        "data": {"status": 400, "progress_percentage": 75},
    }

    # When he marks the final lesson complete
    final = await call(
        client,
        "POST",
        seed_url(SEED_FINAL_LESSON_COMPLETE, school, lesson_id=school.lesson_ids[-1]),
        as_=school.student,
    )
    assert final["data"]["progress_percentage"] == 100
    assert final["data"]["next_lesson"] is None

    # Then his progress is complete, and a certificate is generated
    progress = await progress_of(client, school, school.student)
    assert progress["progress_percentage"] == 100
    assert progress["completed_lessons"] == progress["total_lessons"] == 4
    assert progress["completed_at"] == final["data"]["completed_at"]
    assert progress["next_lesson"] is None
    assert "certificate_url" not in progress

    certificate = await call(client, "GET", seed_url(SEED_CERTIFICATE, school), as_=school.student)
    assert certificate["data"]["student_name"] == "John Doe"
    after = await progress_of(client, school, school.student)
    assert after["certificate_url"] == certificate["data"]["certificate_url"]


async def test_use_case_resume_learning_with_auto_enrollment(
    client: TestClient, school: School
) -> None:
    # Auto-enrollment: progress before enrolling says not enrolled; then enroll
    before = await call(
        client, "GET", seed_url(SEED_PROGRESS, school), as_=school.student, expect=403
    )
    assert before == NOT_ENROLLED
    await call(client, "POST", seed_url(SEED_ENROLL, school), as_=school.student)

    # Resume learning: next_lesson follows the completions in course order
    first, second, third, fourth = school.lesson_ids
    assert (await progress_of(client, school, school.student))["next_lesson"]["id"] == first
    await complete(client, school, school.student, first)
    assert (await progress_of(client, school, school.student))["next_lesson"] == {
        "id": second,
        "title": "Lesson 2",
        "order": 2,
    }
    await complete(client, school, school.student, third)
    assert (await progress_of(client, school, school.student))["next_lesson"]["id"] == second
    await complete(client, school, school.student, second)
    resumed = await progress_of(client, school, school.student)
    assert resumed["next_lesson"] == {"id": fourth, "title": "Lesson 4", "order": 4}
    assert resumed["progress_percentage"] == 75


# ---- errors, exactly as the seed ----------------------------------------------------------------


async def test_learner_actions_without_enrollment_answer_not_enrolled(
    client: TestClient, school: School
) -> None:
    course = school.course_id
    lesson = school.lesson_ids[0]
    for method, path in [
        ("GET", f"/courses/{course}/progress"),
        ("POST", f"/courses/{course}/lessons/{lesson}/complete"),
        ("POST", f"/courses/{course}/lessons/{lesson}/incomplete"),
        ("POST", f"/courses/{course}/unenroll"),
        ("GET", f"/courses/{course}/certificate"),
    ]:
        body = await call(client, method, path, as_=school.student, expect=403)
        assert body == NOT_ENROLLED, (method, path)


async def test_enrolling_twice_answers_already_enrolled(client: TestClient, school: School) -> None:
    await enroll(client, school, school.student)

    body = await call(client, "POST", seed_url(SEED_ENROLL, school), as_=school.student, expect=400)

    assert body == ALREADY_ENROLLED


async def test_every_endpoint_without_credentials_is_unauthenticated(
    client: TestClient, school: School
) -> None:
    course = school.course_id
    lesson = school.lesson_ids[0]
    for method, path in [
        ("POST", f"/courses/{course}/enroll"),
        ("POST", f"/courses/{course}/unenroll"),
        ("GET", f"/courses/{course}/progress"),
        ("POST", f"/courses/{course}/lessons/{lesson}/complete"),
        ("POST", f"/courses/{course}/lessons/{lesson}/incomplete"),
        ("GET", f"/courses/{course}/students"),
        ("GET", f"/courses/{course}/certificate"),
        ("GET", "/courses/my-courses"),
    ]:
        body = await call(client, method, path, expect=401)
        assert_error(body, 401, "unauthenticated")


async def test_wrong_password_and_unknown_user_answer_the_same_401(
    client: TestClient, school: School
) -> None:
    wrong_password = Account(school.student.viewer, "john_doe", "not the password")
    unknown_user = Account(school.student.viewer, "nobody_here", "not the password")
    path = seed_url(SEED_PROGRESS, school)

    response_a = await client.get(PREFIX + path, headers=wrong_password.auth)
    response_b = await client.get(PREFIX + path, headers=unknown_user.auth)

    assert response_a.status == response_b.status == 401
    body_a, body_b = await response_a.json(), await response_b.json()
    assert body_a == body_b
    assert_error(body_a, 401, "invalid_credentials")
    assert response_a.headers["WWW-Authenticate"].startswith("Basic")


async def test_students_may_not_read_others_progress_or_the_roster(
    client: TestClient, school: School
) -> None:
    await enroll(client, school, school.student)
    await enroll(client, school, school.other_student)

    others = await call(
        client,
        "GET",
        seed_url(SEED_STUDENT_PROGRESS, school, user_id=school.student.id),
        as_=school.other_student,
        expect=403,
    )
    roster = await call(
        client, "GET", seed_url(SEED_STUDENTS, school), as_=school.student, expect=403
    )

    assert_error(others, 403, "forbidden")
    assert_error(roster, 403, "forbidden")


async def test_a_student_may_read_their_own_progress_by_user_id(
    client: TestClient, school: School
) -> None:
    await enroll(client, school, school.student)

    data = await progress_of(
        client, school, school.student, params={"user_id": str(school.student.id)}
    )

    assert data["user_id"] == school.student.id


async def test_missing_course_and_foreign_lesson_answer_not_found(
    client: TestClient, db: Database, school: School
) -> None:
    other_id, other_lessons = await make_course(db, school.instructor, title="CSS", lessons=1)
    await enroll(client, school, school.student)

    missing = [
        ("POST", "/courses/987654/enroll"),
        ("GET", "/courses/987654/progress"),
        ("GET", "/courses/987654/students"),
        ("GET", "/courses/987654/certificate"),
        # a lesson of another course is not a lesson of this one
        ("POST", f"/courses/{school.course_id}/lessons/{other_lessons[0]}/complete"),
        ("POST", f"/courses/{school.course_id}/lessons/{other_lessons[0]}/incomplete"),
    ]
    for method, path in missing:
        body = await call(client, method, path, as_=school.student, expect=404)
        assert_error(body, 404, "not_found")
    assert other_id != school.course_id
    assert (await progress_of(client, school, school.student))["completed_lessons"] == 0


async def test_unknown_route_under_the_prefix_answers_rest_no_route(
    client: TestClient, school: School
) -> None:
    for path in ["/courses/10/nowhere", "/nowhere", "/courses", f"/courses/{school.course_id}"]:
        body = await call(client, "GET", path, as_=school.student, expect=404)
        assert body == {
            "code": "rest_no_route",
            "message": "No route was found matching the URL and request method",
            "data": {"status": 404},
        }


async def test_wrong_method_answers_405_in_the_error_form(
    client: TestClient, school: School
) -> None:
    response = await client.get(
        f"{PREFIX}/courses/{school.course_id}/enroll", headers=school.student.auth
    )

    assert response.status == 405
    assert "POST" in response.headers["Allow"]
    assert_error(await response.json(), 405, "rest_no_route")
    wrong_progress = await client.post(
        f"{PREFIX}/courses/{school.course_id}/progress", headers=school.student.auth
    )
    assert wrong_progress.status == 405
    assert_error(await wrong_progress.json(), 405, "rest_no_route")


# ---- bad input never 500 -----------------------------------------------------------------------


MALFORMED_PARAMETERS = [
    ("POST", "/courses/abc/enroll", "id"),
    ("POST", "/courses/abc/unenroll", "id"),
    ("GET", "/courses/abc/progress", "id"),
    ("GET", "/courses/-5/students", "id"),
    ("GET", "/courses/1.5/certificate", "id"),
    ("POST", "/courses/{course}/lessons/x/complete", "lesson_id"),
    ("POST", "/courses/{course}/lessons/%20/incomplete", "lesson_id"),
    ("GET", "/courses/{course}/progress?user_id=abc", "user_id"),
    ("GET", "/courses/{course}/students?per_page=0", "per_page"),
    ("GET", "/courses/{course}/students?per_page=1000000000", "per_page"),
    ("GET", "/courses/{course}/students?per_page=-3", "per_page"),
    ("GET", "/courses/{course}/students?page=0", "page"),
    ("GET", "/courses/{course}/students?page=abc", "page"),
    ("GET", "/courses/{course}/students?page=--5", "page"),
    ("GET", "/courses/{course}/students?per_page=5-", "per_page"),
    ("GET", f"/courses/{{course}}/students?page={HUGE_ID}", "page"),
    ("GET", "/courses/{course}/students?orderby=password_hash", "orderby"),
    ("GET", "/courses/{course}/students?order=sideways", "order"),
    ("GET", "/courses/my-courses?status=bogus", "status"),
]


async def test_malformed_parameters_answer_invalid_input_naming_them(
    client: TestClient, school: School
) -> None:
    # One test walks every case: the school is built once (PostgreSQL setup is the cost).
    for method, path, field in MALFORMED_PARAMETERS:
        url = path.format(course=school.course_id)
        body = await call(client, method, url, as_=school.instructor, expect=400)

        assert_error(body, 400, "invalid_input")
        assert body["data"]["field"] == field, (url, body)
        assert field in body["message"], (url, body)


async def test_huge_ids_answer_not_found(client: TestClient, school: School) -> None:
    course = school.course_id
    for method, path in [
        ("POST", f"/courses/{HUGE_ID}/enroll"),
        ("GET", f"/courses/{HUGE_ID}/progress"),
        ("GET", f"/courses/{HUGE_ID}/students"),
        ("POST", f"/courses/{course}/lessons/{HUGE_ID}/complete"),
        ("GET", f"/courses/{course}/progress?user_id={HUGE_ID}"),
        ("GET", f"/courses/{'9' * 5000}/certificate"),
    ]:
        body = await call(client, method, path, as_=school.instructor, expect=404)
        assert_error(body, 404, "not_found")


async def test_junk_json_bodies_on_post_endpoints_are_ignored(
    client: TestClient, school: School
) -> None:
    # The seed's POST endpoints take no body: a junk one must not change the answer.
    course = school.course_id
    lesson = school.lesson_ids[0]
    junk = {"Content-Type": "application/json"}
    for method, path, message in [
        ("POST", f"/courses/{course}/enroll", "Successfully enrolled in course"),
        ("POST", f"/courses/{course}/lessons/{lesson}/complete", "Lesson marked as complete"),
        ("POST", f"/courses/{course}/lessons/{lesson}/incomplete", "Lesson marked as incomplete"),
        ("POST", f"/courses/{course}/unenroll", "Successfully unenrolled from course"),
    ]:
        body = await call(
            client, method, path, as_=school.student, headers=junk, data=b'{"oops": [1, 2'
        )
        assert body["message"] == message


async def test_empty_parameters_mean_their_defaults_and_choices_ignore_case(
    client: TestClient, school: School
) -> None:
    # The facade's documented leniency (coursepulse/rest/params.py): `?page=` is page 1.
    await enroll(client, school, school.student)

    body = await call(
        client,
        "GET",
        f"/courses/{school.course_id}/students?per_page=&page=&orderby=PROGRESS&order=ASC",
        as_=school.instructor,
    )

    assert body["meta"] == {"total": 1, "per_page": 20, "current_page": 1}


# ---- ordering and pagination -------------------------------------------------------------------


async def _roster_with_progress(client: TestClient, db: Database, school: School) -> Account:
    """john 2 lessons, jane 1, zoe 0; enrolled in that order."""
    zoe = await make_user(db, "zoe", display_name="Abby Zoe")
    for account in (school.student, school.other_student, zoe):
        await enroll(client, school, account)
    for lesson_id in school.lesson_ids[:2]:
        await complete(client, school, school.student, lesson_id)
    await complete(client, school, school.other_student, school.lesson_ids[0])
    return zoe


async def _usernames(client: TestClient, school: School, query: str) -> list[str]:
    body = await call(
        client, "GET", f"/courses/{school.course_id}/students?{query}", as_=school.instructor
    )
    return [row["username"] for row in body["data"]]


async def test_students_order_by_progress_both_ways(
    client: TestClient, db: Database, school: School
) -> None:
    await _roster_with_progress(client, db, school)

    descending = await _usernames(client, school, "orderby=progress&order=desc")
    ascending = await _usernames(client, school, "orderby=progress&order=asc")

    assert descending == ["john_doe", "jane_roe", "zoe"]
    assert ascending == ["zoe", "jane_roe", "john_doe"]


async def test_students_order_by_display_name_and_by_enrollment_by_default(
    client: TestClient, db: Database, school: School
) -> None:
    await _roster_with_progress(client, db, school)

    by_name = await _usernames(client, school, "orderby=display_name&order=asc")
    default = await _usernames(client, school, "")

    assert by_name == ["zoe", "jane_roe", "john_doe"]  # Abby Zoe, Jane Roe, John Doe
    assert default == ["zoe", "jane_roe", "john_doe"]  # enrolled_at, newest first


async def test_students_pagination_meta_and_pages(
    client: TestClient, db: Database, school: School
) -> None:
    await _roster_with_progress(client, db, school)
    base = f"/courses/{school.course_id}/students?orderby=progress&per_page=2"

    first = await call(client, "GET", f"{base}&page=1", as_=school.instructor)
    second = await call(client, "GET", f"{base}&page=2", as_=school.instructor)
    beyond = await call(client, "GET", f"{base}&page=3", as_=school.instructor)

    assert first["meta"] == {"total": 3, "per_page": 2, "current_page": 1}
    assert second["meta"] == {"total": 3, "per_page": 2, "current_page": 2}
    assert beyond == {"data": [], "meta": {"total": 3, "per_page": 2, "current_page": 3}}
    assert [row["username"] for row in first["data"] + second["data"]] == [
        "john_doe",
        "jane_roe",
        "zoe",
    ]


# ---- authentication ----------------------------------------------------------------------------


async def test_bearer_tokens_work_on_the_facade(
    client: TestClient, db: Database, school: School
) -> None:
    async with db.write() as tx:
        token = await users.create_token(tx, "john_doe", name="spa")
    bearer = {"Authorization": f"Bearer {token}"}

    enrolled = await call(client, "POST", seed_url(SEED_ENROLL, school), headers=bearer)
    progress = await call(client, "GET", seed_url(SEED_PROGRESS, school), headers=bearer)
    refused = await call(
        client,
        "GET",
        seed_url(SEED_PROGRESS, school),
        headers={"Authorization": f"Bearer {token}x"},
        expect=401,
    )

    assert enrolled["data"]["user_id"] == school.student.id
    assert progress["data"]["user_id"] == school.student.id
    assert_error(refused, 401, "invalid_credentials")


# ---- one domain, two front doors ----------------------------------------------------------------


async def test_rest_and_graphql_see_the_same_completions(
    client: TestClient, school: School
) -> None:
    await enroll(client, school, school.student)
    first, second = school.lesson_ids[:2]
    course = str(school.course_id)

    # A completion over REST is visible over GraphQL
    over_rest = await complete(client, school, school.student, first)
    seen = await graphql(client, COURSE_PROGRESS, {"courseId": course}, as_=school.student)
    progress = seen["data"]["courseProgress"]
    assert progress["completedLessons"] == 1
    assert progress["progressPercentage"] == 25
    assert progress["nextLesson"] == {"id": str(second)}
    lesson = next(row for row in progress["lessons"] if row["lesson"]["id"] == str(first))
    assert lesson["completed"] is True
    assert graphql_seconds(lesson["completedAt"]) == seconds(over_rest["data"]["completed_at"])

    # ... and a completion over GraphQL is visible over REST
    over_graphql = await graphql(
        client, COMPLETE_LESSON, {"courseId": course, "lessonId": str(second)}, as_=school.student
    )
    assert over_graphql["data"]["completeLesson"]["progressPercentage"] == 50
    rest_progress = await progress_of(client, school, school.student)
    assert rest_progress["completed_lessons"] == 2
    assert rest_progress["next_lesson"]["id"] == school.lesson_ids[2]
    again = await complete(client, school, school.student, second)
    assert again["message"] == "Lesson already marked as complete"
    assert seconds(again["data"]["completed_at"]) == graphql_seconds(
        over_graphql["data"]["completeLesson"]["completedAt"]
    )
