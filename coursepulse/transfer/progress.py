"""How far an export or import has come: a progress bar when stderr is a terminal, else a
log line per table and every `EVERY` rows (log collectors and CI want no bar)."""

import logging
import os
import sys
from types import TracebackType

from tqdm import tqdm

log = logging.getLogger("coursepulse.transfer")

#: Rows between two log lines within a table, without a terminal.
EVERY = 100_000


def _terminal_size() -> tuple[int, int]:
    """The terminal's columns and lines; 80 x 24 where it says 0 (a terminal whose size was
    never set, as under `script` or a bare pty), on which tqdm would draw nothing."""
    try:
        columns, lines = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):
        columns, lines = 0, 0
    return columns or 80, lines or 24


class Progress:
    """Counts rows done (`advance`) out of `total`, table by table (`table`)."""

    def __init__(self, verb: str, total: int, *, bar: bool | None = None) -> None:
        self.verb = verb
        self.total = total
        self.done = 0
        self._table = ""
        self._table_done = 0
        show_bar = sys.stderr.isatty() if bar is None else bar
        columns, lines = _terminal_size()
        self._bar = (
            tqdm(
                total=total,
                unit=" rows",
                unit_scale=total >= 10_000,
                desc=verb,
                file=sys.stderr,
                ncols=columns,
                nrows=lines,
            )
            if show_bar
            else None
        )

    def table(self, name: str) -> None:
        """The rows that follow are of table `name`."""
        self._finish_table()
        self._table = name
        self._table_done = 0
        if self._bar is not None:
            self._bar.set_description(f"{self.verb} {name}")

    def advance(self, rows: int) -> None:
        self.done += rows
        before = self._table_done
        self._table_done += rows
        if self._bar is not None:
            self._bar.update(rows)
        elif self._table_done // EVERY > before // EVERY:
            log.info("%s %s: %d rows so far", self.verb, self._table, self._table_done)

    def _finish_table(self) -> None:
        if self._table and self._table_done and self._bar is None:
            log.info("%s %s: %d rows", self.verb, self._table, self._table_done)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            self._finish_table()
        if self._bar is not None:
            self._bar.set_description(self.verb)  # the whole, not the last table
            self._bar.close()
