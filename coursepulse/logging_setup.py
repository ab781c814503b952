"""Log format for the service: one JSON object per line for log collectors (when stderr is
not a terminal), readable lines on a terminal.

A record's `fields` (a dict passed as `extra={"fields": ...}`) become keys of the JSON
object, or `key=value` pairs after the message on a terminal. Nothing secret is logged:
the access log names the path without its query string, never a header.
"""

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["auto", "json", "text"]


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, process, message, the record's
    fields, and the exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
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
