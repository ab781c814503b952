"""The Subscription root: live progress events, replayed from the log on request."""

from collections.abc import AsyncGenerator

import strawberry

from coursepulse.events.stream import stream_events
from coursepulse.resolvers import live
from coursepulse.resolvers.validation import parse_id
from coursepulse.schema.context import Context
from coursepulse.schema.types import ProgressEvent

Info = strawberry.Info[Context]


def _after(after: strawberry.ID | None) -> int | None:
    if after is None:
        return None
    text = str(after).strip()
    return 0 if text == "0" else parse_id(text, field="after")


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
        context = info.context
        course_id = parse_id(courseId, field="courseId")
        after_id = _after(after)
        async with context.db.read() as session:
            user_id = await live.authorize_own_progress(session, context.viewer, course_id)
        async for event in stream_events(
            context.db, context.feeds, course_id, after=after_id, user_id=user_id
        ):
            yield ProgressEvent.from_model(event)

    @strawberry.subscription(
        description="Every student's events in one course, for its instructors and admins."
    )
    async def course_activity(
        self, info: Info, courseId: strawberry.ID, after: strawberry.ID | None = None
    ) -> AsyncGenerator[ProgressEvent, None]:
        context = info.context
        course_id = parse_id(courseId, field="courseId")
        after_id = _after(after)
        async with context.db.read() as session:
            await live.authorize_course_activity(session, context.viewer, course_id)
        async for event in stream_events(
            context.db, context.feeds, course_id, after=after_id, user_id=None
        ):
            yield ProgressEvent.from_model(event)
