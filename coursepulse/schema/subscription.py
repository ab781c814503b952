"""The Subscription root: live progress events, replayed from the log on request.

Each subscription is a `SubscriptionStream` (a LiveStream, fanout/stream.py). On
graphql-transport-ws an idle stream parks between events (web/live_operations.py), and
when the operation runs again the resolver picks the same stream up (`RESUME`):
checked, replayed and counted once, when the subscription began.
"""

from collections.abc import AsyncGenerator

import strawberry
from graphql import ExecutionResult, OperationDefinitionNode

from coursepulse.fanout.stream import RESUME, LiveStream
from coursepulse.models.db import Database
from coursepulse.models.rows import ProgressEventRow
from coursepulse.resolvers import subscriptions
from coursepulse.resolvers.validation import parse_id
from coursepulse.resolvers.viewer import Viewer
from coursepulse.schema.context import Context
from coursepulse.schema.shared_events import EventKey, event_key, executed_result, shared_payload
from coursepulse.schema.types import ProgressEvent

Info = strawberry.Info[Context]


class SubscriptionStream(LiveStream):
    """A subscription's stream as the schema keeps it: its document (to find the results
    executed for it, schema/shared_events.py), its count in the metrics, and how its
    viewer's right to it is checked again."""

    __slots__ = ("field", "gauge", "key", "operation", "viewer")

    def __init__(self, info: Info, course_id: int, after: int | None, user_id: int | None) -> None:
        context = info.context
        super().__init__(context.db, context.feeds, course_id, after=after, user_id=user_id)
        self.field = info.field_name
        self.viewer = context.viewer
        self.operation: OperationDefinitionNode | None = None
        self.key: EventKey | None = None
        #: Counts live subscriptions by field (metrics), while the stream is open.
        self.gauge = context.subscriptions_open
        if self.gauge is not None:
            self.gauge(self.field, 1)

    def ended(self) -> None:
        if self.gauge is not None:
            self.gauge(self.field, -1)

    async def recheck_activity(self) -> None:
        """Raises a DomainError once the viewer may no longer follow the course's activity."""
        await _authorize_activity(self.db, self.viewer, self.course_id)


def _after(after: strawberry.ID | None) -> int | None:
    if after is None:
        return None
    text = str(after).strip()
    return 0 if text == "0" else parse_id(text, field="after")


def _resumed(info: Info) -> SubscriptionStream | None:
    """The parked stream of this operation, when the operation runs again to deliver it."""
    stream = RESUME.get()
    if isinstance(stream, SubscriptionStream) and stream.field == info.field_name:
        return None if stream.closed else stream
    return None


async def _events(info: Info, stream: SubscriptionStream) -> AsyncGenerator[ProgressEvent, None]:
    raw = info._raw_info
    # Strawberry's resolve info carries the coerced values (graphql-core's, an object).
    variables = getattr(raw.variable_values, "coerced", raw.variable_values)
    stream.operation = raw.operation
    stream.key = event_key(raw.operation, raw.fragments, variables)
    feeds = info.context.feeds
    try:
        async for event in stream:
            yield shared_payload(feeds, event)
    finally:
        await stream.aclose()


def executed_event(stream: LiveStream, event: ProgressEventRow) -> ExecutionResult | None:
    """The result of the stream's document on `event`, when a subscriber with the same
    document had it executed already (schema/shared_events.py); None otherwise."""
    if not isinstance(stream, SubscriptionStream) or stream.operation is None:
        return None
    assert stream.key is not None
    return executed_result(shared_payload(stream.feeds, event), stream.operation, stream.key)


async def _authorize_activity(db: Database, viewer: Viewer | None, course_id: int) -> None:
    async with db.read() as tx:
        await subscriptions.authorize_course_activity(tx, viewer, course_id)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description=(
            "The viewer's own progress events in one course; replays events after `after` first."
        )
    )
    async def progress_updated(
        self, info: Info, courseId: strawberry.ID, after: strawberry.ID | None = None
    ) -> AsyncGenerator[ProgressEvent, None]:
        stream = _resumed(info)
        if stream is None:
            course_id, after_id = parse_id(courseId, field="courseId"), _after(after)
            async with info.context.db.read() as tx:
                user_id = await subscriptions.authorize_own_progress(
                    tx, info.context.viewer, course_id
                )
            stream = SubscriptionStream(info, course_id, after_id, user_id)
        async for event in _events(info, stream):
            yield event

    @strawberry.subscription(
        description="Every student's events in one course, for its instructors and admins."
    )
    async def course_activity(
        self, info: Info, courseId: strawberry.ID, after: strawberry.ID | None = None
    ) -> AsyncGenerator[ProgressEvent, None]:
        stream = _resumed(info)
        if stream is None:
            course_id, after_id = parse_id(courseId, field="courseId"), _after(after)
            viewer, grants = info.context.viewer, info.context.access
            await _authorize_activity(info.context.db, viewer, course_id)
            stream = SubscriptionStream(info, course_id, after_id, None)
            if grants is not None and viewer is not None:
                # Ends with `forbidden` once the viewer is no longer the course's staff.
                grant = grants.watch(viewer.user_id, course_id, stream.recheck_activity)
                grant.wake = stream.interrupt
                stream.grant = grant
        async for event in _events(info, stream):
            yield event
