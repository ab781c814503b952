"""Certificates of completion: one per enrolment, numbered per year, verifiable by anyone.

Getting one's certificate is a read, then (the first time only) a write: `find_own`
in a read transaction, and when nothing was issued yet, `issue` in a write
transaction, or `refuse_issue` when the request must not change anything. The
front doors sequence them through `coursepulse.issuing.obtain_certificate`.
"""

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from coursepulse.models import (
    Certificate,
    CertificateCounter,
    EnrollmentStatus,
    ProgressEventKind,
    User,
    utcnow,
)
from coursepulse.models.rows import CertificateRow, CourseRow, EnrollmentRow
from coursepulse.models.sql import Query
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers.access import is_course_staff, require_admin
from coursepulse.resolvers.enrollments import course_progress, learning_enrollment
from coursepulse.resolvers.errors import CourseNotComplete, IssueRefused, NotFound
from coursepulse.resolvers.outbox import append_event
from coursepulse.resolvers.progress import progress_percentage
from coursepulse.resolvers.validation import clean_text
from coursepulse.resolvers.viewer import Viewer, require_viewer

NUMBER_PREFIX = "CERT"
_NUMBER_RE = re.compile(r"CERT-[0-9]{4}-[0-9]{3,}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,64}")
REASON_MAX = 500

_CERTIFICATES = Certificate.__table__
_COUNTERS = CertificateCounter.__table__
_USERS = User.__table__

_OWN = Query(
    select(_CERTIFICATES).where(
        _CERTIFICATES.c.user_id == bindparam("user_id"),
        _CERTIFICATES.c.course_id == bindparam("course_id"),
    )
)
_BY_NUMBER = Query(select(_CERTIFICATES).where(_CERTIFICATES.c.number == bindparam("number")))
_BY_TOKEN = Query(select(_CERTIFICATES).where(_CERTIFICATES.c.token == bindparam("token")))


def _next_sequence_query(dialect_insert: type[sqlite.Insert] | type[postgresql.Insert]) -> Query:
    """The year's counter, created at 1 or incremented; the row's lock queues concurrent issuers."""
    return Query(
        dialect_insert(_COUNTERS)
        .values(year=bindparam("year"), last_sequence=1)
        .on_conflict_do_update(
            index_elements=[_COUNTERS.c.year],
            set_={"last_sequence": _COUNTERS.c.last_sequence + 1},
        )
        .returning(_COUNTERS.c.last_sequence)
    )


_NEXT_SEQUENCE = {
    "sqlite": _next_sequence_query(sqlite.Insert),
    "postgresql": _next_sequence_query(postgresql.Insert),
}
#: The new certificate; the student's name is read from their user row as it is now.
_ADD_CERTIFICATE = Query(
    insert(_CERTIFICATES)
    .values(
        number=bindparam("number"),
        token=bindparam("token"),
        enrollment_id=bindparam("enrollment_id"),
        course_id=bindparam("course_id"),
        user_id=bindparam("user_id"),
        year=bindparam("year"),
        sequence=bindparam("sequence"),
        issued_at=bindparam("issued_at"),
        course_title=bindparam("course_title"),
        student_name=select(_USERS.c.display_name)
        .where(_USERS.c.id == bindparam("user_id"))
        .scalar_subquery(),
    )
    .returning(_CERTIFICATES)
)
#: Revokes a certificate; one revoked already keeps its first revocation (time and reason).
_REVOKE = Query(
    update(_CERTIFICATES)
    .where(_CERTIFICATES.c.number == bindparam("number"))
    .values(
        revoked_at=func.coalesce(
            _CERTIFICATES.c.revoked_at, bindparam("at", type_=_CERTIFICATES.c.revoked_at.type)
        ),
        revoked_reason=case(
            (
                _CERTIFICATES.c.revoked_at.is_(None),
                bindparam("reason", type_=_CERTIFICATES.c.revoked_reason.type),
            ),
            else_=_CERTIFICATES.c.revoked_reason,
        ),
    )
    .returning(_CERTIFICATES)
)


def certificate_number(year: int, sequence: int) -> str:
    """'CERT-2025-001': the sequence restarts each year and grows past 999."""
    return f"{NUMBER_PREFIX}-{year}-{sequence:03d}"


def certificate_url(base_url: str, certificate: CertificateRow) -> str:
    """Where the certificate's PDF is served: an unguessable token, not the number."""
    return f"{base_url.rstrip('/')}/certificates/{certificate.token}.pdf"


def verification_url(base_url: str, certificate_number: str) -> str:
    """The public page that says whether a certificate number is valid."""
    return f"{base_url.rstrip('/')}/verify/{certificate_number}"


def _normalized_number(number: str) -> str | None:
    """The number as certificates carry it (case and blanks aside); None when malformed."""
    normalized = number.strip().upper()
    return normalized if _NUMBER_RE.fullmatch(normalized) else None


def _require_complete(course: CourseRow, enrollment: EnrollmentRow) -> None:
    """`course_not_complete`, with the current percentage, before the enrolment is completed."""
    if enrollment.status != EnrollmentStatus.COMPLETED:
        raise CourseNotComplete(
            progress_percentage=progress_percentage(
                enrollment.completed_lessons, course.total_lessons
            )
        )


async def find_own(tx: Transaction, viewer: Viewer | None, course_id: int) -> CertificateRow | None:
    """The viewer's certificate for the course, if one was issued (even if they left since).

    Once issued, it stays the viewer's certificate whatever happens to the course.
    """
    viewer = require_viewer(viewer)
    return await tx.first(_OWN, user_id=viewer.user_id, course_id=course_id)


async def issue(
    tx: Transaction, viewer: Viewer | None, course_id: int, *, now: datetime | None = None
) -> CertificateRow:
    """Issue the viewer's certificate for the course, in a write transaction where `find_own`
    found none; a certificate issued meanwhile by a concurrent request is returned instead.

    Not enrolled: `not_enrolled` (`not_found` for a course the viewer cannot see).
    Before completion: `course_not_complete` with the current percentage; refused
    attempts use up no number. A concurrent issue that still collides on a unique key
    raises IntegrityError, which ends the transaction: the winner's row is to be read
    in a new one (as `coursepulse.issuing.obtain_certificate` does).
    """
    _viewer, course, enrollment = await learning_enrollment(tx, viewer, course_id)
    # Concurrent first requests queue on the enrolment's lock: the ones that waited
    # find the certificate the first one issued.
    existing = await find_own(tx, viewer, course_id)
    if existing is not None:
        return existing
    _require_complete(course, enrollment)
    now = now or utcnow()
    sequence = await tx.scalar(_NEXT_SEQUENCE[tx.dialect.name], year=now.year)
    assert sequence is not None  # the upsert returns the counter
    certificate: CertificateRow = await tx.first(
        _ADD_CERTIFICATE,
        number=certificate_number(now.year, sequence),
        token=secrets.token_urlsafe(24),
        enrollment_id=enrollment.id,
        course_id=course.id,
        user_id=enrollment.user_id,
        year=now.year,
        sequence=sequence,
        issued_at=now,
        course_title=course.title,
    )
    await append_event(
        tx,
        kind=ProgressEventKind.CERTIFICATE_ISSUED,
        enrollment=enrollment,
        total_lessons=course.total_lessons,
        occurred_at=now,
    )
    return certificate


async def refuse_issue(tx: Transaction, viewer: Viewer | None, course_id: int) -> NoReturn:
    """Why a request that must not change anything (a GET, a cross-site request) gets no
    certificate, for a viewer without one: what `issue` would refuse first (`not_found`,
    `not_enrolled`, `course_not_complete`), else `IssueRefused`.

    It locks and writes nothing: a read transaction will do.
    """
    record = await course_progress(tx, viewer, course_id)
    _require_complete(record.course, record.enrollment)
    raise IssueRefused()


async def find_by_number(tx: Transaction, number: str) -> CertificateRow | None:
    """The certificate with this number; None for unknown or malformed numbers alike."""
    normalized = _normalized_number(number)
    if normalized is None:
        return None
    return await tx.first(_BY_NUMBER, number=normalized)


async def find_by_token(tx: Transaction, token: str) -> CertificateRow | None:
    """The certificate behind a PDF URL token; None for unknown or malformed tokens."""
    if not _TOKEN_RE.fullmatch(token):
        return None
    return await tx.first(_BY_TOKEN, token=token)


async def may_download(tx: Transaction, viewer: Viewer | None, certificate: CertificateRow) -> bool:
    """Whether the viewer may learn the PDF's unguessable address: owner, course staff, admins."""
    if viewer is None:
        return False
    if viewer.user_id == certificate.user_id:
        return True
    return await is_course_staff(tx, viewer, certificate.course_id)


def is_valid(certificate: CertificateRow | None) -> bool:
    """True for an issued certificate that was not revoked."""
    return certificate is not None and certificate.revoked_at is None


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """What a viewer checking a certificate number learns."""

    #: The certificate with that number; None for unknown or malformed numbers.
    certificate: CertificateRow | None
    #: Issued and not revoked.
    valid: bool
    #: The address this viewer is given for the certificate: the PDF's for its owner,
    #: the course's staff and admins (`may_download`), the public verification page's
    #: for anyone else (the PDF's address is its owner's to share). None when not found.
    certificate_url: str | None
    #: The viewer is the owner, of the course's staff or an admin (`may_download`).
    owner_view: bool = False


async def verify(
    tx: Transaction, viewer: Viewer | None, number: str, *, base_url: str
) -> VerificationResult:
    """Anyone may check a certificate number: whether it is valid, and its details."""
    certificate = await find_by_number(tx, number)
    if certificate is None:
        return VerificationResult(certificate=None, valid=False, certificate_url=None)
    owner_view = await may_download(tx, viewer, certificate)
    if owner_view:
        url = certificate_url(base_url, certificate)
    else:
        url = verification_url(base_url, certificate.number)
    return VerificationResult(
        certificate=certificate,
        valid=is_valid(certificate),
        certificate_url=url,
        owner_view=owner_view,
    )


async def revoke(
    tx: Transaction,
    viewer: Viewer | None,
    number: str,
    reason: str,
    *,
    now: datetime | None = None,
) -> CertificateRow:
    """Revoke a certificate (admins); it stays on record and verifies as invalid.

    Revoking an already revoked certificate keeps the first revocation.
    """
    require_admin(viewer)
    reason = clean_text(reason, field="reason", max_length=REASON_MAX)
    normalized = _normalized_number(number)
    if normalized is None:
        raise NotFound(f"Certificate {number!r} not found")
    revoked = await tx.first(_REVOKE, number=normalized, at=now or utcnow(), reason=reason)
    if revoked is None:
        raise NotFound(f"Certificate {number!r} not found")
    return revoked
