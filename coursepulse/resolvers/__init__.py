"""The domain operations. Plain async functions (session, viewer, arguments) -> rows.

Every business rule lives here once; no GraphQL or HTTP imports.
"""
