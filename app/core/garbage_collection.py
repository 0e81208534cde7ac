"""How the garbage collector runs while the service serves."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Objects allocated (net) before the youngest generation is collected; Python's default is 700.
YOUNG_GENERATION_THRESHOLD = 10_000


@contextmanager
def tuned_for_serving() -> Iterator[None]:
    """Freeze what start-up made and collect the youngest generation less often; restore
    the collector as it was when the block ends.

    A request allocates thousands of objects, so at the default threshold the
    youngest generation is collected several times per request, and every
    collection walks the objects of all requests in flight (bench/README.md
    measures what that costs). A higher threshold collects less often for a few
    MB more memory. Freezing takes the modules and start-up
    objects out of every later collection (what start-up left as garbage is kept
    until the block ends: a collection here would cost more than it frees).
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
