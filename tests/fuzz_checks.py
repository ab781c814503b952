"""Schemathesis checks for fuzzing `/graphql` (tests/test_graphql_fuzz.py).

Loaded by the `schemathesis` CLI through the `SCHEMATHESIS_HOOKS` environment variable
(a path to this file). A fuzzed query may rightly be refused with any coded error
(`invalid_input`, `forbidden`, `not_found`, `query_too_complex`, ...); what it must
never get is a 5xx or an `internal_error`, the code of an unexpected exception that the
service masked and logged.
"""

import json
from typing import Any

import schemathesis
from schemathesis import Case, CheckContext, Response


def internal_error_messages(body: Any) -> list[str]:
    """The messages of the errors in a GraphQL response body coded `internal_error`."""
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return []
    return [
        str(error.get("message"))
        for error in body["errors"]
        if isinstance(error, dict)
        and isinstance(error.get("extensions"), dict)
        and error["extensions"].get("code") == "internal_error"
    ]


@schemathesis.check
def no_server_error(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """No 5xx status and no `internal_error` in `errors[].extensions.code`."""
    if response.status_code >= 500:
        raise AssertionError(f"Server error {response.status_code}: {response.text[:500]}")
    try:
        body = json.loads(response.content)
    except ValueError:
        return None  # not a GraphQL answer (e.g. a 4xx page): nothing coded to judge
    messages = internal_error_messages(body)
    if messages:
        raise AssertionError(f"internal_error: {messages}")
    return None
