"""Which queries read with one statement, learned from their previous runs.

A read of one statement needs no transaction: the statement is its own snapshot, and
on PostgreSQL BEGIN and ROLLBACK are two of a progress read's three round trips. Whether
an operation reads with one statement is known only once it ran, so it is learned per
validated document and operation: a query whose last run in a transaction read with one
statement runs next without one. If it then asks for a second statement
(`SnapshotNeeded`), its answer so far is dropped and it runs again in a transaction: a
query changes nothing, so running it twice is safe, and only a wasted statement is lost.
"""

from dataclasses import dataclass

#: Guesses that fell short after which an operation always reads in a transaction (its
#: statements depend on its variables or on the data).
MAX_MISSES = 3


@dataclass(slots=True)
class ReadPlan:
    """What one query's previous runs say about its reads."""

    #: Its next run reads with one statement, without a transaction.
    one_statement: bool = False
    #: One-statement runs that asked for more.
    misses: int = 0

    def learn(self, statements: int) -> None:
        """Take note of a run in a transaction that read with `statements` statements."""
        self.one_statement = statements <= 1 and self.misses < MAX_MISSES

    def missed(self) -> None:
        """Take note of a one-statement run that asked for a second statement."""
        self.misses += 1
        self.one_statement = False
