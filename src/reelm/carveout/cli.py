"""`reelm carveout ...`: plan, run and verify a carve-out; hand users over to another operator."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from reelm.config import Settings

console = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj["settings"]
    return settings


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@click.group()
def carveout() -> None:
    """Move jurisdictions to another region, or hand them to another operator, with proof."""


@carveout.command("plan")
@click.option(
    "--policy", "policy_file", required=True,
    help="The new residency policy: a TOML file, or a built-in name (demo, before-2020).",
)  # fmt: skip
@click.pass_context
def plan_cmd(ctx: click.Context, policy_file: str) -> None:
    """Show who would move where under a new policy, and how much data: nothing is changed."""
    from reelm.carveout.plan import do_plan
    from reelm.residency.policy import load_policy, policy_source
    from reelm.residency.service import open_platform

    settings = _settings(ctx)
    policy = load_policy(policy_source(policy_file), data_dir=settings.data_dir)
    platform = open_platform(settings)
    try:
        plan = do_plan(platform, policy)
    finally:
        platform.close()
    table = Table(
        "jurisdiction", "from", "to", "users", "rows", "blobs", "bytes",
        title=f"carve-out to {policy.version} (sha256 {policy.content_hash[:16]}…)",
    )  # fmt: skip
    for g in plan.groups:
        table.add_row(
            g.jurisdiction, g.from_region, g.to_region, str(g.users), str(g.rows),
            str(g.blobs), _size(g.bytes),
        )  # fmt: skip
    table.add_row(
        "total", "", "", str(plan.users), str(plan.rows), str(plan.blobs), _size(plan.bytes),
        style="bold",
    )  # fmt: skip
    console.print(table)
    before = plan.previous_hash[:16] + "…" if plan.previous_hash else "none"
    console.print(f"active policy {before} → {policy.content_hash[:16]}…")
    if not plan.users:
        console.print("nobody moves: the Directory already matches this policy")


@carveout.command("run")
@click.option(
    "--policy", "policy_file", default=None,
    help="The new policy, a TOML file or a built-in name (omit to resume the carve-out in "
    "progress).",
)  # fmt: skip
@click.option("--batch", type=click.IntRange(1, 20_000), default=500, show_default=True,
              help="Users moved per batch.")  # fmt: skip
@click.option("--rate", type=click.FloatRange(min=0.01), default=None,
              help="At most this many users per second (default: as fast as it goes).")  # fmt: skip
@click.option("--clean-batch", type=click.IntRange(1), default=None,
              help="Users whose source copies are deleted together (default: --batch).")  # fmt: skip
@click.option("--drain", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Seconds between a batch's flip and deleting its source copy.")  # fmt: skip
@click.option("--report", "report_file", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Write the signed report here (default: in the data folder).")  # fmt: skip
@click.pass_context
def run_cmd(
    ctx: click.Context,
    policy_file: str | None,
    batch: int,
    clean_batch: int | None,
    rate: float | None,
    drain: float,
    report_file: Path | None,
) -> None:
    """Move every user the new policy assigns elsewhere, online, resumably; then activate the
    policy and write the signed report. Exit 1 if a user could not be moved."""
    from reelm.carveout.journal import RunOptions, run_dir
    from reelm.carveout.service import do_run
    from reelm.residency.policy import load_policy, policy_source
    from reelm.residency.service import open_platform

    settings = _settings(ctx)
    policy = (
        load_policy(policy_source(policy_file), data_dir=settings.data_dir) if policy_file else None
    )
    platform = open_platform(settings)
    with Progress(
        TextColumn("moving users"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
    ) as bar:
        task = bar.add_task("move", total=None, speed="")

        def progress(p: object) -> None:
            from reelm.carveout.journal import Progress as P

            assert isinstance(p, P)
            finished = p.done + p.failed + p.skipped
            elapsed = bar.tasks[0].elapsed or 0.0
            speed = f"{p.done / elapsed:,.0f} users/s" if elapsed > 0 else ""
            bar.update(task, total=p.total, completed=finished, speed=speed)

        try:
            result = do_run(
                platform, settings, policy=policy,
                options=RunOptions(
                    batch=batch, clean_batch=clean_batch, rate=rate, drain=drain,
                    progress=progress,
                ),
            )  # fmt: skip
        finally:
            platform.close()
    target = report_file or run_dir(settings, result.run_id) / "report.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    if result.report is not None:
        target.write_text(result.report, encoding="utf-8")
    console.print(
        f"run {result.run_id}: {result.moved} users moved, {len(result.failed)} failed, "
        f"{result.skipped} skipped in {result.seconds:.1f} s; signed report: {target}"
    )
    if result.failed:
        for user in result.failed:
            console.print(f"[red]NOT MOVED[/red] {user}: its copies did not verify; still at home")
        sys.exit(1)


@carveout.command("status")
@click.pass_context
def status_cmd(ctx: click.Context) -> None:
    """Every carve-out run: kind, state, users per step."""
    from sqlalchemy import func, select

    from reelm.carveout import models as m
    from reelm.residency.service import open_platform

    platform = open_platform(_settings(ctx))
    table = Table("run", "kind", "state", "started", "steps")
    try:
        with platform.global_store.session() as g:
            runs = g.scalars(select(m.CarveOutRun).order_by(m.CarveOutRun.started_at)).all()
            for run in runs:
                steps = g.execute(
                    select(m.CarveOutUser.step, func.count())
                    .where(m.CarveOutUser.run_id == run.id)
                    .group_by(m.CarveOutUser.step)
                ).all()
                table.add_row(
                    run.id, run.kind, run.state, run.started_at.strftime("%Y-%m-%d %H:%M"),
                    ", ".join(f"{n} {s}" for s, n in sorted(steps)),
                )  # fmt: skip
    finally:
        platform.close()
    console.print(table)


@carveout.command("verify")
@click.option("--run", "run_id", default=None, help="Run to report on (default: the latest).")
@click.option("--report", "report_file", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Also write a freshly signed report of the run here.")  # fmt: skip
@click.option("--manifests", is_flag=True,
              help="Also recompute every moved user's manifest in their new home and compare it "
              "with the run's (holds until they write again).")  # fmt: skip
@click.pass_context
def verify_cmd(
    ctx: click.Context, run_id: str | None, report_file: Path | None, manifests: bool
) -> None:
    """Check the deployment after a carve-out: residency scan, orphan blobs, keys only in their
    home ring, users where the policy puts them, audit logs (and, asked, the run's manifests).
    Exit 1 on any problem."""
    from sqlalchemy import select

    from reelm.carveout import models as m
    from reelm.carveout.report import do_report
    from reelm.carveout.verify import do_check
    from reelm.residency.service import open_platform

    settings = _settings(ctx)
    platform = open_platform(settings)
    try:
        if run_id is None:
            with platform.global_store.session() as g:
                run_id = g.scalar(
                    select(m.CarveOutRun.id)
                    .where(m.CarveOutRun.kind == m.MOVE)
                    .order_by(m.CarveOutRun.started_at.desc())
                    .limit(1)
                )
        check = do_check(platform, settings, run_id=run_id if manifests else None)
        if report_file is not None and run_id is not None:
            report_file.write_text(do_report(platform, settings, run_id), encoding="utf-8")
    finally:
        platform.close()
    for key, value in check.summary().items():
        console.print(f"{key.replace('_', ' ')}: {value}")
    for problem in check.problems():
        console.print(f"[red]PROBLEM[/red] {problem}")
    if not check.ok:
        sys.exit(1)
    console.print("[green]carve-out verified[/green]" + (f" (run {run_id})" if run_id else ""))


@carveout.command("key")
@click.option("--name", default=None, help="Key name when the key is created.")
@click.pass_context
def key_cmd(ctx: click.Context, name: str | None) -> None:
    """Print the operator's public key (vkey) that signs reports, bundles and receipts."""
    from reelm.carveout.report import operator_signer

    click.echo(operator_signer(_settings(ctx), name=name).verifier.vkey())


# --- hand-over to another operator ------------------------------------------------------------


@carveout.command("recipient-key")
@click.pass_context
def recipient_key_cmd(ctx: click.Context) -> None:
    """Print this deployment's public key for receiving hand-over bundles (created at first
    use); give it to the operator who will export to you."""
    from reelm.carveout.bundle import public_text, recipient_key

    click.echo(public_text(recipient_key(_settings(ctx)).public_key()))


@carveout.command("export")
@click.option("--jurisdictions", required=True, help="Comma-separated codes, e.g. US,CA,AU,NZ.")
@click.option("--recipient-key", "recipient", required=True,
              help="The recipient's key (reelm-x25519:…), or a file holding it.")  # fmt: skip
@click.option("--recipient-url", required=True,
              help="Public base URL of the recipient deployment (where video URLs redirect).")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Bundle file to write.")  # fmt: skip
@click.pass_context
def export_cmd(
    ctx: click.Context, jurisdictions: str, recipient: str, recipient_url: str, out: Path
) -> None:
    """Freeze the users of these jurisdictions and write their signed, encrypted bundle. Nothing
    is deleted until `reelm carveout finish` verifies the recipient's receipt."""
    from reelm.carveout.handover import do_export
    from reelm.residency.service import open_platform

    if Path(recipient).is_file():
        recipient = Path(recipient).read_text(encoding="utf-8").strip()
    settings = _settings(ctx)
    platform = open_platform(settings)
    try:
        bundle_id, users = do_export(
            platform, settings, jurisdictions=jurisdictions.split(","), recipient=recipient,
            out=out, recipient_url=recipient_url,
        )  # fmt: skip
    finally:
        platform.close()
    console.print(
        f"hand-over {bundle_id}: {users} users written to {out}; they stay read-only here until "
        "`reelm carveout finish --receipt …`"
    )


@carveout.command("import")
@click.argument("bundle", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--source-key", required=True,
              help="The exporting operator's public key (vkey), or a file holding it.")  # fmt: skip
@click.option("--receipt", "receipt_file", type=click.Path(path_type=Path, dir_okay=False),
              required=True, help="Where to write the signed receipt.")  # fmt: skip
@click.pass_context
def import_cmd(ctx: click.Context, bundle: Path, source_key: str, receipt_file: Path) -> None:
    """Verify and import a bundle addressed to this deployment; write the signed receipt."""
    from reelm.carveout.handover import do_import
    from reelm.residency.service import open_platform

    if Path(source_key).is_file():
        source_key = Path(source_key).read_text(encoding="utf-8").strip()
    settings = _settings(ctx)
    platform = open_platform(settings)
    try:
        receipt = do_import(platform, settings, bundle=bundle, source_key=source_key)
    finally:
        platform.close()
    receipt_file.write_text(receipt, encoding="utf-8")
    console.print(f"imported; signed receipt written to {receipt_file}")


@carveout.command("finish")
@click.option("--receipt", "receipt_file", type=click.Path(path_type=Path, exists=True),
              required=True, help="The recipient's signed receipt.")  # fmt: skip
@click.option("--key", "importer_key", required=True,
              help="The recipient operator's public key (vkey), or a file holding it.")  # fmt: skip
@click.option("--report", "report_file", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Write the signed report here.")  # fmt: skip
@click.pass_context
def finish_cmd(
    ctx: click.Context, receipt_file: Path, importer_key: str, report_file: Path | None
) -> None:
    """Verify the recipient's receipt, then delete the handed-over users here (rows, blobs,
    keys, Directory); their public video URLs redirect to the recipient."""
    from reelm.carveout.handover import do_finish_export
    from reelm.residency.service import open_platform

    if Path(importer_key).is_file():
        importer_key = Path(importer_key).read_text(encoding="utf-8").strip()
    settings = _settings(ctx)
    platform = open_platform(settings)
    try:
        report = do_finish_export(
            platform, settings, receipt=receipt_file.read_text(encoding="utf-8"),
            importer_key=importer_key,
        )  # fmt: skip
    finally:
        platform.close()
    if report_file is not None:
        report_file.write_text(report, encoding="utf-8")
    console.print("receipt verified; the handed-over users are deleted here")


@carveout.command("abort-export")
@click.argument("bundle_id")
@click.pass_context
def abort_export_cmd(ctx: click.Context, bundle_id: str) -> None:
    """Give the users of an unfinished hand-over back (they are writable here again)."""
    from reelm.carveout.handover import do_abort_export
    from reelm.residency.service import open_platform

    platform = open_platform(_settings(ctx))
    try:
        n = do_abort_export(platform, bundle_id)
    finally:
        platform.close()
    console.print(f"hand-over {bundle_id} aborted; {n} users are active here again")
