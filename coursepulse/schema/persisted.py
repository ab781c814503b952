"""Persisted queries: Apollo's automatic persisted queries, and trusted documents.

Automatic persisted queries (APQ): a client sends `extensions.persistedQuery =
{"version": 1, "sha256Hash": "<hex>"}` without the document; an unknown hash answers
`PersistedQueryNotFound` (code `PERSISTED_QUERY_NOT_FOUND`), and the client sends the
document with its hash once, which registers it. Registered documents are kept in
memory, bounded by bytes, per process.

Trusted documents: when a manifest ({sha256: document}, built from graphql/operations/
by `coursepulse trusted-documents build`) is configured, only its documents run; others
answer `operation_not_trusted` (403). Clients send the document or just its hash.
"""

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphql import GraphQLError

from coursepulse.schema.caches import BoundedCache

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_TRUSTED = "operation_not_trusted"
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def sha256_of(document: str) -> str:
    """The hex SHA-256 of the document's UTF-8 text, as clients compute it."""
    return hashlib.sha256(document.encode("utf-8", "surrogatepass")).hexdigest()


def build_manifest(operations: Path) -> dict[str, str]:
    """{sha256: document} for every `*.graphql` file in the folder, in name order."""
    documents = [path.read_text(encoding="utf-8") for path in sorted(operations.glob("*.graphql"))]
    return {sha256_of(document): document for document in documents}


def load_manifest(path: Path) -> dict[str, str]:
    """The manifest at `path`, checked: every key is its document's SHA-256."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a trusted-documents manifest is a JSON object")
    manifest: dict[str, str] = {}
    for key, document in data.items():
        if not isinstance(document, str) or sha256_of(document) != str(key).lower():
            raise ValueError(f"{path}: the document under {key!r} does not have that SHA-256")
        manifest[key.lower()] = document
    return manifest


def _error(message: str, code: str, status: int) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, "status": status})


class Resolved:
    """The document to run, and the hash to register once it validates (APQ only)."""

    __slots__ = ("query", "register")

    def __init__(self, query: str | None, register: str | None = None) -> None:
        self.query = query
        self.register = register


class PersistedQueries:
    """Turns a request's document and extensions into the document to run, or a refusal."""

    def __init__(self, max_bytes: int, trusted: Mapping[str, str] | None = None) -> None:
        self.store: BoundedCache[str] = BoundedCache(max_bytes)
        self.trusted = dict(trusted) if trusted is not None else None

    def resolve(self, query: str | None, extensions: Any) -> Resolved | GraphQLError:
        """The document the request runs; a GraphQLError (coded) when it may not run."""
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        query = query or None
        digest: str | None = None
        if persisted is not None:
            if not isinstance(persisted, dict) or persisted.get("version") != 1:
                return _error("Unsupported persisted query version", "invalid_input", 400)
            given = persisted.get("sha256Hash")
            if not isinstance(given, str) or not _SHA256.fullmatch(given):
                return _error(
                    "persistedQuery.sha256Hash must be a SHA-256 hex digest", "invalid_input", 400
                )
            digest = given.lower()
            if query is not None and sha256_of(query) != digest:
                return _error("provided sha does not match query", "invalid_input", 400)
        if self.trusted is not None:
            return self._trusted(query, digest)
        if digest is None:
            return Resolved(query)
        if query is not None:
            return Resolved(query, register=digest)
        stored = self.store.get(digest)
        if stored is None:
            return _error("PersistedQueryNotFound", NOT_FOUND, 400)
        return Resolved(stored)

    def _trusted(self, query: str | None, digest: str | None) -> Resolved | GraphQLError:
        assert self.trusted is not None
        if query is None and digest is None:
            return Resolved(None)  # no document at all: the usual "no query" answer
        document = self.trusted.get(digest or sha256_of(query or ""))
        if document is None:
            return _error("Only trusted documents may run here", NOT_TRUSTED, 403)
        return Resolved(document)

    def register(self, digest: str, query: str) -> None:
        """Keeps a document that validated under its hash (least recently used go first)."""
        self.store.put(digest, query, len(query))
