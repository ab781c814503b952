"""Timestamps read from SQLite come back aware and in UTC, however the text was written;
those a driver gives as datetimes too, and asyncpg's as they come."""

from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from coursepulse.models.sql import _aware_utc, _sqlite_utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-04 19:40:00", datetime(2026, 12, 4, 19, 40, tzinfo=UTC)),
        ("2026-12-04 19:40:00.250000", datetime(2026, 12, 4, 19, 40, 0, 250000, tzinfo=UTC)),
        ("2026-12-04T19:40:00+02:00", datetime(2026, 12, 4, 17, 40, tzinfo=UTC)),
        ("2026-12-04 19:40:00+00:00", datetime(2026, 12, 4, 19, 40, tzinfo=UTC)),
    ],
)
def test_sqlite_text_becomes_an_aware_utc_datetime(text: str, expected: datetime) -> None:
    parsed = _sqlite_utc(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "given",
    [
        datetime(2026, 12, 4, 19, 40, tzinfo=UTC),
        datetime(2026, 12, 4, 21, 40, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 12, 4, 19, 40),
    ],
)
def test_a_driver_timestamp_comes_back_in_utc(given: datetime) -> None:
    read = _aware_utc(given)
    assert read == datetime(2026, 12, 4, 19, 40, tzinfo=UTC)
    assert read.tzinfo is UTC


async def test_asyncpg_gives_a_timestamptz_in_utc_whatever_the_sessions_zone(
    postgres_url: str,
) -> None:
    # The service reads asyncpg's timestamps as they come (models/sql.py `_result_processor`).
    url = make_url(postgres_url).set(drivername="postgresql")
    connection = await asyncpg.connect(
        url.render_as_string(hide_password=False), server_settings={"timezone": "Asia/Kolkata"}
    )
    try:
        read = await connection.fetchval("SELECT '2026-12-05 01:10:00+05:30'::timestamptz")
        assert await connection.fetchval("SHOW timezone") == "Asia/Kolkata"
    finally:
        await connection.close()
    assert read == datetime(2026, 12, 4, 19, 40, tzinfo=UTC)
    assert read.tzinfo is UTC
