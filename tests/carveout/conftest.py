"""Fixtures of the carve-out tests: the test platform under the `before-2020` policy."""

from __future__ import annotations

import pytest

from carveout_seed import Seeded, policy, seed_people
from reelm.config import Settings
from reelm.residency.service import do_activate_policy, write_policy_file
from reelm.residency.store import Platform


@pytest.fixture
def before(platform: Platform, settings: Settings) -> Platform:
    """The test platform under the `before-2020` policy, with that policy file in the data
    folder (as `reelm demo --policy before-2020` leaves it)."""
    write_policy_file(settings, policy="before-2020", force=True)
    old = policy(settings, "before-2020")
    platform.policy = old
    do_activate_policy(platform, old)
    return platform


@pytest.fixture
def seeded(before: Platform, settings: Settings) -> Seeded:
    return Seeded(before, settings, seed_people(before, settings), policy(settings, "demo"))
