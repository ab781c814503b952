"""Fields resolved without Strawberry's per-call wrapper answer as with it."""

import enum
from typing import Any

import pytest
import strawberry
from graphql import GraphQLObjectType

from coursepulse.schema import build_schema, direct_resolvers


@strawberry.enum
class Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


@strawberry.input
class Filter:
    shade: Shade


@strawberry.type
class Lesson:
    title: str

    @strawberry.field
    def heading(self, upper: bool = False) -> str:
        return self.title.upper() if upper else self.title

    @strawberry.field
    def root_title(self, root: "Lesson") -> str:
        return f"root:{root.title}"


@strawberry.type
class Query:
    @strawberry.field
    async def lesson(
        self, info: strawberry.Info, lesson_id: strawberry.ID, shade: Shade | None = None
    ) -> Lesson:
        suffix = f" ({shade.value})" if shade is not None else ""
        return Lesson(title=f"{lesson_id}{suffix} for {info.context['who']} at {info.path.key}")

    @strawberry.field
    def count(self, minimum: int = 3, label: str | None = None) -> str:
        return f"{label or 'count'}={minimum}"

    @strawberry.field
    def failing(self, reason: str) -> str | None:
        raise ValueError(reason)

    @strawberry.field
    def filtered(self, where: Filter) -> str:
        return where.shade.value

    @strawberry.field
    def listed(self, shades: list[Shade]) -> int:
        return len(shades)


QUERIES = [
    ('{ lesson(lessonId: "7") { title heading(upper: true) rootTitle } }', None),
    ("query($s: Shade) { lesson(lessonId: 8, shade: $s) { title } }", {"s": "DARK"}),
    ("query($s: Shade) { first: lesson(lessonId: 9, shade: $s) { title } }", {}),
    ('{ count a: count(minimum: 5) b: count(label: "n") }', None),
    ('{ count failing(reason: "broken") }', None),
    ("{ filtered(where: {shade: LIGHT}) listed(shades: [LIGHT, DARK]) }", None),
]


def _schema(direct: bool) -> strawberry.Schema:
    schema = strawberry.Schema(query=Query)
    if direct:
        direct_resolvers.install(schema)
    return schema


def _formatted(result: Any) -> tuple[Any, list[Any]]:
    return result.data, [error.formatted for error in result.errors or []]


def test_only_fields_whose_arguments_pass_as_given_are_replaced() -> None:
    installed = direct_resolvers.install(strawberry.Schema(query=Query))
    assert sorted(installed) == [
        "Lesson.heading",
        "Lesson.rootTitle",
        "Query.count",
        "Query.failing",
        "Query.lesson",
    ]


@pytest.mark.parametrize(("query", "variables"), QUERIES)
async def test_a_direct_resolver_answers_as_strawberrys_wrapper(
    query: str, variables: dict[str, Any] | None
) -> None:
    answers = [
        _formatted(
            await _schema(direct).execute(
                query, variable_values=variables, context_value={"who": "ada"}
            )
        )
        for direct in (False, True)
    ]
    assert answers[0] == answers[1]
    assert answers[0][0] is not None


def test_the_service_schema_resolves_its_reads_directly() -> None:
    schema = build_schema()
    query_type = schema._schema.query_type
    assert isinstance(query_type, GraphQLObjectType)
    resolve = query_type.fields["courseProgress"].resolve
    assert resolve is not None
    assert resolve.__qualname__.startswith("direct_resolver")
    # A mutation taking an input object keeps Strawberry's wrapper (it builds the input)
    mutation_type = schema._schema.mutation_type
    assert mutation_type is not None
    create = mutation_type.fields["createCourse"].resolve
    assert create is not None
    assert not create.__qualname__.startswith("direct_resolver")
