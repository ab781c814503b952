"""The GraphQL schema served at /graphql (Strawberry)."""

from graphql import ASTValidationRule, GraphQLError, ValidationContext
from strawberry import Schema
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.types import ExecutionContext

from coursepulse.schema.errors import DomainErrors
from coursepulse.schema.mutation import Mutation
from coursepulse.schema.query import Query
from coursepulse.schema.subscription import Subscription

MAX_DEPTH = 12
MAX_TOKENS = 5000
MAX_ALIASES = 30


class CoursepulseSchema(Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Errors are logged by `DomainErrors`, once and only when unexpected."""


def _fail_closed(limiter: AddValidationRules) -> AddValidationRules:
    """The limiter, refusing (as invalid input) documents its rules cannot measure.

    Strawberry's limiter rules raise on some documents graphql-core accepts or
    reports later (an empty selection set `{ }`, a spread of an unknown fragment).
    Raised there, the exception escapes `DomainErrors` and reaches the client raw,
    without a code; skipping the check instead would let an unmeasured document run.
    """

    def wrap(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
        class FailClosed(rule):  # type: ignore[valid-type,misc]
            def __init__(self, context: ValidationContext) -> None:
                try:
                    super().__init__(context)
                except Exception:  # any failure refuses the document
                    ASTValidationRule.__init__(self, context)
                    self.report_error(GraphQLError("The document is malformed or empty"))

        return FailClosed

    limiter.validation_rules = [wrap(rule) for rule in limiter.validation_rules]
    return limiter


def build_schema() -> Schema:
    """The schema with its error mapping and abuse limits."""
    return CoursepulseSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            DomainErrors,
            lambda: _fail_closed(QueryDepthLimiter(max_depth=MAX_DEPTH)),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: _fail_closed(MaxAliasesLimiter(max_alias_count=MAX_ALIASES)),
        ],
    )


def schema_sdl() -> str:
    """The schema as SDL, as checked in at graphql/schema.graphql."""
    return build_schema().as_str() + "\n"
