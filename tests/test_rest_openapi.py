"""The REST facade's OpenAPI 3.1 document: valid, complete, and true to live responses.

The document served at /wp-json/fluent-community/v2/openapi.json is checked three ways:
it is a valid OpenAPI 3.1 document (openapi-spec-validator, and every schema is a valid
JSON Schema 2020-12); it describes exactly the routes the app serves; and live responses
(successes and errors, from the seed's scenarios) validate against its response schemas.

Schemathesis then tests every operation on the live test server, as CI would run it: its
CLI (`schemathesis run`, in a subprocess so the server keeps serving on this event loop),
with every check it has (`--checks all`: among them that schema-violating requests are
rejected and schema-valid ones accepted, so the document's parameter rules must be the
facade's, leniency included), its coverage phase (boundary and invalid values for every
parameter, systematically) and a bounded, seeded fuzzing phase (20 examples per operation,
no shrinking). tests/schemathesis.toml says, per operation, which 4xx answers valid data
may get (the seed's `already_enrolled`, `course_not_complete`). The coverage
phase is why the CLI is used rather than `case.call_and_validate()` over
`operation.as_strategy()`: with 20 random examples per operation, the Python API missed a
planted 500 (`page=abc` reaching `int()`), which the coverage phase found in every run. One
worker: on CPython 3.11.7, `ast.parse` from Hypothesis in parallel worker threads fails
with "AST constructor recursion depth mismatch". Two runs per database, about 20 s each.
"""

import os
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import schemathesis
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from coursepulse.models.db import Database
from coursepulse.resolvers.errors import InvalidInput
from coursepulse.resolvers.roster import SEARCH_MAX
from coursepulse.resolvers.validation import clean_text
from coursepulse.rest import openapi as rest_openapi
from coursepulse.rest import params
from tests.conftest import Account, School, make_course
from tests.processes import run_to_end

PREFIX = "/wp-json/fluent-community/v2"
OPENAPI_URL = f"{PREFIX}/openapi.json"
DOCUMENT_URI = "urn:coursepulse:rest-openapi"

# Fuzzing budget: examples per operation in the fuzzing phase (coverage cases come on top).
FUZZ_EXAMPLES = 20
FUZZ_SECONDS_LIMIT = 120
# Every check schemathesis has, with the per-operation expectations of this file.
OPERATIONS_CONFIG = Path(__file__).with_name("schemathesis.toml")

# ---- a small validator of live responses against the document ---------------------------------


def _escape(segment: str) -> str:
    """A JSON Pointer reference token, percent-encoded for a URI fragment."""
    return quote(segment.replace("~", "~0").replace("/", "~1"), safe="~")


class OpenAPIDocument:
    """The served document; checks a live response against the schema it declares."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.registry: Registry = Registry().with_resource(
            DOCUMENT_URI, DRAFT202012.create_resource(document)
        )

    def template_of(self, url: str) -> str:
        """The document's path template that a concrete request path matches."""
        path = urlsplit(url).path.removeprefix(PREFIX)
        matches = [
            template
            for template in self.document["paths"]
            if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path)
        ]
        # A literal segment beats a parameter (/courses/my-courses vs /courses/{id}).
        matches.sort(key=lambda template: template.count("{"))
        assert matches, f"{path} is not a path of the document"
        return matches[0]

    def validate(self, method: str, url: str, status: int, body: Any) -> None:
        """Asserts the status is documented for the operation and the body conforms."""
        template = self.template_of(url)
        operation = self.document["paths"][template].get(method.lower())
        assert operation is not None, f"{method} {template} is not in the document"
        responses = operation["responses"]
        assert str(status) in responses, f"{method} {template}: status {status} is undocumented"
        pointer = "/".join(
            [
                "",
                "paths",
                _escape(template),
                method.lower(),
                "responses",
                str(status),
                "content",
                _escape("application/json"),
                "schema",
            ]
        )
        self.check(body, f"{DOCUMENT_URI}#{pointer}", f"{method} {url} -> {status}")

    def validate_error(self, body: Any) -> None:
        """For answers outside any operation (405, unknown routes): the Error component."""
        self.check(body, f"{DOCUMENT_URI}#/components/schemas/Error", "error")

    def check(self, body: Any, reference: str, what: str) -> None:
        validator = Draft202012Validator({"$ref": reference}, registry=self.registry)
        errors = [
            f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(body)
        ]
        assert not errors, f"{what} breaks the document: {errors}\nbody: {body}"


async def served_document(client: TestClient) -> OpenAPIDocument:
    response = await client.get(OPENAPI_URL)
    assert response.status == 200
    assert response.content_type == "application/json"
    return OpenAPIDocument(await response.json())


async def checked(
    client: TestClient,
    openapi: OpenAPIDocument,
    method: str,
    path: str,
    *,
    as_: Account | None = None,
    expect: int = 200,
) -> Any:
    """One live request whose answer must match the document; returns the body."""
    url = PREFIX + path
    response = await client.request(method, url, headers=as_.auth if as_ else {})
    body = await response.json()
    assert response.status == expect, f"{method} {path} -> {response.status}: {body}"
    openapi.validate(method, url, response.status, body)
    return body


# ---- the document itself ----------------------------------------------------------------------


async def test_document_is_a_valid_openapi_3_1_document(client: TestClient) -> None:
    openapi = await served_document(client)
    document = openapi.document

    assert re.fullmatch(r"3\.1\.\d+", document["openapi"])
    assert document["servers"] == [{"url": PREFIX}]
    validate_openapi(document)  # detects 3.1 and validates against its meta-schema
    for name, schema in document["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)  # raises SchemaError naming the fault
        assert schema.get("type") or schema.get("oneOf"), name
    for template, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                Draft202012Validator.check_schema(parameter["schema"])
            assert "200" in operation["responses"], (method, template)
    schemes = document["components"]["securitySchemes"]
    assert schemes["basicAuth"] == {"type": "http", "scheme": "basic"}
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer"}


async def test_document_describes_exactly_the_routes_served(client: TestClient) -> None:
    openapi = await served_document(client)
    served = {
        (route.method.lower(), route.resource.canonical.removeprefix(PREFIX))
        for route in client.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith(PREFIX)
        and route.method != "HEAD"
        and route.resource.canonical != OPENAPI_URL
    }
    documented = {
        (method, template)
        for template, item in openapi.document["paths"].items()
        for method in item
    }

    assert documented == served


async def test_the_validator_rejects_a_body_that_breaks_the_document(client: TestClient) -> None:
    # The helper must be able to fail: a wrong type, a missing key, an undocumented status.
    openapi = await served_document(client)
    url = f"{PREFIX}/courses/1/enroll"
    good = {
        "message": "Successfully enrolled in course",
        "data": {
            "enrollment_id": 456,
            "course_id": 10,
            "user_id": 1,
            "enrolled_at": "2025-10-27T12:00:00",
        },
    }
    openapi.validate("POST", url, 200, good)

    for broken in (
        {**good, "data": {**good["data"], "course_id": "10"}},
        {**good, "data": {**good["data"], "enrolled_at": "2025-10-27T12:00:00+00:00"}},
        {"message": "Successfully enrolled in course"},
    ):
        with pytest.raises(AssertionError, match="breaks the document"):
            openapi.validate("POST", url, 200, broken)
    with pytest.raises(AssertionError, match="status 418 is undocumented"):
        openapi.validate("POST", url, 418, good)
    with pytest.raises(AssertionError, match="breaks the document"):
        openapi.validate_error({"code": "rest_no_route", "message": "No route"})


def test_the_whitespace_class_is_what_the_facade_trims() -> None:
    # The patterns allow around a value exactly the characters str.strip() removes.
    trimmed = {chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()}
    whitespace = re.compile(f"[{rest_openapi.WHITESPACE}]")
    matched = {chr(code) for code in range(sys.maxunicode + 1) if whitespace.fullmatch(chr(code))}
    assert matched == trimmed


QUERY_VALUES = [
    "", " ", "\t", "\x0b", "asc", "ASC", " Asc\n", "\u3000desc", "a sc", "ascc", "as", "x",
    "progress", "PROGRESS", "display_name", "Display_Name ", "display name", "status",
    "active", "ACTIVE", "unenrolled", "completed\x0c", "\x00active", "act\u0130ve",
    "\u212active",
]  # fmt: skip


async def test_the_choice_patterns_accept_exactly_what_the_facade_reads(
    client: TestClient,
) -> None:
    openapi = await served_document(client)
    allowed = {
        "orderby": ("enrolled_at", "last_accessed", "progress", "display_name"),
        "order": ("asc", "desc"),
        "status": ("active", "completed", "unenrolled"),
    }
    checked_names = set()
    for template in ("/courses/{id}/students", "/courses/my-courses"):
        for parameter in openapi.document["paths"][template]["get"]["parameters"]:
            name = parameter["name"]
            if name not in allowed:
                continue
            checked_names.add(name)
            pattern = parameter["schema"]["pattern"]
            for value in QUERY_VALUES + [choice.upper() for choice in allowed[name]]:
                try:
                    params.choice({name: value}, name, "", allowed[name])
                    reads = True
                except InvalidInput:
                    reads = False
                assert bool(re.search(pattern, value)) == reads, (name, value)
    assert checked_names == set(allowed)


SEARCHES = [
    "", " ", "john", "  john  ", "a" * 100, "a" * 101, " " * 300 + "a" * 100 + "\t",
    "\x0bjohn\x1f", "jo\x0bhn", "jo\x00hn", "jo\thn\n", "\x7f", "Zoë 🦉", "\u2028a\u2029",
]  # fmt: skip


async def test_the_search_pattern_accepts_exactly_what_the_roster_reads(
    client: TestClient,
) -> None:
    openapi = await served_document(client)
    parameters = openapi.document["paths"]["/courses/{id}/students"]["get"]["parameters"]
    (search,) = [parameter for parameter in parameters if parameter["name"] == "search"]
    for value in SEARCHES:
        try:
            clean_text(value, field="search", max_length=SEARCH_MAX, required=False)
            reads = True
        except InvalidInput:
            reads = False
        assert bool(re.search(search["schema"]["pattern"], value)) == reads, repr(value)


# ---- live responses of the seed's scenarios conform ---------------------------------------------


async def test_live_answers_of_the_seed_scenarios_conform_to_the_document(
    client: TestClient, db: Database, school: School
) -> None:
    openapi = await served_document(client)
    course = school.course_id
    lessons = school.lesson_ids
    john, jane, teacher = school.student, school.other_student, school.instructor
    _other_course, other_lessons = await make_course(db, teacher, title="CSS", lessons=1)

    async def live(method: str, path: str, as_: Account | None, expect: int = 200) -> Any:
        return await checked(client, openapi, method, path, as_=as_, expect=expect)

    # errors before anything happens
    await live("GET", f"/courses/{course}/progress", None, 401)
    await live("GET", "/courses/my-courses", None, 401)
    await live("GET", f"/courses/{course}/progress", john, 403)  # not_enrolled
    await live("GET", f"/courses/{course}/certificate", john, 403)
    await live("POST", "/courses/987654/enroll", john, 404)
    await live("POST", "/courses/abc/enroll", john, 400)
    await live("GET", "/courses/my-courses?status=bogus", john, 400)

    # the seed's walk: enroll, progress, complete, certificate
    await live("POST", f"/courses/{course}/enroll", john)
    await live("POST", f"/courses/{course}/enroll", jane)
    await live("POST", f"/courses/{course}/enroll", john, 400)  # already_enrolled
    await live("GET", f"/courses/{course}/progress", john)
    await live("POST", f"/courses/{course}/lessons/{lessons[0]}/complete", john)
    await live("POST", f"/courses/{course}/lessons/{lessons[0]}/complete", john)  # already
    await live("POST", f"/courses/{course}/lessons/{lessons[0]}/incomplete", john)
    await live("POST", f"/courses/{course}/lessons/{lessons[0]}/incomplete", john)  # not done
    await live("POST", f"/courses/{course}/lessons/{other_lessons[0]}/complete", john, 404)
    await live("POST", f"/courses/{course}/lessons/x/complete", john, 400)
    await live("GET", f"/courses/{course}/certificate", john, 400)  # course_not_complete
    for lesson_id in lessons:
        await live("POST", f"/courses/{course}/lessons/{lesson_id}/complete", john)
    await live("GET", f"/courses/{course}/certificate", john)
    done = await live("GET", f"/courses/{course}/progress", john)
    assert "certificate_url" in done["data"]
    await live("GET", "/courses/my-courses?status=completed", john)
    await live("GET", "/courses/my-courses", jane)

    # the instructor's analytics
    await live("GET", f"/courses/{course}/students?per_page=20", teacher)
    await live("GET", f"/courses/{course}/students?orderby=progress&order=asc&page=2", teacher)
    await live("GET", f"/courses/{course}/students?per_page=0", teacher, 400)
    await live("GET", f"/courses/{course}/progress?user_id={john.id}", teacher)
    await live("GET", f"/courses/{course}/progress?user_id={john.id}", jane, 403)
    await live("GET", f"/courses/{course}/students", john, 403)

    # leaving
    await live("POST", f"/courses/{course}/unenroll", jane)
    await live("POST", f"/courses/{course}/unenroll", jane, 403)
    await live("GET", "/courses/my-courses?status=unenrolled", jane)

    # answers outside any operation still have the Error shape
    for method, path, status in [
        ("GET", f"/courses/{course}/enroll", 405),
        ("GET", "/courses/10/nowhere", 404),
    ]:
        response = await client.request(method, PREFIX + path, headers=john.auth)
        assert response.status == status
        openapi.validate_error(await response.json())


# ---- schemathesis on a live server --------------------------------------------------------------


def schemathesis_config(workdir: Path, pinned_course: int | None) -> Path:
    """A config file for one run: tests/schemathesis.toml (which 4xx answers valid data may
    get, per operation) and, with `pinned_course`, every `{id}` pinned to that course."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "schemathesis.toml"
    pinned = f'[parameters]\n"path.id" = {pinned_course}\n\n' if pinned_course else ""
    config.write_text(pinned + OPERATIONS_CONFIG.read_text())
    return config


async def run_schemathesis(
    openapi_url: str, authorization: str, workdir: Path, pinned_course: int | None = None
) -> tuple[int, str]:
    """`schemathesis run` against the live server; returns its exit code and output.

    It runs in `workdir` so its caches (crash replay, Hypothesis data) stay out of the
    repository and never carry over between runs. `pinned_course` fixes every `{id}`.
    """
    config = schemathesis_config(workdir, pinned_course)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        openapi_url,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--mode",
        "all",
        "--max-examples",
        str(FUZZ_EXAMPLES),
        "--seed",
        os.environ.get("COURSEPULSE_FUZZ_SEED", "1"),
        "--no-shrink",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
        "--header",
        f"Authorization: {authorization}",
    ]
    return await run_to_end(command, cwd=workdir, seconds=FUZZ_SECONDS_LIMIT)


async def test_schemathesis_finds_no_server_error_and_no_answer_breaking_the_document(
    client: TestClient, school: School, tmp_path: Path
) -> None:
    # Given some data: john and jane enrolled, john half-way through the course
    for account in (school.student, school.other_student):
        response = await client.post(
            f"{PREFIX}/courses/{school.course_id}/enroll", headers=account.auth
        )
        assert response.status == 200
    for lesson_id in school.lesson_ids[:2]:
        response = await client.post(
            f"{PREFIX}/courses/{school.course_id}/lessons/{lesson_id}/complete",
            headers=school.student.auth,
        )
        assert response.status == 200
    openapi_url = str(client.make_url(OPENAPI_URL))

    # When schemathesis tests every operation as the student (any ids), and as the
    # course's instructor on the real course (roster, other students' progress)
    runs = {
        "student": await run_schemathesis(
            openapi_url, school.student.auth["Authorization"], tmp_path / "student"
        ),
        "instructor": await run_schemathesis(
            openapi_url,
            school.instructor.auth["Authorization"],
            tmp_path / "instructor",
            pinned_course=school.course_id,
        ),
    }

    # Then no answer is a 5xx, undocumented, or outside its schema
    for viewer, (_, output) in runs.items():
        generated = re.search(r"\d+ generated", output)
        print(f"\nREST fuzzing as {viewer}: {generated.group(0) if generated else '?'}")
    for viewer, (exit_code, output) in runs.items():
        assert exit_code == 0, f"schemathesis {schemathesis.__version__} as {viewer}:\n{output}"
        assert "8 selected / 8 total" in output, output
        assert re.search(r"\d+ generated, \d+ passed", output), output
