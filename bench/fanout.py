"""Subscriber processes for the `fanout` scenario (started by bench/run.py, not on their own).

Each process opens its share of graphql-transport-ws connections with a raw aiohttp
websocket client, subscribes each one, and records when every subscriber receives each
event (CLOCK_MONOTONIC, which is one clock for all processes of the machine). The driver
talks to a process over a pipe:

    process -> driver  ("connected", ok, failed, first_error)
    driver  -> process "probe"      process -> driver ("probe", got an event, closed, why)
    driver  -> process "arm"        process -> driver ("armed",)  (notes each one's count)
    driver  -> process "measure"    process -> driver ("times", [arrival of the next event])
    driver  -> process "close"      process -> driver ("closed",)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

PROTOCOL = "graphql-transport-ws"
#: Handshakes a process has in flight at once (the server's listen backlog is 128).
CONNECT_CONCURRENCY = 16
WAIT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """What one subscriber process does."""

    url: str
    subscribers: int
    authorization: str
    query: str
    variables: dict[str, Any]
    cpu: int | None = None


class Tally:
    """How many subscribers still wait for the arrival the process waits for: counted as
    they arrive, so that waiting costs nothing per subscriber (these processes share one
    CPU, and their work delays the arrivals they measure)."""

    def __init__(self) -> None:
        self.remaining = 0
        self.done = asyncio.Event()

    def expect(self, subscribers: list[Subscriber], targets: list[int]) -> None:
        """Wait for each subscriber to have `targets[i]` arrivals."""
        self.done.clear()
        self.remaining = 0
        for subscriber, target in zip(subscribers, targets, strict=True):
            subscriber.target = target
            if len(subscriber.arrivals) < target:
                self.remaining += 1
        if self.remaining == 0:
            self.done.set()

    def arrived(self) -> None:
        """A subscriber reached its target."""
        self.remaining -= 1
        if self.remaining == 0:
            self.done.set()


@dataclass(slots=True)
class Subscriber:
    """One websocket's arrival times of `next` messages, counted in `tally`."""

    tally: Tally
    arrivals: list[float] = field(default_factory=list)
    #: The arrivals the process waits for (see `Tally.expect`).
    target: int = 0
    #: Set when the server closed the websocket (or it failed), with the reason.
    closed: str = ""


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def _subscribe(
    session: aiohttp.ClientSession, spec: ClientSpec, gate: asyncio.Semaphore, tally: Tally
) -> tuple[aiohttp.ClientWebSocketResponse, Subscriber, asyncio.Task[None]]:
    """A subscribed websocket, already being read (so it answers the server's pings)."""
    async with gate:
        ws = await session.ws_connect(
            spec.url, protocols=(PROTOCOL,), autoping=True, heartbeat=None, timeout=30
        )
        await ws.send_str(
            json.dumps(
                {"type": "connection_init", "payload": {"Authorization": spec.authorization}}
            )
        )
        ack = await ws.receive_json(timeout=30)
        if ack.get("type") != "connection_ack":
            await ws.close()
            raise RuntimeError(f"no connection_ack: {ack}")
        await ws.send_str(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": spec.query, "variables": spec.variables},
                }
            )
        )
    subscriber = Subscriber(tally)
    return ws, subscriber, asyncio.create_task(_listen(ws, subscriber))


async def _listen(ws: aiohttp.ClientWebSocketResponse, subscriber: Subscriber) -> None:
    """Record each `next` arrival; answer protocol pings; note why the socket closed."""
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        now = time.monotonic()
        data = json.loads(message.data)
        kind = data.get("type")
        if kind == "next":
            errors = (data.get("payload") or {}).get("errors")
            if errors:
                subscriber.closed = f"next with errors: {json.dumps(errors)[:300]}"
                continue
            subscriber.arrivals.append(now)
            if len(subscriber.arrivals) == subscriber.target:
                subscriber.tally.arrived()
        elif kind == "ping":
            await ws.send_str('{"type":"pong"}')
        elif kind in ("error", "complete"):
            subscriber.closed = subscriber.closed or f"{kind}: {message.data[:200]}"
            break
    if not subscriber.closed:
        subscriber.closed = f"closed by the server ({ws.close_code})"


async def _until(tally: Tally, subscribers: list[Subscriber], targets: list[int]) -> None:
    """Wait until every subscriber has its target count of arrivals, or WAIT_SECONDS."""
    tally.expect(subscribers, targets)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tally.done.wait(), WAIT_SECONDS)


async def _run(pipe: Connection, spec: ClientSpec) -> None:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        outcomes = await asyncio.gather(
            *(_subscribe(session, spec, gate, tally) for _ in range(spec.subscribers)),
            return_exceptions=True,
        )
        sockets = [item for item in outcomes if not isinstance(item, BaseException)]
        failures = [item for item in outcomes if isinstance(item, BaseException)]
        listeners = [task for _ws, _sub, task in sockets]
        subscribers = [sub for _ws, sub, _task in sockets]
        first_error = repr(failures[0]) if failures else ""
        pipe.send(("connected", len(sockets), len(failures), first_error))
        loop = asyncio.get_running_loop()
        armed = [0] * len(subscribers)
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command == "probe":
                await _until(tally, subscribers, [1] * len(subscribers))
                closed = [sub.closed for sub in subscribers if sub.closed]
                reason = closed[0] if closed else ""
                got = sum(1 for sub in subscribers if sub.arrivals)
                pipe.send(("probe", got, len(closed), reason))
            elif command == "arm":
                armed = [len(sub.arrivals) for sub in subscribers]
                pipe.send(("armed",))
            elif command == "measure":
                await _until(tally, subscribers, [seen + 1 for seen in armed])
                times = [
                    sub.arrivals[seen]
                    for sub, seen in zip(subscribers, armed, strict=True)
                    if len(sub.arrivals) > seen
                ]
                pipe.send(("times", times))
            else:
                break
        for task in listeners:
            task.cancel()
        for ws, _sub, _task in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for task in listeners:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    pipe.send(("closed",))


def client_process(pipe: Connection, spec: ClientSpec) -> None:
    """Entry point of one subscriber process (own event loop; uvloop when installed)."""
    raise_open_files_limit()
    if spec.cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {spec.cpu})
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(_run(pipe, spec))
