"""Column types shared by the tables."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: 64-bit ids on PostgreSQL, SQLite's rowid alias (which must be INTEGER) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")
#: A 64-bit counter (seconds of study time): BIGINT on PostgreSQL; SQLite's INTEGER is 64-bit.
BigCount = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always UTC and always timezone-aware in Python.

    SQLite has no timezone type: values are stored as naive UTC there and given
    back their offset on the way out. PostgreSQL stores `timestamptz`.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time in UTC, to the second (the precision the API shows)."""
    return datetime.now(UTC).replace(microsecond=0)
