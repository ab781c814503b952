"""GraphiQL in a real Chromium with no network but 127.0.0.1: it loads from the service's
own files, runs a query with a Basic header, and shows a subscription's live events."""

import json
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from coursepulse.web.graphiql import CONTENT_SECURITY_POLICY
from tests.browser import OfflineBrowser, complete, enroll, offline_browser, screenshot
from tests.conftest import School

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def chromium() -> AsyncIterator[OfflineBrowser]:
    async for browser in offline_browser():
        yield browser
        assert browser.blocked == [], "the page tried to leave 127.0.0.1"


async def open_graphiql(page: Page, client: TestClient, query: str) -> None:
    """GraphiQL on the test server with `query` in the editor, once the schema is loaded."""
    url = client.make_url("/graphql").with_query(q=query)
    await page.goto(str(url), wait_until="load")
    await expect(page.locator(".graphiql-execute-button")).to_be_visible(timeout=15_000)
    # The documentation explorer fills in once the introspection query has answered.
    await page.get_by_role("button", name=re.compile("documentation", re.I)).first.click()
    await expect(page.get_by_text("A GraphQL schema provides a root type")).to_be_visible(
        timeout=15_000
    )


async def set_headers(page: Page, headers: dict[str, str]) -> None:
    """Type the request headers into GraphiQL's Headers tab, as a user would paste them."""
    await page.locator(".graphiql-editor-tools button", has_text="Headers").click()
    editor = page.locator(".graphiql-editor-tool .CodeMirror").last
    await editor.click()
    await page.keyboard.press("Control+A")
    await page.keyboard.press("Delete")
    await page.keyboard.insert_text(json.dumps(headers))


async def test_graphiql_loads_offline_and_runs_a_query_with_a_basic_header(
    client: TestClient, school: School, chromium: OfflineBrowser
) -> None:
    # Given a browser that can reach nothing but this service
    page = await chromium.new_page()
    response = await page.request.get(
        str(client.make_url("/graphql")), headers={"Accept": "text/html"}
    )
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY

    # When John opens GraphiQL, pastes his Basic header and runs `me`
    await open_graphiql(page, client, "query Me { me { username } }")
    await set_headers(page, school.student.auth)
    await page.locator(".graphiql-execute-button").click()

    # Then the result pane shows his username, and no request left the machine
    await expect(page.locator(".result-window")).to_contain_text('"username": "john_doe"')
    await screenshot(page, "graphiql")


async def test_a_subscription_in_graphiql_shows_a_live_event(
    client: TestClient, school: School, chromium: OfflineBrowser
) -> None:
    # Given John is enrolled and follows his progress in GraphiQL
    course_id = str(school.course_id)
    await enroll(client, school, school.student)
    page = await chromium.new_page()
    subscription = (
        f'subscription {{ progressUpdated(courseId: "{course_id}") '
        "{ id kind progressPercentage } }"
    )
    await open_graphiql(page, client, subscription)
    await set_headers(page, school.student.auth)
    await page.locator(".graphiql-execute-button").click()
    await expect(page.locator(".graphiql-execute-button")).to_have_attribute(
        "aria-label", re.compile("stop", re.I)
    )

    # When he completes a lesson elsewhere (another client of the API)
    await complete(client, school, school.student, 0)

    # Then GraphiQL's result pane shows the event as it happens
    result = page.locator(".result-window")
    await expect(result).to_contain_text("LESSON_COMPLETED", timeout=5_000)
    await expect(result).to_contain_text('"progressPercentage": 25')
