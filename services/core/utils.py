"""Small helpers shared by every service."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Take what a long-lived service created at start-up (modules, models, schemas) out
    of the garbage collector's full scans, which otherwise pause it now and then for
    ~100 ms (see docs/benchmarks.md). Call once, after start-up."""
    gc.collect()
    gc.freeze()
