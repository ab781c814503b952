"""A headless Chromium for end-to-end tests, cut off from everything but 127.0.0.1.

Playwright drives the system's Chromium (Debian's `chromium` package, or the executable
named by COURSEPULSE_CHROMIUM); Playwright's own browser download is never used. Every
request to another host is aborted and recorded, so a page that needs a CDN fails its test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, Route, async_playwright, expect
from yarl import URL

from tests.conftest import PASSWORD, Account, School, graphql

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


async def screenshot(page: Page, name: str) -> None:
    """Save the page as docs/screenshots/<name>.png when COURSEPULSE_SCREENSHOTS=1
    (`make screenshots`), so README's pictures come from the tested pages."""
    if os.environ.get("COURSEPULSE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / f"{name}.png", animations="disabled")


def chromium_executable() -> str | None:
    """The Chromium to drive, or None when this machine has none."""
    named = os.environ.get("COURSEPULSE_CHROMIUM")
    if named:
        return named
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    """The Chromium executable; skips the test with the reason when there is none."""
    executable = chromium_executable()
    if executable is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the browser tests: `apt-get install chromium`")
        pytest.skip(
            "no Chromium on this machine: `apt-get install chromium` "
            "(or set COURSEPULSE_CHROMIUM) to run the browser tests"
        )
    return executable


@dataclass
class OfflineBrowser:
    """A browser whose contexts reach 127.0.0.1 only; `blocked` lists what they tried."""

    browser: Browser
    blocked: list[str] = field(default_factory=list)

    async def new_page(self) -> Page:
        """A page in a fresh context (its own storage, as a second browser profile would)."""
        context = await self.browser.new_context()

        async def only_local(route: Route) -> None:
            url = route.request.url
            if urlsplit(url).hostname in LOCAL_HOSTS or url.startswith("data:"):
                await route.continue_()
            else:
                self.blocked.append(url)
                await route.abort("internetdisconnected")

        await context.route("**/*", only_local)
        return await context.new_page()


async def offline_browser() -> AsyncIterator[OfflineBrowser]:
    """A headless Chromium (skipping the test when none is installed)."""
    executable = require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield OfflineBrowser(browser)
        finally:
            await browser.close()


async def sign_in(page: Page, app_url: URL | str, account: Account) -> None:
    """Open the progress app and sign in through its form, as a person would."""
    await page.goto(str(app_url))
    await page.get_by_label("Username").fill(account.username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


ENROLL = "mutation($courseId: ID!) { enroll(courseId: $courseId) { message } }"
COMPLETE = """
mutation($courseId: ID!, $lessonId: ID!) {
  completeLesson(courseId: $courseId, lessonId: $lessonId) { message }
}"""


async def enroll(client: TestClient, school: School, *students: Account) -> None:
    """Enrol the students in the school's course, through GraphQL (another client's work)."""
    for student in students:
        body = await graphql(client, ENROLL, {"courseId": str(school.course_id)}, as_=student)
        assert "errors" not in body, body


async def complete(client: TestClient, school: School, student: Account, lesson: int) -> None:
    """Complete the course's `lesson`-th lesson as the student, through GraphQL."""
    variables = {"courseId": str(school.course_id), "lessonId": str(school.lesson_ids[lesson])}
    body = await graphql(client, COMPLETE, variables, as_=student)
    assert "errors" not in body, body
