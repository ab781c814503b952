"""The Subscription root of the contract."""

from collections.abc import AsyncGenerator

import strawberry

from coursepulse.resolvers.errors import NotAvailableYet
from coursepulse.schema.context import Context
from coursepulse.schema.types import ProgressEvent

Info = strawberry.Info[Context]


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
        raise NotAvailableYet("Live progress subscriptions are not available in this release yet")
        yield  # pragma: no cover  (makes this an async generator)

    @strawberry.subscription(
        description="Every student's events in one course, for its instructors and admins."
    )
    async def course_activity(
        self, info: Info, courseId: strawberry.ID, after: strawberry.ID | None = None
    ) -> AsyncGenerator[ProgressEvent, None]:
        raise NotAvailableYet("Live course activity is not available in this release yet")
        yield  # pragma: no cover  (makes this an async generator)
