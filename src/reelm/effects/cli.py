"""`reelm effects ...`: what is waiting in each region's outbox, and putting parked effects back."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from reelm.config import Settings

console = Console(highlight=False)


@click.group()
def effects() -> None:
    """The per-region outboxes of effects (counters, catalog publishes, notifications)."""


@effects.command("list")
@click.option("--region", "regions", multiple=True, help="Region(s) to list (default: all).")
@click.option("--parked", is_flag=True, help="Only the parked effects (those that failed).")
@click.pass_context
def effects_list(ctx: click.Context, regions: tuple[str, ...], parked: bool) -> None:
    """Effects not applied yet, oldest first, with the error of each parked one."""
    from reelm.effects.service import list_effects
    from reelm.residency.service import open_platform

    settings: Settings = ctx.obj["settings"]
    platform = open_platform(settings)
    try:
        rows = list_effects(platform, regions=regions or None, parked_only=parked)
    finally:
        platform.close()
    if not rows:
        console.print("no parked effects" if parked else "no pending effects")
        return
    table = Table("region", "kind", "state", "tries", "created", "next try", "error")
    # the id whole, whatever the terminal's width: it is what `reelm effects retry` takes
    table.add_column("id", no_wrap=True, min_width=32)
    for e in rows:
        table.add_row(
            e.region, e.kind, e.state, str(e.attempts),
            f"{e.created_at:%Y-%m-%d %H:%M:%S}", f"{e.next_attempt_at:%H:%M:%S}",
            (e.last_error or "")[:120], e.id,
        )
    console.print(table)
    console.print(
        f"{len(rows)} effect(s); {sum(e.state == 'parked' for e in rows)} parked"
    )


@effects.command("retry")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_parked", is_flag=True, help="Every parked effect.")
@click.option("--region", "regions", multiple=True, help="Region(s) (default: all).")
@click.pass_context
def effects_retry(
    ctx: click.Context, ids: tuple[str, ...], all_parked: bool, regions: tuple[str, ...]
) -> None:
    """Put parked effects back to pending (IDS, or --all) and try them now."""
    from reelm.effects.service import dispatch_all, do_retry
    from reelm.errors import InvalidInput
    from reelm.residency.service import open_platform

    if not ids and not all_parked:
        raise InvalidInput("Name the effects to retry, or pass --all.")
    settings: Settings = ctx.obj["settings"]
    platform = open_platform(settings)
    try:
        n = do_retry(platform, ids=list(ids) if ids else None, regions=regions or None)
        applied = sum(
            dispatch_all(platform, r, due_only=False).applied
            for r in (regions or tuple(platform.regions))
        )
    finally:
        platform.close()
    console.print(f"{n} effect(s) put back; {applied} applied now")


@effects.command("dispatch")
@click.option("--region", "regions", multiple=True, help="Region(s) (default: all).")
@click.pass_context
def effects_dispatch(ctx: click.Context, regions: tuple[str, ...]) -> None:
    """Apply every due effect now (the region workers do this every few seconds)."""
    from reelm.effects.service import dispatch_all
    from reelm.residency.service import open_platform

    settings: Settings = ctx.obj["settings"]
    platform = open_platform(settings)
    try:
        for region in regions or tuple(platform.regions):
            r = dispatch_all(platform, region, due_only=False)
            console.print(
                f"region {region}: {r.applied} applied, {r.waiting} waiting, "
                f"{r.failed} failed ({r.parked} parked), {r.discarded} discarded"
            )
            for error in dict.fromkeys(r.errors):
                console.print(f"  failed: {error[:300]}")
    finally:
        platform.close()
