"""Named points in a carve-out where the crash-safety harness kills the process (kill -9).

`REELM_CARVEOUT_CRASH_AT=<point>:<n>` makes the process send itself SIGKILL the n-th time it
passes `<point>` (n defaults to 1): no exception, no cleanup, no flushed buffers, exactly like
the machine dying. Unset, a point costs one dictionary look-up. Only the tests set it.
"""

from __future__ import annotations

import os
import signal

ENV = "REELM_CARVEOUT_CRASH_AT"

POINTS: tuple[str, ...] = (
    # a run starts
    "run.checkpointed",
    "run.created",
    # one batch of a move, in order
    "batch.marked",
    "batch.fenced",
    "copy.rows_mid",
    "copy.rows_done",
    "copy.blob_mid",
    "copy.blobs_done",
    "copy.keys_done",
    "batch.copied",
    "verify.source_done",
    "verify.target_done",
    "batch.verified",
    "batch.flipped",
    "clean.rows_mid",
    "clean.rows_done",
    "clean.blob_mid",
    "clean.blobs_done",
    "clean.keys_done",
    "batch.cleaned",
    "log.source_done",
    "log.target_done",
    "batch.done",
    # a run ends
    "run.before_activate",
    "run.activated",
    "run.reported",
)
"""Every point, in the order a run passes them."""

_passed: dict[str, int] = {}


def crash_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _passed[name] = _passed.get(name, 0) + 1
    if _passed[name] == int(nth or "1"):
        os.kill(os.getpid(), signal.SIGKILL)
