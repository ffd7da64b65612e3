"""The `reelm` command: serve, init, demo, policy check, residency scan, users list."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from reelm.config import Settings
from reelm.errors import ReelmError

console = Console()
err_console = Console(stderr=True)


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj["settings"]
    return settings


class ReelmGroup(click.Group):
    """Turns domain errors into one clear line and exit status 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        from reelm.audit.checkpoint import CheckpointError
        from reelm.carveout.report import ReportInvalid

        try:
            return super().invoke(ctx)
        except ReelmError as e:
            # plain text, never re-wrapped: operators grep and copy these messages
            click.echo(f"error: {e.message}", err=True)
            sys.exit(2)
        except (ReportInvalid, CheckpointError) as e:
            # a bundle, receipt, report or key that fails verification: nothing was changed
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=ReelmGroup)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Data folder (default: REELM_DATA_DIR or ./data).",
)
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None) -> None:
    """reelm: short videos whose makers' personal data stays in their own region."""
    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    ctx.obj = {"settings": settings}


@main.command()
@click.option(
    "--policy",
    default=None,
    help="Built-in policy name (demo, before-2020) or a TOML file, used when the data "
    "folder has no policy yet.",
)
@click.pass_context
def init(ctx: click.Context, policy: str | None) -> None:
    """Create the data folder, the policy and every database (idempotent)."""
    from reelm.residency.service import do_init

    settings = _settings(ctx)
    platform = do_init(settings, policy=policy)
    console.print(
        f"reelm data folder ready at {settings.data_dir.resolve()} "
        f"(policy {platform.policy.version}, regions: {', '.join(platform.regions)})"
    )
    platform.close()


@main.command()
@click.option(
    "--policy",
    default=None,
    help="Policy to initialise with when the data folder is new (e.g. before-2020).",
)
@click.option(
    "--videos/--no-videos",
    default=True,
    help="Also make the demo videos through the Create pipeline (about a minute on two cores).",
)
@click.pass_context
def demo(ctx: click.Context, policy: str | None, videos: bool) -> None:
    """Seed demo users in every region and their videos (idempotent)."""
    from reelm.demo import (
        DEMO_PASSWORD,
        DEMO_STAFF_PASSWORD,
        do_seed_demo,
        do_seed_demo_staff,
        do_seed_demo_videos,
    )
    from reelm.residency.service import do_init

    settings = _settings(ctx)
    platform = do_init(settings, policy=policy)
    users = do_seed_demo(platform, settings)
    table = Table("handle", "region")
    for handle, region in users:
        table.add_row(handle, region)
    console.print(table)
    if videos:
        made = do_seed_demo_videos(
            platform,
            settings,
            progress=lambda line: console.print(f"  video {line}", highlight=False),
        )
        console.print(f"{made} demo video(s) made" if made else "Demo videos already there")
    console.print(f"Demo password for every demo user: [bold]{DEMO_PASSWORD}[/bold]")
    for handle, operator, secret in do_seed_demo_staff(platform, settings):
        console.print(
            f"Demo staff [bold]{handle}[/bold] (operator {operator}), password "
            f"{DEMO_STAFF_PASSWORD}, TOTP secret {secret}",
            highlight=False,
        )
    platform.close()


def _spawn_worker(settings: Settings, region: str, *, workers: int = 1) -> subprocess.Popen[bytes]:
    """`reelm worker --region R` as a child process (other settings come from the environment)."""
    return subprocess.Popen(
        [sys.executable, "-m", "reelm.cli", "--data-dir", str(settings.data_dir), "worker",
         "--region", region, "--workers", str(workers)]
    )


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@main.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@click.option(
    "--workers",
    "web_workers",
    type=click.IntRange(min=1),
    default=None,
    help="Web processes on the port (default: REELM_WEB_WORKERS, else the number of cores).",
)
@click.option("--no-workers", is_flag=True, help="Do not start the region job workers.")
@click.pass_context
def serve(
    ctx: click.Context, host: str | None, port: int | None, web_workers: int | None,
    no_workers: bool,
) -> None:
    """Serve reelm over HTTP (initialising the data folder when needed).

    With several web processes (uvicorn's supervisor restarts one that dies) this process
    stays their parent: it starts one job worker per region (not one per web process) and,
    with jobs_immediate, runs each region's outbox dispatcher once."""
    import threading

    import uvicorn

    from reelm.effects.service import run_dispatcher
    from reelm.residency.service import do_init

    settings = _settings(ctx)
    platform = do_init(settings)
    h, p = host or settings.host, port or settings.port
    n = web_workers or settings.web_workers or os.cpu_count() or 1
    # uvicorn re-raises the signal that stopped it once it has shut down; SIGTERM's default
    # action would then end this process before the `finally` below stops the workers, leaving
    # them running orphaned. As an exception it unwinds through the `finally` like Ctrl-C does.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workers = (
        []
        if no_workers or settings.jobs_immediate
        else [
            _spawn_worker(settings, name) for name in platform.regions
        ]
    )
    stop = threading.Event()
    if settings.jobs_immediate:
        # no region workers: jobs run inside requests, and the outboxes' dispatchers run here
        for name in platform.regions:
            threading.Thread(
                target=run_dispatcher, args=(platform, name, stop), name=f"effects-{name}",
                daemon=True,
            ).start()
    from reelm.federation.delivery import run_deliverer
    from reelm.federation.service import enable

    # on in this process too (when REELM_FEDERATION_BASE_URL is set): one deliverer for the
    # deployment here, however many web processes (each turns it on for its own outbox writes)
    fed = enable(platform, settings)
    if fed is not None and (settings.jobs_immediate or no_workers):
        threading.Thread(target=run_deliverer, args=(fed, stop), name="federation",
                         daemon=True).start()  # fmt: skip
    console.print(
        f"reelm serving at http://{h}:{p} ({n} web process(es), {len(workers)} region worker(s))"
    )
    try:
        if n == 1:
            from reelm.web.app import create_app

            uvicorn.run(create_app(settings, platform=platform), host=h, port=p, log_level="info")
        else:
            # each web process builds its own app from the environment: give it this one's
            # data folder (the other settings are in the environment already)
            os.environ["REELM_DATA_DIR"] = str(settings.data_dir.resolve())
            uvicorn.run(
                "reelm.web.app:app_from_environment",
                factory=True,
                workers=n,
                host=h,
                port=p,
                log_level="info",
                # a process that starts on a busy machine (numpy, PyAV, the platform) may not
                # answer the supervisor's ping within uvicorn's 5 s and would be killed
                timeout_worker_healthcheck=30,
            )
    finally:
        stop.set()
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()


@main.command()
@click.option("--region", "regions", multiple=True, help="Region(s) to work for (default: all).")
@click.option("--workers", type=int, default=1, help="Jobs run at once per region.")
@click.pass_context
def worker(ctx: click.Context, regions: tuple[str, ...], workers: int) -> None:
    """Run a region's job worker (transcodes, data exports). Unfinished jobs are requeued at start."""
    import logging

    from reelm.accounts.tasks import export_task_for, requeue_unfinished_exports
    from reelm.media.tasks import requeue_unfinished, task_for
    from reelm.residency.service import open_platform

    settings = _settings(ctx)
    platform = open_platform(settings)
    names = list(regions) or list(platform.regions)
    if len(names) != 1:
        procs = [_spawn_worker(settings, n, workers=workers) for n in names]
        sys.exit(max(p.wait() for p in procs))
    region = names[0]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    huey = task_for(platform, settings, region).huey
    from reelm.feed.tasks import schedule_training

    schedule_training(platform, settings, region)  # the For You model, retrained periodically
    export_task_for(platform, settings, region)  # download-my-data archives
    requeued = requeue_unfinished(platform, settings, region)
    requeued += requeue_unfinished_exports(platform, settings, region)
    console.print(f"worker for region {region}: {len(requeued)} unfinished job(s) requeued")
    import threading

    from reelm.effects.service import run_dispatcher

    stop = threading.Event()
    # the outbox's dispatcher: effects left after their action (a recipient moving, a database
    # that was down, a crash) are applied within seconds
    threading.Thread(
        target=run_dispatcher, args=(platform, region, stop), name="effects", daemon=True
    ).start()
    from reelm.federation.delivery import run_deliverer
    from reelm.federation.service import enable

    fed = enable(platform, settings)  # outgoing ActivityPub deliveries, when federation is on
    if fed is not None:
        threading.Thread(target=run_deliverer, args=(fed, stop), name="federation",
                         kwargs={"regions": [region]}, daemon=True).start()  # fmt: skip
    try:
        huey.create_consumer(
            workers=workers, worker_type="thread", check_worker_health=True
        ).run()
    finally:
        stop.set()


@main.group()
def policy() -> None:
    """Residency policies."""


@policy.command("check")
@click.argument("file", type=click.Path(path_type=Path))
def policy_check(file: Path) -> None:
    """Validate a policy and print jurisdiction → region → operator → location."""
    from reelm.residency.policy import load_policy

    pol = load_policy(file)
    table = Table(
        "jurisdiction",
        "region",
        "operator",
        "location",
        title=f"{file} — version {pol.version} — sha256 {pol.content_hash[:16]}…",
    )
    for row in pol.table():
        table.add_row(*row)
    console.print(table)
    if pol.never_store_in:
        console.print(f"never stored in: {', '.join(sorted(pol.never_store_in))}")
    console.print("[green]policy is valid[/green]")


@main.group()
def residency() -> None:
    """Residency checks."""


@residency.command("scan")
@click.pass_context
def residency_scan(ctx: click.Context) -> None:
    """Report every protected row stored outside its owner's home region (exit 1 if any)."""
    from reelm.residency.scan import do_scan, scan_units
    from reelm.residency.service import open_platform

    platform = open_platform(_settings(ctx))
    units = list(scan_units(platform))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as bar:
        task = bar.add_task("scanning", total=len(units), rows=0)
        seen = 0

        def step(region: str, table: str, n: int) -> None:
            nonlocal seen
            seen += n
            bar.update(task, advance=1, rows=seen, description=f"{region}.{table}")

        report = do_scan(platform, progress=step)
    for v in report.violations or []:
        console.print(f"[red]VIOLATION[/red] {v.describe()}", highlight=False, soft_wrap=True)
    n = len(report.violations or [])
    console.print(
        f"scanned {report.rows} protected rows in {report.tables} tables across "
        f"{len(platform.regions)} regions: {n} violation{'s' if n != 1 else ''}"
    )
    platform.close()
    if n:
        sys.exit(1)


@main.group()
def staff() -> None:
    """Staff accounts of the operators (separate from users; TOTP second factor)."""


@staff.command("add")
@click.argument("handle")
@click.option("--operator", required=True, help="Operator key from the policy, e.g. usds.")
@click.password_option(help="At least 12 characters.")
@click.pass_context
def staff_add(ctx: click.Context, handle: str, operator: str, password: str) -> None:
    """Create a staff member and print the TOTP provisioning URI (shown once)."""
    from reelm.residency.service import open_platform
    from reelm.staff.service import do_add_staff

    platform = open_platform(_settings(ctx))
    staff_id, uri = do_add_staff(
        platform, _settings(ctx), handle=handle, operator=operator, password=password
    )
    console.print(f"staff member {handle} ({staff_id}) of operator {operator}")
    console.print(f"add this to an authenticator app: {uri}", highlight=False)
    platform.close()


@main.group()
def accounts() -> None:
    """Account maintenance."""


@accounts.command("purge-deleted")
@click.pass_context
def accounts_purge(ctx: click.Context) -> None:
    """Hard-delete accounts whose 30-day grace period is over (and destroy their keys)."""
    from reelm.accounts.rights import do_purge_due_deletions
    from reelm.residency.service import open_platform

    settings = _settings(ctx)
    platform = open_platform(settings)
    purged = do_purge_due_deletions(platform, settings)
    console.print(f"purged {len(purged)} account{'s' if len(purged) != 1 else ''}")
    platform.close()


@main.group()
def sounds() -> None:
    """The song catalog (non-personal; every song's file is copied to every region)."""


@sounds.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--title", default=None, help="Title of a single file (default: tags, else name).")
@click.option("--artist", default=None, help="Artist of a single file (default: tags, else name).")
@click.option("--genre", default=None, help="Genre of every file (default: its tags).")
@click.option("--bpm", type=int, default=None, help="Tempo of every file (default: its tags).")
@click.option(
    "--territories",
    default="*",
    show_default=True,
    help="Where the songs are licensed: ISO country codes (US,CA) or * for worldwide.",
)
@click.pass_context
def sounds_import(
    ctx: click.Context,
    path: Path,
    title: str | None,
    artist: str | None,
    genre: str | None,
    bpm: int | None,
    territories: str,
) -> None:
    """Import a song, or every audio file in a folder and its subfolders, into the catalog.

    MP3, M4A, FLAC, WAV, Ogg; 5 s to 10 min. Title, artist, genre, tempo and cover art come from
    each file's tags (options override them), else from its name ("Artist - Title.mp3"). Each
    song is normalised to -14 LUFS (EBU R128), gets a 30 s preview, waveform and cover, and is
    copied to every region. A file that fails is reported and the rest go on; the exit status
    is 2 when any failed.
    """
    from reelm.residency.service import open_platform
    from reelm.sounds.service import check_territories, do_import_file, find_audio_files

    territories = check_territories(territories)
    files = find_audio_files(path)
    if (title or artist) and len(files) > 1:
        raise click.UsageError(
            "--title and --artist name one song; a folder's songs are named by their tags or "
            "file names."
        )
    platform = open_platform(_settings(ctx))
    imported = skipped = failed = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as bar:
        task = bar.add_task("importing", total=len(files))
        for file in files:
            shown = str(file.relative_to(path)) if file != path else file.name
            bar.update(task, description=shown[-40:])
            outcome = do_import_file(
                platform, file, title=title, artist=artist, genre=genre, bpm=bpm,
                territories=territories,
            )  # fmt: skip
            if outcome.song is not None:
                imported += 1
                song = outcome.song
                line = (
                    f"+ {shown}: “{song.title}” by {song.artist}, {song.duration_s:.1f} s, "
                    f"{song.loudness_lufs:.1f} LUFS, as {song.id}"
                )
            elif outcome.skipped is not None:
                skipped += 1
                line = f"= {shown}: {outcome.skipped}"
            else:
                failed += 1
                line = f"error: {shown}: {outcome.error}"
            bar.console.print(line, markup=False, highlight=False, soft_wrap=True)
            bar.advance(task)
    console.print(
        f"imported {imported} of {len(files)} file{'s' if len(files) != 1 else ''} into "
        f"{len(platform.regions)} regions; {skipped} already in the catalog; {failed} failed",
        highlight=False,
    )
    platform.close()
    if failed:
        sys.exit(2)


@sounds.command("list")
@click.option("--search", "query", default="", help="Words of the title or artist.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.pass_context
def sounds_list(ctx: click.Context, query: str, limit: int) -> None:
    """List songs by title: id, title, artist, genre, length, territories, uses."""
    from reelm.residency.service import open_platform
    from reelm.sounds.service import search_songs

    platform = open_platform(_settings(ctx))
    page = search_songs(platform, q=query, limit=limit)
    table = Table("id", "title", "artist", "genre", "length", "territories", "uses")
    for s in page.items:
        table.add_row(
            s.id,
            s.title,
            s.artist,
            s.genre,
            f"{s.duration_s:.1f} s",
            ",".join(s.territories),
            str(s.use_count),
        )
    console.print(table)
    platform.close()


@sounds.command("sync")
@click.option("--verify", is_flag=True, help="Also re-hash every copy against its sha256.")
@click.pass_context
def sounds_sync(ctx: click.Context, verify: bool) -> None:
    """Copy song files to every region that lacks them (e.g. a region added by a new policy),
    give older songs their preview, cover and waveform, and remove original sounds whose
    video is no longer public."""
    from reelm.residency.service import open_platform
    from reelm.sounds.originals import do_remove_original_sounds
    from reelm.sounds.service import do_complete_songs, do_replicate_songs

    platform = open_platform(_settings(ctx))
    removed = do_remove_original_sounds(platform)
    completed = do_complete_songs(platform)
    written = do_replicate_songs(platform, verify=verify)
    console.print(
        f"copied {written} song file{'s' if written != 1 else ''}; completed {completed} "
        f"song{'s' if completed != 1 else ''}; removed {removed} original "
        f"sound{'s' if removed != 1 else ''}"
    )
    platform.close()


@main.group()
def users() -> None:
    """Users (public Directory data only)."""


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """List users: handle, home region, state."""
    from reelm.residency.models import DirectoryEntry
    from reelm.residency.service import open_platform

    platform = open_platform(_settings(ctx))
    table = Table("handle", "home region", "state", "user id")
    with platform.global_store.session() as g:
        for e in g.scalars(select(DirectoryEntry).order_by(DirectoryEntry.handle_key)):
            table.add_row(e.handle, e.home_region, e.state, e.user_id)
    console.print(table)
    platform.close()


from reelm.audit.cli import audit  # noqa: E402  (after the core commands, like a plugin)

main.add_command(audit)

from reelm.carveout.cli import carveout  # noqa: E402

main.add_command(carveout)

from reelm.feed.cli import feed  # noqa: E402

main.add_command(feed)

from reelm.effects.cli import effects  # noqa: E402

main.add_command(effects)

from reelm.federation.cli import federation  # noqa: E402

main.add_command(federation)

if __name__ == "__main__":
    main()
