"""Parsing and checking of client input, shared by both front doors."""

import re

from coursepulse.resolvers.errors import InvalidInput, NotFound

_ID_RE = re.compile(r"[0-9]+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAX_ID = 2**63 - 1
_MAX_ID_DIGITS = len(str(_MAX_ID))


def parse_id(value: str | int, *, field: str = "id") -> int:
    """The integer behind an ID argument.

    A value that is not a decimal number is `invalid_input`; a number that no row
    can have (0, or beyond 64 bits) is `not_found`, as any absent id would be.
    """
    text = str(value).strip()
    if not _ID_RE.fullmatch(text):
        shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
        raise InvalidInput(f"{field} must be a numeric id, got {shown}", field=field)
    digits = text.lstrip("0")
    # Longer than any 64-bit number: no row has it (and int() of thousands of digits fails).
    if len(digits) > _MAX_ID_DIGITS or not 1 <= int(digits or "0") <= _MAX_ID:
        raise NotFound(f"No object with {field} {text[:40]}")
    return int(digits)


def clean_text(value: str, *, field: str, max_length: int, required: bool = True) -> str:
    """The value without surrounding blanks; `invalid_input` if empty, too long or holding
    control characters other than tab and newlines (PostgreSQL cannot store NUL)."""
    cleaned = value.strip()
    if _CONTROL_RE.search(cleaned):
        raise InvalidInput(f"{field} must not contain control characters", field=field)
    if required and not cleaned:
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(cleaned) > max_length:
        raise InvalidInput(f"{field} must be at most {max_length} characters", field=field)
    return cleaned


def check_range(value: int, *, field: str, low: int, high: int) -> int:
    """The value if low <= value <= high, else `invalid_input`."""
    if not low <= value <= high:
        raise InvalidInput(f"{field} must be between {low} and {high}, got {value}", field=field)
    return value
