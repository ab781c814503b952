"""`coursepulse backup FILE`: a consistent copy of a SQLite database taken while the service
runs, with SQLite's online backup API.

The copy is made in one step, inside one read transaction: it is the database as of one
moment, and in WAL mode the service's writers go on meanwhile. It is written under a
temporary name, checked (`PRAGMA quick_check`), switched to a self-contained rollback
journal, and renamed: a file of the given name is always a whole, sound database.
Restoring is copying it back while the service is stopped.
"""

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from coursepulse.models.sqlite import BUSY_TIMEOUT_MS
from coursepulse.transfer.records import TransferError, private_file, sqlite_file


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    pages: int
    bytes: int


def backup_sqlite(database_url: str, target: str, *, overwrite: bool = False) -> BackupSummary:
    """Copy the SQLite database at `database_url` to the file `target`; returns its size."""
    if make_url(database_url).get_backend_name() != "sqlite":
        raise TransferError(
            "backup copies a SQLite database; on PostgreSQL use pg_dump (or `coursepulse"
            " export`, which reads one consistent snapshot)"
        )
    source_path = sqlite_file(database_url)
    path = Path(target)
    if path.exists() and not overwrite:
        raise TransferError(f"{path} exists: choose another name, or pass --overwrite")
    if path.resolve() == source_path.resolve():
        raise TransferError("the backup cannot replace the database it copies")
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    private_file(partial).close()  # the copy holds password hashes: its owner's alone
    source = sqlite3.connect(source_path, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        source.execute("PRAGMA query_only=1")
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)  # pages=-1: every page in one step, one snapshot
            copy.execute("PRAGMA journal_mode=DELETE")
            verdict = copy.execute("PRAGMA quick_check").fetchone()
            if verdict is None or verdict[0] != "ok":
                raise TransferError(f"the copy failed its check: {verdict}")
            pages = int(copy.execute("PRAGMA page_count").fetchone()[0])
        finally:
            copy.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    partial.replace(path)
    return BackupSummary(path=path, pages=pages, bytes=path.stat().st_size)
