"""Schemathesis fuzzes `/graphql` on a live server as a student, an instructor and an admin.

Its CLI introspects the served schema and generates queries and mutations for every root
field (hypothesis-graphql), in a subprocess so the aiohttp test server keeps serving on
this event loop. The check is ours (tests/fuzz_checks.py, loaded via SCHEMATHESIS_HOOKS):
no 5xx and no `internal_error` anywhere in `errors[].extensions.code`. Any other coded
error (`invalid_input`, `forbidden`, `not_found`, `query_too_complex`, ...) is a fine
answer to a fuzzed query. Bounded so that the file takes about a minute per database:
a few examples per field, a fixed seed, no shrinking, a request timeout and a time limit.
"""

import json
import os
import re
import sys
from pathlib import Path

import pytest
import schemathesis
from aiohttp.test_utils import TestClient

from coursepulse.resolvers import certificates
from coursepulse.web.keys import DATABASE
from tests.conftest import Account, School, graphql
from tests.fuzz_checks import internal_error_messages
from tests.processes import run_to_end

HOOKS = Path(__file__).with_name("fuzz_checks.py")
# Examples per root field in the fuzzing phase (the examples and coverage phases add theirs).
FUZZ_EXAMPLES = int(os.environ.get("COURSEPULSE_FUZZ_EXAMPLES", "5"))
FUZZ_SEED = os.environ.get("COURSEPULSE_FUZZ_SEED", "1")
FUZZ_SECONDS_LIMIT = 120


# Which real ids each argument draws half of the time (the other half: any value).
ID_ARGUMENTS = {
    "*.*.courseId": "courses",
    "Query.course.id": "courses",
    "Mutation.updateCourse.id": "courses",
    "*.*.lessonId": "lessons",
    "Mutation.renameLesson.id": "lessons",
    "Mutation.deleteLesson.id": "lessons",
    "Mutation.reorderLessons.lessonIds[*]": "lessons",
    "*.*.userId": "users",
    "*.*.certificateId": "certificates",
}


def schemathesis_config(workdir: Path, ids: dict[str, list[str]]) -> Path:
    """A config file that makes ID arguments draw the school's real ids (a fuzz dictionary):
    random ids alone only ever meet `not_found`."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, values in ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    for argument, name in ID_ARGUMENTS.items():
        lines.append(f'"{argument}" = {{ dictionary = "{name}", probability = 0.5 }}')
    config = workdir / "schemathesis.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


async def run_schemathesis(
    graphql_url: str,
    account: Account,
    workdir: Path,
    ids: dict[str, list[str]],
    *options: str,
) -> tuple[int, str]:
    """`schemathesis run` on the GraphQL endpoint as `account`; its exit code and output.

    It runs in `workdir` so its caches stay out of the repository and never carry over.
    `options` go to `schemathesis run` after ours.
    """
    config = schemathesis_config(workdir, ids)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        graphql_url,
        "--checks",
        "no_server_error",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(FUZZ_EXAMPLES),
        "--seed",
        FUZZ_SEED,
        "--no-shrink",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
        "--header",
        f"Authorization: {account.auth['Authorization']}",
        *options,
    ]
    return await run_to_end(
        command,
        cwd=workdir,
        seconds=FUZZ_SECONDS_LIMIT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )


async def give_the_school_some_data(client: TestClient, school: School) -> dict[str, list[str]]:
    """john half-way through the course, jane done with a certificate; returns the ids."""
    course = school.course_id
    for account in (school.student, school.other_student):
        body = await graphql(
            client,
            "mutation($c: ID!) { enroll(courseId: $c) { __typename } }",
            {"c": course},
            as_=account,
        )
        assert "errors" not in body, body
    for account, lessons in (
        (school.student, school.lesson_ids[:2]),
        (school.other_student, school.lesson_ids),
    ):
        for lesson in lessons:
            body = await graphql(
                client,
                "mutation($c: ID!, $l: ID!) { completeLesson(courseId: $c, lessonId: $l)"
                " { __typename } }",
                {"c": course, "l": lesson},
                as_=account,
            )
            assert "errors" not in body, body
    body = await graphql(
        client,
        "query($c: ID!) { certificate(courseId: $c) { certificateId } }",
        {"c": course},
        as_=school.other_student,
    )
    assert "errors" not in body, body
    accounts = (school.admin, school.instructor, school.student, school.other_student)
    return {
        "courses": [str(course)],
        "lessons": [str(lesson) for lesson in school.lesson_ids],
        "users": [str(account.id) for account in accounts],
        "certificates": [body["data"]["certificate"]["certificateId"]],
    }


def test_the_check_finds_internal_errors_and_only_them() -> None:
    # The check must be able to fail: an internal_error among other errors is found.
    assert internal_error_messages(
        {
            "data": None,
            "errors": [
                {"message": "No", "extensions": {"code": "forbidden"}},
                {"message": "Internal server error", "extensions": {"code": "internal_error"}},
            ],
        }
    ) == ["Internal server error"]
    for fine in (
        {"data": {"me": None}},
        {"errors": [{"message": "Too complex", "extensions": {"code": "query_too_complex"}}]},
        {"errors": [{"message": "Syntax Error"}]},
        [],
        None,
    ):
        assert internal_error_messages(fine) == []


async def test_a_run_fails_on_an_internal_error(
    client: TestClient, school: School, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if client.app[DATABASE].dialect != "sqlite":
        pytest.skip("the check is under test, not the database: run once, on SQLite")

    # Given a planted bug: looking a certificate number up raises an unexpected exception
    async def broken(*_args: object) -> None:
        raise RuntimeError("planted bug")

    monkeypatch.setattr(certificates, "find_by_number", broken)

    # When schemathesis fuzzes verifyCertificate
    exit_code, output = await run_schemathesis(
        str(client.make_url("/graphql")),
        school.student,
        tmp_path,
        {name: ["1"] for name in set(ID_ARGUMENTS.values())},
        "--include-name",
        "Query.verifyCertificate",
        "--max-examples",
        "2",
    )

    # Then the run fails on our check, naming the masked error
    assert exit_code == 1, output
    assert "no_server_error" in output, output
    assert "internal_error" in output, output


async def test_fuzzed_queries_and_mutations_never_meet_a_server_error(
    client: TestClient, school: School, tmp_path: Path
) -> None:
    # Given a school with enrolments, completions and a certificate
    ids = await give_the_school_some_data(client, school)
    graphql_url = str(client.make_url("/graphql"))

    # When schemathesis fuzzes every root field as each kind of viewer
    runs = {
        viewer: await run_schemathesis(graphql_url, account, tmp_path / viewer, ids)
        for viewer, account in (
            ("student", school.student),
            ("instructor", school.instructor),
            ("admin", school.admin),
        )
    }

    # Then no answer is a 5xx or an internal_error
    for viewer, (exit_code, output) in runs.items():
        generated = re.search(r"(\d+) generated", output)
        print(f"\ngraphql fuzzing as {viewer}: {generated.group(0) if generated else output}")
        assert exit_code == 0, f"schemathesis {schemathesis.__version__} as {viewer}:\n{output}"
        assert generated, output
        assert int(generated.group(1)) > 0, output
