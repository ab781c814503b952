"""Certificates of completion: issued on completion, numbered per year, rendered as PDFs,
verifiable by anyone, revocable by admins.

End to end over GraphQL HTTP and the public routes (/certificates/<token>.pdf,
/verify/<number>), plus resolver-level tests (coursepulse.resolvers.certificates) for
concurrency and the injectable clock. Every test runs on SQLite and PostgreSQL.
"""

import asyncio
import io
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient
from pypdf import PdfReader
from sqlalchemy import func, select, update

from coursepulse.issuing import obtain_certificate
from coursepulse.models import (
    Certificate,
    CertificateCounter,
    ProgressEvent,
    ProgressEventKind,
    Role,
    User,
)
from coursepulse.models.db import Database
from coursepulse.models.rows import ProgressEventRow
from coursepulse.resolvers import certificates, completions, enrollments, users
from coursepulse.resolvers.errors import CourseNotComplete, IssueRefused, NotEnrolled
from coursepulse.resolvers.users import viewer_of
from coursepulse.resolvers.viewer import Viewer
from tests.conftest import Account, School, error_codes, graphql, make_course, make_user

# ---- GraphQL documents ------------------------------------------------------------------

CERTIFICATE_FIELDS = """
fragment CertificateFields on Certificate {
  certificateId
  certificateUrl
  issuedAt
  courseId
  userId
  courseTitle
  studentName
  revokedAt
}
"""

CERTIFICATE = (
    """
query Certificate($courseId: ID!) {
  certificate(courseId: $courseId) { ...CertificateFields }
}
"""
    + CERTIFICATE_FIELDS
)

VERIFY_CERTIFICATE = (
    """
query Verify($certificateId: String!) {
  verifyCertificate(certificateId: $certificateId) {
    valid
    certificate { ...CertificateFields }
  }
}
"""
    + CERTIFICATE_FIELDS
)

REVOKE_CERTIFICATE = (
    """
mutation Revoke($certificateId: String!, $reason: String!) {
  revokeCertificate(certificateId: $certificateId, reason: $reason) { ...CertificateFields }
}
"""
    + CERTIFICATE_FIELDS
)

PROGRESS_CERTIFICATE_URL = """
query Progress($courseId: ID!) {
  courseProgress(courseId: $courseId) { status progressPercentage certificateUrl }
}
"""

ENROLL = """
mutation Enroll($courseId: ID!) {
  enroll(courseId: $courseId) { progress { progressPercentage } }
}
"""

COMPLETE_LESSON = """
mutation Complete($courseId: ID!, $lessonId: ID!) {
  completeLesson(courseId: $courseId, lessonId: $lessonId) { progressPercentage }
}
"""

INCOMPLETE_LESSON = """
mutation Incomplete($courseId: ID!, $lessonId: ID!) {
  incompleteLesson(courseId: $courseId, lessonId: $lessonId) { progressPercentage }
}
"""

UPDATE_COURSE = """
mutation UpdateCourse($id: ID!, $input: CourseUpdateInput!) {
  updateCourse(id: $id, input: $input) { id title }
}
"""

ADD_LESSON = """
mutation AddLesson($courseId: ID!, $input: LessonInput!) {
  addLesson(courseId: $courseId, input: $input) { id }
}
"""

NUMBER_FORMAT = re.compile(r"CERT-(\d{4})-(\d{3,})")
NOT_COMPLETE_MESSAGE = "You must complete all lessons to get a certificate"

# ---- helpers ----------------------------------------------------------------------------


def data(body: dict[str, Any], field: str) -> Any:
    assert "errors" not in body, body
    return body["data"][field]


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("data") is None, body
    assert len(body["errors"]) == 1, body
    return body["errors"][0]


async def finish_course(
    db: Database, viewer: Viewer, course_id: int, lesson_ids: list[int]
) -> None:
    """Enrol the viewer and complete every lesson (resolver level, one transaction)."""
    async with db.write() as tx:
        await enrollments.enroll(tx, viewer, course_id)
        for lesson_id in lesson_ids:
            await completions.complete_lesson(tx, viewer, course_id, lesson_id)


async def graduate(db: Database, school: School) -> None:
    """The school's student completes the school's course."""
    await finish_course(db, school.student.viewer, school.course_id, school.lesson_ids)


async def issue(client: TestClient, school: School, as_: Account | None = None) -> dict[str, Any]:
    """The certificate of `as_` (the school's student by default) for the school's course."""
    body = await graphql(
        client, CERTIFICATE, {"courseId": str(school.course_id)}, as_=as_ or school.student
    )
    return data(body, "certificate")


async def verify(client: TestClient, number: str, as_: Account | None = None) -> dict[str, Any]:
    body = await graphql(client, VERIFY_CERTIFICATE, {"certificateId": number}, as_=as_)
    return data(body, "verifyCertificate")


def as_verified_by_anyone(issued: dict[str, Any]) -> dict[str, Any]:
    """The certificate as an anonymous verifier sees it: the public page, not the PDF's address."""
    return {**issued, "certificateUrl": f"http://testserver/verify/{issued['certificateId']}"}


async def progress_certificate_url(client: TestClient, school: School) -> str | None:
    body = await graphql(
        client, PROGRESS_CERTIFICATE_URL, {"courseId": str(school.course_id)}, as_=school.student
    )
    return data(body, "courseProgress")["certificateUrl"]


async def fetch_pdf_text(client: TestClient, certificate_url: str) -> str:
    """GET the certificate's PDF (by its URL's path) and return its extracted text."""
    response = await client.get(urlsplit(certificate_url).path)
    assert response.status == 200, await response.text()
    assert response.content_type == "application/pdf"
    reader = PdfReader(io.BytesIO(await response.read()))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def squeeze(value: str) -> str:
    """Text without whitespace: PDF extraction may break or space lines differently."""
    return re.sub(r"\s+", "", value)


async def certificate_rows(db: Database) -> int:
    async with db.read() as tx:
        return await tx.scalar(select(func.count()).select_from(Certificate.__table__))  # type: ignore[no-any-return]


async def issued_events(db: Database, course_id: int) -> list[ProgressEventRow]:
    events = ProgressEvent.__table__
    async with db.read() as tx:
        return await tx.all(
            select(events).where(
                events.c.course_id == course_id,
                events.c.kind == str(ProgressEventKind.CERTIFICATE_ISSUED),
            )
        )


async def finish_course_http(client: TestClient, school: School) -> None:
    """The school's student enrols and completes every lesson over GraphQL."""
    variables = {"courseId": str(school.course_id)}
    await graphql(client, ENROLL, variables, as_=school.student)
    for lesson_id in school.lesson_ids:
        body = await graphql(
            client, COMPLETE_LESSON, {**variables, "lessonId": str(lesson_id)}, as_=school.student
        )
        assert "errors" not in body, body


# ---- before completion ------------------------------------------------------------------


async def test_certificate_before_completion_fails_with_the_current_percentage(
    client: TestClient, school: School, db: Database
) -> None:
    # Given the student enrolled and finished 1 lesson of 4
    variables = {"courseId": str(school.course_id)}
    await graphql(client, ENROLL, variables, as_=school.student)
    body = await graphql(client, CERTIFICATE, variables, as_=school.student)
    error = only_error(body)
    assert error["extensions"]["progressPercentage"] == 0
    await graphql(
        client,
        COMPLETE_LESSON,
        {**variables, "lessonId": str(school.lesson_ids[0])},
        as_=school.student,
    )

    # When they ask for the certificate
    body = await graphql(client, CERTIFICATE, variables, as_=school.student)

    # Then it is refused with the percentage they reached, and nothing is issued
    error = only_error(body)
    assert error["message"] == NOT_COMPLETE_MESSAGE
    assert error["extensions"]["code"] == "course_not_complete"
    assert error["extensions"]["status"] == 400
    assert error["extensions"]["progressPercentage"] == 25
    assert await certificate_rows(db) == 0
    assert await progress_certificate_url(client, school) is None

    # And refused attempts do not use up numbers: the first certificate is still -001
    for lesson_id in school.lesson_ids[1:]:
        await graphql(
            client, COMPLETE_LESSON, {**variables, "lessonId": str(lesson_id)}, as_=school.student
        )
    certificate = await issue(client, school)
    match = NUMBER_FORMAT.fullmatch(certificate["certificateId"])
    assert match is not None
    assert match.group(2) == "001"


async def test_certificate_requires_an_enrolment_and_a_login(
    client: TestClient, school: School
) -> None:
    variables = {"courseId": str(school.course_id)}

    not_enrolled = await graphql(client, CERTIFICATE, variables, as_=school.other_student)
    anonymous = await graphql(client, CERTIFICATE, variables)

    assert error_codes(not_enrolled) == ["not_enrolled"]
    assert only_error(not_enrolled)["extensions"]["status"] == 403
    assert error_codes(anonymous) == ["unauthenticated"]


# ---- issuing ------------------------------------------------------------------------------


async def test_completing_the_course_issues_a_certificate(
    client: TestClient, school: School
) -> None:
    # Given the student completed every lesson, with no certificate yet
    await finish_course_http(client, school)
    assert await progress_certificate_url(client, school) is None

    # When they ask for their certificate
    certificate = await issue(client, school)

    # Then it is issued with this year's first number and their details
    issued_at = datetime.fromisoformat(certificate["issuedAt"])
    assert issued_at.utcoffset() is not None
    assert abs((datetime.now(UTC) - issued_at).total_seconds()) < 60
    assert certificate["certificateId"] == f"CERT-{issued_at.year}-001"
    assert certificate["courseId"] == str(school.course_id)
    assert certificate["userId"] == str(school.student.id)
    assert certificate["courseTitle"] == "Introduction to Web Development"
    assert certificate["studentName"] == "John Doe"
    assert certificate["revokedAt"] is None
    # The URL carries an opaque token, not the sequential number
    url = certificate["certificateUrl"]
    match = re.fullmatch(r"http://testserver/certificates/([A-Za-z0-9_-]+)\.pdf", url)
    assert match is not None, url
    token = match.group(1)
    assert len(token) >= 20
    assert certificate["certificateId"] not in token
    assert certificate["certificateId"] not in url

    # And the progress shows where to download it
    assert await progress_certificate_url(client, school) == url


async def test_asking_again_returns_the_same_certificate(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    first = await issue(client, school)

    second = await issue(client, school)

    assert second == first
    assert await certificate_rows(db) == 1


async def test_issuing_appends_one_certificate_issued_event(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    assert await issued_events(db, school.course_id) == []

    # When the certificate is issued
    await issue(client, school)

    # Then one CERTIFICATE_ISSUED event is in the log, for the student, at 100%
    events = await issued_events(db, school.course_id)
    assert len(events) == 1
    assert events[0].user_id == school.student.id
    assert events[0].progress_percentage == 100

    # And asking again appends nothing
    await issue(client, school)
    assert [event.id for event in await issued_events(db, school.course_id)] == [events[0].id]


async def test_students_get_distinct_tokens_and_consecutive_numbers(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    await finish_course(db, school.other_student.viewer, school.course_id, school.lesson_ids)

    john = await issue(client, school)
    jane = await issue(client, school, as_=school.other_student)

    year = datetime.fromisoformat(john["issuedAt"]).year
    assert (john["certificateId"], jane["certificateId"]) == (
        f"CERT-{year}-001",
        f"CERT-{year}-002",
    )
    assert jane["studentName"] == "Jane Roe"
    assert john["certificateUrl"] != jane["certificateUrl"]


# ---- numbering --------------------------------------------------------------------------


async def test_fifty_students_finishing_at_once_get_fifty_consecutive_numbers(
    db: Database,
) -> None:
    # Given 50 students who all completed one course
    instructor = await make_user(db, "teacher", role=Role.INSTRUCTOR)
    course_id, lesson_ids = await make_course(db, instructor, lessons=1)
    async with db.write() as tx:
        viewers = [
            viewer_of(await users.create_user(tx, username=f"student_{n:02d}", password="x" * 12))
            for n in range(50)
        ]
        for viewer in viewers:
            await enrollments.enroll(tx, viewer, course_id)
            for lesson_id in lesson_ids:
                await completions.complete_lesson(tx, viewer, course_id, lesson_id)
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

    # When they all ask for their certificate at the same moment
    async def request(viewer: Viewer) -> tuple[int, str, int]:
        async with db.write() as tx:
            certificate = await certificates.issue(tx, viewer, course_id, now=now)
            return certificate.user_id, certificate.number, certificate.sequence

    issued = await asyncio.gather(*(request(viewer) for viewer in viewers))

    # Then each got their own number, and together they are 001..050 without a gap
    assert sorted(user_id for user_id, _, _ in issued) == sorted(v.user_id for v in viewers)
    assert sorted(number for _, number, _ in issued) == [f"CERT-2025-{n:03d}" for n in range(1, 51)]
    assert sorted(sequence for _, _, sequence in issued) == list(range(1, 51))
    assert await certificate_rows(db) == 50


async def test_sequence_restarts_each_year_and_grows_past_999(db: Database) -> None:
    instructor = await make_user(db, "teacher", role=Role.INSTRUCTOR)
    course_id, lesson_ids = await make_course(db, instructor, lessons=1)
    students = [await make_user(db, f"student_{n}") for n in range(5)]
    for student in students:
        await finish_course(db, student.viewer, course_id, lesson_ids)

    async def issue_at(student: Account, now: datetime) -> str:
        async with db.write() as tx:
            certificate = await certificates.issue(tx, student.viewer, course_id, now=now)
            return certificate.number

    # Two certificates in 2025, then the first one of 2026
    assert await issue_at(students[0], datetime(2025, 3, 1, tzinfo=UTC)) == "CERT-2025-001"
    assert (
        await issue_at(students[1], datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC))
        == "CERT-2025-002"
    )
    assert await issue_at(students[2], datetime(2026, 1, 1, 0, 0, tzinfo=UTC)) == "CERT-2026-001"

    # After the 999th certificate of 2026 the number grows a digit
    counters = CertificateCounter.__table__
    async with db.write() as tx:
        await tx.execute(update(counters).where(counters.c.year == 2026).values(last_sequence=999))
    assert await issue_at(students[3], datetime(2026, 5, 1, tzinfo=UTC)) == "CERT-2026-1000"
    # A late 2025 issue (clock injected) continues 2025's own sequence
    assert await issue_at(students[4], datetime(2025, 12, 31, tzinfo=UTC)) == "CERT-2025-003"

    # And numbers past 999 are found by number like any other
    async with db.read() as tx:
        found = await certificates.find_by_number(tx, "CERT-2026-1000")
    assert found is not None
    assert found.user_id == students[3].id
    assert found.issued_at.year == 2026


async def test_a_request_that_may_not_issue_is_refused_in_a_read_transaction(
    db: Database, school: School
) -> None:
    # Given a student half way through, and one who completed the course
    student, graduate_ = school.student.viewer, school.other_student.viewer
    async with db.write() as tx:
        await enrollments.enroll(tx, student, school.course_id)
        await completions.complete_lesson(tx, student, school.course_id, school.lesson_ids[0])
    await finish_course(db, graduate_, school.course_id, school.lesson_ids)

    # When a request that must not change anything asks (it locks nothing: a read will do)
    async with db.read() as tx:
        with pytest.raises(CourseNotComplete) as not_complete:
            await certificates.refuse_issue(tx, student, school.course_id)
        with pytest.raises(IssueRefused):
            await certificates.refuse_issue(tx, graduate_, school.course_id)
        with pytest.raises(NotEnrolled):
            await certificates.refuse_issue(tx, school.instructor.viewer, school.course_id)

    # Then each gets what issuing would say first, and nothing is issued
    assert not_complete.value.extra == {"progress_percentage": 25}
    with pytest.raises(IssueRefused):
        await obtain_certificate(db, graduate_, school.course_id, may_issue=False)
    assert await certificate_rows(db) == 0

    # And once issued, the same request gets the certificate
    issued = await obtain_certificate(db, graduate_, school.course_id, may_issue=True)
    again = await obtain_certificate(db, graduate_, school.course_id, may_issue=False)
    assert again == issued
    assert await certificate_rows(db) == 1


async def test_concurrent_first_requests_of_one_student_get_one_certificate(
    db: Database, school: School
) -> None:
    await graduate(db, school)

    issued = await asyncio.gather(
        *(
            obtain_certificate(db, school.student.viewer, school.course_id, may_issue=True)
            for _ in range(10)
        )
    )

    assert {certificate.number for certificate in issued} == {issued[0].number}
    assert await certificate_rows(db) == 1
    assert len(await issued_events(db, school.course_id)) == 1


def test_certificate_number_is_zero_padded_to_three_digits() -> None:
    assert certificates.certificate_number(2025, 1) == "CERT-2025-001"
    assert certificates.certificate_number(2025, 42) == "CERT-2025-042"
    assert certificates.certificate_number(2025, 999) == "CERT-2025-999"
    assert certificates.certificate_number(2025, 12345) == "CERT-2025-12345"


# ---- what an issued certificate keeps ------------------------------------------------------


async def test_renaming_course_or_student_later_does_not_change_the_certificate(
    client: TestClient, school: School, db: Database
) -> None:
    # Given an issued certificate
    await graduate(db, school)
    issued = await issue(client, school)

    # When the course is renamed and the student changes their name
    body = await graphql(
        client,
        UPDATE_COURSE,
        {"id": str(school.course_id), "input": {"title": "Advanced Web Engineering"}},
        as_=school.instructor,
    )
    assert data(body, "updateCourse")["title"] == "Advanced Web Engineering"
    users_table = User.__table__
    async with db.write() as tx:
        await tx.execute(
            update(users_table)
            .where(users_table.c.id == school.student.id)
            .values(display_name="Johnny Renamed")
        )

    # Then the certificate, its verification and its PDF keep the names of issue time
    assert await issue(client, school) == issued
    verification = await verify(client, issued["certificateId"])
    assert verification == {"valid": True, "certificate": as_verified_by_anyone(issued)}
    pdf = squeeze(await fetch_pdf_text(client, issued["certificateUrl"]))
    assert squeeze("John Doe") in pdf
    assert squeeze("Introduction to Web Development") in pdf
    assert squeeze("Johnny Renamed") not in pdf
    assert squeeze("Advanced Web Engineering") not in pdf
    page = await (await client.get(f"/verify/{issued['certificateId']}")).text()
    assert "John Doe" in page
    assert "Introduction to Web Development" in page
    assert "Johnny Renamed" not in page
    assert "Advanced Web Engineering" not in page


async def test_certificate_stays_valid_after_a_lesson_is_marked_incomplete(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    issued = await issue(client, school)

    body = await graphql(
        client,
        INCOMPLETE_LESSON,
        {"courseId": str(school.course_id), "lessonId": str(school.lesson_ids[-1])},
        as_=school.student,
    )
    assert data(body, "incompleteLesson")["progressPercentage"] == 75

    assert await issue(client, school) == issued
    assert (await verify(client, issued["certificateId"]))["valid"] is True
    assert await progress_certificate_url(client, school) == issued["certificateUrl"]


async def test_certificate_stays_valid_after_a_lesson_is_added(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    issued = await issue(client, school)

    body = await graphql(
        client,
        ADD_LESSON,
        {"courseId": str(school.course_id), "input": {"title": "Bonus lesson"}},
        as_=school.instructor,
    )
    assert "errors" not in body, body
    progress = await graphql(
        client, PROGRESS_CERTIFICATE_URL, {"courseId": str(school.course_id)}, as_=school.student
    )
    assert data(progress, "courseProgress")["progressPercentage"] == 80

    assert await issue(client, school) == issued
    assert (await verify(client, issued["certificateId"]))["valid"] is True
    assert await progress_certificate_url(client, school) == issued["certificateUrl"]


# ---- revoking -------------------------------------------------------------------------------


async def test_only_admins_may_revoke_a_certificate(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    issued = await issue(client, school)
    variables = {"certificateId": issued["certificateId"], "reason": "Plagiarism"}

    by_instructor = await graphql(client, REVOKE_CERTIFICATE, variables, as_=school.instructor)
    by_owner = await graphql(client, REVOKE_CERTIFICATE, variables, as_=school.student)
    anonymous = await graphql(client, REVOKE_CERTIFICATE, variables)

    assert error_codes(by_instructor) == ["forbidden"]
    assert error_codes(by_owner) == ["forbidden"]
    assert error_codes(anonymous) == ["unauthenticated"]
    assert await verify(client, issued["certificateId"]) == {
        "valid": True,
        "certificate": as_verified_by_anyone(issued),
    }


async def test_revoking_needs_a_known_number_and_a_reason(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    issued = await issue(client, school)
    year = datetime.fromisoformat(issued["issuedAt"]).year

    unknown = await graphql(
        client,
        REVOKE_CERTIFICATE,
        {"certificateId": f"CERT-{year}-777", "reason": "Plagiarism"},
        as_=school.admin,
    )
    malformed = await graphql(
        client,
        REVOKE_CERTIFICATE,
        {"certificateId": "' OR 1=1 --", "reason": "Plagiarism"},
        as_=school.admin,
    )
    no_reason = await graphql(
        client,
        REVOKE_CERTIFICATE,
        {"certificateId": issued["certificateId"], "reason": ""},
        as_=school.admin,
    )
    blank_reason = await graphql(
        client,
        REVOKE_CERTIFICATE,
        {"certificateId": issued["certificateId"], "reason": "   "},
        as_=school.admin,
    )

    assert error_codes(unknown) == ["not_found"]
    assert error_codes(malformed) == ["not_found"]
    assert error_codes(no_reason) == ["invalid_input"]
    assert error_codes(blank_reason) == ["invalid_input"]
    assert (await verify(client, issued["certificateId"]))["valid"] is True


async def test_revoked_certificate_stays_on_record_and_says_it_was_revoked(
    client: TestClient, school: School, db: Database
) -> None:
    # Given an issued certificate whose PDF and page were already served as valid
    await graduate(db, school)
    issued = await issue(client, school)
    number = issued["certificateId"]
    assert "REVOKED" not in await fetch_pdf_text(client, issued["certificateUrl"])
    page = await client.get(f"/verify/{number}")
    assert "Valid certificate" in await page.text()

    # When an admin revokes it
    body = await graphql(
        client,
        REVOKE_CERTIFICATE,
        {"certificateId": number, "reason": "Exam fraud"},
        as_=school.admin,
    )

    # Then it is on record with the revocation time
    revoked = data(body, "revokeCertificate")
    assert revoked["revokedAt"] is not None
    revoked_at = datetime.fromisoformat(revoked["revokedAt"])
    assert abs((datetime.now(UTC) - revoked_at).total_seconds()) < 60
    assert {**revoked, "revokedAt": None} == issued
    # It verifies as invalid, with its details
    assert await verify(client, number) == {
        "valid": False,
        "certificate": as_verified_by_anyone(revoked),
    }
    # The student still sees it (revoked), and no new certificate is issued
    assert await issue(client, school) == revoked
    assert await certificate_rows(db) == 1
    # The PDF and the verification page say it was revoked
    assert "REVOKED" in await fetch_pdf_text(client, issued["certificateUrl"])
    page = await client.get(f"/verify/{number}")
    html = await page.text()
    assert page.status == 200
    assert "Revoked" in html
    assert "Valid certificate" not in html

    # And revoking again keeps the first revocation
    again = await graphql(
        client,
        REVOKE_CERTIFICATE,
        {"certificateId": number, "reason": "Twice"},
        as_=school.admin,
    )
    assert data(again, "revokeCertificate") == revoked


# ---- public verification ----------------------------------------------------------------------


async def test_anyone_can_verify_a_certificate_without_logging_in(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    issued = await issue(client, school)

    verification = await verify(client, issued["certificateId"])

    assert verification == {"valid": True, "certificate": as_verified_by_anyone(issued)}


async def test_unknown_and_malformed_numbers_verify_as_invalid_never_as_errors(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    issued = await issue(client, school)
    year = datetime.fromisoformat(issued["issuedAt"]).year

    for number in ["", "abc", "CERT-2025-999999", "' OR 1=1 --", f"CERT-{year}-002"]:
        body = await graphql(client, VERIFY_CERTIFICATE, {"certificateId": number})
        assert body == {"data": {"verifyCertificate": {"valid": False, "certificate": None}}}, (
            number
        )


async def test_verify_page_shows_a_valid_certificate_with_its_details(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    issued = await issue(client, school)

    response = await client.get(f"/verify/{issued['certificateId']}")

    assert response.status == 200
    assert response.content_type == "text/html"
    html = await response.text()
    assert "Valid certificate" in html
    assert "John Doe" in html
    assert "Introduction to Web Development" in html
    assert issued["certificateId"] in html


async def test_verify_page_says_unknown_for_numbers_never_issued(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    issued = await issue(client, school)
    year = datetime.fromisoformat(issued["issuedAt"]).year

    for number in [f"CERT-{year}-002", "abc", "CERT-2025-999999"]:
        response = await client.get(f"/verify/{number}")
        html = await response.text()
        assert response.status == 404, number
        assert "Unknown certificate" in html
        assert "John Doe" not in html
        assert "Traceback" not in html


async def test_verify_page_escapes_names(client: TestClient, db: Database) -> None:
    # Given a student whose display name is markup
    instructor = await make_user(db, "teacher", role=Role.INSTRUCTOR)
    course_id, lesson_ids = await make_course(db, instructor, title="Tags & <b>Bold</b>", lessons=1)
    mallory = await make_user(db, "mallory", display_name="<script>alert('x')</script> Mallory")
    await finish_course(db, mallory.viewer, course_id, lesson_ids)
    body = await graphql(client, CERTIFICATE, {"courseId": str(course_id)}, as_=mallory)
    issued = data(body, "certificate")
    assert issued["studentName"] == "<script>alert('x')</script> Mallory"

    # When anyone opens the verification page
    response = await client.get(f"/verify/{issued['certificateId']}")

    # Then the names are shown as text, not markup
    html = await response.text()
    assert response.status == 200
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<b>Bold</b>" not in html
    assert "Tags &amp; &lt;b&gt;Bold&lt;/b&gt;" in html
    # And a markup-looking unknown number is escaped as well
    unknown = await client.get("/verify/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert unknown.status == 404
    assert "<script>" not in await unknown.text()


# ---- the PDF --------------------------------------------------------------------------------


async def test_certificate_pdf_is_one_page_with_name_title_number_date_and_verification_address(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    issued = await issue(client, school)
    number = issued["certificateId"]
    issued_at = datetime.fromisoformat(issued["issuedAt"])

    response = await client.get(urlsplit(issued["certificateUrl"]).path)

    assert response.status == 200
    assert response.content_type == "application/pdf"
    content = await response.read()
    assert content.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(content))
    assert len(reader.pages) == 1
    pdf = squeeze(reader.pages[0].extract_text())
    assert squeeze("John Doe") in pdf
    assert squeeze("Introduction to Web Development") in pdf
    assert number in pdf
    assert f"http://testserver/verify/{number}" in pdf
    assert squeeze(f"{issued_at:%B} {issued_at.day}, {issued_at.year}") in pdf
    assert "REVOKED" not in pdf


async def test_unknown_and_malformed_pdf_tokens_get_404_without_a_stack_trace(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    await issue(client, school)

    for path in [
        "/certificates/AAAAAAAAAAAAAAAAAAAAAAAA.pdf",
        "/certificates/x.pdf",
        "/certificates/..%2Fetc.pdf",
        "/certificates/%27%20OR%201%3D1%20--.pdf",
    ]:
        response = await client.get(path)
        body = await response.text()
        assert response.status == 404, path
        assert "Traceback" not in body, path
        assert response.content_type == "application/json", path
        assert error_codes(await response.json()) == ["not_found"], path


async def test_only_the_owner_and_course_staff_learn_the_pdf_address_when_verifying(
    client: TestClient, school: School, db: Database
) -> None:
    await graduate(db, school)
    issued = await issue(client, school)
    number = issued["certificateId"]
    for insider in (school.student, school.instructor, school.admin):
        verification = await verify(client, number, as_=insider)
        assert verification["certificate"]["certificateUrl"] == issued["certificateUrl"]
    token = urlsplit(issued["certificateUrl"]).path.rsplit("/", 1)[1].removesuffix(".pdf")
    for outsider in (None, school.other_student):
        verification = await verify(client, number, as_=outsider)
        assert verification["valid"] is True
        assert verification["certificate"] == as_verified_by_anyone(issued)
        assert token not in str(verification)
