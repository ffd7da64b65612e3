"""`reelm feed ...`: train the For You models by hand (the region workers also do it periodically)."""

from __future__ import annotations

import click
from rich.console import Console

from reelm.config import Settings

console = Console(highlight=False)


@click.group()
def feed() -> None:
    """For You feed models."""


@feed.command("train")
@click.option("--region", "regions", multiple=True, help="Region(s) to train (default: all).")
@click.pass_context
def feed_train(ctx: click.Context, regions: tuple[str, ...]) -> None:
    """Train each region's For You model on that region's records only, and refresh its pools."""
    from reelm.feed.model import train_region
    from reelm.residency.service import open_platform

    settings: Settings = ctx.obj["settings"]
    platform = open_platform(settings)
    try:
        for region in regions or tuple(platform.regions):
            report = train_region(platform, region)
            s = report.model.stats
            console.print(
                f"region {region}: {int(s['users'])} users, {int(s['items'])} videos, "
                f"{int(s['interactions'])} interactions; read {s['read_s']:.1f} s, "
                f"fit {s['fit_s']:.1f} s, pools {s['pools_s']:.1f} s → {report.path}"
            )
    finally:
        platform.close()
