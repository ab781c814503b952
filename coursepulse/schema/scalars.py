"""Scalars served with another serializer than Strawberry's, for the same text.

A roster page has two times per student; Python's `datetime.isoformat` takes several
microseconds for an aware time, a few percent of the page. orjson (already the service's
JSON encoder) writes a UTC or naive time as the same RFC 3339 text as `isoformat`, in a
fraction of it; any other time zone keeps `isoformat` (its offset may carry seconds).
"""

import dataclasses
from datetime import UTC, datetime
from typing import Any

import orjson
from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition


def serialize_datetime(value: Any) -> Any:
    """The time as `value.isoformat()` gives it (a value of another type: as Strawberry's
    serializer treats it)."""
    if type(value) is datetime and (value.tzinfo is UTC or value.tzinfo is None):
        return orjson.dumps(value)[1:-1].decode()
    return value.isoformat()


DATETIME: ScalarDefinition = dataclasses.replace(DateTimeDefinition, serialize=serialize_datetime)

#: The schema's `scalar_overrides`.
OVERRIDES: dict[object, Any] = {datetime: DATETIME}
