"""schema/compiled_queries.py answers a query as graphql-core's executor does, and leaves to
it every query with something to report and every shape it does not compile."""

import enum
import inspect
import json
from typing import Any

import pytest
import strawberry
from graphql import ExecutionResult, execute, parse
from strawberry.dataloader import DataLoader

from coursepulse.models.db import Database
from coursepulse.schema import compiled_queries
from coursepulse.schema.compiled_queries import CompiledQuery, Fallback, compile_query
from coursepulse.schema.operation_plans import plan_operation
from coursepulse.settings import Settings
from tests.conftest import School, error_codes, graphql
from tests.test_roster import Roster, roster_school  # noqa: F401 (a fixture)


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Lesson:
    id: strawberry.ID
    title: str
    order: int


@strawberry.type
class Item:
    name: str
    nickname: str | None
    colour: Colour

    @strawberry.field
    async def lesson(self, info: strawberry.Info) -> Lesson | None:
        return await info.context["lessons"].load(self.name)  # type: ignore[no-any-return]

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times


@strawberry.type
class Animal:
    name: str


@strawberry.type
class Plant:
    name: str


ITEMS = [
    Item(name="ada", nickname=None, colour=Colour.RED),
    Item(name="bob", nickname="b", colour=Colour.BLUE),
    Item(name="cy", nickname=None, colour=Colour.RED),
]


@strawberry.type
class Query:
    @strawberry.field
    async def items(self, first: int = 3) -> list[Item]:
        return ITEMS[:first]

    @strawberry.field
    def item(self, name: str) -> Item | None:
        return next((item for item in ITEMS if item.name == name), None)

    @strawberry.field
    def total(self) -> int:
        return len(ITEMS)

    @strawberry.field
    async def fails(self) -> str:
        raise ValueError("refused")

    @strawberry.field
    def nameless(self) -> Item:
        return Item(name=None, nickname=None, colour=Colour.RED)  # type: ignore[arg-type]

    @strawberry.field
    def huge(self) -> int:
        return 2**40

    @strawberry.field
    def gaps(self) -> list[Item | None]:
        return [ITEMS[0], None]

    @strawberry.field
    def living(self) -> Animal | Plant:
        return Animal(name="cat")


@strawberry.type
class Mutation:
    @strawberry.mutation
    def touch(self) -> int:
        return 1


SCHEMA = strawberry.Schema(query=Query, mutation=Mutation)

#: Documents the compiled form answers, with their variables.
ANSWERED = [
    ("{ total items { name nickname colour } }", {}),
    ("query Q($n: Int!) { items(first: $n) { name lesson { id title order } } }", {"n": 2}),
    ('{ first: item(name: "bob") { called: name __typename shout(times: 2) } }', {}),
    ('{ item(name: "nobody") { name } total }', {}),
    (
        "query Q($who: String!) { item(name: $who) { ...Named lesson { title } } }"
        " fragment Named on Item { name ... on Item { colour } }",
        {"who": "ada"},
    ),
    ("{ __typename items { name } again: items(first: 1) { name colour } }", {}),
]
#: Documents with an error to report: the compiled form leaves them to graphql-core.
REPORTED = [
    ("{ total fails }", {}),
    ("{ nameless { name } }", {}),
    ("{ huge }", {}),
    ("{ items { name lesson { title } } }", {"missing": True}),
]
#: Answers without an error that the compiled form still leaves to graphql-core.
LEFT = ["{ gaps { name } }"]
#: Shapes left to graphql-core's executor altogether.
NOT_COMPILED = [
    "{ __schema { queryType { name } } }",
    "{ living { ... on Animal { name } } }",
    "mutation { touch }",
]


async def _lessons(names: list[str]) -> list[Lesson | None]:
    """A lesson per item name (none for `cy`), counting the batches asked for."""
    BATCHES.append(list(names))
    return [
        Lesson(id=strawberry.ID(str(index)), title=f"About {name}", order=index)
        if name != "cy"
        else None
        for index, name in enumerate(names, start=1)
    ]


BATCHES: list[list[str]] = []


def _context(*, failing_loader: bool = False) -> dict[str, Any]:
    async def refuse(_names: list[str]) -> list[Lesson | None]:
        raise RuntimeError("the lessons are unavailable")

    return {"lessons": DataLoader(load_fn=refuse if failing_loader else _lessons)}


def _compiled(document: str) -> CompiledQuery | None:
    plan = plan_operation(SCHEMA._schema, parse(document), None)
    assert plan is not None
    return compile_query(SCHEMA._schema, plan, inspect.isawaitable)


async def _general(document: str, variables: dict[str, Any], context: Any) -> ExecutionResult:
    result = execute(
        SCHEMA._schema, parse(document), variable_values=variables, context_value=context
    )
    if not isinstance(result, ExecutionResult):
        result = await result
    assert isinstance(result, ExecutionResult)
    return result


@pytest.mark.parametrize(("document", "variables"), ANSWERED)
async def test_a_compiled_query_answers_as_graphql_core(
    document: str, variables: dict[str, Any]
) -> None:
    compiled = _compiled(document)
    assert compiled is not None
    data = await compiled_queries.execute(compiled, variables, _context())
    expected = await _general(document, variables, _context())
    assert expected.errors is None
    assert data == expected.data
    assert json.dumps(data) == json.dumps(expected.data)  # the same order of keys, nested too


@pytest.mark.parametrize(("document", "variables"), REPORTED)
async def test_a_query_with_something_to_report_is_left_to_graphql_core(
    document: str, variables: dict[str, Any]
) -> None:
    compiled = _compiled(document)
    assert compiled is not None
    failing = "lesson" in document
    with pytest.raises(Fallback):
        await compiled_queries.execute(compiled, variables, _context(failing_loader=failing))
    expected = await _general(document, variables, _context(failing_loader=failing))
    assert expected.errors


@pytest.mark.parametrize("document", LEFT)
async def test_a_list_with_a_null_item_is_left_to_graphql_core(document: str) -> None:
    compiled = _compiled(document)
    assert compiled is not None
    with pytest.raises(Fallback):
        await compiled_queries.execute(compiled, {}, _context())
    expected = await _general(document, {}, _context())
    assert expected.errors is None
    assert expected.data == {"gaps": [{"name": "ada"}, None]}


async def test_variables_graphql_core_refuses_are_left_to_it() -> None:
    compiled = _compiled("query Q($n: Int!) { items(first: $n) { name } }")
    assert compiled is not None
    for variables in ({}, {"n": "three"}, {"n": None}):
        with pytest.raises(Fallback):
            await compiled_queries.execute(compiled, variables, _context())


@pytest.mark.parametrize("document", NOT_COMPILED)
def test_shapes_graphql_core_runs_are_not_compiled(document: str) -> None:
    assert _compiled(document) is None


async def test_the_awaitables_of_a_round_are_awaited_together() -> None:
    # Given three items whose lessons come from one DataLoader
    compiled = _compiled("{ items { name lesson { title } } }")
    assert compiled is not None
    BATCHES.clear()

    # When the compiled query runs, then the loader is asked once for the three
    data = await compiled_queries.execute(compiled, {}, _context())
    assert BATCHES == [["ada", "bob", "cy"]]
    assert [item["lesson"] for item in data["items"]] == [
        {"title": "About ada"},
        {"title": "About bob"},
        None,
    ]


# ---- the service: the same answers with and without compiled queries -------------------

PROGRESS = """
query CourseProgress($courseId: ID!, $userId: ID) {
  courseProgress(courseId: $courseId, userId: $userId) {
    courseId userId status progressPercentage completedLessons totalLessons
    timeSpent lastAccessed startedAt completedAt
    nextLesson { id title order }
  }
}
"""
ROSTER_WITH_PROGRESS = """
fragment Row on Student { userId username displayName status progressPercentage enrolledAt }
query Roster($courseId: ID!, $orderBy: StudentOrderField) {
  courseStudents(courseId: $courseId, orderBy: $orderBy, order: DESC, perPage: 5) {
    total perPage currentPage totalPages
    nodes { ...Row __typename progress { nextLesson { title } completedLessons } }
  }
  again: courseStudents(courseId: $courseId, page: 2, perPage: 3) { nodes { username } }
}
"""


async def test_the_service_answers_the_same_with_and_without_compiled_queries(
    serve: Any,
    database_url: str,
    db: Database,
    roster_school: Roster,  # noqa: F811
) -> None:
    school: School = roster_school.school
    student = roster_school.students["alice_w"]
    compiled_client = await serve(Settings(database_url=database_url))
    general_client = await serve(Settings(database_url=database_url, compiled_queries=False))
    course = str(school.course_id)
    asked = [
        (PROGRESS, {"courseId": course}, student),
        (PROGRESS, {"courseId": course, "userId": str(student.id)}, school.instructor),
        (ROSTER_WITH_PROGRESS, {"courseId": course, "orderBy": "PROGRESS"}, school.instructor),
        (ROSTER_WITH_PROGRESS, {"courseId": course, "orderBy": "DISPLAY_NAME"}, school.admin),
        # errors: the compiled run leaves them to graphql-core, which words them
        (PROGRESS, {"courseId": course}, school.other_student),
        (PROGRESS, {"courseId": "not-an-id"}, student),
        (ROSTER_WITH_PROGRESS, {"courseId": course}, student),
    ]
    for document, variables, viewer in asked:
        # twice: the first request validates and keeps the document, the second runs it
        # prepared (compiled where on)
        for _ in range(2):
            compiled = await graphql(compiled_client, document, variables, as_=viewer)
            general = await graphql(general_client, document, variables, as_=viewer)
            for body in (compiled, general):
                for error in body.get("errors", []):
                    error["extensions"].pop("requestId", None)
            assert compiled == general, (document, variables)
    assert error_codes(compiled) == ["forbidden"]


async def test_the_service_runs_its_reads_compiled(
    serve: Any,
    database_url: str,
    roster_school: Roster,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the service with compiled queries on
    school: School = roster_school.school
    client = await serve(Settings(database_url=database_url))
    runs: list[str] = []
    execute_compiled = compiled_queries.execute

    async def counted(compiled: CompiledQuery, variables: Any, context: Any) -> Any:
        try:
            data = await execute_compiled(compiled, variables, context)
        except Fallback:
            runs.append("fallback")
            raise
        runs.append("compiled")
        return data

    monkeypatch.setattr(compiled_queries, "execute", counted)

    # When the roster is read three times, then the second and third runs are compiled
    for _ in range(3):
        body = await graphql(
            client, ROSTER_WITH_PROGRESS, {"courseId": str(school.course_id)}, as_=school.admin
        )
        assert "errors" not in body, body
    assert runs == ["compiled", "compiled"]
