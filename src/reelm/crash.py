"""Named points where the crash-safety tests kill a job's process (kill -9), outside the
carve-out (which has its own list in carveout/crash.py).

`REELM_CRASH_AT=<point>` makes the process send itself SIGKILL when it passes `<point>`: no
exception, no cleanup, exactly like the machine dying. Unset, a point costs one environment
look-up. Only the tests set it.
"""

from __future__ import annotations

import os
import signal

ENV = "REELM_CRASH_AT"

POINTS: tuple[str, ...] = ("export.half_way",)
"""`export.half_way`: a data export has written half of its archive's entries."""


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
