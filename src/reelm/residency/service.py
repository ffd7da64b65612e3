"""Setting a deployment up: write the policy, migrate every database, record the active policy."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy import select, update

from reelm import migrations
from reelm.config import Settings
from reelm.residency.models import PolicyVersion
from reelm.residency.policy import (
    ResidencyPolicy,
    load_policy,
    policy_source,
)
from reelm.residency.store import Platform


def open_platform(settings: Settings) -> Platform:
    """The deployment described by `settings` (databases must have been migrated by init)."""
    policy = load_policy(settings.resolved_policy_file, data_dir=settings.data_dir)
    return Platform(
        policy=policy,
        global_url=settings.resolved_global_database_url,
        keys_dir=settings.data_dir / "keys",
        region_urls=settings.region_database_urls,
        redis_urls=settings.region_redis_urls,
    )


def write_policy_file(
    settings: Settings, *, policy: str | None = None, force: bool = False
) -> Path:
    """Write the policy file from a built-in name or a path, unless one is there already."""
    target = settings.resolved_policy_file
    if target.exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    source = policy_source(policy or "demo")
    text = source.read_text(encoding="utf-8")
    # validate before writing so a bad policy never becomes the deployment's policy
    parsed = load_policy(source, data_dir=settings.data_dir)
    if parsed.staff_access_file is not None:
        # the Cedar file travels with the policy, beside it
        relative = os.path.relpath(parsed.staff_access_file, source.parent.resolve())
        (target.parent / relative).write_text(
            parsed.staff_access_file.read_text(encoding="utf-8"), encoding="utf-8"
        )
    target.write_text(text, encoding="utf-8")
    return target


def do_migrate(platform: Platform) -> None:
    migrations.upgrade(platform.global_store.engine, "global")
    for store in platform.regions.values():
        with store.unchecked_connection(reason="migrate the region's schema") as conn:
            migrations.upgrade(conn, "region")


def do_activate_policy(
    platform: Platform, policy: ResidencyPolicy, *, actor: str = "reelm-init"
) -> bool:
    """Record `policy` as the active one; returns True when it changed.

    A change is appended to every region's audit log (`policy_change`, with both content hashes),
    so an auditor sees which policy governed each stretch of the log."""
    from reelm.audit.entries import PolicyChange
    from reelm.audit.log import RegionLog

    with platform.global_store.transaction() as g:
        active = g.scalar(select(PolicyVersion).where(PolicyVersion.active.is_(True)))
        if active is not None and active.content_hash == policy.content_hash:
            return False
        previous = active.content_hash if active is not None else None
        g.execute(update(PolicyVersion).values(active=False))
        row = g.get(PolicyVersion, policy.content_hash)
        if row is None:
            g.add(
                PolicyVersion(
                    content_hash=policy.content_hash,
                    version=policy.version,
                    text=policy.text,
                    active=True,
                )
            )
        else:
            row.active = True
    label = re.sub(r"[^A-Za-z0-9._:/+#-]", "-", policy.version)[:128] or "unnamed"
    for store in platform.regions.values():
        RegionLog(store, platform.keys_dir / store.name).record_now(
            PolicyChange(
                policy="residency",
                version=label,
                content_hash=policy.content_hash,
                previous_hash=previous,
                actor=actor,
            )
        )
    return True


def active_policy_hash(platform: Platform) -> str | None:
    with platform.global_store.session() as g:
        return g.scalar(select(PolicyVersion.content_hash).where(PolicyVersion.active.is_(True)))


def do_init(settings: Settings, *, policy: str | None = None) -> Platform:
    """Create the data folder, policy, and every database at the latest migration."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    write_policy_file(settings, policy=policy)
    platform = open_platform(settings)
    do_migrate(platform)
    from reelm.audit.log import region_log

    for store in platform.regions.values():
        region_log(settings, store).vkey()  # the checkpoint key exists from the start
    do_activate_policy(platform, platform.policy)
    return platform


def regions_overview(platform: Platform) -> list[dict[str, str | int | list[str]]]:
    """Per region: operator, location, assigned jurisdictions and user count (public numbers)."""
    from sqlalchemy import func

    from reelm.residency.models import ACTIVE, DirectoryEntry

    with platform.global_store.session() as g:
        rows = g.execute(
            select(DirectoryEntry.home_region, func.count())
            .where(DirectoryEntry.state == ACTIVE)
            .group_by(DirectoryEntry.home_region)
        )
        counts: dict[str, int] = {region: n for region, n in rows}
    pol = platform.policy
    out: list[dict[str, str | int | list[str]]] = []
    for name, region in pol.regions.items():
        js = sorted(j for j, r in pol.assignment.items() if r == name)
        if name == pol.default_region:
            js.append("everyone else")
        out.append(
            {
                "name": name,
                "operator": pol.operators[region.operator].name,
                "location": region.location,
                "jurisdictions": js,
                "users": counts.get(name, 0),
            }
        )
    return out
