"""A least-recently-used cache bounded by the size of what it keeps, not by its entry count."""

from collections import OrderedDict
from typing import Generic, TypeVar

Value = TypeVar("Value")


class BoundedCache(Generic[Value]):
    """Keeps values by key while their total weight (bytes) stays within `max_bytes`.

    Each entry weighs what its caller says (for documents: their length), so a few huge
    documents cannot hold as much memory as thousands of small ones. An entry heavier
    than the whole budget is not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[Value, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> Value | None:
        """The value kept under `key` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: str, value: Value, weight: int) -> None:
        """Keeps `value`, dropping the least recently used entries to stay within budget."""
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        if weight > self.max_bytes:
            return
        self._entries[key] = (value, weight)
        self.bytes += weight
        while self.bytes > self.max_bytes:
            _key, (_value, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped
