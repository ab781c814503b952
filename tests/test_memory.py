"""The server freezes what start-up built, collects young objects less often, and leaves
no garbage for the cyclic collector."""

import gc
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from coursepulse.memory import YOUNG_THRESHOLD, settle_after_start
from tests.conftest import School, graphql


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_settling_freezes_the_start_up_objects_and_raises_the_young_threshold() -> None:
    settle_after_start()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD


async def test_a_graphql_request_leaves_nothing_for_the_cyclic_collector(
    client: TestClient, school: School
) -> None:
    """A request's executor, context and aiohttp objects are freed as it ends, by their
    reference counts: none waits for a collection (a pause under load)."""
    query = "query Me { me { username } }"
    await graphql(client, query, as_=school.student)  # the document is prepared once
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            body = await graphql(client, query, as_=school.student)
            assert body["data"]["me"]["username"] == school.student.username
        gc.collect()
        ours = sorted(
            {
                type(item).__qualname__
                for item in gc.garbage
                if type(item).__module__.startswith(("coursepulse.", "graphql.", "strawberry."))
                or isinstance(item, web.Request)
            }
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert ours == []
