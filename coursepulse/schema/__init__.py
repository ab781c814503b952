"""The GraphQL schema served at /graphql (Strawberry)."""

import contextlib
from collections.abc import Iterator
from functools import lru_cache

from graphql import ASTValidationRule, GraphQLError, ValidationContext, parse
from strawberry import Schema
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext

from coursepulse.schema.context import FreshLoaders
from coursepulse.schema.errors import DomainErrors, convert_error, request_id_of
from coursepulse.schema.mutation import Mutation
from coursepulse.schema.query import Query
from coursepulse.schema.shared_events import SharedEventExecutor
from coursepulse.schema.subscription import Subscription

MAX_DEPTH = 12
MAX_TOKENS = 5000
MAX_ALIASES = 30
#: Distinct documents whose parse and validation results are kept (clients send a few).
DOCUMENT_CACHE_SIZE = 512


class CoursepulseSchema(Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Errors are converted and logged by `DomainErrors`, once and only when unexpected.

        An exception from the execution machinery itself (outside any resolver) skips the
        extension's hooks and reaches the result only through here: it is converted (and
        so masked and logged) in place.
        """
        errors[:] = [convert_error(error, request_id_of(execution_context)) for error in errors]


def _fail_closed(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
    """The rule, refusing (as invalid input) documents it cannot measure.

    Strawberry's limiter rules raise on some documents graphql-core accepts or
    reports later (an empty selection set `{ }`, a spread of an unknown fragment).
    Raised there, the exception escapes `DomainErrors` and reaches the client raw,
    without a code; skipping the check instead would let an unmeasured document run.
    """

    class FailClosed(rule):  # type: ignore[valid-type,misc]
        def __init__(self, context: ValidationContext) -> None:
            try:
                super().__init__(context)
            except Exception:  # any failure refuses the document
                ASTValidationRule.__init__(self, context)
                self.report_error(GraphQLError("The document is malformed or empty"))

    return FailClosed


#: Depth and alias limits, built once: the same rule classes on every request let the
#: validation cache recognise a document it has already validated.
_LIMIT_RULES = [
    _fail_closed(rule)
    for limiter in (
        QueryDepthLimiter(max_depth=MAX_DEPTH),
        MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
    )
    for rule in limiter.validation_rules
]


class Documents(SchemaExtension):
    """Parse and validation caches with the abuse limits, in one extension.

    Limits: at most MAX_TOKENS tokens, MAX_DEPTH levels and MAX_ALIASES aliases.
    Parsed and validated documents are kept (LRU, DOCUMENT_CACHE_SIZE) so a client's
    usual operations are parsed and validated once. One extension instead of four:
    Strawberry visits every extension for every result, and a live course sends
    thousands of results per event.
    """

    cached_parse = staticmethod(lru_cache(maxsize=DOCUMENT_CACHE_SIZE)(parse))
    cached_validate = staticmethod(lru_cache(maxsize=DOCUMENT_CACHE_SIZE)(validate_document))

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = MAX_TOKENS
        context.validation_rules = context.validation_rules + tuple(_LIMIT_RULES)
        yield

    def on_parse(self) -> Iterator[None]:
        """A document that does not parse is left to the normal path.

        A syntax error raised inside this hook would bypass the operation's error
        handling and reach the client without a code; parsed again outside the hook,
        it is reported as `invalid_input` like any other request error.
        """
        context = self.execution_context
        if context.query:
            with contextlib.suppress(GraphQLError):
                context.graphql_document = self.cached_parse(context.query, **context.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.pre_execution_errors = self.cached_validate(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
        yield


def build_schema() -> Schema:
    """The schema with its error mapping, abuse limits and parse/validation caches."""
    return CoursepulseSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        execution_context_class=SharedEventExecutor,
        extensions=[DomainErrors, FreshLoaders, Documents],
    )


def schema_sdl() -> str:
    """The schema as SDL, as checked in at graphql/schema.graphql."""
    return build_schema().as_str() + "\n"
