"""After a carve-out: the checks that show nothing was lost or left behind.

- every protected row is in its owner's home region (the residency scan);
- no blob of a user lies in a region that is not their home (orphan blobs), nor of a user the
  Directory does not know;
- a data key exists only in the key ring of its user's home region;
- (on request) each moved user's manifest, recomputed in their home now, is the root both sides
  agreed on: true right after a run, until the user writes again;
- every user lives where the active policy assigns their jurisdiction;
- every region's audit log is intact (its stored tree matches its entries, and a fresh
  verification from the empty log with the region's public key passes).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from reelm.audit.log import region_log
from reelm.audit.verify import LocalLogSource, VerificationFailed, verify_log
from reelm.carveout import models as m
from reelm.carveout.manifest import compute_manifests
from reelm.carveout.plan import read_jurisdictions
from reelm.config import Settings
from reelm.residency.models import MOVING, PolicyVersion
from reelm.residency.policy import ResidencyPolicy, parse_policy
from reelm.residency.scan import do_scan
from reelm.residency.store import Home, Platform

USER_PREFIX = re.compile(r"^[0-9a-f]{32}$")
"""Blob folders that belong to a user (a user id); others (`catalog/…`) are the region's own."""


@dataclass
class Check:
    scan_rows: int = 0
    scan_violations: list[str] = field(default_factory=list)
    orphan_blobs: list[str] = field(default_factory=list)
    misplaced_keys: list[str] = field(default_factory=list)
    manifest_mismatches: list[str] = field(default_factory=list)
    manifests_checked: int = 0
    misplaced_users: list[str] = field(default_factory=list)
    audit_problems: list[str] = field(default_factory=list)
    audit_entries: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (
            self.scan_violations
            or self.orphan_blobs
            or self.misplaced_keys
            or self.manifest_mismatches
            or self.misplaced_users
            or self.audit_problems
        )

    def problems(self) -> list[str]:
        out = [f"residency violation: {v}" for v in self.scan_violations]
        out += [f"orphan blob: {b}" for b in self.orphan_blobs]
        out += [f"key outside its user's home: {k}" for k in self.misplaced_keys]
        out += [f"manifest differs: {u}" for u in self.manifest_mismatches]
        out += [f"user not where the active policy assigns them: {u}" for u in self.misplaced_users]
        out += [f"audit log: {p}" for p in self.audit_problems]
        return out

    def summary(self) -> dict[str, int]:
        return {
            "scan_rows": self.scan_rows,
            "scan_violations": len(self.scan_violations),
            "orphan_blobs": len(self.orphan_blobs),
            "keys_outside_home": len(self.misplaced_keys),
            "manifests_checked": self.manifests_checked,
            "manifest_mismatches": len(self.manifest_mismatches),
            "misplaced_users": len(self.misplaced_users),
            "audit_problems": len(self.audit_problems),
        }


def _allowed(home: Home | None, region: str) -> bool:
    return home is not None and home.allows(region)


def orphan_blobs(platform: Platform, homes: dict[str, Home] | None = None) -> list[str]:
    """`region: key` of every blob under a user's folder in a region that is not their home
    (or the target of their ongoing move), or of a user the Directory does not know."""
    homes = homes if homes is not None else platform.directory.all_homes()
    out: list[str] = []
    for name, store in platform.regions.items():
        root = getattr(store.blobs, "root", None)
        if isinstance(root, Path):
            owners = [e.name for e in os.scandir(root) if e.is_dir()] if root.exists() else []
        else:
            owners = sorted({k.split("/", 1)[0] for k in store.blobs.keys("")})
        for owner in owners:
            if not USER_PREFIX.match(owner) or _allowed(homes.get(owner), name):
                continue
            out += [f"{name}: {key}" for key in store.blobs.keys(f"{owner}/")]
    return out


def misplaced_keys(platform: Platform, homes: dict[str, Home] | None = None) -> list[str]:
    homes = homes if homes is not None else platform.directory.all_homes()
    out = []
    for name, store in platform.regions.items():
        for owner in store.keys.owners():
            if not _allowed(homes.get(owner), name):
                home = homes.get(owner)
                where = f"home {home.region}" if home else "not in the Directory"
                out.append(f"{name}: key of user {owner} ({where})")
    return out


def active_policy(platform: Platform, settings: Settings) -> ResidencyPolicy:
    """The policy recorded as active in the global database (another process may have
    activated a new one since this platform was opened); the platform's own if none is."""
    with platform.global_store.session() as g:
        text = g.scalar(select(PolicyVersion.text).where(PolicyVersion.active.is_(True)))
    if text is None or text == platform.policy.text:
        return platform.policy
    return parse_policy(text, source=settings.resolved_policy_file, data_dir=settings.data_dir)


def do_check(
    platform: Platform,
    settings: Settings,
    *,
    run_id: str | None = None,
    audit: bool = True,
) -> Check:
    """Every check of the module docstring; `run_id` adds the manifests of that run's users."""
    check = Check()
    scan = do_scan(platform)
    check.scan_rows = scan.rows
    check.scan_violations = [v.describe() for v in scan.violations or []]
    homes = platform.directory.all_homes()
    check.orphan_blobs = orphan_blobs(platform, homes)
    check.misplaced_keys = misplaced_keys(platform, homes)
    policy = active_policy(platform, settings)
    for user, (region, jurisdiction) in read_jurisdictions(platform, homes).items():
        if homes[user].state != MOVING and policy.region_for(jurisdiction) != region:
            check.misplaced_users.append(f"{user} (jurisdiction {jurisdiction}, home {region})")
    if run_id is not None:
        with platform.global_store.session() as g:
            journal = g.execute(
                select(
                    m.CarveOutUser.user_id, m.CarveOutUser.to_region, m.CarveOutUser.manifest_root
                ).where(m.CarveOutUser.run_id == run_id, m.CarveOutUser.step == m.FINISHED)
            ).all()
        by_region: dict[str, dict[str, str]] = defaultdict(dict)
        for user, region, root in journal:
            home = homes.get(user)
            if home is not None and home.region == region and root is not None:
                by_region[region][user] = root
            else:
                check.manifest_mismatches.append(f"{user}: no longer homed in {region}")
        for region, roots in by_region.items():
            if region not in platform.regions:
                continue
            now = compute_manifests(platform.regions[region], list(roots))
            check.manifests_checked += len(roots)
            check.manifest_mismatches += [
                f"{u}: {roots[u][:16]}… recorded, {now[u].root[:16]}… now in {region}"
                for u in roots
                if now[u].root != roots[u]
            ]
    if audit:
        for name, store in platform.regions.items():
            log = region_log(settings, store)
            check.audit_problems += [f"{name}: {p}" for p in log.fsck()]
            try:
                verified = verify_log(LocalLogSource(log), log.signer.verifier)
                check.audit_entries[name] = verified.new.size
            except VerificationFailed as exc:
                check.audit_problems.append(f"{name}: {exc}")
    return check
