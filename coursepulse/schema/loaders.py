"""Per-request DataLoaders: lists resolve their related rows in one statement per batch."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

from strawberry.dataloader import DataLoader

from coursepulse.models.rows import (
    CertificateRow,
    CompletionRow,
    CourseRow,
    EnrollmentRow,
    LessonRow,
    ProgressResetRow,
    UserRow,
    WebhookDeliveryRow,
)
from coursepulse.models.transactions import Transaction
from coursepulse.resolvers import lookups, resets, webhooks

if TYPE_CHECKING:
    from coursepulse.schema.context import OperationReads

K = TypeVar("K")
V = TypeVar("V")


def _loader(
    reads: "OperationReads",
    fetch: Callable[[Transaction, Sequence[K]], Awaitable[Mapping[K, V]]],
    default: Callable[[], V | None] = lambda: None,
) -> DataLoader[K, V]:
    async def load(keys: list[K]) -> list[V]:
        found = await fetch(await reads.tx(), keys)
        return [found.get(key, default()) for key in keys]  # type: ignore[misc]

    return DataLoader(load_fn=load)


class Loaders:
    """The operation's DataLoaders, each made on first use (most operations need one or two)."""

    def __init__(self, reads: "OperationReads", viewer_id: int | None = None) -> None:
        self.reads = reads
        self.viewer_id = viewer_id

    @cached_property
    def users(self) -> DataLoader[int, UserRow | None]:
        return _loader(self.reads, lookups.users_by_id)

    @cached_property
    def courses(self) -> DataLoader[int, CourseRow | None]:
        return _loader(self.reads, lookups.courses_by_id)

    @cached_property
    def lessons(self) -> DataLoader[int, list[LessonRow]]:
        return _loader(self.reads, lookups.lessons_by_course, list)

    @cached_property
    def next_lessons(self) -> DataLoader[int, LessonRow | None]:
        """Each enrolment's next lesson, by enrolment id; None once all are complete."""
        return _loader(self.reads, lookups.next_lessons_by_enrollment)

    @cached_property
    def completions(self) -> DataLoader[int, list[CompletionRow]]:
        return _loader(self.reads, lookups.completions_by_enrollment, list)

    @cached_property
    def lesson_times(self) -> DataLoader[int, dict[int, int]]:
        """Each enrolment's study time per lesson (lesson id: seconds), by enrolment id."""
        return _loader(self.reads, lookups.lesson_times_by_enrollment, dict)

    @cached_property
    def resets(self) -> DataLoader[int, list[ProgressResetRow]]:
        """Each enrolment's progress resets, newest first, by enrolment id."""
        return _loader(self.reads, resets.resets_by_enrollment, list)

    @cached_property
    def webhook_deliveries(self) -> DataLoader[tuple[int, int], list[WebhookDeliveryRow]]:
        """Each webhook's newest deliveries, by (webhook id, how many)."""
        return _loader(self.reads, webhooks.deliveries_by_webhook, list)

    @cached_property
    def instructors(self) -> DataLoader[int, list[UserRow]]:
        return _loader(self.reads, lookups.instructors_by_course, list)

    @cached_property
    def certificates(self) -> DataLoader[int, CertificateRow | None]:
        return _loader(self.reads, lookups.certificates_by_enrollment)

    @cached_property
    def last_events(self) -> DataLoader[tuple[int, int], int]:
        """The newest event id by (user id, course id); 0 when there is none."""
        return _loader(self.reads, lookups.last_event_ids, int)

    @cached_property
    def my_enrollments(self) -> DataLoader[int, EnrollmentRow | None]:
        """The viewer's own enrolment in a course, by course id."""
        viewer_id = self.viewer_id

        async def mine(tx: Transaction, course_ids: Sequence[int]) -> dict[int, EnrollmentRow]:
            if viewer_id is None:
                return {}
            return await lookups.enrollments_of_user(tx, viewer_id, course_ids)

        return _loader(self.reads, mine)
