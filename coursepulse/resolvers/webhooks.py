"""Webhooks: who manages them, what is sent, and the delivery rules.

A webhook follows the event log with a cursor (`last_event_id`): its events are sent
one at a time, in log order, and the cursor moves past an event once the receiver
answered 2xx. A failed attempt is retried with exponential backoff and jitter; after
about a day of failures the webhook is switched off (`disabled_at`) and the failed
deliveries say why. One process at a time delivers a webhook: it claims the webhook
in the database for a short lease (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's
single writer serializes the claim) and renews the lease with every attempt.
"""

import base64
import random
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from coursepulse.models import (
    CourseInstructor,
    ProgressEvent,
    ProgressEventKind,
    Role,
    User,
    Webhook,
    WebhookDelivery,
    utcnow,
)
from coursepulse.models.rows import ProgressEventRow, WebhookDeliveryRow, WebhookRow
from coursepulse.models.sql import Query, in_ids
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers.access import is_course_staff, require_admin, staff_course
from coursepulse.resolvers.errors import InvalidInput, NotFound
from coursepulse.resolvers.outbox import hold_course_events
from coursepulse.resolvers.subscriptions import course_events_after, last_event_id
from coursepulse.resolvers.validation import parse_id
from coursepulse.resolvers.viewer import Viewer, require_viewer
from coursepulse.resolvers.webhook_urls import check_webhook_url

#: Webhooks one course may have (and webhooks for every course, together).
MAX_WEBHOOKS_PER_COURSE = 20
#: Most deliveries one `Webhook.deliveries` list gives.
MAX_DELIVERIES_LISTED = 100
#: Characters of an error (or of a receiver's answer) kept with a delivery.
MAX_ERROR_LENGTH = 300
SECRET_PREFIX = "whsec_"  # noqa: S105  (the Standard Webhooks prefix, not a secret)
#: The largest event id: the bound when every committed event may be delivered.
NO_BOUND = 2**63 - 1

_WEBHOOKS = Webhook.__table__  # type: ignore[attr-defined]
_DELIVERIES = WebhookDelivery.__table__  # type: ignore[attr-defined]
_EVENTS = ProgressEvent.__table__  # type: ignore[attr-defined]
_INSTRUCTORS = CourseInstructor.__table__  # type: ignore[attr-defined]
_USERS = User.__table__  # type: ignore[attr-defined]


# ---- managing webhooks (GraphQL, command line) ------------------------------------------


_LAST_EVENT_ID = Query(select(func.coalesce(func.max(_EVENTS.c.id), 0)))
_COUNT_FOR_COURSE = Query(
    select(func.count())
    .select_from(_WEBHOOKS)
    .where(_WEBHOOKS.c.course_id == bindparam("course_id"))
)
_COUNT_FOR_EVERY_COURSE = Query(
    select(func.count()).select_from(_WEBHOOKS).where(_WEBHOOKS.c.course_id.is_(None))
)
_ADD_WEBHOOK = Query(
    insert(_WEBHOOKS)
    .values(
        url=bindparam("url"),
        course_id=bindparam("course_id"),
        events=bindparam("events"),
        secret=bindparam("secret"),
        created_by=bindparam("user_id"),
        created_at=bindparam("at"),
        last_event_id=bindparam("last_event_id"),
        failed_attempts=0,
    )
    .returning(_WEBHOOKS)
)
_WEBHOOK = Query(select(_WEBHOOKS).where(_WEBHOOKS.c.id == bindparam("webhook_id")))
_ALL_WEBHOOKS = Query(select(_WEBHOOKS).order_by(_WEBHOOKS.c.id))
_WEBHOOKS_OF_COURSE = Query(
    select(_WEBHOOKS)
    .where(_WEBHOOKS.c.course_id == bindparam("course_id"))
    .order_by(_WEBHOOKS.c.id)
)
_WEBHOOKS_OF_INSTRUCTOR = Query(
    select(_WEBHOOKS)
    .where(
        _WEBHOOKS.c.course_id.in_(
            select(_INSTRUCTORS.c.course_id).where(_INSTRUCTORS.c.user_id == bindparam("user_id"))
        )
    )
    .order_by(_WEBHOOKS.c.id)
)
_DELETE_WEBHOOK = Query(delete(_WEBHOOKS).where(_WEBHOOKS.c.id == bindparam("webhook_id")))
#: Back to `after`, switched on, not failing, and owned by whoever rewound it. The claim's
#: token goes, its time stays: the process delivering it notices at its next attempt, lets
#: go once its send under way has ended, and only then may the next claim start from
#: `after` (so nothing of the old run arrives in the middle of the replay).
_REWIND = Query(
    update(_WEBHOOKS)
    .where(_WEBHOOKS.c.id == bindparam("webhook_id"))
    .values(
        last_event_id=bindparam("after"),
        created_by=bindparam("user_id"),
        disabled_at=None,
        disabled_reason=None,
        failed_attempts=0,
        failing_since=None,
        next_attempt_at=None,
        claim_token=None,
    )
    .returning(_WEBHOOKS)
)


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def event_kinds(webhook: WebhookRow) -> list[ProgressEventKind]:
    """The kinds the webhook sends (every kind when it was made with none)."""
    if not webhook.events:
        return list(ProgressEventKind)
    return [ProgressEventKind(kind) for kind in webhook.events.split(",")]


def _stored_kinds(kinds: Sequence[ProgressEventKind]) -> str:
    chosen = set(kinds)
    if chosen == set(ProgressEventKind):
        return ""
    return ",".join(kind.value for kind in ProgressEventKind if kind in chosen)


async def create_webhook(
    tx: Transaction,
    viewer: Viewer | None,
    *,
    url: str,
    course_id: int | None,
    events: Sequence[ProgressEventKind],
    allow_private: bool,
) -> tuple[str, WebhookRow]:
    """createWebhook: a course's staff for their course, admins for any course or all.
    Returns the signing secret (shown this once) and the webhook, which receives the
    events committed from now on."""
    viewer = require_viewer(viewer)
    if course_id is None:
        require_admin(viewer)
        count = await tx.scalar(_COUNT_FOR_EVERY_COURSE)
    else:
        await staff_course(tx, viewer, course_id, lock=True)
        count = await tx.scalar(_COUNT_FOR_COURSE, course_id=course_id)
    checked_url = check_webhook_url(url, allow_private=allow_private)
    if (count or 0) >= MAX_WEBHOOKS_PER_COURSE:
        raise InvalidInput(
            f"A course may have at most {MAX_WEBHOOKS_PER_COURSE} webhooks; delete one first",
            field="courseId",
        )
    if course_id is None:
        # Every course's events: an event of a lower id still committing is not sent.
        start = await tx.scalar(_LAST_EVENT_ID)
    else:
        # The course's events that are committing are waited for: every later one is sent.
        await hold_course_events(tx, course_id)
        start = await last_event_id(tx, course_id)
    secret = new_secret()
    row = await tx.first(
        _ADD_WEBHOOK,
        url=checked_url,
        course_id=course_id,
        events=_stored_kinds(events),
        secret=secret,
        user_id=viewer.user_id,
        at=utcnow(),
        last_event_id=start,
    )
    return secret, row


async def webhooks_for(
    tx: Transaction, viewer: Viewer | None, course_id: int | None
) -> list[WebhookRow]:
    """webhooks: the course's (its staff, admins); without a course, every webhook the
    viewer may manage (admins: all; instructors: their courses'; others: none)."""
    viewer = require_viewer(viewer)
    if course_id is not None:
        await staff_course(tx, viewer, course_id)
        return await tx.all(_WEBHOOKS_OF_COURSE, course_id=course_id)
    if viewer.is_admin:
        return await tx.all(_ALL_WEBHOOKS)
    return await tx.all(_WEBHOOKS_OF_INSTRUCTOR, user_id=viewer.user_id)


async def _managed_webhook(tx: Transaction, viewer: Viewer | None, webhook_id: int) -> WebhookRow:
    """The webhook if the viewer may manage it; `not_found` for one they may not see."""
    viewer = require_viewer(viewer)
    webhook = await tx.first(_WEBHOOK, webhook_id=webhook_id)
    if webhook is not None and (
        viewer.is_admin
        or (webhook.course_id is not None and await is_course_staff(tx, viewer, webhook.course_id))
    ):
        return webhook
    raise NotFound(f"Webhook {webhook_id} not found")


async def delete_webhook(tx: Transaction, viewer: Viewer | None, webhook_id: int) -> WebhookRow:
    """deleteWebhook: nothing more is sent; gives the webhook as it was."""
    webhook = await _managed_webhook(tx, viewer, webhook_id)
    await tx.execute(_DELETE_WEBHOOK, webhook_id=webhook_id)
    return webhook


def parse_event_cursor(value: str) -> int:
    """An `afterEventId`: an event id, or 0 for the start of the log."""
    if re.fullmatch(r"\s*0+\s*", str(value)):
        return 0
    try:
        return parse_id(value, field="afterEventId")
    except NotFound:
        raise InvalidInput("afterEventId is beyond the last event", field="afterEventId") from None


async def redeliver_webhook(
    tx: Transaction, viewer: Viewer | None, webhook_id: int, after_event_id: int
) -> WebhookRow:
    """redeliverWebhook: the webhook's events after `after_event_id` are sent again, in
    order; a switched-off webhook is switched on again, as the viewer's own."""
    viewer = require_viewer(viewer)
    await _managed_webhook(tx, viewer, webhook_id)
    last = await tx.scalar(_LAST_EVENT_ID)
    if after_event_id > (last or 0):
        # A cursor ahead of the log would silently skip the events that take those ids.
        raise InvalidInput(
            f"afterEventId {after_event_id} is beyond the last event ({last})",
            field="afterEventId",
        )
    return await tx.first(
        _REWIND, webhook_id=webhook_id, after=after_event_id, user_id=viewer.user_id
    )


#: A webhook's newest deliveries: a short walk down (webhook_id, id), however many it has.
_DELIVERIES_OF = Query(
    select(_DELIVERIES)
    .where(_DELIVERIES.c.webhook_id == bindparam("webhook_id"))
    .order_by(_DELIVERIES.c.id.desc())
    .limit(bindparam("first"))
)


async def deliveries_by_webhook(
    tx: Transaction, keys: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], list[WebhookDeliveryRow]]:
    """Webhook.deliveries: each (webhook id, first)'s newest deliveries, newest first.

    One short statement per webhook (a viewer manages a few): one statement for all of
    them would number every delivery each webhook ever had before keeping the newest.
    """
    found: dict[tuple[int, int], list[WebhookDeliveryRow]] = {}
    for webhook_id, first in dict.fromkeys(keys):
        found[(webhook_id, first)] = await tx.all(
            _DELIVERIES_OF, webhook_id=webhook_id, first=first
        )
    return found


def deliveries_page_size(first: int) -> int:
    """`first` if it is a page size a list may have, else `invalid_input`."""
    if not 0 <= first <= MAX_DELIVERIES_LISTED:
        raise InvalidInput(
            f"first must be between 0 and {MAX_DELIVERIES_LISTED}, got {first}", field="first"
        )
    return first


# ---- the command line -------------------------------------------------------------------


async def every_webhook(tx: Transaction) -> list[WebhookRow]:
    """`coursepulse webhooks list`: every webhook, oldest first."""
    return await tx.all(_ALL_WEBHOOKS)


async def deliveries_of(tx: Transaction, webhook_id: int, first: int) -> list[WebhookDeliveryRow]:
    """`coursepulse webhooks deliveries ID`: the webhook's newest deliveries, or `not_found`."""
    if await tx.first(_WEBHOOK, webhook_id=webhook_id) is None:
        raise NotFound(f"Webhook {webhook_id} not found")
    return (await deliveries_by_webhook(tx, [(webhook_id, first)]))[(webhook_id, first)]


# ---- what is sent -----------------------------------------------------------------------


def message_of(event: ProgressEventRow) -> dict[str, Any]:
    """The JSON body of one delivery, in the Standard Webhooks envelope: `type`,
    `timestamp` and `data`, the event as GraphQL's ProgressEvent gives it (ids as
    strings), with the progress snapshot taken when it happened."""
    kind = ProgressEventKind(event.kind)
    return {
        "type": f"progress.{kind.value}",
        "timestamp": event.occurred_at.isoformat(),
        "data": {
            "id": str(event.id),
            "kind": kind.name,
            "occurredAt": event.occurred_at.isoformat(),
            "courseId": str(event.course_id),
            "userId": str(event.user_id),
            "lessonId": None if event.lesson_id is None else str(event.lesson_id),
            "progressPercentage": event.progress_percentage,
            "completedLessons": event.completed_lessons,
            "totalLessons": event.total_lessons,
        },
    }


def wants(webhook: WebhookRow, event: ProgressEventRow) -> bool:
    """Whether the webhook sends this event (its course and kinds)."""
    if webhook.course_id is not None and webhook.course_id != event.course_id:
        return False
    return not webhook.events or event.kind in webhook.events.split(",")


# ---- delivery (the background worker of every serve process) ----------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed delivery is tried again, and when the webhook is given up on."""

    first_delay_seconds: float = 5.0
    max_delay_seconds: float = 3600.0
    give_up_after_seconds: float = 86_400.0

    def delay(self, attempt: int, rng: random.Random) -> timedelta:
        """The wait after failed attempt number `attempt`: doubling from the first delay up
        to the longest, each wait between half of that and all of it (so receivers coming
        back are not hit by every sender at once)."""
        ceiling = min(self.first_delay_seconds * 2 ** min(attempt - 1, 62), self.max_delay_seconds)
        return timedelta(seconds=ceiling * (0.5 + rng.random() / 2))

    def gives_up(self, failing_since: datetime, now: datetime) -> bool:
        return (now - failing_since).total_seconds() >= self.give_up_after_seconds


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt at sending one event came to."""

    succeeded: bool
    response_status: int | None = None
    error: str | None = None


_SWITCHED_ON = _WEBHOOKS.c.disabled_at.is_(None)
_ACTIVITY = Query(
    select(
        exists().where(_SWITCHED_ON).label("any"),
        exists().where(_SWITCHED_ON, _WEBHOOKS.c.course_id.is_(None)).label("every_course"),
    )
)
#: Whether the webhook has events to send: the newest event of its course (of every course,
#: up to the bound) is past its cursor. One step down an index ((course_id, id), or the
#: ids), however many events other courses had since.
_PENDING_EVENT = or_(
    and_(
        _WEBHOOKS.c.course_id.is_(None),
        select(func.max(_EVENTS.c.id)).where(_EVENTS.c.id <= bindparam("bound")).scalar_subquery()
        > _WEBHOOKS.c.last_event_id,
    ),
    and_(
        _WEBHOOKS.c.course_id.is_not(None),
        select(func.max(_EVENTS.c.id))
        .where(_EVENTS.c.course_id == _WEBHOOKS.c.course_id)
        .scalar_subquery()
        > _WEBHOOKS.c.last_event_id,
    ),
)
_DUE = (
    select(_WEBHOOKS.c.id)
    .where(
        _WEBHOOKS.c.disabled_at.is_(None),
        or_(_WEBHOOKS.c.claimed_until.is_(None), _WEBHOOKS.c.claimed_until < bindparam("now")),
        or_(_WEBHOOKS.c.next_attempt_at.is_(None), _WEBHOOKS.c.next_attempt_at <= bindparam("now")),
        _PENDING_EVENT,
        # Webhooks this process still sends to (a rewound one, until its send ends).
        ~in_ids(_WEBHOOKS.c.id, "busy"),
    )
    .order_by(_WEBHOOKS.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM = Query(
    update(_WEBHOOKS)
    .where(_WEBHOOKS.c.id.in_(_DUE.scalar_subquery()))
    .values(claim_token=bindparam("token"), claimed_until=bindparam("until"))
    .returning(_WEBHOOKS)
)
_EVENTS_AFTER = (
    select(_EVENTS)
    .where(_EVENTS.c.id > bindparam("after"), _EVENTS.c.id <= bindparam("bound"))
    .order_by(_EVENTS.c.id)
    .limit(bindparam("limit"))
)
_EVENTS_OF_EVERY_COURSE_AFTER = Query(_EVENTS_AFTER)
_EVENTS_OF_COURSE_AFTER = Query(
    select(_EVENTS)
    .where(course_events_after("course_id", "after"))
    .order_by(_EVENTS.c.course_id, _EVENTS.c.id)
    .limit(bindparam("limit"))
)
_HELD = and_(
    _WEBHOOKS.c.id == bindparam("webhook_id"), _WEBHOOKS.c.claim_token == bindparam("token")
)
_DELIVERED = Query(
    update(_WEBHOOKS)
    .where(_HELD)
    .values(
        last_event_id=bindparam("event_id"),
        failed_attempts=0,
        failing_since=None,
        next_attempt_at=None,
        claimed_until=bindparam("until"),
    )
    .returning(_WEBHOOKS.c.id)
)
_FAILED = Query(
    update(_WEBHOOKS)
    .where(_HELD)
    .values(
        failed_attempts=bindparam("attempt"),
        failing_since=bindparam("failing_since"),
        next_attempt_at=bindparam("next_attempt_at"),
        disabled_at=bindparam("disabled_at"),
        disabled_reason=bindparam("disabled_reason"),
        claim_token=None,
        claimed_until=None,
    )
    .returning(_WEBHOOKS.c.id)
)
_SKIPPED = Query(
    update(_WEBHOOKS)
    .where(_HELD)
    .values(last_event_id=bindparam("event_id"), claimed_until=bindparam("until"))
    .returning(_WEBHOOKS.c.id)
)
#: Let go: of the claim, or of the time a rewind (which took the token) left behind.
_RELEASE = Query(
    update(_WEBHOOKS)
    .where(
        _WEBHOOKS.c.id == bindparam("webhook_id"),
        or_(_WEBHOOKS.c.claim_token == bindparam("token"), _WEBHOOKS.c.claim_token.is_(None)),
    )
    .values(claim_token=None, claimed_until=None)
)
_ADD_DELIVERY = Query(
    insert(_DELIVERIES).values(
        webhook_id=bindparam("webhook_id"),
        event_id=bindparam("event_id"),
        attempt=bindparam("attempt"),
        response_status=bindparam("response_status"),
        succeeded=bindparam("succeeded"),
        attempted_at=bindparam("at"),
        next_attempt_at=bindparam("next_attempt_at"),
        error=bindparam("error"),
    )
)
_OLD_DELIVERIES = Query(
    delete(_DELIVERIES)
    .where(
        _DELIVERIES.c.id.in_(
            select(_DELIVERIES.c.id)
            .where(_DELIVERIES.c.attempted_at < bindparam("before"))
            .limit(bindparam("limit"))
            .scalar_subquery()
        )
    )
    .returning(_DELIVERIES.c.id),
    unbounded=True,
)
#: PostgreSQL, in a write transaction: the newest event id, the oldest running transaction
#: id, and this transaction's own id (given out after the statement's snapshot was taken).
_HORIZON = Query(
    select(
        select(func.coalesce(func.max(_EVENTS.c.id), 0)).scalar_subquery().label("last_event_id"),
        cast(cast(func.pg_snapshot_xmin(func.pg_current_snapshot()), Text), BigInteger).label(
            "xmin"
        ),
        cast(cast(func.pg_current_xact_id(), Text), BigInteger).label("own"),
    )
)


@dataclass(frozen=True, slots=True)
class Activity:
    """Whether any webhook is switched on, and any for every course."""

    any: bool
    every_course: bool


async def activity(tx: Transaction) -> Activity:
    """Which webhooks are switched on (whether there may be something to deliver)."""
    row = await tx.first(_ACTIVITY)
    return Activity(any=bool(row.any), every_course=bool(row.every_course))


async def event_horizon(tx: Transaction) -> tuple[int, int, int]:
    """PostgreSQL, in a write transaction: the newest event id seen, the oldest running
    transaction id, and the id every transaction that may hold a lower event id is below
    (this transaction's own, plus one) (delivery/horizon.py)."""
    row = await tx.first(_HORIZON)
    return row.last_event_id, row.xmin, row.own + 1


_BEHIND = Query(select(func.count()).select_from(_WEBHOOKS).where(_SWITCHED_ON, _PENDING_EVENT))


async def count_behind(tx: Transaction, *, bound: int) -> int:
    """How many switched-on webhooks have events still to send (every course's: up to
    `bound`): the delivery backlog."""
    return int(await tx.scalar(_BEHIND, bound=bound) or 0)


async def claim_due(
    tx: Transaction,
    *,
    token: str,
    lease: timedelta,
    bound: int,
    limit: int,
    busy: Sequence[int] = (),
) -> list[WebhookRow]:
    """Claim up to `limit` webhooks that have events to send (every course's: up to
    `bound`) and whose retry is due, for a lease; webhooks another process holds are
    skipped, not waited for, and so are those in `busy`."""
    now = utcnow()
    return await tx.all(
        _CLAIM, token=token, until=now + lease, now=now, bound=bound, limit=limit, busy=busy
    )


async def events_to_send(
    tx: Transaction, webhook: WebhookRow, *, after: int, bound: int, limit: int
) -> list[ProgressEventRow]:
    """The log after `after` in the webhook's course (every course's: up to `bound`),
    oldest first: the events to send and those of other kinds to step over."""
    if webhook.course_id is None:
        return await tx.all(_EVENTS_OF_EVERY_COURSE_AFTER, after=after, bound=bound, limit=limit)
    # A course's events commit in id order (resolvers/outbox.py): no bound is needed.
    return await tx.all(
        _EVENTS_OF_COURSE_AFTER, after=after, course_id=webhook.course_id, limit=limit
    )


async def record_attempt(
    tx: Transaction,
    webhook: WebhookRow,
    *,
    token: str,
    event_id: int,
    attempt: int,
    failing_since: datetime | None,
    outcome: Attempt,
    policy: RetryPolicy,
    lease: timedelta,
    rng: random.Random,
) -> bool:
    """Keep an attempt and move the webhook on: past the event when it succeeded; else to
    a retry later (releasing the claim), or switched off after failing long enough.
    False when the claim was lost (the webhook was deleted or rewound): nothing is kept."""
    now = utcnow()
    next_attempt_at: datetime | None = None
    error = outcome.error
    if outcome.succeeded:
        held = await tx.first(
            _DELIVERED, webhook_id=webhook.id, token=token, event_id=event_id, until=now + lease
        )
    else:
        since = failing_since or now
        disabled_at = disabled_reason = None
        if policy.gives_up(since, now):
            disabled_at = now
            disabled_reason = f"deliveries failed since {since:%Y-%m-%d %H:%M} UTC ({error})"
            error = f"{error}; failing since {since:%Y-%m-%d %H:%M} UTC: webhook switched off"
        else:
            next_attempt_at = now + policy.delay(attempt, rng)
        held = await tx.first(
            _FAILED,
            webhook_id=webhook.id,
            token=token,
            attempt=attempt,
            failing_since=since,
            next_attempt_at=next_attempt_at,
            disabled_at=disabled_at,
            disabled_reason=None if disabled_reason is None else disabled_reason[:MAX_ERROR_LENGTH],
        )
    if held is None:
        return False
    await tx.execute(
        _ADD_DELIVERY,
        webhook_id=webhook.id,
        event_id=event_id,
        attempt=attempt,
        response_status=outcome.response_status,
        succeeded=outcome.succeeded,
        at=now,
        next_attempt_at=next_attempt_at,
        error=None if error is None else error[:MAX_ERROR_LENGTH],
    )
    return True


async def step_over(
    tx: Transaction, webhook: WebhookRow, *, token: str, event_id: int, lease: timedelta
) -> bool:
    """Move the cursor past events the webhook does not send; False if the claim was lost."""
    held = await tx.first(
        _SKIPPED, webhook_id=webhook.id, token=token, event_id=event_id, until=utcnow() + lease
    )
    return held is not None


async def release(tx: Transaction, webhook_id: int, token: str) -> None:
    """Give the claim up (nothing left to send for now)."""
    await tx.execute(_RELEASE, webhook_id=webhook_id, token=token)


async def prune_deliveries(tx: Transaction, *, older_than: timedelta, limit: int) -> int:
    """Forget up to `limit` deliveries attempted longer ago than `older_than`; how many."""
    return len(await tx.all(_OLD_DELIVERIES, before=utcnow() - older_than, limit=limit))


# ---- access lost --------------------------------------------------------------------------

_CREATOR_IS_ADMIN = exists().where(
    _USERS.c.id == _WEBHOOKS.c.created_by, _USERS.c.role == Role.ADMIN.value
)
_CREATOR_TEACHES = exists().where(
    _INSTRUCTORS.c.course_id == _WEBHOOKS.c.course_id,
    _INSTRUCTORS.c.user_id == _WEBHOOKS.c.created_by,
)
_SWITCH_OFF_ORPHANS = Query(
    update(_WEBHOOKS)
    .where(
        _WEBHOOKS.c.created_by == bindparam("user_id"),
        _SWITCHED_ON,
        ~_CREATOR_IS_ADMIN,
        or_(_WEBHOOKS.c.course_id.is_(None), ~_CREATOR_TEACHES),
    )
    .values(
        disabled_at=bindparam("at"),
        disabled_reason=bindparam("reason"),
        claim_token=None,
    )
)


async def switch_off_webhooks_of(tx: Transaction, user_id: int) -> None:
    """The user's webhooks for courses they no longer manage are switched off: their URL
    must not keep receiving the students' progress. Whoever manages the course may switch
    one on again (redeliverWebhook), and it becomes theirs."""
    await tx.execute(
        _SWITCH_OFF_ORPHANS,
        user_id=user_id,
        at=utcnow(),
        reason=f"the user who made it (id {user_id}) no longer manages the course",
    )
