"""The seed's REST facade under /wp-json/fluent-community/v2: a thin second front door.

It parses HTTP input, calls the same resolvers as the GraphQL schema, and maps
rows to the seed's JSON shapes (`shapes.py`); no business rule lives here.
"""

PREFIX = "/wp-json/fluent-community/v2"
