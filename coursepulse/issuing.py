"""Get-or-issue of a certificate: the read-then-write sequence both front doors use.

GraphQL's `certificate` field and the REST `GET .../certificate` answer an issued
certificate from a read transaction and issue the first one in a write transaction;
the rules of each step are resolvers/certificates.py's.
"""

from sqlalchemy.exc import IntegrityError

from coursepulse.models.db import Database
from coursepulse.models.rows import CertificateRow
from coursepulse.resolvers import certificates
from coursepulse.resolvers.viewer import Viewer


async def obtain_certificate(
    db: Database, viewer: Viewer | None, course_id: int, *, may_issue: bool
) -> CertificateRow:
    """The viewer's certificate for the course (GraphQL `certificate`, REST GET certificate).

    An issued certificate is read in a read transaction, so repeated downloads never
    queue behind writers; the first one is issued in a write transaction. Without
    `may_issue` (a request that must not change anything: a GET, a cross-site request)
    nothing is written: an issued certificate, or the coded refusal.
    """
    async with db.read() as tx:
        existing = await certificates.find_own(tx, viewer, course_id)
        if existing is None and not may_issue:
            await certificates.refuse_issue(tx, viewer, course_id)
    if existing is not None:
        return existing
    try:
        async with db.write() as tx:
            return await certificates.issue(tx, viewer, course_id)
    except IntegrityError:
        # A concurrent request's certificate won the unique key: it is the viewer's.
        async with db.read() as tx:
            winner = await certificates.find_own(tx, viewer, course_id)
        if winner is None:
            raise
        return winner
