"""The HTTP front door: aiohttp app factory, middlewares, GraphQL view, health checks."""
