"""schema/executor.py reads plain leaf fields directly: its answers, errors included, are
graphql-core's, field for field."""

import enum
from typing import Any

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from coursepulse.schema.executor import Executor


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Row:
    name: str
    nickname: str | None
    size: int
    colour: Colour
    tags: list[str]

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times


GOOD = Row(name="ada", nickname=None, size=3, colour=Colour.RED, tags=["x"])
#: Values a field's type refuses: null where non-null, an Int beyond 32 bits, no colour.
BAD = Row(name=None, nickname=None, size=2**40, colour="green", tags=[])  # type: ignore[arg-type]


@strawberry.type
class Query:
    @strawberry.field
    def rows(self) -> list[Row]:
        return [GOOD, BAD]

    @strawberry.field
    def row(self) -> Row | None:
        return BAD


def schema_with(executor: type) -> strawberry.Schema:
    return strawberry.Schema(query=Query, execution_context_class=executor)


DOCUMENTS = [
    "{ rows { name nickname size colour tags shout } }",
    "{ row { name } }",
    "{ row { size } }",
    "{ row { colour } }",
    "{ rows { n: name alias: nickname ...F } } fragment F on Row { size colour }",
    "query($s: Boolean!) { rows { name @skip(if: $s) size @include(if: $s) shout(times: 2) } }",
    "{ rows { __typename name } }",
]


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_answers_and_errors_are_graphql_cores(document: str) -> None:
    variables: dict[str, Any] = {"s": True}
    ours = await schema_with(Executor).execute(document, variable_values=variables)
    general = await schema_with(StrawberryGraphQLCoreExecutionContext).execute(
        document, variable_values=variables
    )
    assert ours.data == general.data
    assert [error.formatted for error in ours.errors or []] == [
        error.formatted for error in general.errors or []
    ]


async def test_a_refused_value_is_reported_at_its_field() -> None:
    result = await schema_with(Executor).execute("{ row { size } }")
    (error,) = result.errors or []
    assert error.path == ["row", "size"]
    assert "Int cannot represent" in error.message
    assert result.data == {"row": None}


async def test_plain_leaves_skip_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only fields with a resolver of their own, and values that are errors, go the
    general way; a row's stored scalars and enums are read directly."""
    general: list[str] = []
    execute_field = StrawberryGraphQLCoreExecutionContext.execute_field

    def recording(self: Any, parent_type: Any, source: Any, details: Any, *rest: Any) -> Any:
        general.append(details[0].node.name.value)
        return execute_field(self, parent_type, source, details, *rest)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_field", recording)
    result = await schema_with(Executor).execute("{ rows { name size colour shout } }")
    assert result.data is None  # the second row's null name nulls the list
    # rows and shout have resolvers; the second row stops at its null name
    assert sorted(general) == ["name", "rows", "shout"]
