"""GraphQL over HTTP (the GraphQL Foundation's specification): media types and statuses.

A client that accepts `application/graphql-response+json` gets it, and with it a 4xx
status for a request error (a document that does not parse or validate, variables that
do not coerce), with no `data` entry. Clients of `application/json` keep the older
convention: 200 for every well-formed request, errors in the body.
"""

from typing import Any

from graphql import GraphQLError

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
#: The methods `/graphql` answers (OPTIONS is the CORS preflight).
ALLOWED_METHODS = "GET, POST, OPTIONS"


def _quality(accept: str, media_type: str) -> float:
    """The q-value the Accept header gives the media type (0 when absent)."""
    best = 0.0
    for part in accept.split(","):
        name, *parameters = (piece.strip() for piece in part.split(";"))
        if name.lower() != media_type:
            continue
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
        best = max(best, quality)
    return best


def response_media_type(accept: str | None) -> str:
    """The media type to answer with: graphql-response+json when the client prefers it or
    accepts it at least as much as application/json; application/json otherwise."""
    if not accept:
        return JSON
    wanted = _quality(accept, GRAPHQL_RESPONSE)
    return GRAPHQL_RESPONSE if wanted > 0 and wanted >= _quality(accept, JSON) else JSON


def is_request_error(errors: list[GraphQLError] | None, data: Any) -> bool:
    """Whether the operation never ran: no data, and only errors raised before execution
    (syntax, validation, limits, variable coercion), which have no path."""
    return data is None and bool(errors) and all(error.path is None for error in errors or ())
