"""Who is asking: the authenticated user of a request, or nobody."""

from dataclasses import dataclass

from coursepulse.models import Role
from coursepulse.resolvers.errors import Unauthenticated


@dataclass(frozen=True, slots=True)
class Viewer:
    user_id: int
    username: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def require_viewer(viewer: Viewer | None) -> Viewer:
    """The viewer, or `unauthenticated` for anonymous requests."""
    if viewer is None:
        raise Unauthenticated()
    return viewer
