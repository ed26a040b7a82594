"""The cyclic garbage collector, tuned once per process for what this server allocates.

Listing a large site builds tens of thousands of small acyclic objects (records, the tuples and
dicts around them) that reference counting frees on its own. CPython's default collector runs a
young collection every 700 container allocations and a full one whenever survivors grow by a
quarter, and each full one walks every object alive, the ~150,000 of the loaded modules, schemas
and registry included. On `find_owners` over 20,000 workbooks that was 150-300 ms of collections a
call.

So, once, when the first server is built: collect, then `gc.freeze()` what start-up left alive
(never garbage, now never walked again), and raise the young threshold above what one large call
holds at its peak. The count a young collection waits for is allocations less deallocations, and
a call's records are freed when it ends: `find_owners` over 20,000 workbooks holds about 40,000
(its records are tuple subclasses, which the collector never untracks), so at 20,000 it still ran
one or two young collections a call, 8-34 ms each, at 100,000 none (BENCHMARKS.md, issue 15).
Cycles are still collected; they only wait a little longer.
"""

from __future__ import annotations

import gc
import threading

YOUNG_THRESHOLD = 100_000

_lock = threading.Lock()
_tuned = False


def tune_collector() -> None:
    """Freeze the start-up heap and raise the young-generation threshold (idempotent, per process)."""
    global _tuned
    with _lock:
        if _tuned:
            return
        _tuned = True
        gc.collect()
        gc.freeze()
        young, middle, old = gc.get_threshold()
        if young:  # 0 means someone turned automatic collection off: leave that alone
            gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)
