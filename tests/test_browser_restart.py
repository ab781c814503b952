"""The progress app across a server restart, in a real Chromium against a real
`coursepulse serve` process: killed mid-session, its database changed while it is down,
started again on the same port. The bar ends at the server's value and the page has
received every event of the student's course exactly once, in order."""

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from coursepulse.models.db import Database
from coursepulse.resolvers import completions, enrollments, subscriptions
from tests.browser import OfflineBrowser, offline_browser, sign_in
from tests.conftest import Account, School
from tests.processes import complete_over_rest, coursepulse_serve, free_port

TITLE = "Introduction to Web Development"
#: The app retries at most every 3 s; a restart must be over well within this.
RECONNECT_MS = 10_000


@pytest.fixture
async def chromium() -> AsyncIterator[OfflineBrowser]:
    async for browser in offline_browser():
        yield browser
        assert browser.blocked == [], "the page tried to leave 127.0.0.1"


async def server_percentage(base: str, school: School, student: Account) -> int:
    """The student's percentage as the server answers it over HTTP."""
    query = "query($c: ID!) { courseProgress(courseId: $c) { progressPercentage } }"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/graphql",
            json={"query": query, "variables": {"c": str(school.course_id)}},
            headers=student.auth,
        ) as response,
    ):
        body = await response.json()
    assert "errors" not in body, body
    return body["data"]["courseProgress"]["progressPercentage"]


async def logged_events(db: Database, school: School, student: Account) -> list[tuple[int, str]]:
    """(id, kind) of the student's events in the course, as the event log holds them."""
    async with db.read() as tx:
        events = await subscriptions.events_after(
            tx, school.course_id, 0, user_id=student.viewer.user_id
        )
    return [(event.id, event.kind) for event in events]


async def received_event_ids(page: Page, view: str) -> list[int]:
    """Ids of the events the app's view received since it opened, in the order received."""
    return await page.evaluate("(view) => window.coursepulse.eventIds[view]", view)


async def until_received(page: Page, view: str, count: int) -> list[int]:
    """The view's received event ids once it has `count` of them, or after a second."""
    with contextlib.suppress(PlaywrightTimeoutError):
        await page.wait_for_function(
            "([view, count]) => window.coursepulse.eventIds[view]?.length >= count",
            arg=[view, count],
            timeout=1_000,
        )
    return await received_event_ids(page, view)


async def test_a_server_restart_mid_session_ends_with_the_bar_right_and_no_event_missed(
    db: Database, database_url: str, school: School, chromium: OfflineBrowser, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    john = school.student
    async with db.write() as tx:
        await enrollments.enroll(tx, john.viewer, school.course_id)

    # Given John follows his course in the app, served by a real process, at 25%
    async with coursepulse_serve(database_url, log, port=port) as (_, process):
        page = await chromium.new_page()
        await sign_in(page, base, john)
        [(opened_after, _)] = await logged_events(db, school, john)  # enrolled
        await page.get_by_role("link", name=TITLE).click()
        bar = page.get_by_role("progressbar", name=TITLE, exact=True)
        # (the page has read the course: events from now on are the view's to receive)
        await expect(page.get_by_role("checkbox", name="Lesson 1", exact=True)).not_to_be_checked()
        await complete_over_rest(base, school, john, 0)
        await expect(bar).to_have_attribute("aria-valuenow", "25", timeout=1_000)
        await expect(page.get_by_role("status")).to_have_text("Live")

        # When the server is killed
        process.send_signal(signal.SIGKILL)
        await process.wait()

    # Then the app says it is reconnecting
    await expect(page.get_by_role("status")).to_have_text("Reconnecting…")

    # While it is down, his phone's completions reach the database through another server
    async with db.write() as tx:
        await completions.complete_lesson(tx, john.viewer, school.course_id, school.lesson_ids[1])
    async with db.write() as tx:
        await completions.complete_lesson(tx, john.viewer, school.course_id, school.lesson_ids[2])
    await asyncio.sleep(0.5)  # a few failed reconnects, as in a real outage

    # When the server starts again on the same port
    async with coursepulse_serve(database_url, log, port=port):
        # Then the app comes back live, with what happened while it was away
        await expect(page.get_by_role("status")).to_have_text("Live", timeout=RECONNECT_MS)
        await expect(bar).to_have_attribute("aria-valuenow", "75", timeout=RECONNECT_MS)
        await expect(page.get_by_role("checkbox", name="Lesson 3", exact=True)).to_be_checked()
        await expect(page.locator("li.next")).to_have_text("Lesson 4")

        # And it keeps following: the last lesson, ticked in the app, brings the bar to 100%
        await page.get_by_role("checkbox", name="Lesson 4", exact=True).check()
        await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=1_000)
        assert await server_percentage(base, school, john) == 100

        # And every event of his since the page opened reached it once, in order
        logged = [
            event for event in await logged_events(db, school, john) if event[0] > opened_after
        ]
        assert [kind for _, kind in logged] == [*["lesson_completed"] * 4, "course_completed"]
        await expect(page.get_by_role("checkbox", name="Lesson 4", exact=True)).to_be_checked()
        view = f"course:{school.course_id}"
        received = await until_received(page, view, len(logged))
        assert received == [event_id for event_id, _ in logged]
