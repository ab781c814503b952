"""Schema migrations (Alembic) run against the service's own engine."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config that finds the packaged migrations, without an alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


#: Advisory lock key taken while migrating, so processes started together migrate in turn.
_MIGRATION_LOCK = 0x63706D67


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database schema up to `revision` (the newest by default).

    On PostgreSQL, concurrent starts (several `serve` processes) wait for each
    other; SQLite serializes the schema change by its own write lock.
    """
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
            )
        await connection.run_sync(_upgrade, revision)
