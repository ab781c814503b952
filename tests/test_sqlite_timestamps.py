"""Timestamps read from SQLite come back aware and in UTC, however the text was written;
those a driver gives as datetimes too."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

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
