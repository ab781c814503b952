"""`coursepulse export FILE`: the whole school, from one snapshot, as JSON Lines (records.py).

Rows are streamed table by table in primary-key order, a batch at a time, so memory stays
flat however large the school is; the service may keep running meanwhile.
"""

import json
from dataclasses import dataclass

from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from coursepulse.models.types import utcnow
from coursepulse.transfer.connection import transaction
from coursepulse.transfer.progress import Progress
from coursepulse.transfer.records import (
    Columns,
    TransferError,
    header,
    open_for_writing,
    schema_revision,
    school_tables,
    sqlite_file,
)

#: Rows fetched from the database at a time.
BATCH = 2_000


@dataclass(frozen=True)
class TransferSummary:
    """What an export wrote or an import loaded: rows by table."""

    counts: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


async def database_revision(connection: AsyncConnection) -> str | None:
    """The migration the database is at (None: not migrated)."""
    if not await connection.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
        return None
    return await connection.scalar(text("SELECT version_num FROM alembic_version"))


async def export_school(
    database_url: str, target: str, *, bar: bool | None = None
) -> TransferSummary:
    """Write every row of the database at `database_url` to `target` (a path, `.gz` for
    gzip, or `-` for stdout); returns the rows written by table."""
    tables = school_tables()
    if make_url(database_url).get_backend_name() == "sqlite":
        sqlite_file(database_url)  # an export never makes an empty database of a typo
    async with transaction(database_url, writing=False) as connection:
        revision = await database_revision(connection)
        if revision != schema_revision():
            raise TransferError(
                f"the database is at schema {revision}, this service's is {schema_revision()}:"
                " run `coursepulse migrate` first"
            )
        counts: dict[str, int] = {}
        for table in tables:
            counts[table.name] = int(
                await connection.scalar(select(func.count()).select_from(table)) or 0
            )
        first_line = header(connection.dialect.name, utcnow(), counts)
        with (
            open_for_writing(target) as out,
            Progress("exported", sum(counts.values()), bar=bar) as progress,
        ):
            out.write(json.dumps(first_line, separators=(",", ":")) + "\n")
            for table in tables:
                progress.table(table.name)
                columns = Columns.of(table)
                ordered = select(*table.columns).order_by(*table.primary_key.columns)
                result = await connection.stream(ordered.execution_options(yield_per=BATCH))
                async for rows in result.partitions():
                    out.write("".join(columns.encode(row) + "\n" for row in rows))
                    progress.advance(len(rows))
    return TransferSummary(counts)
