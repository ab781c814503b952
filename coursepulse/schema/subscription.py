"""The Subscription root: live progress events, replayed from the log on request."""

from collections.abc import AsyncGenerator

import strawberry

from coursepulse.fanout.stream import stream_events
from coursepulse.resolvers import subscriptions
from coursepulse.resolvers.validation import parse_id
from coursepulse.schema.context import Context
from coursepulse.schema.shared_events import shared_payload
from coursepulse.schema.types import ProgressEvent

Info = strawberry.Info[Context]


def _after(after: strawberry.ID | None) -> int | None:
    if after is None:
        return None
    text = str(after).strip()
    return 0 if text == "0" else parse_id(text, field="after")


async def _events(
    info: Info, course_id: int, after: int | None, user_id: int | None
) -> AsyncGenerator[ProgressEvent, None]:
    context = info.context
    opened = context.subscriptions_open
    field = info.field_name
    if opened is not None:
        opened(field, 1)
    try:
        async for event in stream_events(
            context.db, context.feeds, course_id, after=after, user_id=user_id
        ):
            yield shared_payload(context.feeds, event)
    finally:
        if opened is not None:
            opened(field, -1)


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
        course_id, after_id = parse_id(courseId, field="courseId"), _after(after)
        async with info.context.db.read() as tx:
            user_id = await subscriptions.authorize_own_progress(tx, info.context.viewer, course_id)
        async for event in _events(info, course_id, after_id, user_id):
            yield event

    @strawberry.subscription(
        description="Every student's events in one course, for its instructors and admins."
    )
    async def course_activity(
        self, info: Info, courseId: strawberry.ID, after: strawberry.ID | None = None
    ) -> AsyncGenerator[ProgressEvent, None]:
        course_id, after_id = parse_id(courseId, field="courseId"), _after(after)
        db, viewer, grants = info.context.db, info.context.viewer, info.context.access

        async def authorize() -> None:
            async with db.read() as tx:
                await subscriptions.authorize_course_activity(tx, viewer, course_id)

        await authorize()
        events = _events(info, course_id, after_id, None)
        if grants is not None and viewer is not None:
            # Ends with `forbidden` once the viewer is no longer the course's staff.
            events = grants.guarded(grants.watch(viewer.user_id, course_id, authorize), events)
        async for event in events:
            yield event
