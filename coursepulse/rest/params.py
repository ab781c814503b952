"""Reading path and query parameters; a bad one is `invalid_input` naming it."""

import re
from collections.abc import Mapping

from coursepulse.resolvers.errors import InvalidInput
from coursepulse.resolvers.validation import parse_id

MAX_PAGE = 2**31 - 1
# ASCII digits only (str.isdigit() also takes superscripts int() refuses), one optional sign.
_INTEGER_RE = re.compile(r"-?[0-9]+")


def path_id(match_info: Mapping[str, str], name: str) -> int:
    return parse_id(match_info[name], field=name)


def optional_int(query: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    """An integer query parameter within [low, high], or its default when absent."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    raw = raw.strip()
    if not _INTEGER_RE.fullmatch(raw):
        raise InvalidInput(f"Invalid parameter: {name} must be an integer", field=name)
    # More digits than any bound here has: out of range without int() (slow on thousands).
    value = int(raw) if len(raw.lstrip("-")) <= 12 else high + 1
    if not low <= value <= high:
        raise InvalidInput(
            f"Invalid parameter: {name} must be between {low} and {high}", field=name
        )
    return value


def choice(query: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    """A query parameter that must be one of `allowed` (case-insensitive)."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value not in allowed:
        raise InvalidInput(
            f"Invalid parameter: {name} must be one of {', '.join(allowed)}", field=name
        )
    return value
