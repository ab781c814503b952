"""Turning failures into the contract's error shape: `extensions.code` and `extensions.status`.

Domain errors keep their message and gain their code; errors that already carry a code
keep it (the request limits' `query_too_complex`, with `cost` and `maxCost`, and the
persisted-query errors); other request errors (syntax, validation, variables) become
`invalid_input`; anything else is masked as
`internal_error` and logged with the request id, so no stack trace or SQL leaks.
"""

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from coursepulse.resolvers.errors import DomainError

log = logging.getLogger("coursepulse.errors")

INTERNAL_MESSAGE = "Internal server error"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def extensions_of(code: str, status: int, extra: dict[str, Any]) -> dict[str, Any]:
    """An error's GraphQL extensions: code, status and its context fields (camelCase)."""
    return {"code": code, "status": status, **{_camel(key): value for key, value in extra.items()}}


def error_extensions(error: DomainError) -> dict[str, Any]:
    """The GraphQL extensions of a domain error."""
    return extensions_of(error.code, error.status, error.extra)


def error_entry(code: str, status: int, message: str, **extra: Any) -> dict[str, Any]:
    """One GraphQL error (`message`, `extensions`) for a failure outside GraphQL execution."""
    return {"message": message, "extensions": extensions_of(code, status, extra)}


def error_document(code: str, status: int, message: str, **extra: Any) -> dict[str, Any]:
    """The GraphQL-shaped error document for failures outside GraphQL execution."""
    return {"errors": [error_entry(code, status, message, **extra)]}


def _rebuild(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


def convert_error(error: GraphQLError, request_id: str | None) -> GraphQLError:
    """The error in the contract's shape; an error that already has a code is kept."""
    if error.extensions and "code" in error.extensions:
        return error
    original = error.original_error
    if isinstance(original, DomainError):
        return _rebuild(error, original.message, error_extensions(original))
    if error.path is None and (
        original is None or isinstance(original, GraphQLError) or error.nodes
    ):
        # Raised before execution: syntax, validation, limits or variable coercion
        # (which points at the variable). Anything else outside a field is unexpected.
        return _rebuild(error, error.message, {"code": "invalid_input", "status": 400})
    log.error(
        "unexpected error in %s (request %s)",
        ".".join(str(part) for part in error.path or ()) or "operation",
        request_id,
        exc_info=original or error,
    )
    return _rebuild(
        error,
        INTERNAL_MESSAGE,
        {"code": "internal_error", "status": 500, "requestId": request_id},
    )


def request_id_of(execution_context: Any) -> str | None:
    """The request id of the operation's context, when it has one."""
    return getattr(getattr(execution_context, "context", None), "request_id", None)


class DomainErrors(SchemaExtension):
    """Gives every error of a result the contract's extensions; masks unexpected ones."""

    def convert(self, error: GraphQLError) -> GraphQLError:
        return convert_error(error, request_id_of(self.execution_context))

    def _process(self, result: Any) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [self.convert(error) for error in errors]

    def on_operation(self) -> Iterator[None]:
        self._streamed = False
        yield
        summary = getattr(self.execution_context.context, "operation", None)
        if summary is not None and self.execution_context.graphql_document is not None:
            summary.named(
                self.execution_context.operation_name, self.execution_context.graphql_document
            )
        # Subscriptions and other streamed operations were handled result by result.
        if not self._streamed:
            self._process(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Each result of a subscription, before it is sent to the client."""
        self._streamed = True
        self._process(result)
        yield
