"""Planning a carve-out: who moves from which region to which under a new policy, and how much.

A user's jurisdiction is protected data (`accounts.jurisdiction`, in their home region), so the
planner reads it in each region and keeps only what leaves it: user ids (already in the
Directory), region names and counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from reelm.accounts.models import Account
from reelm.carveout.manifest import OWNERS_PER_QUERY, region_tables
from reelm.errors import InvalidInput
from reelm.residency.models import ACTIVE, MOVING, DirectoryEntry
from reelm.residency.policy import ResidencyPolicy
from reelm.residency.service import active_policy_hash
from reelm.residency.store import Home, Platform
from reelm.sql import chunks


@dataclass
class MoveGroup:
    """The users of one jurisdiction that move from one region to another."""

    from_region: str
    to_region: str
    jurisdiction: str
    users: int = 0
    rows: int = 0
    blobs: int = 0
    bytes: int = 0


@dataclass
class Plan:
    policy: ResidencyPolicy
    previous_hash: str | None
    groups: list[MoveGroup] = field(default_factory=list)
    moves: dict[str, tuple[str, str]] = field(default_factory=dict)
    """user id → (from region, to region)"""

    @property
    def users(self) -> int:
        return len(self.moves)

    @property
    def rows(self) -> int:
        return sum(g.rows for g in self.groups)

    @property
    def blobs(self) -> int:
        return sum(g.blobs for g in self.groups)

    @property
    def bytes(self) -> int:
        return sum(g.bytes for g in self.groups)


def check_policy_fits(platform: Platform, policy: ResidencyPolicy) -> None:
    """Refuse a new policy the running deployment cannot carry out by moving users: every region
    it assigns anyone to must already run here, unchanged (same location, operator, database
    and blob store). Loading the policy already checked its own rules (never_store_in, ...)."""
    running = platform.policy
    for name, region in policy.regions.items():
        if name not in platform.regions:
            raise InvalidInput(
                f"{policy.source}: region {name!r} does not exist in this deployment (it runs "
                f"{sorted(platform.regions)}). Fix: add the region to the running policy and "
                "run `reelm init` first, then plan the carve-out.",
                code="unknown_region",
            )
        now = running.regions.get(name)
        if now is None:
            continue
        for attr in ("location", "operator", "database_url", "blob_store"):
            if getattr(now, attr) != getattr(region, attr):
                raise InvalidInput(
                    f"{policy.source}: regions.{name}.{attr} is {getattr(region, attr)!r} but "
                    f"the running region has {getattr(now, attr)!r}. A carve-out moves users "
                    "between existing regions; it does not relocate or re-assign a region "
                    "(to hand users to another operator, use `reelm carveout export`).",
                    code="region_changed",
                )


def read_jurisdictions(
    platform: Platform, homes: dict[str, Home], *, only: bool = False
) -> dict[str, tuple[str, str]]:
    """user id → (home region, jurisdiction) of every active or moving user of `homes`, read in
    their home region (a copy of a moving user's account in its target is not counted twice).
    `only`: read just the accounts of `homes` (a few), not every account of every region."""
    out: dict[str, tuple[str, str]] = {}
    accounts = Account.__table__
    for name, store in platform.regions.items():
        query = select(accounts.c.owner_id, accounts.c.jurisdiction)
        wanted = [u for u, h in homes.items() if h.region == name] if only else None
        with store.unchecked_connection(reason="carve-out plan: read jurisdictions") as conn:
            parts = chunks(wanted, OWNERS_PER_QUERY) if wanted is not None else iter([None])
            for chunk in parts:
                q = query if chunk is None else query.where(accounts.c.owner_id.in_(chunk))
                for owner, jurisdiction in conn.execute(q):
                    home = homes.get(owner)
                    if home is not None and home.region == name and home.state in (ACTIVE, MOVING):
                        out[owner] = (name, jurisdiction)
    return out


def select_users(
    platform: Platform,
    *,
    policy: ResidencyPolicy | None = None,
    jurisdictions: Iterable[str] | None = None,
    since: datetime | None = None,
) -> dict[str, tuple[str, str, str]]:
    """user id → (from region, to region, jurisdiction) of the users who move: those whose home
    differs from `policy`'s assignment, or whose jurisdiction is one of `jurisdictions` (a
    hand-over: `to` is then empty). `since`: only users who signed up from then on (those a
    running carve-out has not seen)."""
    homes = platform.directory.all_homes()
    if since is not None:
        with platform.global_store.session() as g:
            recent = set(
                g.scalars(
                    select(DirectoryEntry.user_id).where(
                        DirectoryEntry.created_at >= since - timedelta(minutes=1)
                    )
                )
            )
        homes = {u: h for u, h in homes.items() if u in recent}
    wanted = {j.upper() for j in jurisdictions} if jurisdictions is not None else None
    out: dict[str, tuple[str, str, str]] = {}
    for user, (region, jurisdiction) in read_jurisdictions(
        platform, homes, only=since is not None
    ).items():
        if wanted is not None:
            if jurisdiction in wanted:
                out[user] = (region, "", jurisdiction)
        elif policy is not None:
            target = policy.region_for(jurisdiction)
            if target != region:
                out[user] = (region, target, jurisdiction)
    return out


def count_data(
    platform: Platform, moves: dict[str, tuple[str, str, str]]
) -> dict[str, tuple[int, int, int]]:
    """user id → (rows, blobs, bytes) in their current home, for the users in `moves`."""
    by_region: dict[str, list[str]] = defaultdict(list)
    for user, (region, _to, _j) in moves.items():
        by_region[region].append(user)
    rows: dict[str, int] = defaultdict(int)
    blobs: dict[str, int] = defaultdict(int)
    size: dict[str, int] = defaultdict(int)
    for region, users in by_region.items():
        store = platform.regions[region]
        with store.unchecked_connection(reason="carve-out plan: count the users' rows") as conn:
            for table in region_tables(store):
                for chunk in chunks(users, OWNERS_PER_QUERY):
                    for owner, n in conn.execute(
                        select(table.c.owner_id, func.count())
                        .where(table.c.owner_id.in_(chunk))
                        .group_by(table.c.owner_id)
                    ):
                        rows[owner] += int(n)
        for user in users:
            for key in store.blobs.keys(f"{user}/"):
                blobs[user] += 1
                size[user] += store.blobs.size(key)
    return {u: (rows[u], blobs[u], size[u]) for u in moves}


def do_plan(platform: Platform, policy: ResidencyPolicy, *, counts: bool = True) -> Plan:
    """The difference between the active policy and `policy`, as the moves it takes."""
    check_policy_fits(platform, policy)
    moves = select_users(platform, policy=policy)
    plan = Plan(policy=policy, previous_hash=active_policy_hash(platform))
    sizes = count_data(platform, moves) if counts else {}
    groups: dict[tuple[str, str, str], MoveGroup] = {}
    for user, (src, dst, jurisdiction) in sorted(moves.items()):
        group = groups.setdefault((src, dst, jurisdiction), MoveGroup(src, dst, jurisdiction))
        group.users += 1
        n_rows, n_blobs, n_bytes = sizes.get(user, (0, 0, 0))
        group.rows += n_rows
        group.blobs += n_blobs
        group.bytes += n_bytes
        plan.moves[user] = (src, dst)
    plan.groups = sorted(
        groups.values(), key=lambda g: (g.from_region, g.to_region, g.jurisdiction)
    )
    return plan
