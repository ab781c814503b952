"""Garbage collection for a long-running server process.

Start-up builds hundreds of thousands of objects that live as long as the process (the
schema, modules, caches). Left in the collector's generations, every full collection
walks them again; frozen once the server is up, collections see only what requests make.
Requests make many short-lived container objects, so the youngest generation is also
collected less often than Python's default of every 700 allocations (bench/results/
has the measurements).
"""

import gc

#: Allocations (net) between collections of the youngest generation.
YOUNG_THRESHOLD = 50_000


def settle_after_start() -> None:
    """Collect start-up's garbage, freeze what is left, and space young collections out."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
