"""Abuse limits of a GraphQL document, each measured in time linear in the document's size.

Two measures, both walking every selection once and every fragment once (its result is
kept and reused at each spread, so k fragments that each spread the previous one four
times cost k walks, not 4^k):

- the shape of each operation (depth, aliases, directives, fields and fragment spreads,
  counted as if every fragment were written out where it is spread), checked by the
  `DocumentLimits` validation rule before graphql-core's own rules run;
- the cost of the operation that is about to run (see `CostModel`), which depends on the
  request's variables and on who asks, so it is computed per request after validation.

A fragment that spreads itself (directly or not) counts as empty here: graphql-core's
`NoFragmentCycles` rule reports it, and no walk ever follows a cycle.
"""

import gc
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    BREAK,
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLType,
    InlineFragmentNode,
    IntValueNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    VariableNode,
    is_leaf_type,
)
from graphql.validation.validate import ValidationAbortedError

TOO_COMPLEX = "query_too_complex"


def too_complex(message: str, nodes: Node | list[Node] | None = None, **extra: Any) -> GraphQLError:
    """A `query_too_complex` error (400), with `extra` (e.g. cost, maxCost) in its extensions."""
    return GraphQLError(message, nodes, extensions={"code": TOO_COMPLEX, "status": 400, **extra})


@dataclass(frozen=True, slots=True)
class Limits:
    """The structural limits of one operation; fragments count where they are spread."""

    #: Levels of fields, introspection aside: `{ me { id } }` is 2 deep. (Strawberry's
    #: limiter, which this replaces, counted that as 1 and allowed 12.)
    depth: int = 13
    #: Fields given an alias.
    aliases: int = 30
    #: Directives used (@include, @skip, ...).
    directives: int = 50
    #: Fields selected, fragments written out (GraphiQL's introspection query has ~250).
    fields: int = 1000
    #: Fragment spreads, fragments written out.
    fragment_spreads: int = 50
    #: Fields selected again under a response name already used in their selection set.
    #: graphql-core compares such fields pairwise (quadratic); clients rarely repeat one.
    repeats: int = 50
    #: Lexical tokens of the whole document (checked by the parser).
    tokens: int = 5000
    #: CPU seconds validation may take (checked between the nodes it visits). Documents
    #: within the limits above validate in well under 0.1 s; a full garbage collection of
    #: the process may add 0.2 s to whichever request it interrupts.
    validation_seconds: float = 0.5


# ---- shape: depth, aliases, directives, fields, spreads --------------------------------


@dataclass(slots=True)
class Shape:
    """What a selection set (or definition) holds, fragments written out."""

    depth: int = 0
    aliases: int = 0
    directives: int = 0
    fields: int = 0
    spreads: int = 0
    repeats: int = 0

    def add(self, other: "Shape", at_depth: int) -> None:
        self.depth = max(self.depth, at_depth + other.depth)
        self.aliases += other.aliases
        self.directives += other.directives
        self.fields += other.fields
        self.spreads += other.spreads
        self.repeats += other.repeats


@dataclass(slots=True)
class _Local:
    """A definition's own shape, and the fragments it spreads (name, depth at the spread)."""

    shape: Shape
    spreads: list[tuple[str, int]]


class DocumentShape:
    """The shape of every operation and fragment of a document.

    Each definition is walked once (`visits` counts the selections walked, so tests can
    check the work is linear); fragments are then combined in dependency order without
    recursion, so a long chain of fragments cannot exhaust the stack either.
    """

    def __init__(self, document: DocumentNode) -> None:
        self.visits = 0
        #: Selection sets written as `{ }`: graphql-core accepts them, this service does not.
        self.empty: list[SelectionSetNode] = []
        self.fragments: dict[str, FragmentDefinitionNode] = {}
        operations: list[OperationDefinitionNode] = []
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                self.fragments.setdefault(definition.name.value, definition)
            elif isinstance(definition, OperationDefinitionNode):
                operations.append(definition)
        self._local = {
            name: self._walk(fragment.selection_set, fragment.directives)
            for name, fragment in self.fragments.items()
        }
        self._shapes: dict[str, Shape] = {}
        self.operations = [
            (operation, self._combine(self._walk(operation.selection_set, operation.directives)))
            for operation in operations
        ]

    def _walk(self, selection_set: SelectionSetNode, directives: Iterable[Node] | None) -> _Local:
        """One definition: its selection sets are walked without recursion."""
        shape = Shape(directives=len(directives or ()))
        spreads: list[tuple[str, int]] = []
        # (selection set, depth of its fields, whether depth counts: not inside introspection)
        stack = [(selection_set, 1, True)]
        while stack:
            current, depth, counted = stack.pop()
            if counted:
                shape.depth = max(shape.depth, depth)
            if not current.selections:
                self.empty.append(current)
            # Inline fragments' fields belong to the selection set they are written in.
            names: set[str] = set()
            selections = list(current.selections)
            while selections:
                selection = selections.pop()
                self.visits += 1
                shape.directives += len(selection.directives or ())
                if isinstance(selection, FieldNode):
                    shape.fields += 1
                    if selection.alias is not None:
                        shape.aliases += 1
                    response_name = (selection.alias or selection.name).value
                    if response_name in names:
                        shape.repeats += 1
                    names.add(response_name)
                    if selection.selection_set is not None:
                        introspection = selection.name.value.startswith("__")
                        nested = counted and not introspection
                        stack.append((selection.selection_set, depth + nested, nested))
                elif isinstance(selection, InlineFragmentNode):
                    if not selection.selection_set.selections:
                        self.empty.append(selection.selection_set)
                    selections.extend(selection.selection_set.selections)
                elif isinstance(selection, FragmentSpreadNode):
                    shape.spreads += 1
                    spreads.append((selection.name.value, depth - 1 if counted else -(10**9)))
        return _Local(shape, spreads)

    def fragment(self, name: str) -> Shape:
        """The shape of a fragment with its own spreads written out (empty when unknown)."""
        if name not in self._shapes and name in self._local:
            self._resolve(name)
        return self._shapes.get(name, Shape())

    def _resolve(self, root: str) -> None:
        """Shapes of `root` and every fragment it reaches, dependencies first, iteratively."""
        on_path = {root}
        path = [(root, iter(self._local[root].spreads))]
        while path:
            name, spreads = path[-1]
            for spread, _depth in spreads:
                if spread in self._local and spread not in self._shapes and spread not in on_path:
                    on_path.add(spread)
                    path.append((spread, iter(self._local[spread].spreads)))
                    break
            else:
                path.pop()
                on_path.discard(name)
                # A spread still on the path closes a cycle: it adds nothing.
                self._shapes[name] = self._combine(self._local[name], skip=on_path)

    def _combine(self, local: _Local, skip: set[str] | None = None) -> Shape:
        shape = Shape(
            local.shape.depth,
            local.shape.aliases,
            local.shape.directives,
            local.shape.fields,
            local.shape.spreads,
            local.shape.repeats,
        )
        for name, depth in local.spreads:
            if skip and name in skip:
                continue
            shape.add(self.fragment(name), depth)
        return shape


def shape_errors(document: DocumentNode, limits: Limits) -> list[GraphQLError]:
    """One `query_too_complex` error per limit an operation of the document exceeds.

    An empty selection set is refused too (as invalid input: it has no code here).
    """
    measured_document = DocumentShape(document)
    errors = [
        GraphQLError("A selection set must select something", empty)
        for empty in measured_document.empty[:1]
    ]
    for operation, shape in measured_document.operations:
        name = f"'{operation.name.value}'" if operation.name else "The operation"
        for measured, limit, what in (
            (shape.depth, limits.depth, "levels of depth"),
            (shape.aliases, limits.aliases, "aliases"),
            (shape.directives, limits.directives, "directives"),
            (shape.fields, limits.fields, "fields (fragments included)"),
            (shape.spreads, limits.fragment_spreads, "fragment spreads (fragments included)"),
            (shape.repeats, limits.repeats, "repeated fields (fragments included)"),
        ):
            if measured > limit:
                errors.append(
                    too_complex(f"{name} has more than {limit} {what}", operation, limit=limit)
                )
    return errors


class DocumentLimits(ASTValidationRule):
    """Refuses a document over `LIMITS` before the other rules visit it.

    Its errors abort validation: graphql-core's own rules are not all linear (comparing
    fields that share a response name is quadratic), so they only see bounded documents.
    """

    limits = Limits()

    def enter_document(self, node: DocumentNode, *_args: object) -> object:
        errors = shape_errors(node, self.limits)
        if not errors:
            return BREAK  # this rule is done; the others go on
        for error in errors[:-1]:
            self.report_error(error)
        last = errors[-1]
        raise ValidationAbortedError(last.message, last.nodes, extensions=last.extensions)


def with_limits(limits: Limits) -> type[DocumentLimits]:
    """The rule class for these limits (made once per schema, so caches can recognise it)."""
    return type("DocumentLimits", (DocumentLimits,), {"limits": limits})


class ValidationBudgetExceeded(ValidationAbortedError):
    """Validation ran out of CPU time: the document is refused, this once."""


class _CollectorTime:
    """CPU seconds the garbage collector has spent since it was first watched.

    A full collection of a large process takes tenths of a second in whichever request
    allocates at the wrong moment: that time is not the document's, and the budget
    leaves it out.
    """

    def __init__(self) -> None:
        self.spent = 0.0
        self._started = 0.0

    def __call__(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.spent += time.thread_time() - self._started


_collector_time: _CollectorTime | None = None


def _collector() -> _CollectorTime:
    global _collector_time  # one watcher per process, installed on first use
    if _collector_time is None:
        _collector_time = _CollectorTime()
        gc.callbacks.append(_collector_time)
    return _collector_time


class ValidationBudget(ASTValidationRule):
    """Aborts validation once it has used its CPU time (`Limits.validation_seconds`).

    CPU time of the validating thread, garbage collection left out. Checked every few
    nodes, between the visits of all rules: a single rule's visit of one node is not
    interrupted, which is why the document's shape is bounded first.
    """

    seconds = Limits().validation_seconds
    _EVERY = 32

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.collector = _collector()
        self.deadline = time.thread_time() - self.collector.spent + self.seconds
        self.countdown = self._EVERY

    def enter(self, node: Node, *_args: object) -> None:
        self.countdown -= 1
        if self.countdown:
            return
        self.countdown = self._EVERY
        if time.thread_time() - self.collector.spent > self.deadline:
            raise ValidationBudgetExceeded(
                "The document took too long to validate",
                extensions={"code": TOO_COMPLEX, "status": 400},
            )


def with_budget(seconds: float) -> type[ValidationBudget]:
    return type("ValidationBudget", (ValidationBudget,), {"seconds": seconds})


# ---- cost -------------------------------------------------------------------------------

#: Arguments that set the page size of a list field.
PAGE_ARGUMENTS = ("perPage", "first")
#: Largest page of a paged list field, by "Type.field"; other paged lists: DEFAULT_PAGE_CAP.
PAGE_CAPS: dict[str, int] = {"Query.courseStudents": 100}
DEFAULT_PAGE_CAP = 100
#: Assumed length of lists without a page size, by "Type.field"; others: DEFAULT_LIST_SIZE.
LIST_SIZES: dict[str, int] = {
    "Query.courses": 100,
    "Query.myCourses": 50,
    "Course.instructors": 5,
}
DEFAULT_LIST_SIZE = 50


@dataclass(slots=True)
class _LocalCost:
    """A definition's own cost, and the fragments it spreads with their multiplier."""

    cost: int = 0
    spreads: list[tuple[str, int]] = field(default_factory=list)


class CostModel:
    """What an operation costs, in the manner of GitHub's GraphQL API.

    A field that returns an object costs 1 per parent object it is asked for; a list
    costs its length (its page size: `perPage`/`first`, capped, or the argument's
    default; else an assumed length, `LIST_SIZES`) and multiplies the cost of everything
    selected inside it; scalar and enum fields are free. Introspection lists count the
    schema's own sizes (`__Schema.types` is the number of types, `__Type.fields` the
    mean number of fields of a type, ...), so introspection costs about what it answers.
    Fields repeated under one response name count each time (graphql-core would merge
    them), which only overestimates.
    """

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self.list_sizes = {**LIST_SIZES, **_introspection_sizes(schema)}

    def cost(
        self,
        document: DocumentNode,
        operation_name: str | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> int:
        """The cost of the operation `operation_name` runs (0 when there is none)."""
        return CostWalk(self, document, operation_name, variables or {}).cost()

    def list_size(self, coordinate: str) -> int:
        """The assumed length of a list field without a page size."""
        return self.list_sizes.get(coordinate, DEFAULT_LIST_SIZE)

    def page_size(
        self, coordinate: str, definition: GraphQLField, node: FieldNode, walk: "CostWalk"
    ) -> int | None:
        """The page size the field's `perPage`/`first` asks for, capped; None if it has none."""
        for name in PAGE_ARGUMENTS:
            argument = definition.args.get(name)
            if argument is None:
                continue
            cap = PAGE_CAPS.get(coordinate, DEFAULT_PAGE_CAP)
            given = walk.argument(node, name, argument.default_value)
            if not isinstance(given, int) or isinstance(given, bool):
                return cap
            return max(0, min(given, cap))
        return None


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name is not None and definition.name.value == name)
        ):
            return definition
    return None


def _mean(counts: list[int]) -> int:
    return max(1, math.ceil(sum(counts) / len(counts))) if counts else 1


def _introspection_sizes(schema: GraphQLSchema) -> dict[str, int]:
    """List lengths of the introspection types, from this schema's own size."""
    types = list(schema.type_map.values())
    with_fields = [t for t in types if isinstance(t, GraphQLObjectType | GraphQLInterfaceType)]
    fields = [f for t in with_fields for f in t.fields.values()]
    inputs = [t for t in types if isinstance(t, GraphQLInputObjectType)]
    enums = [t for t in types if isinstance(t, GraphQLEnumType)]
    return {
        "__Schema.types": len(types),
        "__Schema.directives": len(schema.directives),
        "__Type.fields": _mean([len(t.fields) for t in with_fields]),
        "__Type.inputFields": _mean([len(t.fields) for t in inputs]),
        "__Type.enumValues": _mean([len(t.values) for t in enums]),
        "__Type.interfaces": 1,
        "__Type.possibleTypes": 1,
        "__Field.args": _mean([len(f.args) for f in fields]),
        "__Directive.args": _mean([len(d.args) for d in schema.directives]),
    }


_Pending = tuple[SelectionSetNode, GraphQLNamedType, int, int | None]


class CostWalk:
    """One cost computation: each definition walked once, fragments combined once.

    `visits` counts the selections walked (tests check it grows linearly).
    """

    def __init__(
        self,
        model: CostModel,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any],
    ) -> None:
        self.model = model
        self.document = document
        self.operation = _operation(document, operation_name)
        # Not yet checked against their definitions: anything but an object counts as none.
        self.variables = variables if isinstance(variables, Mapping) else {}
        self.visits = 0
        #: Variables the cost depends on (page sizes given as variables), in reading order.
        self.read: list[str] = []
        self.defaults = {
            definition.variable.name.value: definition.default_value
            for definition in (self.operation.variable_definitions if self.operation else None)
            or ()
        }
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self._local: dict[str, _LocalCost] = {}
        self._costs: dict[str, int] = {}

    def cost(self) -> int:
        """The operation's cost (0 when the document has no such operation)."""
        if self.operation is None:
            return 0
        root = self.model.schema.get_root_type(self.operation.operation)
        if root is None:
            return 0
        return self.total(self.local(self.operation.selection_set, root))

    def argument(self, node: FieldNode, name: str, default: Any) -> Any:
        """The argument's value: a literal, the request's variable, or a default."""
        for argument in node.arguments or ():
            if argument.name.value != name:
                continue
            value = argument.value
            if isinstance(value, VariableNode):
                variable = value.name.value
                self.read.append(variable)
                if variable in self.variables:
                    return self.variables[variable]
                value = self.defaults.get(variable)
                if value is None:
                    return default
            if isinstance(value, IntValueNode):
                return int(value.value)
            return None
        return default

    def local(self, selection_set: SelectionSetNode, parent: GraphQLNamedType) -> _LocalCost:
        """A definition's own cost; its fragment spreads are left to `total`."""
        own = _LocalCost()
        # (selection set, its type, objects it is asked for, page size given by its field)
        stack: list[_Pending] = [(selection_set, parent, 1, None)]
        while stack:
            current, parent_type, multiplier, page = stack.pop()
            for selection in current.selections:
                self.visits += 1
                if isinstance(selection, FieldNode):
                    nested = self._field(selection, parent_type, multiplier, page, own)
                    if nested is not None:
                        stack.append(nested)
                elif isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition
                    named = self.model.schema.get_type(condition.name.value) if condition else None
                    stack.append((selection.selection_set, named or parent_type, multiplier, page))
                elif isinstance(selection, FragmentSpreadNode):
                    own.spreads.append((selection.name.value, multiplier))
        return own

    def _field(
        self,
        node: FieldNode,
        parent: GraphQLNamedType,
        multiplier: int,
        page: int | None,
        own: _LocalCost,
    ) -> "_Pending | None":
        """Adds the field's own cost; returns its selection set to walk, if it has one."""
        name = node.name.value
        definition = self._definition(parent, name)
        if definition is None or node.selection_set is None:
            return None
        coordinate = f"{parent.name}.{name}"
        paged = self.model.page_size(coordinate, definition, node, self)
        count = multiplier
        field_type: GraphQLType = definition.type
        while isinstance(field_type, GraphQLNonNull | GraphQLList):
            if isinstance(field_type, GraphQLList):
                # A page object (StudentPage) hands its field's page size to its list.
                size = paged or page
                count *= size if size is not None else self.model.list_size(coordinate)
            field_type = field_type.of_type
        if is_leaf_type(field_type):
            return None
        own.cost += count
        # A paged field that returns an object (not a list) pages the lists inside it.
        inner_page = paged if paged is not None and count == multiplier else None
        return node.selection_set, field_type, count, inner_page  # type: ignore[return-value]

    def _definition(self, parent: GraphQLNamedType, name: str) -> GraphQLField | None:
        schema = self.model.schema
        if name == "__schema" and parent is schema.query_type:
            from graphql.type.introspection import SchemaMetaFieldDef

            return SchemaMetaFieldDef
        if name == "__type" and parent is schema.query_type:
            from graphql.type.introspection import TypeMetaFieldDef

            return TypeMetaFieldDef
        fields = getattr(parent, "fields", None)
        return fields.get(name) if fields else None

    def total(self, own: _LocalCost) -> int:
        return own.cost + sum(
            multiplier * self._fragment_cost(name) for name, multiplier in own.spreads
        )

    def _fragment_cost(self, root: str) -> int:
        """A fragment's cost at multiplier 1, its dependencies first, without recursion."""
        if root in self._costs or root not in self.fragments:
            return self._costs.get(root, 0)
        on_path = {root}
        path = [(root, iter(self._local_of(root).spreads))]
        while path:
            name, spreads = path[-1]
            for spread, _multiplier in spreads:
                if spread in self.fragments and spread not in self._costs and spread not in on_path:
                    on_path.add(spread)
                    path.append((spread, iter(self._local_of(spread).spreads)))
                    break
            else:
                path.pop()
                on_path.discard(name)
                own = self._local_of(name)
                self._costs[name] = own.cost + sum(
                    multiplier * self._costs.get(spread, 0)
                    for spread, multiplier in own.spreads
                    if spread not in on_path
                )
        return self._costs[root]

    def _local_of(self, name: str) -> _LocalCost:
        if name not in self._local:
            fragment = self.fragments[name]
            parent = self.model.schema.get_type(fragment.type_condition.name.value)
            self._local[name] = (
                self.local(fragment.selection_set, parent) if parent else _LocalCost()
            )
        return self._local[name]
