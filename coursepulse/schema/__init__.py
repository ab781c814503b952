"""The GraphQL schema served at /graphql (Strawberry)."""

from strawberry import Schema
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.types import ExecutionContext

from coursepulse.schema.errors import DomainErrors
from coursepulse.schema.mutation import Mutation
from coursepulse.schema.query import Query
from coursepulse.schema.subscription import Subscription
from graphql import GraphQLError

MAX_DEPTH = 12
MAX_TOKENS = 5000
MAX_ALIASES = 30


class CoursepulseSchema(Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Errors are logged by `DomainErrors`, once and only when unexpected."""


def build_schema() -> Schema:
    """The schema with its error mapping and abuse limits."""
    return CoursepulseSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            DomainErrors,
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        ],
    )


def schema_sdl() -> str:
    """The schema as SDL, as checked in at graphql/schema.graphql."""
    return build_schema().as_str() + "\n"
