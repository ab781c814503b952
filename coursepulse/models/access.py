"""Access-change notices: what a committed write took away from whom.

A resolver that changes a credential or a course role records a notice on the
write transaction (`note_access_change`), as the event log records course ids. The
write transaction announces them once committed: by NOTIFY on `ACCESS_CHANNEL`
inside the transaction (PostgreSQL; heard only if it commits), and to the
`Database.after_access_change` callbacks of its own process. What to do about a
notice (drop cached sign-ins, close websockets, end subscriptions) is the web
layer's; who loses what was decided by the resolver that recorded it.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coursepulse.models.transactions import Transaction

#: PostgreSQL channel of access changes (the progress channel is separate).
ACCESS_CHANNEL = "coursepulse_access"


class AccessChange(StrEnum):
    #: The user's password or role changed: every sign-in of theirs is checked again.
    USER = "user"
    #: An API token was revoked (`subject` is the token id).
    TOKEN = "token"  # noqa: S105  (a kind of notice, not a secret)
    #: The user lost a role in a course (`subject` is the course id).
    COURSE_ROLE = "course"


@dataclass(frozen=True, slots=True)
class AccessNotice:
    kind: AccessChange
    user_id: int
    #: The token (TOKEN) or course (COURSE_ROLE) concerned; 0 for USER.
    subject: int = 0

    def encode(self, origin: str) -> str:
        """The NOTIFY payload (a few bytes): `origin kind user subject`."""
        return f"{origin} {self.kind.value} {self.user_id} {self.subject}"

    @classmethod
    def decode(cls, payload: str) -> tuple[str, "AccessNotice"]:
        """The origin and notice of a payload; `ValueError` for a malformed one."""
        origin, kind, user_id, subject = payload.split(" ")
        return origin, cls(AccessChange(kind), int(user_id), int(subject))


def note_access_change(tx: "Transaction", notice: AccessNotice) -> None:
    """Record a notice on the write transaction; announced when (and only if) it commits."""
    if notice not in tx.access_notices:
        tx.access_notices.append(notice)
