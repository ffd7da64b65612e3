"""`reelm federation ...`: which instances this deployment federates with, and the outgoing
deliveries that have not reached their inbox yet (the dead-letter list among them)."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from reelm.config import Settings

console = Console(highlight=False)


@click.group()
def federation() -> None:
    """ActivityPub federation: instances allowed or blocked, and deliveries."""


def _set(ctx: click.Context, domain: str, state: str) -> None:
    from reelm.federation.models import InstanceState
    from reelm.federation.service import do_set_instance
    from reelm.residency.service import open_platform

    settings: Settings = ctx.obj["settings"]
    platform = open_platform(settings)
    try:
        do_set_instance(platform, domain, InstanceState(state))
    finally:
        platform.close()
    console.print(f"{domain}: {state}")


@federation.command("allow")
@click.argument("domain")
@click.pass_context
def allow(ctx: click.Context, domain: str) -> None:
    """Federate with DOMAIN (host or host:port); needed in allow-list mode."""
    _set(ctx, domain, "allowed")


@federation.command("block")
@click.argument("domain")
@click.pass_context
def block(ctx: click.Context, domain: str) -> None:
    """Never federate with DOMAIN: its activities are refused, nothing is delivered to it."""
    _set(ctx, domain, "blocked")


@federation.command("instances")
@click.pass_context
def instances(ctx: click.Context) -> None:
    """The instances this deployment knows, with what was decided about each."""
    from reelm.federation.service import list_instances
    from reelm.residency.service import open_platform

    settings: Settings = ctx.obj["settings"]
    platform = open_platform(settings)
    try:
        rows = list_instances(platform)
    finally:
        platform.close()
    console.print(f"mode: {settings.federation_mode}; federation "
                  f"{'on as ' + settings.federation_base_url if settings.federation_base_url else 'off'}")  # fmt: skip
    table = Table("state", "actors", "followers", "videos", "last seen")
    table.add_column("instance", no_wrap=True, min_width=24)
    for i in rows:
        table.add_row(i.state, str(i.actors), str(i.followers), str(i.videos),
                      f"{i.last_seen:%Y-%m-%d %H:%M}", i.domain)  # fmt: skip
    console.print(table)


@federation.command("deliveries")
@click.option("--parked", is_flag=True, help="Only the dead-letter list (deliveries given up).")
@click.pass_context
def deliveries(ctx: click.Context, parked: bool) -> None:
    """Outgoing activities not delivered yet, with the last error of each."""
    from reelm.federation.delivery import list_deliveries
    from reelm.residency.service import open_platform

    settings: Settings = ctx.obj["settings"]
    platform = open_platform(settings)
    try:
        rows = list_deliveries(platform, parked_only=parked)
    finally:
        platform.close()
    if not rows:
        console.print("no parked deliveries" if parked else "no pending deliveries")
        return
    table = Table("region", "kind", "inbox", "state", "tries", "next try", "error")
    table.add_column("id", no_wrap=True, min_width=32)
    for d in rows:
        table.add_row(d.region, d.kind, d.inbox, d.state, str(d.attempts),
                      f"{d.next_attempt_at:%H:%M:%S}", (d.last_error or "")[:120], d.id)  # fmt: skip
    console.print(table)
    console.print(f"{len(rows)} deliver(ies); {sum(d.state == 'parked' for d in rows)} parked")


@federation.command("retry")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_parked", is_flag=True, help="Every parked delivery.")
@click.pass_context
def retry(ctx: click.Context, ids: tuple[str, ...], all_parked: bool) -> None:
    """Put parked deliveries (IDS, or --all) back to pending and send what is due now."""
    from reelm.errors import InvalidInput
    from reelm.federation.delivery import deliver_all, do_retry_deliveries
    from reelm.federation.service import enable
    from reelm.residency.service import open_platform

    if not ids and not all_parked:
        raise InvalidInput("Name the deliveries to retry, or pass --all.")
    settings: Settings = ctx.obj["settings"]
    platform = open_platform(settings)
    try:
        n = do_retry_deliveries(platform, list(ids) if ids else None)
        fed = enable(platform, settings)
        sent = deliver_all(fed).sent if fed is not None else 0
    finally:
        platform.close()
    console.print(f"{n} deliver(ies) put back; {sent} sent now")
