"""The export file: JSON Lines, UTF-8, gzip-compressed when its name ends in .gz (an import
tells gzip by the first bytes, whatever the name).

Line 1 is the header::

    {"format": "coursepulse-export", "version": 1, "schema": "0010",
     "source": "sqlite", "exported_at": "2026-12-07T10:00:00+00:00",
     "tables": {"users": 10001, "api_tokens": 0, ...}}

`schema` is the migration the database was at; `tables` gives every table's row count, in
the order the rows follow (parents before the rows that refer to them). Every other line
is one row::

    {"table": "users", "row": {"id": 1, "username": "ada", ..., "created_at": "...+00:00"}}

Timestamps are ISO 8601 in UTC; ids are kept, so certificate numbers, event ids (the
`after` cursors of clients and webhooks) and every reference stay valid after an import.
"""

import contextlib
import gzip
import io
import json
import os
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from alembic.script import ScriptDirectory
from sqlalchemy import Table
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from coursepulse import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from coursepulse.models.migrate import alembic_config
from coursepulse.models.types import UTCDateTime

FORMAT = "coursepulse-export"
VERSION = 1


class TransferError(Exception):
    """A file or a target that cannot be used, said in a sentence for the operator."""


def school_tables() -> list[Table]:
    """Every table of the school, parents before the tables whose rows refer to them."""
    return list(SQLModel.metadata.sorted_tables)


def schema_revision() -> str:
    """The newest migration of this version of the service (what its databases are at)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise TransferError("the service has no migrations")
    return head


def header(source: str, exported_at: datetime, counts: dict[str, int]) -> dict[str, Any]:
    """The first line of an export of a school with these row counts."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "schema": schema_revision(),
        "source": source,
        "exported_at": exported_at.isoformat(),
        "tables": counts,
    }


def check_header(line: str) -> dict[str, int]:
    """The row counts the header announces; raises TransferError for a file that is not an
    export, or one of another format version or schema than this service's."""
    try:
        head = json.loads(line)
    except ValueError:
        head = None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise TransferError("this is not a coursepulse export (its first line is no header)")
    if head.get("version") != VERSION:
        raise TransferError(
            f"this export has format version {head.get('version')}; this service reads {VERSION}"
        )
    revision = schema_revision()
    if head.get("schema") != revision:
        raise TransferError(
            f"this export is of database schema {head.get('schema')}, this service's is"
            f" {revision}: export again with the same version of coursepulse as this one"
            " (after `coursepulse migrate` on the source)"
        )
    counts = head.get("tables")
    known = {table.name for table in school_tables()}
    if not isinstance(counts, dict) or set(counts) != known:
        raise TransferError("the export's header does not list this service's tables")
    if not all(isinstance(count, int) and count >= 0 for count in counts.values()):
        raise TransferError("the export's header gives a row count that is not a number")
    return dict(counts)


@dataclass(frozen=True)
class Columns:
    """How one table's rows are written to and read from the file."""

    table: Table
    names: tuple[str, ...]
    timestamps: frozenset[str]

    @classmethod
    def of(cls, table: Table) -> "Columns":
        return cls(
            table=table,
            names=tuple(column.name for column in table.columns),
            timestamps=frozenset(
                column.name for column in table.columns if isinstance(column.type, UTCDateTime)
            ),
        )

    def encode(self, row: Any) -> str:
        """The file's line for a row of the table (values in column order)."""
        values: dict[str, Any] = {}
        for name, value in zip(self.names, row, strict=True):
            values[name] = value.isoformat() if isinstance(value, datetime) else value
        return json.dumps(
            {"table": self.table.name, "row": values}, ensure_ascii=False, separators=(",", ":")
        )

    def decode(self, values: Any, line_number: int) -> dict[str, Any]:
        """The row's values to insert; raises TransferError for a row of other columns."""
        if not isinstance(values, dict) or set(values) != set(self.names):
            raise TransferError(
                f"line {line_number}: a {self.table.name} row must have exactly the columns"
                f" {', '.join(self.names)}"
            )
        for name in self.timestamps:
            text = values[name]
            if text is not None:
                try:
                    values[name] = datetime.fromisoformat(text)
                except (TypeError, ValueError):
                    raise TransferError(
                        f"line {line_number}: {self.table.name}.{name} is not a timestamp"
                    ) from None
                if values[name].tzinfo is None:
                    raise TransferError(
                        f"line {line_number}: {self.table.name}.{name} has no time zone"
                    )
        return values


def sqlite_file(database_url: str) -> Path:
    """The file of a SQLite URL, which must exist; raises TransferError otherwise."""
    url = make_url(database_url)
    if not url.database or url.database == ":memory:":
        raise TransferError("the database is not a file")
    path = Path(url.database)
    if not path.is_file():
        raise TransferError(f"no database file at {path}")
    return path


def parse_row(line: str, line_number: int) -> tuple[str, Any]:
    """A row line's table name and values."""
    try:
        record = json.loads(line)
    except ValueError:
        raise TransferError(f"line {line_number} is not JSON (is the file cut short?)") from None
    if not isinstance(record, dict) or not isinstance(record.get("table"), str):
        raise TransferError(f"line {line_number} is not a row of the export")
    return record["table"], record.get("row")


#: What reading a damaged file raises: a cut-short or false gzip stream, bytes not UTF-8.
UNREADABLE = (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError)


def private_file(path: Path) -> IO[bytes]:
    """A new file only its owner may read (an export holds password hashes, token digests,
    webhook secrets and signing keys); raises TransferError when it cannot be made."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as error:
        raise TransferError(f"cannot write {path}: {error.strerror}") from None
    return os.fdopen(descriptor, "wb")


@contextmanager
def open_for_writing(target: str) -> Iterator[IO[str]]:
    """The text stream an export writes to: the file (gzip for `.gz`), or stdout for `-`.
    A file is written under a temporary name, readable by its owner only, synced and
    renamed when complete, so a file of the given name is never a partial export."""
    if target == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(target)
    partial = path.with_name(path.name + ".partial")
    raw = private_file(partial)
    compressed = gzip.GzipFile(fileobj=raw, mode="wb") if path.suffix == ".gz" else None
    stream = io.TextIOWrapper(compressed or raw, encoding="utf-8", newline="\n")
    try:
        yield stream
        stream.flush()
        stream.detach()  # closing the text stream must not close the file before its sync
        if compressed is not None:
            compressed.close()  # writes gzip's trailer; the file stays open
        raw.flush()
        os.fsync(raw.fileno())
        raw.close()
    except BaseException:
        for close in (stream.close, *([compressed.close] if compressed else []), raw.close):
            with contextlib.suppress(Exception):
                close()
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)


@contextmanager
def open_for_reading(source: str) -> Iterator[IO[str]]:
    """The text stream an import reads: the file, or stdin for `-`; gzip-compressed or not,
    whatever the name says (gzip's first two bytes tell)."""
    if source == "-":
        yield _text(sys.stdin.buffer)
        return
    path = Path(source)
    if not path.is_file():
        raise TransferError(f"no such file: {source}")
    with path.open("rb") as raw, _text(raw) as stream:
        yield stream


#: The first two bytes of every gzip stream.
_GZIP_MAGIC = b"\x1f\x8b"


def _text(raw: IO[bytes]) -> IO[str]:
    """UTF-8 text read from `raw`, through gzip when it starts as gzip does."""
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type]
    compressed = buffered.peek(2)[:2] == _GZIP_MAGIC
    binary: IO[bytes] = gzip.GzipFile(fileobj=buffered, mode="rb") if compressed else buffered
    return io.TextIOWrapper(binary, encoding="utf-8")
