"""Subscriber processes for the `fanout` scenario (started by bench/run.py, not on their own).

Each process opens its share of graphql-transport-ws connections with a lean websocket
client of its own (`SubscriberSocket`: no task per socket, frames read as bytes arrive),
subscribes each one, and records when every subscriber receives each event
(CLOCK_MONOTONIC, which is one clock for all processes of the machine). The driver talks
to a process over a pipe:

    process -> driver  ("connected", ok, failed, first_error)
    driver  -> process "probe"      process -> driver ("probe", got an event, closed, why)
    driver  -> process "arm"        process -> driver ("armed",)  (notes each one's count)
    driver  -> process "measure"    process -> driver ("times", [arrival of the next event])
    driver  -> process "close"      process -> driver ("closed",)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

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


class SubscriberSocket(asyncio.Protocol):
    """One subscriber's graphql-transport-ws websocket, read as bytes arrive.

    A lean client on purpose: the subscriber processes share one CPU, and what they spend
    per message delays the arrivals they measure. No task and no message objects per
    socket: frames are parsed in `data_received`, where each `next` is timed as its bytes
    arrive. The server's frames are small, whole and uncompressed (none is negotiated);
    pings are answered.
    """

    def __init__(self, spec: ClientSpec, host: str, subscriber: Subscriber) -> None:
        self.spec = spec
        self.host = host
        self.subscriber = subscriber
        #: Done once the subscription was sent (or failed, with the reason).
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        key = base64.b64encode(os.urandom(16)).decode()
        path = urlsplit(self.spec.url).path or "/"
        transport.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {PROTOCOL}\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[:end]).split(b"\r\n", 1)[0]
            del buffer[: end + 4]
            if b" 101 " not in status:
                self._fail(f"handshake refused: {status.decode(errors='replace')}")
                return
            self.upgraded = True
            self.send(
                {"type": "connection_init", "payload": {"Authorization": self.spec.authorization}}
            )
        while len(buffer) >= 2:
            opcode, length, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            self._frame(opcode, payload, now)

    def _frame(self, opcode: int, payload: bytes, now: float) -> None:
        subscriber = self.subscriber
        if opcode == 0x9:  # websocket ping
            self._write(0xA, payload)
        elif opcode == 0x8:  # close
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            subscriber.closed = subscriber.closed or f"closed by the server ({code})"
            self._fail(subscriber.closed)
        elif opcode == 0x1:
            if payload.startswith(b'{"id":"1","type":"next"'):
                if b'"errors"' in payload:
                    subscriber.closed = f"next with errors: {payload[:300]!r}"
                    return
                subscriber.arrivals.append(now)
                if len(subscriber.arrivals) == subscriber.target:
                    subscriber.tally.arrived()
                return
            message = json.loads(payload)
            kind = message.get("type")
            if kind == "connection_ack":
                self.send(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": self.spec.query, "variables": self.spec.variables},
                    }
                )
                if not self.subscribed.done():
                    self.subscribed.set_result(None)
            elif kind == "ping":
                self.send({"type": "pong"})
            elif kind == "next":  # not in the server's usual spelling: read it whole
                errors = (message.get("payload") or {}).get("errors")
                if errors:
                    subscriber.closed = f"next with errors: {json.dumps(errors)[:300]}"
                    return
                subscriber.arrivals.append(now)
                if len(subscriber.arrivals) == subscriber.target:
                    subscriber.tally.arrived()
            elif kind in ("error", "complete"):
                subscriber.closed = subscriber.closed or f"{kind}: {payload[:200]!r}"

    def connection_lost(self, exc: Exception | None) -> None:
        subscriber = self.subscriber
        subscriber.closed = subscriber.closed or f"connection lost ({exc!r})"
        self._fail(subscriber.closed)

    def send(self, message: dict[str, Any]) -> None:
        self._write(0x1, json.dumps(message).encode())

    def _write(self, opcode: int, payload: bytes) -> None:
        """A masked frame (a client masks every frame it sends)."""
        if self.transport is None or self.transport.is_closing():
            return
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = bytes((0x80 | opcode, 0x80 | length))
        elif length < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
        repeated = (mask * (length // 4 + 1))[:length]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
            length, "big"
        )
        self.transport.write(header + mask + masked)

    def _fail(self, reason: str) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(RuntimeError(reason))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._write(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()


async def _subscribe(
    spec: ClientSpec, gate: asyncio.Semaphore, tally: Tally
) -> tuple[SubscriberSocket, Subscriber]:
    """A subscribed websocket, read as its bytes arrive (so it answers the server's pings)."""
    parts = urlsplit(spec.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    subscriber = Subscriber(tally)
    async with gate:
        _transport, socket = await asyncio.get_running_loop().create_connection(
            lambda: SubscriberSocket(spec, f"{host}:{port}", subscriber), host, port
        )
        try:
            await asyncio.wait_for(socket.subscribed, 30)
        except BaseException:
            socket.close()
            raise
    return socket, subscriber


async def _until(tally: Tally, subscribers: list[Subscriber], targets: list[int]) -> None:
    """Wait until every subscriber has its target count of arrivals, or WAIT_SECONDS."""
    tally.expect(subscribers, targets)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tally.done.wait(), WAIT_SECONDS)


async def _run(pipe: Connection, spec: ClientSpec) -> None:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    tally = Tally()
    outcomes = await asyncio.gather(
        *(_subscribe(spec, gate, tally) for _ in range(spec.subscribers)),
        return_exceptions=True,
    )
    sockets = [item for item in outcomes if not isinstance(item, BaseException)]
    failures = [item for item in outcomes if isinstance(item, BaseException)]
    subscribers = [sub for _socket, sub in sockets]
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
    for socket, _sub in sockets:
        with contextlib.suppress(Exception):
            socket.close()
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
