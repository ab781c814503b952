"""The checked-in schema and contract, migrations, architecture rules, example documents, CLI."""

import ast
import base64
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from graphql import OperationDefinitionNode, parse, validate
from graphql import build_schema as build_sdl_schema
from graphql.utilities import find_breaking_changes, find_dangerous_changes
from sqlalchemy import Column, Index, create_engine
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import coursepulse.models  # noqa: F401  (registers every table on the metadata)
from coursepulse.app import create_app
from coursepulse.cli import main
from coursepulse.demo import LOGINS
from coursepulse.models.db import Database
from coursepulse.models.migrate import include_on, schema_engine
from coursepulse.schema import build_schema, schema_sdl
from coursepulse.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "coursepulse"
SCHEMA_FILE = ROOT / "graphql" / "schema.graphql"
OPERATIONS = sorted((ROOT / "graphql" / "operations").glob("*.graphql"))
SHARED = Path(__file__).resolve().parents[2] / "shared"
CONTRACT = SHARED / "api" / "contract.graphql"
CLI_TIMEOUT = 60


# ---- the exported schema and the public contract -----------------------------------------


def test_checked_in_schema_is_the_served_schema() -> None:
    assert SCHEMA_FILE.read_text() == schema_sdl(), (
        "graphql/schema.graphql differs from the schema the code serves: run `make schema`"
    )


def test_checked_in_schema_keeps_the_public_contract() -> None:
    if not CONTRACT.is_file():
        pytest.skip(f"the shared contract is not next to this checkout ({CONTRACT} is absent)")
    contract = build_sdl_schema(CONTRACT.read_text())
    served = build_sdl_schema(SCHEMA_FILE.read_text())

    # The same rules as shared/tools/check_contract.py: nothing removed or made
    # incompatible, and no argument default changed under existing clients.
    problems = [
        f"breaking: {change.description}" for change in find_breaking_changes(contract, served)
    ]
    problems += [
        f"default changed: {change.description}"
        for change in find_dangerous_changes(contract, served)
        if change.type.name == "ARG_DEFAULT_VALUE_CHANGE"
    ]

    assert problems == []


# ---- migrations -----------------------------------------------------------------------


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "include_object": include_on(connection.dialect.name)},
    )
    return compare_metadata(context, SQLModel.metadata)


def _expression_indexes() -> list[Index]:
    """The models' indexes on an expression (not only on columns)."""
    return [
        index
        for table in SQLModel.metadata.tables.values()
        for index in table.indexes
        if any(not isinstance(part, Column) for part in index.expressions)
    ]


def _sqlite_index_sql(connection: Connection) -> dict[str, str]:
    """The SQL of a SQLite database's indexes on an expression, by name, without the
    quoting, spacing and parentheses that do not change what is indexed."""
    names = {index.name for index in _expression_indexes()}
    rows = connection.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ).all()
    plain = str.maketrans("", "", "\"'`() \n\t")
    return {name: sql.lower().translate(plain) for name, sql in rows if name in names}


# SQLite cannot reflect indexes on expressions, so Alembic's comparison skips them (with
# these warnings); `_sqlite_index_sql` compares them instead.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
async def test_migrations_create_exactly_the_tables_the_models_describe(db: Database) -> None:
    engine = schema_engine(db.url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
            migrated = (
                await connection.run_sync(_sqlite_index_sql)
                if connection.dialect.name == "sqlite"
                else None
            )
    finally:
        await engine.dispose()

    assert differences == [], (
        "the migrations and coursepulse/models disagree: add an Alembic revision"
    )
    if migrated is not None:
        described = create_engine("sqlite://")
        try:
            SQLModel.metadata.create_all(described)
            with described.connect() as connection:
                modeled = _sqlite_index_sql(connection)
        finally:
            described.dispose()
        assert migrated == modeled, "indexes on expressions differ: add an Alembic revision"
        on_sqlite = include_on("sqlite")
        assert set(modeled) == {
            index.name
            for index in _expression_indexes()
            if on_sqlite(index, index.name, "index", False, None)
        }


# ---- architecture ---------------------------------------------------------------------

FORBIDDEN_IN_DOMAIN = ("strawberry", "aiohttp")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("layer", ["models", "resolvers"])
def test_domain_layers_import_neither_strawberry_nor_aiohttp(layer: str) -> None:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"coursepulse/{layer} has no modules"

    offenders = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in files
        for module in _imported_modules(path)
        if module.split(".")[0] in FORBIDDEN_IN_DOMAIN
    }

    assert offenders == set()


def test_the_graphql_folder_is_data_not_a_python_package() -> None:
    folder = ROOT / "graphql"

    assert folder.is_dir()
    assert not (folder / "__init__.py").exists()
    assert [path.relative_to(ROOT) for path in folder.rglob("*.py")] == []
    # graphql-core is the library that `import graphql` finds, not this folder.
    import graphql

    assert Path(graphql.__file__).resolve().parent != folder.resolve()


# ---- example operations ---------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [pytest.param(path, id=path.stem) for path in OPERATIONS]
    or [
        pytest.param(
            None,
            marks=pytest.mark.skip(reason="graphql/operations/ has no *.graphql documents yet"),
            id="none",
        )
    ],
)
def test_example_operation_is_valid_against_the_served_schema(document: Path) -> None:
    served = build_schema()._schema
    source = document.read_text()

    ast_document = parse(source)
    errors = validate(served, ast_document)

    assert errors == [], f"{document.name}: " + "; ".join(error.message for error in errors)
    operations = [d for d in ast_document.definitions if isinstance(d, OperationDefinitionNode)]
    assert operations, f"{document.name} holds no operation"


# ---- the command line -----------------------------------------------------------------


def run_cli(*args: str, database_url: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m coursepulse ARGS` as a user runs it; database from the environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("COURSEPULSE_")}
    if database_url is not None:
        env["COURSEPULSE_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "coursepulse", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


async def me_over_http(client: TestClient, authorization: str) -> tuple[int, Any]:
    response = await client.post(
        "/graphql",
        json={"query": "{ me { username displayName role } }"},
        headers={"Authorization": authorization},
    )
    body = await response.json()
    return response.status, (body.get("data") or {}).get("me")


def count_rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


def url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path: Path, sqlite_file: Path) -> None:
    first = succeeded(run_cli("migrate", database_url=url_of(sqlite_file), cwd=tmp_path))
    # the flag works as well as the environment variable
    succeeded(
        run_cli("migrate", "--database-url", url_of(sqlite_file), database_url=None, cwd=tmp_path)
    )

    assert "up to date" in first.stdout
    assert count_rows(sqlite_file, "users") == 0
    with sqlite3.connect(sqlite_file) as connection:
        versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    assert len(versions) == 1
    assert not (tmp_path / "coursepulse.db").exists(), "the default database was touched"


async def test_user_and_token_created_by_the_cli_authenticate_over_http(
    tmp_path: Path, sqlite_file: Path
) -> None:
    url = url_of(sqlite_file)

    # Given alice, created from the command line
    created = succeeded(
        run_cli(
            "user",
            "create",
            "alice",
            "--password",
            "alice-password-1",
            "--role",
            "instructor",
            "--display-name",
            "Alice Liddell",
            database_url=url,
            cwd=tmp_path,
        )
    )
    assert "alice" in created.stdout

    # When alice is created again, it fails clearly
    again = run_cli(
        "user", "create", "alice", "--password", "another-password", database_url=url, cwd=tmp_path
    )
    assert again.returncode != 0
    assert "already taken" in again.stderr
    assert "Traceback" not in again.stderr + again.stdout
    assert count_rows(sqlite_file, "users") == 1

    # And a token for alice is printed once
    token_run = succeeded(run_cli("token", "create", "alice", database_url=url, cwd=tmp_path))
    token = token_run.stdout.strip()
    assert token
    assert "\n" not in token

    # Then that token and alice's password authenticate against the same database
    password = base64.b64encode(b"alice:alice-password-1").decode()
    app = create_app(Settings(database_url=url))
    async with TestClient(TestServer(app)) as client:
        by_token = await me_over_http(client, f"Bearer {token}")
        by_password = await me_over_http(client, f"Basic {password}")
        forged = await me_over_http(client, f"Bearer {token}x")

    assert by_token == (
        200,
        {"username": "alice", "displayName": "Alice Liddell", "role": "INSTRUCTOR"},
    )
    assert by_password == by_token
    assert forged == (401, None)


def test_token_for_an_unknown_user_fails_clearly(
    sqlite_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In process (the same `main` the subprocesses run): a subprocess per case is slow.
    status = main(["token", "create", "nobody", "--database-url", url_of(sqlite_file)])

    out, err = capsys.readouterr()
    assert status != 0
    assert "nobody" in err
    assert "Traceback" not in out + err


def test_demo_loads_once_and_prints_the_logins(tmp_path: Path, sqlite_file: Path) -> None:
    url = url_of(sqlite_file)

    first = succeeded(run_cli("demo", database_url=url, cwd=tmp_path))
    counts = {table: count_rows(sqlite_file, table) for table in ("users", "courses", "lessons")}
    second = succeeded(run_cli("demo", database_url=url, cwd=tmp_path))

    assert counts["users"] == len(LOGINS)
    assert counts["courses"] > 0
    assert counts == {table: count_rows(sqlite_file, table) for table in counts}
    for output in (first.stdout, second.stdout):
        for login in LOGINS:
            assert login.username in output
            assert login.password in output


def test_export_schema_prints_the_served_sdl(tmp_path: Path) -> None:
    result = succeeded(run_cli("export-schema", "--output", "-", database_url=None, cwd=tmp_path))

    assert result.stdout == schema_sdl()


def test_export_schema_writes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out.graphql"

    status = main(["export-schema", "--output", str(target)])

    assert status == 0
    assert target.read_text() == schema_sdl()
    assert str(target) in capsys.readouterr().out
