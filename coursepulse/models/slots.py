"""Connections handed out first come, first served, and counted (for /metrics)."""

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionUse:
    """How a process's database connections are used at one moment."""

    #: Connections the process may hold at once.
    size: int
    #: Held by a transaction now.
    in_use: int
    #: Transactions waiting for one.
    waiting: int


class Slots:
    """`size` turns at a connection: `take` waits for a free one (in the order asked),
    `give_back` frees it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0
        self.waiting = 0
        self._free = asyncio.Semaphore(size)

    async def take(self) -> None:
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.in_use += 1

    def give_back(self) -> None:
        self.in_use -= 1
        self._free.release()

    def use(self) -> ConnectionUse:
        return ConnectionUse(self.size, self.in_use, self.waiting)
