"""The service answers over real HTTP on both databases."""

from aiohttp.test_utils import TestClient

from tests.conftest import School, graphql


async def test_health_and_readiness(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["database"] == "up"


async def test_student_enrolls_and_completes_a_lesson(client: TestClient, school: School) -> None:
    body = await graphql(
        client,
        "mutation($c: ID!) { enroll(courseId: $c) { message enrollment { courseId } } }",
        {"c": str(school.course_id)},
        as_=school.student,
    )
    assert body["data"]["enroll"]["message"] == "Successfully enrolled in course"
    body = await graphql(
        client,
        """mutation($c: ID!, $l: ID!) { completeLesson(courseId: $c, lessonId: $l) {
             message progressPercentage alreadyCompleted nextLesson { order } } }""",
        {"c": str(school.course_id), "l": str(school.lesson_ids[0])},
        as_=school.student,
    )
    assert body["data"]["completeLesson"] == {
        "message": "Lesson marked as complete",
        "progressPercentage": 25,
        "alreadyCompleted": False,
        "nextLesson": {"order": 2},
    }
