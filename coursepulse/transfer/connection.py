"""The engine an export reads through (one snapshot) and an import writes through (one
transaction), on either database."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from coursepulse.models.migrate import schema_engine


@asynccontextmanager
async def transaction(database_url: str, *, writing: bool) -> AsyncIterator[AsyncConnection]:
    """A connection inside one transaction, committed at the end of a writing block that
    raised nothing, rolled back otherwise.

    A read sees one snapshot of the whole database: REPEATABLE READ, READ ONLY on
    PostgreSQL (as pg_dump reads), a deferred BEGIN in WAL mode on SQLite. Neither holds
    the service's writers back. A write on SQLite takes the write lock at BEGIN IMMEDIATE.
    """
    engine = schema_engine(database_url)  # SQLite: WAL, foreign keys, busy timeout
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        begin = "BEGIN IMMEDIATE" if writing else "BEGIN"

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # BEGIN is ours to send (the driver's own would wait for the first write).
            dbapi_connection.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

    try:
        async with engine.connect() as connection:
            if not sqlite and not writing:
                await connection.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            async with connection.begin() as outer:
                yield connection
                if not writing:
                    await outer.rollback()
    finally:
        await engine.dispose()
