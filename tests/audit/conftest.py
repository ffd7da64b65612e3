"""Fixtures for the audit log: the `us` region's log, and entries to put in it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text

from reelm.audit.entries import StaffAccess
from reelm.audit.log import RegionLog, region_log
from reelm.config import Settings
from reelm.residency.store import Platform

AUDIT_TABLES = ("audit_entries", "audit_nodes", "audit_checkpoints", "audit_head")


def empty_log(log: RegionLog) -> None:
    with log.store.unchecked_connection(reason="test: write below the hooks") as conn, conn.begin():
        for table in AUDIT_TABLES:
            conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def us_log(platform: Platform, settings: Settings) -> RegionLog:
    """The `us` region's log, emptied of the policy change the `platform` fixture logged, so
    positions in these tests are absolute."""
    log = region_log(settings, platform.region("us"))
    empty_log(log)
    return log


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
