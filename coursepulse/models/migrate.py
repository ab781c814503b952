"""Schema migrations (Alembic), run on an engine of their own for the service's database."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from coursepulse.models.sqlite import BUSY_TIMEOUT_MS
from coursepulse.models.tables import ONLY_ON

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: Advisory lock key taken while migrating, so processes started together migrate in turn.
_MIGRATION_LOCK = 0x63706D67


def alembic_config() -> Config:
    """An Alembic config that finds the packaged migrations, without an alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def include_on(dialect: str) -> Callable[..., bool]:
    """Alembic's `include_object` for one engine: skips what exists on another engine only."""

    def include(item: Any, _name: str | None, _kind: str, _reflected: bool, _other: Any) -> bool:
        only = getattr(item, "info", {}).get(ONLY_ON)
        return only is None or only == dialect

    return include


def schema_engine(database_url: str | URL) -> AsyncEngine:
    """A SQLAlchemy engine for schema changes (migrations, tests' setup), not for requests.

    SQLite connections wait for the write lock (busy timeout) and use the write-ahead
    log, as the service's own connections do (models/sqlite.py).
    """
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+asyncpg")
    engine = create_async_engine(url)
    if url.get_backend_name() == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.close()

    return engine


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(database_url: str | URL, revision: str = "head") -> None:
    """Bring the database schema up to `revision` (the newest by default).

    On PostgreSQL, concurrent starts (several `serve` processes) wait for each
    other; SQLite serializes the schema change by its own write lock.
    """
    engine = schema_engine(database_url)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
            await connection.run_sync(_upgrade, revision)
    finally:
        await engine.dispose()
