"""Log format for the service: one JSON object per line for log collectors (when stderr is
not a terminal), readable lines on a terminal.

A record's `fields` (a dict passed as `extra={"fields": ...}`) become keys of the JSON
object, or `key=value` pairs after the message on a terminal. Nothing secret is logged:
the access log names the path without its query string, never a header.
"""

import json
import logging
import math
import sys
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

LogFormat = Literal["auto", "json", "text"]


class _Clock:
    """ISO 8601 times to the millisecond, in UTC; the date and time of a second is worked out
    once for all the records of that second (the access log writes one a request)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def iso(self, created: float) -> str:
        """`created` (seconds since the epoch) as `2026-12-07T07:10:00.123+00:00`."""
        fraction, whole = math.modf(created)  # as `datetime.fromtimestamp` rounds
        second, micro = divmod(int(whole) * 1_000_000 + round(fraction * 1_000_000), 1_000_000)
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._prefix}.{micro // 1000:03d}+00:00"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, process, message, the record's
    fields, and the exception's traceback when there is one."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._clock.iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({key: value for key, value in fields.items() if value is not None})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # what orjson does not encode (an int beyond 64 bits, a non-str key)
            return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """A readable line: time, level, process, logger, message, then `key=value` fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if not isinstance(fields, dict):
            return line
        pairs = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
        head, _, rest = line.partition("\n")  # a traceback stays below the line
        return f"{head} {pairs}" + (f"\n{rest}" if rest else "") if pairs else line


def configure_logging(level: str = "INFO", log_format: LogFormat = "auto") -> None:
    """Log to stderr at `level`, as JSON lines or text (`auto`: JSON unless stderr is a
    terminal)."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    # Neither format shows a record's thread, process name or source line: not worked out
    # for every record (the logging HOWTO's "Optimization"; the access log has one a request).
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # aiohttp's own access log duplicates ours.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
