"""Log format for the service: one JSON object per line for log collectors (when stderr is
not a terminal), readable lines on a terminal.

A record's `fields` (a dict passed as `extra={"fields": ...}`) become keys of the JSON
object, or `key=value` pairs after the message on a terminal. Nothing secret is logged:
the access log names the path without its query string, never a header.
"""

import json
import logging
import math
import os
import sys
import threading
import time
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
        fields = getattr(record, "fields", None)
        exception = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(
            record.created,
            record.levelname,
            record.name,
            record.process,
            record.getMessage(),
            fields if isinstance(fields, dict) else None,
            exception,
        )

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        process: int | None,
        message: str,
        fields: dict[str, Any] | None = None,
        exception: str | None = None,
    ) -> str:
        """The JSON line of a record made of these parts."""
        entry: dict[str, Any] = {
            "time": self._clock.iso(created),
            "level": level,
            "logger": logger,
            "process": process,
            "message": message,
        }
        if fields is not None:
            entry.update({key: value for key, value in fields.items() if value is not None})
        if exception is not None:
            entry["exception"] = exception
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


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes its lines in batches: at most `interval` seconds after
    they were logged, at once when a batch reaches `batch_bytes`, and, with every line
    before it, as soon as a record of WARNING or above arrives (so an error is never held
    back). Flushed when logging shuts down (at exit) and when closed.

    One write per request (the access log's line) was a tenth of a request's CPU under load;
    a write per batch costs a fraction of it. Like nginx's `access_log ... buffer= flush=`,
    lines of the last `interval` seconds are lost if the process is killed outright.
    """

    def __init__(self, interval: float = 0.5, batch_bytes: int = 64 * 1024) -> None:
        super().__init__()
        self.interval = interval
        self.batch_bytes = batch_bytes
        self._lines: list[str] = []
        self._size = 0
        self._stopped = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_regularly, name="log-flusher", daemon=True
        )
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._add(line, record.levelno)

    def add_entry(
        self, logger: logging.Logger, levelno: int, message: str, fields: dict[str, Any]
    ) -> None:
        """Add the line the JSON formatter would make of the logger's record, made
        without the record (see `direct_handler`, which says when that is the same)."""
        formatter: JsonFormatter = self.formatter  # type: ignore[assignment]
        line = formatter.line(
            time.time(),
            logging.getLevelName(levelno),
            logger.name,
            os.getpid() if logging.logProcesses else None,
            message,
            fields,
        )
        with self.lock:  # type: ignore[union-attr]
            self._add(line + self.terminator, levelno)

    def _add(self, line: str, levelno: int) -> None:
        """Add a line to the batch (the handler's lock held)."""
        self._lines.append(line)
        self._size += len(line)
        if levelno >= logging.WARNING or self._size >= self.batch_bytes:
            self._write()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def close(self) -> None:
        self._stopped.set()
        self.flush()
        super().close()

    def _write(self) -> None:
        """Write the batch (the handler's lock held)."""
        if not self._lines:
            return
        text, self._lines, self._size = "".join(self._lines), [], 0
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # as StreamHandler: a broken stream must not break the service
            self.handleError(logging.makeLogRecord({"msg": text[:200]}))

    def _flush_regularly(self) -> None:
        while not self._stopped.wait(self.interval):
            self.flush()


def direct_handler(logger: logging.Logger, levelno: int) -> BatchedStreamHandler | None:
    """The one handler a record of `logger` at `levelno` would reach, when it is a
    `BatchedStreamHandler` writing JSON with no filter on the way: the line can then be
    given to it as its parts (`add_entry`), without a `LogRecord` and the logging module's
    dispatch (the access log writes a line a request). None otherwise (another handler,
    a filter, a test capturing records): the record takes the logging module's path."""
    if logger.filters:
        return None
    current: logging.Logger | None = logger
    while current is not None and current is not logging.root:
        if current.handlers or current.disabled or not current.propagate:
            return None
        current = current.parent
    root = logging.root
    handlers = root.handlers
    if current is not root or len(handlers) != 1 or root.filters:
        return None
    handler = handlers[0]
    if (
        type(handler) is not BatchedStreamHandler
        or handler.filters
        or levelno < handler.level
        or not isinstance(handler.formatter, JsonFormatter)
    ):
        return None
    return handler


def configure_logging(
    level: str = "INFO", log_format: LogFormat = "auto", flush_seconds: float = 0.0
) -> None:
    """Log to stderr at `level`, as JSON lines or text (`auto`: JSON unless stderr is a
    terminal); JSON lines in batches at most `flush_seconds` apart (0: each at once)."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    # Neither format shows a record's thread, process name or source line: not worked out
    # for every record (the logging HOWTO's "Optimization"; the access log has one a request).
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]
    # A terminal shows each line as it comes; a log collector gets them in batches.
    handler = (
        BatchedStreamHandler(flush_seconds)
        if use_json and flush_seconds > 0
        else logging.StreamHandler()
    )
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # aiohttp's own access log duplicates ours.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
