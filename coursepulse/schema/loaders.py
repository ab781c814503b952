"""Per-request DataLoaders: lists resolve their related rows in one statement per batch."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from coursepulse.models import Certificate, Course, Enrollment, Lesson, LessonCompletion, User
from coursepulse.models.db import SharedReader
from coursepulse.resolvers import lookups

K = TypeVar("K")
V = TypeVar("V")


def _loader(
    reader: SharedReader,
    fetch: Callable[[AsyncSession, Sequence[K]], Awaitable[Mapping[K, V]]],
    default: Callable[[], V | None] = lambda: None,
) -> DataLoader[K, V]:
    async def load(keys: list[K]) -> list[V]:
        async with reader.session() as session:
            found = await fetch(session, keys)
        return [found.get(key, default()) for key in keys]  # type: ignore[misc]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    reader: SharedReader
    viewer_id: int | None = None
    users: DataLoader[int, User | None] = field(init=False)
    courses: DataLoader[int, Course | None] = field(init=False)
    lessons: DataLoader[int, list[Lesson]] = field(init=False)
    completions: DataLoader[int, list[LessonCompletion]] = field(init=False)
    instructors: DataLoader[int, list[User]] = field(init=False)
    certificates: DataLoader[int, Certificate | None] = field(init=False)
    #: The viewer's own enrolment in a course, by course id.
    my_enrollments: DataLoader[int, Enrollment | None] = field(init=False)

    def __post_init__(self) -> None:
        self.users = _loader(self.reader, lookups.users_by_id)
        self.courses = _loader(self.reader, lookups.courses_by_id)
        self.lessons = _loader(self.reader, lookups.lessons_by_course, list)
        self.completions = _loader(self.reader, lookups.completions_by_enrollment, list)
        self.instructors = _loader(self.reader, lookups.instructors_by_course, list)
        self.certificates = _loader(self.reader, lookups.certificates_by_enrollment)
        viewer_id = self.viewer_id

        async def mine(session: AsyncSession, course_ids: Sequence[int]) -> dict[int, Enrollment]:
            if viewer_id is None:
                return {}
            return await lookups.enrollments_of_user(session, viewer_id, course_ids)

        self.my_enrollments = _loader(self.reader, mine)
