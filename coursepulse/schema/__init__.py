"""The GraphQL schema served at /graphql (Strawberry)."""

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from inspect import isawaitable
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    NameNode,
    OperationDefinitionNode,
    SelectionSetNode,
    execute,
    parse,
    specified_rules,
)
from graphql import OperationType as AstOperationType
from strawberry import Schema
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from coursepulse.models.transactions import SnapshotNeeded
from coursepulse.schema import compiled_queries, direct_resolvers, operation_plans, scalars
from coursepulse.schema.caches import BoundedCache
from coursepulse.schema.compiled_queries import CompiledQuery, compile_query
from coursepulse.schema.context import Context, FreshLoaders
from coursepulse.schema.errors import DomainErrors, convert_error, request_id_of
from coursepulse.schema.executor import CollectedSelections, collected_for
from coursepulse.schema.limits import (
    CostModel,
    CostWalk,
    Limits,
    ValidationBudgetExceeded,
    too_complex,
    with_budget,
    with_limits,
)
from coursepulse.schema.mutation import Mutation
from coursepulse.schema.operation_plans import OperationPlan, plan_operation
from coursepulse.schema.persisted import PersistedQueries, Resolved, load_manifest
from coursepulse.schema.query import Query
from coursepulse.schema.read_plans import ReadPlan
from coursepulse.schema.shared_events import SharedEventExecutor
from coursepulse.schema.subscription import Subscription
from coursepulse.settings import Settings

#: Parsed documents and their validation are kept for this many bytes of document text
#: (a parsed document takes about 100 bytes of memory per byte of text: ~30 MB in all).
DOCUMENT_CACHE_BYTES = 320_000


class CoursepulseSchema(Schema):
    #: Set by `build_schema`: the limits, caches and cost model of this schema's requests.
    documents: "DocumentPolicy"

    async def execute_prepared(
        self,
        operation: "PreparedOperation",
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Context,
    ) -> ExecutionResult | None:
        """The result of an operation validated before, as `execute` gives it; None when
        it costs more than the viewer may spend (the full path then says so).

        What the schema's extensions do for every request is done here directly, without
        their per-request hooks: the operation's own read transaction and DataLoaders
        (`FreshLoaders`), the cost limit (`Documents`; parsing and validation were done
        and kept), and errors in the contract's shape (`DomainErrors`).
        """
        context.operation.named(operation_name, operation.document)
        over = self.documents.cost_error(
            operation.query, operation.document, operation_name, variables, context
        )
        if over is not None:
            return None
        plan = operation.reads
        if plan is not None and plan.one_statement:
            data, errors, _ = await self._execute_once(
                operation, variables, operation_name, context, one_statement=True
            )
            if not any(isinstance(error.original_error, SnapshotNeeded) for error in errors):
                return self._result(data, errors, context)
            plan.missed()
        data, errors, statements = await self._execute_once(
            operation, variables, operation_name, context, one_statement=False
        )
        if plan is not None:
            plan.learn(statements)
        return self._result(data, errors, context)

    async def _execute_once(
        self,
        operation: "PreparedOperation",
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Context,
        *,
        one_statement: bool,
    ) -> tuple[dict[str, Any] | None, list[GraphQLError], int]:
        """The operation's data, its errors as raised, and the statements its reads ran.

        The request's own context serves the first run (its reads are still unused): a
        copy with reads of its own is made only to run again.
        """
        if context.reads.unused:
            context.reads.one_statement = one_statement
            own = context
        else:
            own = context.for_operation(one_statement=one_statement)
        if operation.compiled is not None:
            try:
                data = await compiled_queries.execute(operation.compiled, variables, own)
            except compiled_queries.Fallback as fallback:
                await own.reads.close()
                if isinstance(fallback.__cause__, SnapshotNeeded):  # read again in a snapshot
                    error = GraphQLError(str(fallback.__cause__), original_error=fallback.__cause__)
                    return None, [error], own.reads.statements
                # graphql-core runs it again and reports what the compiled run met.
                own = context.for_operation(one_statement=one_statement)
            else:
                await own.reads.close()
                return data, [], own.reads.statements
        try:
            result = operation_plans.run(
                operation.plan,
                self._schema,
                self.execution_context_class,
                variables,
                own,
                is_awaitable=optimized_is_awaitable,
                collected=operation.collected,
            )
            if result is None:  # graphql-core words what is wrong with the request
                result = execute(
                    self._schema,
                    operation.document,
                    variable_values=variables,
                    operation_name=operation_name,
                    context_value=own,
                    is_awaitable=optimized_is_awaitable,
                    executor_class=self.execution_context_class,
                    collected=operation.collected,
                )
            if isawaitable(result):
                result = await result
            result = operation_plans.single_result(result)
            data, errors = result.data, result.errors or []
        except Exception as error:  # as Schema.execute: the machinery itself failed
            data, errors = None, [GraphQLError(str(error), original_error=error)]
        finally:
            await own.reads.close()
        return data, errors, own.reads.statements

    @staticmethod
    def _result(
        data: dict[str, Any] | None, errors: list[GraphQLError], context: Context
    ) -> ExecutionResult:
        """The result with its errors in the contract's shape (masked where unexpected)."""
        converted = [convert_error(error, context.request_id) for error in errors]
        return ExecutionResult(data=data, errors=converted or None)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Errors are converted and logged by `DomainErrors`, once and only when unexpected.

        An exception from the execution machinery itself (outside any resolver) skips the
        extension's hooks and reaches the result only through here: it is converted (and
        so masked and logged) in place.
        """
        errors[:] = [convert_error(error, request_id_of(execution_context)) for error in errors]


#: A cost as it depends on some variables: their names, and the cost by their values.
_CostPlan = tuple[tuple[str, ...], dict[tuple[object, ...], int]]
#: Costs kept per operation of a document (one per page size a client asks for, say).
_COSTS_KEPT = 16


@dataclass
class _Prepared:
    """A document as parsed, its validation errors once validated, and its costs."""

    document: DocumentNode
    errors: list[GraphQLError] | None = None
    costs: dict[str | None, _CostPlan] = field(default_factory=dict)
    #: What each query's previous runs say about its reads, by operation name.
    reads: dict[str | None, ReadPlan] = field(default_factory=dict)
    #: Its selections as collected by earlier requests (None: they depend on variables).
    collected: CollectedSelections | None = None
    #: What graphql-core works out from it per operation, by name (operation_plans.py).
    plans: dict[str | None, OperationPlan | None] = field(default_factory=dict)
    #: Its queries compiled, by operation name (compiled_queries.py; None: not compiled).
    compiled: dict[str | None, CompiledQuery | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.collected = collected_for(self.document)

    def read_plan(self, operation_name: str | None) -> ReadPlan:
        """The read plan of the named query (kept for as many names as `plans`)."""
        plan = self.reads.get(operation_name)
        if plan is None:
            if len(self.reads) >= _COSTS_KEPT:
                self.reads.clear()
            plan = self.reads[operation_name] = ReadPlan()
        return plan

    def plan_of(self, schema: GraphQLSchema, operation_name: str | None) -> OperationPlan | None:
        """The named operation's plan (kept for up to _COSTS_KEPT names); None where
        graphql-core reports an error (no such single operation, say)."""
        if operation_name not in self.plans:
            if len(self.plans) >= _COSTS_KEPT:
                self.plans.clear()
            self.plans[operation_name] = plan_operation(schema, self.document, operation_name)
        return self.plans[operation_name]

    def compiled_of(
        self, schema: GraphQLSchema, operation_name: str | None, plan: OperationPlan
    ) -> CompiledQuery | None:
        """The named query compiled (kept for as many names as `plans`); None where
        graphql-core's executor runs it (a directive makes the selection depend on the
        variables, or its shape is not compiled)."""
        if operation_name not in self.compiled:
            if len(self.compiled) >= _COSTS_KEPT:
                self.compiled.clear()
            self.compiled[operation_name] = (
                compile_query(schema, plan, optimized_is_awaitable)
                if self.collected is not None
                else None
            )
        return self.compiled[operation_name]


@dataclass(frozen=True, slots=True)
class PreparedOperation:
    """A request's operation whose document is parsed and validated already."""

    query: str
    document: DocumentNode
    #: For a query, what its previous runs say about its reads (None for a mutation).
    reads: ReadPlan | None
    #: The document's selections collected by earlier requests (see `collected_for`).
    collected: CollectedSelections | None
    #: What graphql-core works out from the document for the operation.
    plan: OperationPlan
    #: The query compiled (compiled_queries.py); None where graphql-core's executor runs it.
    compiled: CompiledQuery | None = None


def _cost_key(names: tuple[str, ...], variables: object) -> tuple[object, ...] | None:
    """The values of `names` as a key (type included: True is not 1); None: not keyable."""
    given = variables if isinstance(variables, Mapping) else {}
    key: list[object] = []
    for name in names:
        value = given.get(name)
        if not isinstance(value, int | str | None) or (isinstance(value, str) and len(value) > 64):
            return None
        key.append((name in given, type(value).__name__, value))
    return tuple(key)


class DocumentPolicy:
    """What a schema's requests may ask: limits, cost maxima, and the document cache.

    One per schema (so per app): two apps in one process share no cache.
    """

    def __init__(self, schema: GraphQLSchema, settings: Settings, limits: Limits) -> None:
        self.schema = schema
        self.settings = settings
        self.limits = limits
        self.cost_model = CostModel(schema)
        self.limit_rule = with_limits(limits)
        self.budget_rule = with_budget(limits.validation_seconds)
        self.rules = (self.limit_rule, *specified_rules, self.budget_rule)
        self.cache: BoundedCache[_Prepared] = BoundedCache(DOCUMENT_CACHE_BYTES)
        #: Whether queries run compiled where they can (compiled_queries.py).
        self.compile_queries = settings.compiled_queries
        manifest = settings.trusted_documents
        self.persisted = PersistedQueries(
            settings.persisted_queries_bytes,
            trusted=load_manifest(manifest) if manifest is not None else None,
        )

    def parse(self, query: str) -> DocumentNode:
        """The parsed document, from the cache when it was seen recently; raises GraphQLError."""
        prepared = self.cache.get(query)
        if prepared is None:
            prepared = _Prepared(parse(query, max_tokens=self.limits.tokens))
            self.cache.put(query, prepared, len(query))
        return prepared.document

    def validate(
        self,
        query: str | None,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...] | None = None,
    ) -> list[GraphQLError]:
        """The document's validation errors (limits first), computed once per document.

        `rules` other than graphql-core's (an extension may add some) are run every time.
        """
        if rules is not None and rules != tuple(specified_rules):
            return validate_document(
                self.schema, document, (self.limit_rule, *rules, self.budget_rule)
            )
        prepared = self.cache.get(query) if query else None
        if prepared is not None and prepared.document is document and prepared.errors is not None:
            return prepared.errors
        errors = validate_document(self.schema, document, self.rules)
        # Running out of time says nothing lasting about the document: not kept.
        if prepared is not None and not any(
            isinstance(error, ValidationBudgetExceeded) for error in errors
        ):
            prepared.errors = errors
        return errors

    def prepared(
        self, query: object, operation_name: object, extensions: object
    ) -> PreparedOperation | None:
        """The request's query or mutation when nothing is left to check but its cost:
        the document (sent, persisted or trusted) was parsed and validated before without
        errors. None for anything else, which takes the full path (`Documents`) that
        answers every other case.
        """
        if not (
            isinstance(query, str | None)
            and isinstance(operation_name, str | None)
            and isinstance(extensions, dict | None)
        ):
            return None
        resolved = self.persisted.resolve(query, extensions)
        if not isinstance(resolved, Resolved) or resolved.register or not resolved.query:
            return None
        prepared = self.cache.get(resolved.query)
        if prepared is None or prepared.errors != []:
            return None
        plan = prepared.plan_of(self.schema, operation_name)
        if plan is None:
            return None
        kind = plan.operation.operation
        compiled: CompiledQuery | None = None
        if kind is AstOperationType.QUERY:
            reads = prepared.read_plan(operation_name)
            if self.compile_queries:
                compiled = prepared.compiled_of(self.schema, operation_name, plan)
        elif kind is AstOperationType.MUTATION:
            reads = None
        else:
            return None
        return PreparedOperation(
            resolved.query,
            prepared.document,
            reads,
            prepared.collected,
            plan,
            compiled,
        )

    def max_cost(self, context: object) -> int:
        """The most this request may cost: less without a signed-in viewer."""
        if getattr(context, "viewer", None) is None:
            return self.settings.anonymous_max_query_cost
        return self.settings.max_query_cost

    def cost(
        self,
        query: str | None,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
    ) -> int:
        """The operation's cost, kept with the document for the variables it depends on."""
        prepared = self.cache.get(query) if query else None
        if prepared is None or prepared.document is not document:
            return self.cost_model.cost(document, operation_name, variables)
        plan = prepared.costs.get(operation_name)
        if plan is not None:
            key = _cost_key(plan[0], variables)
            if key is not None and key in plan[1]:
                return plan[1][key]
        walk = CostWalk(self.cost_model, document, operation_name, variables or {})
        cost = walk.cost()
        names = tuple(dict.fromkeys(walk.read))
        key = _cost_key(names, variables)
        if key is not None:
            known = prepared.costs.setdefault(operation_name, (names, {}))[1]
            if len(known) >= _COSTS_KEPT:
                known.clear()
            known[key] = cost
        return cost

    def cost_error(
        self,
        query: str | None,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        context: object,
    ) -> GraphQLError | None:
        """A `query_too_complex` error when the operation costs more than the viewer of
        `context` may spend; None when it may run."""
        cost = self.cost(query, document, operation_name, variables)
        maximum = self.max_cost(context)
        if cost <= maximum:
            return None
        return too_complex(
            f"The operation costs {cost}, more than the {maximum} allowed",
            cost=cost,
            maxCost=maximum,
        )

    def cost_errors(self, execution_context: ExecutionContext) -> list[GraphQLError]:
        """`cost_error` for the operation an execution context is about to run."""
        document = execution_context.graphql_document
        if document is None:
            return []
        error = self.cost_error(
            execution_context.query,
            document,
            execution_context.operation_name,
            execution_context.variables,
            execution_context.context,
        )
        return [error] if error is not None else []


class Documents(SchemaExtension):
    """Parsing and validation through the schema's `DocumentPolicy`, in one extension.

    Limits (see coursepulse/schema/limits.py): tokens, depth, aliases, directives, fields,
    fragment spreads and a CPU budget for validation, then the operation's cost. Parsed
    and validated documents are kept (bounded by bytes), so a client's usual operations
    are parsed and validated once. One extension instead of four: Strawberry visits
    every extension for every result, and a live course sends thousands of results per
    event.
    """

    @property
    def policy(self) -> DocumentPolicy:
        return self.execution_context.schema.documents  # type: ignore[attr-defined,no-any-return]

    def on_operation(self) -> Iterator[None]:
        """Sets the parser's token limit; resolves persisted and trusted documents."""
        context = self.execution_context
        context.parse_options["max_tokens"] = self.policy.limits.tokens
        self._register: str | None = None
        resolved = self.policy.persisted.resolve(context.query, context.operation_extensions)
        if isinstance(resolved, Resolved):
            context.query = resolved.query
            self._register = resolved.register
        else:
            _refuse(context, resolved)
        yield

    def on_parse(self) -> Iterator[None]:
        """A document that does not parse is left to the normal path.

        A syntax error raised inside this hook would bypass the operation's error
        handling and reach the client without a code; parsed again outside the hook,
        it is reported as `invalid_input` like any other request error.
        """
        context = self.execution_context
        if context.query and context.graphql_document is None:
            with contextlib.suppress(GraphQLError):
                context.graphql_document = self.policy.parse(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.pre_execution_errors is None and context.graphql_document is not None:
            errors = self.policy.validate(
                context.query, context.graphql_document, context.validation_rules
            )
            if not errors and self._register and context.query:
                self.policy.persisted.register(self._register, context.query)
            context.pre_execution_errors = errors or self.policy.cost_errors(context)
        yield


def _refuse(context: ExecutionContext, error: GraphQLError) -> None:
    """Ends the operation before parsing with `error`, as Strawberry ends invalid ones.

    Strawberry needs a document to tell the operation's type (and refuses types the
    transport does not allow) before it looks at validation errors: it gets a stand-in
    of an allowed type, which never runs since the operation already has its error.
    """
    allowed = context.allowed_operations
    kind = OperationType.QUERY if OperationType.QUERY in allowed else next(iter(allowed))
    name = context.operation_name if isinstance(context.operation_name, str) else None
    context.graphql_document = DocumentNode(
        definitions=(
            OperationDefinitionNode(
                operation=AstOperationType(kind.value),
                name=NameNode(value=name) if name else None,
                variable_definitions=(),
                directives=(),
                selection_set=SelectionSetNode(
                    selections=(FieldNode(name=NameNode(value="__typename")),)
                ),
            ),
        )
    )
    context.pre_execution_errors = [error]


class CachedNameConverter(NameConverter):
    """Strawberry's names, each worked out once: Strawberry asks again for every argument
    of every resolver call (camelCase from snake_case, a string walk each time)."""

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, str] = {}

    def apply_naming_config(self, name: str) -> str:
        converted = self._names.get(name)
        if converted is None:
            converted = self._names[name] = super().apply_naming_config(name)
        return converted


def build_schema(settings: Settings | None = None, limits: Limits | None = None) -> Schema:
    """The schema with its error mapping, abuse limits and parse/validation caches."""
    schema = CoursepulseSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        execution_context_class=SharedEventExecutor,
        extensions=[DomainErrors, FreshLoaders, Documents],
        config=StrawberryConfig(name_converter=CachedNameConverter()),
        scalar_overrides=scalars.OVERRIDES,
    )
    schema.documents = DocumentPolicy(schema._schema, settings or Settings(), limits or Limits())
    direct_resolvers.install(schema)
    return schema


def schema_sdl() -> str:
    """The schema as SDL, as checked in at graphql/schema.graphql."""
    return build_schema().as_str() + "\n"
