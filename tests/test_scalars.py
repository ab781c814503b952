"""The DateTime scalar's serializer writes what `datetime.isoformat` writes."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from coursepulse.schema import build_schema
from coursepulse.schema.scalars import serialize_datetime

ZONES = [UTC, None, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(seconds=-3725))]


@pytest.mark.parametrize("zone", ZONES)
def test_a_time_is_written_as_isoformat_writes_it(zone: timezone | None) -> None:
    for year in (1, 9, 999, 1000, 1970, 2026, 9999):
        for microsecond in (0, 1, 120_000, 999_999):
            value = datetime(year, 12, 31, 23, 59, 58, microsecond, tzinfo=zone)
            assert serialize_datetime(value) == value.isoformat()


def test_the_schema_serializes_times_with_it() -> None:
    schema = build_schema()
    assert schema._schema.type_map["DateTime"].serialize is serialize_datetime  # type: ignore[union-attr]


def test_a_value_that_is_not_a_time_is_refused_as_before() -> None:
    with pytest.raises(AttributeError):
        serialize_datetime("2026-12-07")
