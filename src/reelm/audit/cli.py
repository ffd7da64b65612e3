"""`reelm audit ...`: the operator's and the auditor's commands for a region's audit log.

Machine-readable output (proofs, entries, notes) goes to stdout as plain text or JSON; verdicts
and errors go to stderr. A failed verification or a refused checkpoint exits with status 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click
import httpx
from rich.console import Console
from rich.markup import escape

from reelm.audit.checkpoint import CheckpointError, Signer, Verifier
from reelm.audit.log import DEFAULT_ORIGIN, MAX_PAGE, RegionLog, region_log
from reelm.audit.schemas import unb64
from reelm.audit.verify import (
    HttpLogSource,
    LocalLogSource,
    LogSource,
    VerificationFailed,
    verify_with_state,
)
from reelm.audit.witness import Witness, WitnessRefused
from reelm.config import Settings
from reelm.errors import InvalidInput

err = Console(stderr=True, highlight=False, soft_wrap=True)


def _settings(ctx: click.Context, data_dir: Path | None = None) -> Settings:
    settings: Settings = ctx.obj["settings"]
    return settings if data_dir is None else Settings(data_dir=data_dir)


@contextmanager
def _region_log(
    ctx: click.Context, region: str, data_dir: Path | None = None
) -> Iterator[RegionLog]:
    from reelm.residency.service import open_platform

    settings = _settings(ctx, data_dir)
    platform = open_platform(settings)
    try:
        yield region_log(settings, platform.region(region))
    finally:
        platform.close()


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]FAILED:[/bold red] {escape(message)}")
    sys.exit(1)


def _verifier(key: str) -> Verifier:
    """`--key` is the vkey itself or a file holding it."""
    text = Path(key).read_text(encoding="utf-8") if Path(key).is_file() else key
    try:
        return Verifier.from_vkey(text.strip())
    except CheckpointError as exc:
        raise click.BadParameter(str(exc), param_hint="--key") from exc


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2))


region_option = click.option("--region", required=True, help="Region name, e.g. us.")


@click.group()
def audit() -> None:
    """The per-region audit log: checkpoints, proofs, entries, verification, witnessing."""


@audit.command("key")
@region_option
@click.option(
    "--origin",
    default=None,
    help=f"Log origin (and key name) when the key is created; default {DEFAULT_ORIGIN!r}.",
)
@click.pass_context
def key_cmd(ctx: click.Context, region: str, origin: str | None) -> None:
    """Print the region's public checkpoint key (vkey), creating the key at first use."""
    with _region_log(ctx, region) as log:
        log.origin_template = origin or log.origin_template
        if origin is not None and log.origin != origin:
            raise InvalidInput(
                f"region {region}'s key already exists under the origin {log.origin!r}; "
                "a log's origin never changes"
            )
        click.echo(log.vkey())


@audit.command("checkpoint")
@region_option
@click.pass_context
def checkpoint_cmd(ctx: click.Context, region: str) -> None:
    """Sign and store a checkpoint of the current tree; print the signed note."""
    with _region_log(ctx, region) as log:
        click.echo(log.sign_checkpoint(), nl=False)


@audit.command("prove-inclusion")
@region_option
@click.option("--index", type=int, required=True, help="Entry index.")
@click.option("--size", type=int, default=None, help="Tree size (default: the current size).")
@click.pass_context
def prove_inclusion_cmd(ctx: click.Context, region: str, index: int, size: int | None) -> None:
    """Print the RFC 9162 inclusion proof of an entry as JSON (base64 hashes)."""
    with _region_log(ctx, region) as log:
        _echo_json(log.inclusion_proof(index, size).model_dump())


@audit.command("prove-consistency")
@region_option
@click.option("--from", "first", type=int, required=True, help="The older tree size.")
@click.option("--to", "second", type=int, default=None, help="The newer size (default: current).")
@click.pass_context
def prove_consistency_cmd(ctx: click.Context, region: str, first: int, second: int | None) -> None:
    """Print the RFC 9162 consistency proof between two tree sizes as JSON (base64 hashes)."""
    with _region_log(ctx, region) as log:
        _echo_json(log.consistency_proof(first, second).model_dump())


@audit.command("entries")
@region_option
@click.option("--from", "start", type=int, default=0, help="First index (default 0).")
@click.option("--to", "end", type=int, default=None, help="End index, exclusive (default: all).")
@click.pass_context
def entries_cmd(ctx: click.Context, region: str, start: int, end: int | None) -> None:
    """Print entries as JSON lines: index, leaf hash, the entry."""
    with _region_log(ctx, region) as log:
        position = start
        while end is None or position < end:
            page = log.entries_page(position, position + MAX_PAGE if end is None else end)
            for row in page.entries:
                line = {"index": row.index, "leaf_hash": row.leaf_hash, "entry": row.entry}
                click.echo(json.dumps(line, sort_keys=True))
            if not page.entries:
                break
            position = page.end


@audit.command("fsck")
@region_option
@click.pass_context
def fsck_cmd(ctx: click.Context, region: str) -> None:
    """Recompute the whole stored tree from the entries' bytes (the operator's own check)."""
    with _region_log(ctx, region) as log:
        problems = log.fsck()
        size = log.size()
    for problem in problems:
        err.print(f"[red]{escape(problem)}[/red]")
    if problems:
        _fail(f"region {region}'s audit log has {len(problems)} problem(s)")
    err.print(f"[green]ok[/green]: {size} entries and every stored node match")


@contextmanager
def _source(
    ctx: click.Context, url: str | None, data_dir: Path | None, region: str | None
) -> Iterator[LogSource]:
    if url is not None:
        with httpx.Client(timeout=30, follow_redirects=False) as client:
            yield HttpLogSource(client, url)
    elif region is not None:
        with _region_log(ctx, region, data_dir) as log:
            yield LocalLogSource(log)
    else:
        raise click.UsageError("give the log's --url, or --region (with --data-dir) to read it")


@audit.command("verify")
@click.option("--key", required=True, help="The log's public key (vkey), or a file holding it.")
@click.option(
    "--state",
    type=click.Path(path_type=Path),
    required=True,
    help="File with the last verified checkpoint; written only when everything verifies.",
)
@click.option("--url", default=None, help="The log's public base URL, e.g. http://host/audit/us.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Data folder.")
@click.option("--region", default=None, help="Region to read from --data-dir.")
@click.pass_context
def verify_cmd(
    ctx: click.Context,
    key: str,
    state: Path,
    url: str | None,
    data_dir: Path | None,
    region: str | None,
) -> None:
    """Verify the log with nothing but its key: the latest checkpoint's signature, its consistency
    with the one in --state, and every new entry's inclusion. Exit 1 on any failure."""
    verifier = _verifier(key)
    with _source(ctx, url, data_dir, region) as source:
        try:
            result = verify_with_state(source, verifier, state)
        except VerificationFailed as exc:
            _fail(f"{exc}\nthe state file {state} was left unchanged.")
    old = f"size {result.old.size}" if result.old is not None else "nothing (first run)"
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(result.kinds.items())) or "none"
    summary = (
        f"{verifier.name}: from {old} to size {result.new.size}; "
        f"{result.entries} new entries included ({kinds}); state written to {state}"
    )
    err.print(f"[bold green]VERIFIED[/bold green] {escape(summary)}")


@audit.command("verify-report")
@click.argument("report", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--key", required=True, help="The operator's public key (vkey), or a file holding it.")
def verify_report_cmd(report: Path, key: str) -> None:
    """Check a signed carve-out report offline with the operator's key alone: its signature,
    each region's checkpoints and their consistency, the manifest root, the recorded checks."""
    from reelm.carveout.report import ReportInvalid, verify_report

    try:
        result = verify_report(report.read_text(encoding="utf-8"), _verifier(key))
    except ReportInvalid as exc:
        _fail(str(exc))
    for line in result.lines:
        err.print(f"  {escape(line)}")
    err.print(f"[bold green]VERIFIED[/bold green] carve-out report {escape(str(report))}")


@audit.command("witness")
@click.option("--key", required=True, help="The log's public key (vkey), or a file holding it.")
@click.option(
    "--state",
    type=click.Path(path_type=Path),
    required=True,
    help="File with the last checkpoint this witness cosigned.",
)
@click.option(
    "--witness-key",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="The witness's private key file (see `reelm audit keygen`).",
)
@click.option("--url", default=None, help="Fetch the checkpoint and proof from this log URL.")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="A signed checkpoint file to cosign instead of fetching one.",
)
@click.option(
    "--proof",
    "proof_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Consistency proof JSON (from `prove-consistency`) from the witness's last size.",
)
def witness_cmd(
    key: str,
    state: Path,
    witness_key: Path,
    url: str | None,
    checkpoint_file: Path | None,
    proof_file: Path | None,
) -> None:
    """Cosign the log's new checkpoint if it extends the last one this witness cosigned; refuse a
    fork or a rollback (exit 1). Prints the cosigned note."""
    witness = Witness(_verifier(key), Signer.load(witness_key), state)
    try:
        latest = witness.latest()
        old_size = latest.size if latest is not None else 0
        if url is not None:
            note, proof = _fetch_for_witness(url, old_size)
        elif checkpoint_file is not None:
            note = checkpoint_file.read_text(encoding="utf-8")
            proof, old_size = _read_proof(proof_file, old_size)
        else:
            raise click.UsageError("give the log's --url, or a --checkpoint file (and --proof)")
        cosigned = witness.add_checkpoint(note, proof, old_size=old_size)
    except (WitnessRefused, VerificationFailed) as exc:
        _fail(f"{exc}\nthe witness state {state} was left unchanged.")
    click.echo(cosigned, nl=False)
    err.print(
        f"[bold green]COSIGNED[/bold green] {escape(witness.log.name)} by {escape(witness.signer.name)}"
    )


def _fetch_for_witness(url: str, old_size: int) -> tuple[str, list[bytes]]:
    from reelm.audit.checkpoint import parse_checkpoint, parse_note

    with httpx.Client(timeout=30) as client:
        source = HttpLogSource(client, url)
        note = source.checkpoint()
        try:  # only the size is read here, to ask for the proof; the witness verifies it all
            size = parse_checkpoint(parse_note(note).text).size
        except CheckpointError as exc:
            raise VerificationFailed(f"{url} served a malformed checkpoint: {exc}") from exc
        if old_size == 0 or size <= old_size:
            return note, []
        served = source.consistency(old_size, size)
        return note, [unb64(h) for h in served.proof]


def _read_proof(path: Path | None, old_size: int) -> tuple[list[bytes], int]:
    if path is None:
        return [], old_size
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [unb64(h) for h in data["proof"]], int(data["first"])
    except (ValueError, KeyError, TypeError) as exc:
        raise click.BadParameter(f"not a consistency proof: {exc}", param_hint="--proof") from exc


@audit.command("keygen")
@click.option("--name", required=True, help="Key name, e.g. witness.example.org.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Private key file to create (never overwritten).",
)
def keygen_cmd(name: str, out: Path) -> None:
    """Create an Ed25519 note-signing key (for a witness) and print its public vkey."""
    try:
        signer = Signer.generate(name)
        signer.save(out)
    except FileExistsError:
        raise click.UsageError(f"{out} exists; a key file is never overwritten") from None
    except CheckpointError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from exc
    click.echo(signer.verifier.vkey())
