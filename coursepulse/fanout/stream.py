"""One subscription's stream: replay from the log after `after`, then live, no gap, no repeat."""

from collections.abc import AsyncIterator

from coursepulse.fanout.feed import Feeds, Overflowed
from coursepulse.models.db import Database
from coursepulse.models.rows import ProgressEventRow
from coursepulse.resolvers.errors import ResumeRequired
from coursepulse.resolvers.subscriptions import events_after


async def stream_events(
    db: Database,
    feeds: Feeds,
    course_id: int,
    *,
    after: int | None,
    user_id: int | None,
) -> AsyncIterator[ProgressEventRow]:
    """Events of the course (of one user, if given), oldest first.

    The feed subscription is taken before the log is read, so nothing committed
    in between is missed; events already replayed are skipped when they arrive
    live (a course's events commit in id order, so comparing ids is enough).
    """
    subscription = await feeds.subscribe(course_id)
    # Without `after`, a resume must start where this subscription started, not at zero.
    last_id = after if after is not None else subscription.start
    try:
        if after is not None:
            while True:
                async with db.read() as tx:
                    batch = await events_after(tx, course_id, last_id, user_id=user_id)
                for event in batch:
                    last_id = event.id
                    yield event
                if not batch:
                    break
        while True:
            try:
                event = await subscription.next()
            except Overflowed:
                raise ResumeRequired(last_event_id=str(last_id)) from None
            if event.id <= last_id:
                continue
            if user_id is not None and event.user_id != user_id:
                continue
            last_id = event.id
            yield event
    finally:
        await feeds.unsubscribe(subscription)
