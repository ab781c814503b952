"""Alembic environment: runs on the connection handed over by `coursepulse.models.migrate`."""

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import coursepulse.models  # noqa: F401  (registers the tables on the metadata)
from coursepulse.models.migrate import include_on

target_metadata = SQLModel.metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_on(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `coursepulse migrate`, which provides the connection")
run_migrations(connection)
