"""The live progress app at `/` in a real Chromium with no network but 127.0.0.1: students'
bars follow changes made anywhere, instructors' rosters re-sort live."""

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import expect

from coursepulse.web.progress_app import CONTENT_SECURITY_POLICY
from tests.browser import OfflineBrowser, complete, enroll, offline_browser, screenshot, sign_in
from tests.conftest import School, graphql

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TITLE = "Introduction to Web Development"


@pytest.fixture
async def chromium() -> AsyncIterator[OfflineBrowser]:
    async for browser in offline_browser():
        yield browser
        assert browser.blocked == [], "the page tried to leave 127.0.0.1"


async def test_the_app_is_served_under_a_policy_of_its_own_origin(
    client: TestClient, chromium: OfflineBrowser
) -> None:
    response = await client.get("/")

    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "http" not in await response.text()
    assert "Set-Cookie" not in response.headers


async def test_wrong_credentials_are_refused_in_the_form(
    client: TestClient, school: School, chromium: OfflineBrowser
) -> None:
    page = await chromium.new_page()
    await page.goto(str(client.make_url("/")))
    await page.get_by_label("Username").fill(school.student.username)
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Sign in").click()

    refusal = page.get_by_role("alert").filter(has_text="Wrong username or password")
    await expect(refusal).to_be_visible()


async def test_a_students_bar_moves_with_completions_from_another_tab_and_the_rest_api(
    client: TestClient, school: School, chromium: OfflineBrowser
) -> None:
    # Given John is enrolled, has his courses open in one browser and a course in another
    await enroll(client, school, school.student)
    courses = await chromium.new_page()
    await sign_in(courses, client.make_url("/"), school.student)
    bar = courses.get_by_role("progressbar", name=TITLE, exact=True)
    await expect(bar).to_have_attribute("aria-valuenow", "0")
    await expect(bar).to_have_attribute("aria-valuemin", "0")
    await expect(bar).to_have_attribute("aria-valuemax", "100")
    await expect(courses.get_by_role("main")).to_have_text(f"My courses{TITLE}0%")
    lessons = await chromium.new_page()
    await sign_in(lessons, client.make_url("/"), school.student)
    await lessons.get_by_role("link", name=TITLE).click()
    await expect(lessons.get_by_role("checkbox", name="Lesson 1", exact=True)).not_to_be_checked()
    await expect(lessons.locator("li.next")).to_have_text("Lesson 1")

    # When he ticks Lesson 1 in the second browser
    await lessons.get_by_role("checkbox", name="Lesson 1", exact=True).check()

    # Then both bars say 25% within a second, and Lesson 2 is next
    await expect(bar).to_have_attribute("aria-valuenow", "25", timeout=1_000)
    await expect(lessons.get_by_role("progressbar", name=TITLE, exact=True)).to_have_attribute(
        "aria-valuenow", "25", timeout=1_000
    )
    await expect(lessons.locator("li.next")).to_have_text("Lesson 2")

    # When his phone completes Lesson 2 through the REST API
    response = await client.post(
        f"/wp-json/fluent-community/v2/courses/{school.course_id}"
        f"/lessons/{school.lesson_ids[1]}/complete",
        headers=school.student.auth,
    )
    assert response.status == 200, await response.text()

    # Then the bars and the lesson's checkbox follow within a second
    await expect(bar).to_have_attribute("aria-valuenow", "50", timeout=1_000)
    await expect(lessons.get_by_role("checkbox", name="Lesson 2", exact=True)).to_be_checked(
        timeout=1_000
    )
    await expect(lessons.get_by_role("status")).to_have_text("Live")
    await screenshot(courses, "student-courses")
    await screenshot(lessons, "student-course")

    # And undoing Lesson 1 in the app moves the bar back
    await lessons.get_by_role("checkbox", name="Lesson 1", exact=True).uncheck()
    await expect(bar).to_have_attribute("aria-valuenow", "25", timeout=1_000)


async def test_an_open_course_shows_a_new_lesson_and_the_moved_bar(
    client: TestClient, school: School, chromium: OfflineBrowser
) -> None:
    # Given John has done one lesson of four and has the course open
    await enroll(client, school, school.student)
    await complete(client, school, school.student, 0)
    page = await chromium.new_page()
    await sign_in(page, client.make_url("/"), school.student)
    await page.get_by_role("link", name=TITLE).click()
    bar = page.get_by_role("progressbar", name=TITLE, exact=True)
    await expect(bar).to_have_attribute("aria-valuenow", "25")

    # When the instructor adds a fifth lesson
    body = await graphql(
        client,
        'mutation($c: ID!) { addLesson(courseId: $c, input: { title: "Lesson 5" }) { id } }',
        {"c": str(school.course_id)},
        as_=school.instructor,
    )
    assert "errors" not in body, body

    # Then his page lists it and his bar says 20% within a second
    await expect(page.get_by_role("checkbox", name="Lesson 5", exact=True)).not_to_be_checked(
        timeout=1_000
    )
    await expect(bar).to_have_attribute("aria-valuenow", "20", timeout=1_000)
    await expect(page.locator("li.next")).to_have_text("Lesson 2")


async def test_a_sequential_course_opens_the_next_lesson_as_the_student_goes(
    client: TestClient, school: School, chromium: OfflineBrowser
) -> None:
    # Given a sequential course John has just started
    body = await graphql(
        client,
        "mutation($id: ID!) { updateCourse(id: $id, input: { sequential: true }) { id } }",
        {"id": str(school.course_id)},
        as_=school.instructor,
    )
    assert "errors" not in body, body
    await enroll(client, school, school.student)
    page = await chromium.new_page()
    await sign_in(page, client.make_url("/"), school.student)
    await page.get_by_role("link", name=TITLE).click()
    second = page.get_by_role("checkbox", name="Lesson 2", exact=True)
    await expect(second).to_be_disabled()
    await expect(page.locator("li", has=second)).to_contain_text("after the lessons before it")

    # When he ticks Lesson 1, Lesson 2 opens and Lesson 3 stays closed
    await page.get_by_role("checkbox", name="Lesson 1", exact=True).check()
    await expect(second).to_be_enabled(timeout=1_000)
    await expect(page.get_by_role("checkbox", name="Lesson 3", exact=True)).to_be_disabled()
    await second.check()
    await expect(page.get_by_role("checkbox", name="Lesson 3", exact=True)).to_be_enabled(
        timeout=1_000
    )


async def test_the_instructors_roster_re_sorts_live(
    client: TestClient, school: School, chromium: OfflineBrowser
) -> None:
    # Given John has one lesson done and Jane none, and the instructor watches the roster
    await enroll(client, school, school.student, school.other_student)
    await complete(client, school, school.student, 0)
    page = await chromium.new_page()
    await sign_in(page, client.make_url("/"), school.instructor)
    await page.get_by_role("link", name=TITLE).click()
    rows = page.get_by_role("table", name="Roster by progress").locator("tbody tr th")
    await expect(rows).to_have_text(["John Doe", "Jane Roe"])
    await expect(page.get_by_role("progressbar", name="John Doe", exact=True)).to_have_attribute(
        "aria-valuenow", "25"
    )

    # When Jane completes two lessons
    await complete(client, school, school.other_student, 0)
    await complete(client, school, school.other_student, 1)

    # Then she moves to the top, with her bar at 50%, and the statistics follow
    await expect(rows).to_have_text(["Jane Roe", "John Doe"], timeout=2_000)
    await expect(page.get_by_role("progressbar", name="Jane Roe", exact=True)).to_have_attribute(
        "aria-valuenow", "50"
    )
    stats = page.get_by_label("Course statistics")
    await expect(stats).to_contain_text("Average progress38%")
    await screenshot(page, "instructor-roster")
