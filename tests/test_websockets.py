"""A websocket's server-side objects stay small and speak the protocol as Strawberry does.

Real sockets on a real port (aiohttp's client), on SQLite and PostgreSQL.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from coursepulse.models.db import Database
from coursepulse.settings import Settings
from coursepulse.web.keys import WEBSOCKETS
from coursepulse.web.websockets import WebSocketResponse
from tests.conftest import School
from tests.test_live import (  # noqa: F401  (_asyncio_debug: an autouse fixture)
    COURSE_ACTIVITY,
    TRANSPORT_WS,
    _asyncio_debug,
    basic_header,
    enroll,
    last_event_id,
    raw_socket,
    until,
    ws_url,
)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_what_aiohttp_sets_on_a_live_websocket_later_is_kept_in_slots(
    serve: Any, settings: Settings, db: Database, school: School, http: aiohttp.ClientSession
) -> None:
    """Attributes set after `__init__` would each cost a live socket a whole dictionary
    (web/websockets.py): after its sign-in, a subscription and heartbeats, a socket has
    no attribute in its dictionary that a new one does not have."""
    client = await serve(settings.model_copy(update={"ws_heartbeat_seconds": 0.05}))
    await enroll(client, school, school.student)
    enrolled = await last_event_id(db)
    async with raw_socket(http, ws_url(client), TRANSPORT_WS) as socket:
        ack = await socket.init({"Authorization": basic_header(school.instructor)})
        assert ack["type"] == "connection_ack"
        course = str(school.course_id)
        await socket.subscribe("1", COURSE_ACTIVITY, courseId=course, after=str(enrolled - 1))
        assert int((await socket.next_event())["id"]) == enrolled
        # A few heartbeats: the client reads, so it answers the server's pings
        reading = asyncio.create_task(socket.websocket.receive())
        await asyncio.sleep(0.3)
        (websocket,) = client.server.app[WEBSOCKETS]
        assert isinstance(websocket, WebSocketResponse)
        assert not websocket.closed
        late = set(vars(websocket)) - set(vars(WebSocketResponse(heartbeat=1.0, protocols=[])))
        reading.cancel()
    assert late == set()


async def test_a_binary_websocket_message_closes_the_socket_as_invalid(
    serve: Any, settings: Settings, school: School, http: aiohttp.ClientSession
) -> None:
    client = await serve(settings)
    async with http.ws_connect(ws_url(client), protocols=[TRANSPORT_WS]) as websocket:
        await websocket.send_json(
            {"type": "connection_init", "payload": {"Authorization": basic_header(school.student)}}
        )
        assert (await websocket.receive_json(timeout=5))["type"] == "connection_ack"
        await websocket.send_bytes(b'{"type": "ping"}')
        message = await websocket.receive(timeout=5)
        assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        await until(lambda: websocket.closed)
    assert websocket.close_code == 4400


@pytest.mark.parametrize("compression", [False, True])
async def test_permessage_deflate_is_declined_unless_the_setting_allows_it(
    serve: Any,
    settings: Settings,
    db: Database,
    school: School,
    http: aiohttp.ClientSession,
    compression: bool,
) -> None:
    """Browsers always offer permessage-deflate; accepted, it keeps zlib's state on every
    socket (about 100 KiB more per idle subscriber), so it is declined by default. Either
    way a subscriber gets its events."""
    client = await serve(settings.model_copy(update={"ws_compression": compression}))
    await enroll(client, school, school.student)
    enrolled = await last_event_id(db)
    async with http.ws_connect(ws_url(client), protocols=[TRANSPORT_WS], compress=15) as websocket:
        offered = websocket._response.headers.get("Sec-WebSocket-Extensions")
        assert (offered is not None and "permessage-deflate" in offered) is compression
        assert websocket.compress == (15 if compression else 0)
        sign_in = {"Authorization": basic_header(school.instructor)}
        await websocket.send_json({"type": "connection_init", "payload": sign_in})
        assert (await websocket.receive_json(timeout=5))["type"] == "connection_ack"
        await websocket.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {
                    "query": COURSE_ACTIVITY,
                    "variables": {"courseId": str(school.course_id), "after": str(enrolled - 1)},
                },
            }
        )
        message = await websocket.receive_json(timeout=5)
        assert message["type"] == "next", message
        assert int(message["payload"]["data"]["courseActivity"]["id"]) == enrolled
        # Three live subscriptions of one document: the event is executed for one and sent
        # to the others as it was executed (the fan-out's path, compressed or not).
        for operation_id in ("2", "3"):
            await websocket.send_json(
                {
                    "id": operation_id,
                    "type": "subscribe",
                    "payload": {
                        "query": COURSE_ACTIVITY,
                        "variables": {"courseId": str(school.course_id)},
                    },
                }
            )
        await asyncio.sleep(0.2)  # both subscribed, parked
        await enroll(client, school, school.other_student)
        live = [await websocket.receive_json(timeout=5) for _ in range(3)]
        assert sorted(item["id"] for item in live) == ["1", "2", "3"]
        assert all(item["type"] == "next" for item in live), live
        assert live[0]["payload"] == live[1]["payload"] == live[2]["payload"]
        assert int(live[0]["payload"]["data"]["courseActivity"]["id"]) > enrolled
