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
    """Train each region's For You model on that region's records only, refresh its pools, and
    precompute the candidate sets of its recently active users."""
    from rich.progress import Progress, TaskID

    from reelm.feed.model import train_region
    from reelm.feed.precompute import do_precompute_candidates
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
            with Progress(console=console, transient=True) as bar:
                job = bar.add_task(f"region {region}: candidate sets", total=None)

                def advance(done: int, total: int, job: TaskID = job, bar: Progress = bar) -> None:
                    bar.update(job, completed=done, total=total)

                pre = do_precompute_candidates(platform, settings, region, progress=advance)
            console.print(
                f"region {region}: {pre.built} candidate sets precomputed in {pre.seconds:.1f} s"
                f" ({pre.skipped} already up to date, {pre.users} active users)"
            )
    finally:
        platform.close()
