"""Fixtures for the audit log: the `us` region's log, and entries to put in it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reelm.audit.entries import StaffAccess
from reelm.audit.log import RegionLog, region_log
from reelm.config import Settings
from reelm.residency.store import Platform


@pytest.fixture
def us_log(platform: Platform, settings: Settings) -> RegionLog:
    return region_log(settings, platform.region("us"))


MakeAccess = Callable[[int], StaffAccess]


@pytest.fixture
def make_access(us_log: RegionLog) -> MakeAccess:
    return lambda n: access(us_log, n)


def access(log: RegionLog, n: int, *, decision: str = "allow") -> StaffAccess:
    """The n-th made-up staff read of a user's account data."""
    return StaffAccess(
        staff_id=f"staff-{n % 7}",
        operator="usds",
        subject=log.pseudonym(f"{n:032x}"),
        data_category="account",
        purpose="support",
        ticket=f"TCK-{n}",
        decision=decision,  # type: ignore[arg-type]
        policy_ids=["us-staff-with-ticket"],
    )
