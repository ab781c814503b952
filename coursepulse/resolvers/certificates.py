"""Certificates of completion: one per enrolment, numbered per year, verifiable by anyone."""

import re
import secrets
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models import (
    Certificate,
    CertificateCounter,
    EnrollmentStatus,
    ProgressEventKind,
    User,
    utcnow,
)
from coursepulse.models.db import Database
from coursepulse.models.rows import CertificateRow
from coursepulse.resolvers.access import is_course_staff, require_admin
from coursepulse.resolvers.enrollments import learning_enrollment
from coursepulse.resolvers.errors import CourseNotComplete, IssueRefused, NotFound
from coursepulse.resolvers.events import append_event
from coursepulse.resolvers.progress import progress_percentage
from coursepulse.resolvers.validation import clean_text
from coursepulse.resolvers.viewer import Viewer, require_viewer

NUMBER_PREFIX = "CERT"
_NUMBER_RE = re.compile(r"CERT-[0-9]{4}-[0-9]{3,}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,64}")
REASON_MAX = 500


def certificate_number(year: int, sequence: int) -> str:
    """'CERT-2025-001': the sequence restarts each year and grows past 999."""
    return f"{NUMBER_PREFIX}-{year}-{sequence:03d}"


def certificate_url(base_url: str, certificate: Certificate | CertificateRow) -> str:
    """Where the certificate's PDF is served: an unguessable token, not the number."""
    return f"{base_url.rstrip('/')}/certificates/{certificate.token}.pdf"


def verification_url(base_url: str, certificate_number: str) -> str:
    """The public page that says whether a certificate number is valid."""
    return f"{base_url.rstrip('/')}/verify/{certificate_number}"


async def _next_sequence(session: AsyncSession, year: int) -> int:
    """The next number of the year; the counter row's lock makes concurrent issuers queue."""
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(CertificateCounter)
        .values(year=year, last_sequence=0)
        .on_conflict_do_nothing(index_elements=["year"])
    )
    sequence = await session.scalar(
        update(CertificateCounter)
        .where(CertificateCounter.year == year)
        .values(last_sequence=CertificateCounter.last_sequence + 1)
        .returning(CertificateCounter.last_sequence)
    )
    assert sequence is not None  # the row exists: inserted above or before
    return sequence


async def get_or_issue(
    session: AsyncSession,
    viewer: Viewer | None,
    course_id: int,
    *,
    may_issue: bool = True,
    now: datetime | None = None,
) -> Certificate:
    """The viewer's certificate for the course, issued on the first call after completion.

    Before completion: `course_not_complete` with the current percentage. Once
    issued, it stays the viewer's certificate whatever happens to the course.
    Without `may_issue` (a request that must not change anything: a GET, a
    cross-site request) an issued certificate is returned but none is issued.
    """
    existing = await find_own(session, viewer, course_id)
    if existing is not None:
        return existing
    _viewer, course, enrollment = await learning_enrollment(session, viewer, course_id)
    # Concurrent first requests queue on the enrolment's lock: the ones that waited
    # find the certificate the first one issued.
    existing = await find_own(session, viewer, course_id)
    if existing is not None:
        return existing
    if enrollment.status != EnrollmentStatus.COMPLETED:
        raise CourseNotComplete(
            progress_percentage=progress_percentage(
                enrollment.completed_lessons, course.total_lessons
            )
        )
    if not may_issue:
        raise IssueRefused()
    now = now or utcnow()
    student = await session.get(User, enrollment.user_id)
    assert student is not None  # foreign key
    sequence = await _next_sequence(session, now.year)
    certificate = Certificate(
        number=certificate_number(now.year, sequence),
        token=secrets.token_urlsafe(24),
        enrollment_id=enrollment.id,  # type: ignore[arg-type]
        course_id=course.id,  # type: ignore[arg-type]
        user_id=enrollment.user_id,
        year=now.year,
        sequence=sequence,
        issued_at=now,
        course_title=course.title,
        student_name=student.display_name,
    )
    session.add(certificate)
    await append_event(
        session,
        kind=ProgressEventKind.CERTIFICATE_ISSUED,
        enrollment=enrollment,
        total_lessons=course.total_lessons,
        occurred_at=now,
    )
    await session.flush()
    return certificate


async def find_own(
    session: AsyncSession, viewer: Viewer | None, course_id: int
) -> Certificate | None:
    """The viewer's certificate for the course, if one was issued (even if they left since)."""
    viewer = require_viewer(viewer)
    return await session.scalar(
        select(Certificate).where(
            Certificate.user_id == viewer.user_id, Certificate.course_id == course_id
        )
    )


async def obtain(
    db: Database, viewer: Viewer | None, course_id: int, *, may_issue: bool = True
) -> Certificate:
    """The viewer's certificate: read when it exists, issued in a write transaction otherwise.

    Reading first keeps repeated downloads from queueing behind writers. Without
    `may_issue` nothing is written: an issued certificate, or a coded refusal.
    """
    async with db.read() as session:
        existing = await find_own(session, viewer, course_id)
        if existing is not None:
            return existing
        if not may_issue:
            return await get_or_issue(session, viewer, course_id, may_issue=False)
    async with db.write() as session:
        return await get_or_issue(session, viewer, course_id)


async def find_by_number(session: AsyncSession, number: str) -> Certificate | None:
    """The certificate with this number; None for unknown or malformed numbers alike."""
    number = number.strip().upper()
    if not _NUMBER_RE.fullmatch(number):
        return None
    return await session.scalar(select(Certificate).where(Certificate.number == number))


async def find_by_token(session: AsyncSession, token: str) -> Certificate | None:
    """The certificate behind a PDF URL token; None for unknown or malformed tokens."""
    if not _TOKEN_RE.fullmatch(token):
        return None
    return await session.scalar(select(Certificate).where(Certificate.token == token))


async def may_download(
    session: AsyncSession, viewer: Viewer | None, certificate: Certificate
) -> bool:
    """Whether the viewer may learn the PDF's unguessable address: owner, course staff, admins."""
    if viewer is None:
        return False
    if viewer.user_id == certificate.user_id:
        return True
    return await is_course_staff(session, viewer, certificate.course_id)


def is_valid(certificate: Certificate | None) -> bool:
    return certificate is not None and certificate.revoked_at is None


async def revoke(
    session: AsyncSession,
    viewer: Viewer | None,
    number: str,
    reason: str,
    *,
    now: datetime | None = None,
) -> Certificate:
    """Revoke a certificate (admins); it stays on record and verifies as invalid.

    Revoking an already revoked certificate keeps the first revocation.
    """
    require_admin(viewer)
    reason = clean_text(reason, field="reason", max_length=REASON_MAX)
    certificate = await find_by_number(session, number)
    if certificate is None:
        raise NotFound(f"Certificate {number!r} not found")
    if certificate.revoked_at is None:
        certificate.revoked_at = now or utcnow()
        certificate.revoked_reason = reason
        await session.flush()
    return certificate
