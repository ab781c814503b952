"""Per-request DataLoaders: lists resolve their related rows in one statement per batch."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from strawberry.dataloader import DataLoader

from coursepulse.models.db import SharedReader
from coursepulse.models.reads import ReadTransaction
from coursepulse.models.rows import (
    CertificateRow,
    CompletionRow,
    CourseRow,
    EnrollmentRow,
    LessonRow,
    UserRow,
)
from coursepulse.resolvers import lookups

K = TypeVar("K")
V = TypeVar("V")


def _loader(
    reader: SharedReader,
    fetch: Callable[[ReadTransaction, Sequence[K]], Awaitable[Mapping[K, V]]],
    default: Callable[[], V | None] = lambda: None,
) -> DataLoader[K, V]:
    async def load(keys: list[K]) -> list[V]:
        found = await fetch(await reader.reads(), keys)
        return [found.get(key, default()) for key in keys]  # type: ignore[misc]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    reader: SharedReader
    viewer_id: int | None = None
    users: DataLoader[int, UserRow | None] = field(init=False)
    courses: DataLoader[int, CourseRow | None] = field(init=False)
    lessons: DataLoader[int, list[LessonRow]] = field(init=False)
    completions: DataLoader[int, list[CompletionRow]] = field(init=False)
    instructors: DataLoader[int, list[UserRow]] = field(init=False)
    certificates: DataLoader[int, CertificateRow | None] = field(init=False)
    #: The viewer's own enrolment in a course, by course id.
    my_enrollments: DataLoader[int, EnrollmentRow | None] = field(init=False)

    def __post_init__(self) -> None:
        self.users = _loader(self.reader, lookups.users_by_id)
        self.courses = _loader(self.reader, lookups.courses_by_id)
        self.lessons = _loader(self.reader, lookups.lessons_by_course, list)
        self.completions = _loader(self.reader, lookups.completions_by_enrollment, list)
        self.instructors = _loader(self.reader, lookups.instructors_by_course, list)
        self.certificates = _loader(self.reader, lookups.certificates_by_enrollment)
        viewer_id = self.viewer_id

        async def mine(
            reads: ReadTransaction, course_ids: Sequence[int]
        ) -> dict[int, EnrollmentRow]:
            if viewer_id is None:
                return {}
            return await lookups.enrollments_of_user(reads, viewer_id, course_ids)

        self.my_enrollments = _loader(self.reader, mine)
