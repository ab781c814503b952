"""coursepulse: the GraphQL gateway over the course-progress domain of an online school."""

__version__ = "0.1.0"
