"""`coursepulse import FILE`: a school exported by `coursepulse export`, loaded into an empty
database of either kind, all or nothing (INSERTs on SQLite, COPY on PostgreSQL).

Ids are kept; on PostgreSQL the id sequences are then moved past the highest ids, so new
rows never collide with imported ones. The file is read a batch at a time (memory stays
flat), in one transaction: a file cut short, a row that breaks a constraint or an
interruption leaves the target as it was.
"""

from collections.abc import Iterator
from typing import IO

import asyncpg
from sqlalchemy import Table, insert, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncConnection

from coursepulse.transfer.connection import transaction
from coursepulse.transfer.export import TransferSummary, database_revision
from coursepulse.transfer.progress import Progress
from coursepulse.transfer.records import (
    UNREADABLE,
    Columns,
    TransferError,
    check_header,
    open_for_reading,
    parse_row,
    schema_revision,
    school_tables,
)

#: Rows inserted per statement batch.
BATCH = 1_000


async def _rows_held(connection: AsyncConnection, tables: list[Table]) -> list[str]:
    """The names of the tables that hold at least one row."""
    held = []
    for table in tables:
        if await connection.scalar(select(1).select_from(table).limit(1)) is not None:
            held.append(table.name)
    return held


async def _empty(connection: AsyncConnection, tables: list[Table]) -> None:
    if connection.dialect.name == "postgresql":
        names = ", ".join(f'"{table.name}"' for table in tables)
        await connection.execute(text(f"TRUNCATE {names}"))
        return
    for table in reversed(tables):
        await connection.execute(table.delete())


async def move_sequences(connection: AsyncConnection, tables: list[Table]) -> None:
    """PostgreSQL: each id sequence continues after the highest id in its table (after
    rows were written with their ids: an import, the benchmark's dataset)."""
    for table in tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or keys[0].name != "id":
            continue
        await connection.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"  # noqa: S608
                f' COALESCE((SELECT MAX(id) FROM "{table.name}"), 0) + 1, false)'
            )
        )


def _lines(stream: IO[str]) -> Iterator[str]:
    """The file's lines; a file that cannot be read to its end is a TransferError."""
    try:
        yield from stream
    except UNREADABLE as error:
        raise TransferError(
            f"the file cannot be read ({type(error).__name__}: {error}): is it cut short,"
            " or not what its name says (.gz: gzip, else UTF-8 JSON Lines)?"
        ) from None


class _Loader:
    """Inserts rows a batch at a time, table by table, in the header's order."""

    def __init__(self, connection: AsyncConnection, counts: dict[str, int]) -> None:
        self.connection = connection
        self.order = list(counts)
        self.columns = {table.name: Columns.of(table) for table in school_tables()}
        self.loaded = dict.fromkeys(counts, 0)
        self.table = ""
        self.batch: list[dict[str, object]] = []

    async def add(self, name: str, values: object, line_number: int, progress: Progress) -> None:
        columns = self.columns.get(name)
        if columns is None:
            raise TransferError(f"line {line_number}: no table is named {name!r}")
        if name != self.table:
            if self.table and self.order.index(name) < self.order.index(self.table):
                raise TransferError(
                    f"line {line_number}: {name} rows must come before {self.table} rows"
                )
            await self.flush(progress)
            self.table = name
            progress.table(name)
        self.batch.append(columns.decode(values, line_number))
        if len(self.batch) >= BATCH:
            await self.flush(progress)

    async def flush(self, progress: Progress) -> None:
        if not self.batch:
            return
        table = self.columns[self.table].table
        try:
            if self.connection.dialect.name == "postgresql":
                await self._copy(table)
            else:
                await self.connection.execute(insert(table), self.batch)
        except StatementError as error:  # the database's refusal, or a value of a wrong type
            reason = str(error.orig or error).strip().splitlines()[0][:300]
            raise TransferError(f"{table.name} rows could not be stored: {reason}") from error
        except (asyncpg.PostgresError, asyncpg.InterfaceError, TypeError, ValueError) as error:
            # COPY: the server's refusal, or a value asyncpg cannot encode for its column
            reason = str(error).strip().splitlines()[0][:300]
            raise TransferError(f"{table.name} rows could not be stored: {reason}") from error
        self.loaded[self.table] += len(self.batch)
        progress.advance(len(self.batch))
        self.batch = []

    async def _copy(self, table: Table) -> None:
        """PostgreSQL: the batch by COPY, in the import's transaction (several times faster
        than INSERTs; the same constraints are checked)."""
        names = self.columns[self.table].names
        raw = (await self.connection.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.copy_records_to_table(
            table.name,
            records=[tuple(row[name] for name in names) for row in self.batch],
            columns=list(names),
        )


async def import_school(
    database_url: str, source: str, *, replace: bool = False, bar: bool | None = None
) -> TransferSummary:
    """Load the export at `source` (a path, `.gz` for gzip, or `-` for stdin) into the
    migrated database at `database_url`; returns the rows loaded by table.

    Refuses a database that holds any row, unless `replace`: then what it holds is
    deleted first, in the same transaction.
    """
    tables = school_tables()
    with open_for_reading(source) as stream:
        lines = _lines(stream)
        first = next(lines, "")
        if not first.strip():
            raise TransferError("the file is empty")
        counts = check_header(first)
        async with transaction(database_url, writing=True) as connection:
            revision = await database_revision(connection)
            if revision != schema_revision():
                raise TransferError(
                    f"the database is at schema {revision}, this service's is"
                    f" {schema_revision()}: run `coursepulse migrate` first"
                )
            held = await _rows_held(connection, tables)
            if held and not replace:
                raise TransferError(
                    f"the database is not empty ({', '.join(held)} hold rows): import into an"
                    " empty database, or pass --replace to delete what it holds first"
                )
            if held:
                await _empty(connection, tables)
            loader = _Loader(connection, counts)
            with Progress("imported", sum(counts.values()), bar=bar) as progress:
                for line_number, line in enumerate(lines, start=2):
                    if line.strip():
                        name, values = parse_row(line, line_number)
                        await loader.add(name, values, line_number, progress)
                await loader.flush(progress)
            short = [name for name, count in counts.items() if loader.loaded[name] != count]
            if short:
                detail = ", ".join(
                    f"{name} {loader.loaded[name]} of {counts[name]}" for name in short
                )
                raise TransferError(
                    f"the file does not hold the rows its header announces ({detail}):"
                    " it may be cut short; nothing was imported"
                )
            if connection.dialect.name == "postgresql":
                await move_sequences(connection, tables)
    if connection.dialect.name == "postgresql":
        await _analyze(database_url)
    return TransferSummary(loader.loaded)


async def _analyze(database_url: str) -> None:
    """PostgreSQL: fresh planner statistics for the loaded tables (else the first plans guess)."""
    async with transaction(database_url, writing=True) as connection:
        await connection.execute(text("ANALYZE"))
