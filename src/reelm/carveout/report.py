"""The signed carve-out report, and its offline verification (`reelm audit verify-report`).

A report is a C2SP signed note (https://c2sp.org/signed-note) signed with the operator's Ed25519
key, so any signed-note verifier checks the signature with the operator's public key alone. Its
text is two lines: `reelm-carveout-report/v1` and the report as canonical JSON (sorted keys, no
whitespace, ASCII). The JSON holds the policy hashes before and after, users, rows and blobs per
region, every moved user's manifest root and the Merkle root over them, each region's audit-log
public key with its signed checkpoints from before and after the run and the RFC 9162
consistency proof between them, and the results of the checks of `reelm.carveout.verify`.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from reelm.audit.checkpoint import (
    CheckpointError,
    Note,
    NoteSignature,
    Signer,
    Verifier,
    parse_checkpoint,
    parse_note,
    verify_note,
)
from reelm.audit.entries import canonical_json
from reelm.audit.log import load_or_create_signer, region_log
from reelm.audit.merkle import ProofError, verify_consistency
from reelm.audit.schemas import b64, unb64
from reelm.carveout import models as m
from reelm.carveout.manifest import region_tables, run_root
from reelm.config import Settings
from reelm.db import utcnow
from reelm.errors import NotFound
from reelm.residency.models import ACTIVE, DirectoryEntry
from reelm.residency.store import Platform

REPORT_FORMAT = "reelm-carveout-report/v1"
RECEIPT_FORMAT = "reelm-carveout-receipt/v1"
BUNDLE_FORMAT = "reelm-carveout-bundle/v1"
OPERATOR_KEY_FILE = "operator.key"


class ReportInvalid(ValueError):
    """A report (or receipt) failed verification; the message says what did not hold."""


# --- the operator's signing key ---------------------------------------------------------------


def operator_signer(settings: Settings, *, name: str | None = None) -> Signer:
    """The deployment operator's Ed25519 key (`<data_dir>/keys/operator.key`, created at first
    use under `name`, default the audit origin with `operator` for the region)."""
    path = settings.data_dir / "keys" / OPERATOR_KEY_FILE
    default = settings.audit_origin.format(region="operator")
    signer = load_or_create_signer(path, name or default)
    return signer


def sign_document(kind: str, body: dict[str, Any], signer: Signer) -> str:
    """`kind` and `body` as a signed note: two lines, the second canonical JSON."""
    text = kind + "\n" + canonical_json(body).decode("ascii") + "\n"
    signature = NoteSignature(signer.name, signer.key_id, signer.sign(text.encode("utf-8")))
    return Note(text, (signature,)).to_text()


def open_document(note: str, kind: str, verifier: Verifier) -> dict[str, Any]:
    """The JSON body of a signed document once `verifier`'s signature on it checks out."""
    try:
        parsed = parse_note(note)
    except CheckpointError as exc:
        raise ReportInvalid(f"not a signed note: {exc}") from exc
    message = parsed.text.encode("utf-8")
    mine = [s for s in parsed.signatures if s.name == verifier.name and s.key_id == verifier.key_id]
    if not mine:
        signers = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in parsed.signatures)
        raise ReportInvalid(
            f"not signed by {verifier.name}+{verifier.key_id.hex()} (signed by {signers})"
        )
    if not all(verifier.verify(message, s.signature) for s in mine):
        raise ReportInvalid(f"the signature by {verifier.name} does not verify: changed text")
    lines = parsed.text.split("\n")
    if len(lines) != 3 or lines[0] != kind or lines[2] != "":
        raise ReportInvalid(f"not a {kind} document")
    body = json.loads(lines[1])
    if not isinstance(body, dict):
        raise ReportInvalid("the document's body is not a JSON object")
    return body


# --- making the report --------------------------------------------------------------------------


def region_counts(platform: Platform) -> dict[str, dict[str, int]]:
    """Per region: active users homed there, protected rows, user blobs and their bytes."""
    with platform.global_store.session() as g:
        users = dict(
            g.execute(
                select(DirectoryEntry.home_region, func.count())
                .where(DirectoryEntry.state == ACTIVE)
                .group_by(DirectoryEntry.home_region)
            ).all()
        )
    out: dict[str, dict[str, int]] = {}
    for name, store in platform.regions.items():
        rows = 0
        with store.unchecked_connection(reason="carve-out report: count every region row") as conn:
            for table in region_tables(store):
                rows += int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        blobs = size = 0
        root = getattr(store.blobs, "root", None)
        if isinstance(root, Path) and root.exists():
            from reelm.carveout.verify import USER_PREFIX

            for entry in os.scandir(root):
                if entry.is_dir() and USER_PREFIX.match(entry.name):
                    for folder, _dirs, files in os.walk(entry.path):
                        for f in files:
                            if not f.startswith(".tmp-"):
                                blobs += 1
                                size += os.path.getsize(os.path.join(folder, f))
        out[name] = {"users": int(users.get(name, 0)), "rows": rows, "blobs": blobs, "bytes": size}
    return out


def _log_evidence(platform: Platform, settings: Settings, before: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, store in platform.regions.items():
        log = region_log(settings, store)
        after = log.checkpoint()
        first = parse_checkpoint(parse_note(before[name]).text).size if name in before else 0
        second = parse_checkpoint(parse_note(after).text).size
        proof: list[str] = []
        if 0 < first < second:
            proof = log.consistency_proof(first, second).proof
        out[name] = {
            "log_key": log.vkey(),
            "checkpoint_before": before.get(name),
            "checkpoint_after": after,
            "consistency_proof": proof,
        }
    return out


def do_report(platform: Platform, settings: Settings, run_id: str) -> str:
    """Check the deployment, then build and sign the report of run `run_id`."""
    from reelm.carveout.verify import do_check

    with platform.global_store.session() as g:
        run = g.get(m.CarveOutRun, run_id)
        if run is None:
            raise NotFound(f"No carve-out run {run_id}.", code="no_carveout")
        journal = g.execute(
            select(
                m.CarveOutUser.from_region,
                m.CarveOutUser.to_region,
                m.CarveOutUser.step,
                m.CarveOutUser.manifest_root,
            ).where(m.CarveOutUser.run_id == run_id)
        ).all()
    detail = json.loads(run.detail)
    moves: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    manifests: list[str] = []
    for src, dst, step, root in journal:
        moves[(src, dst)][step] += 1
        if step == m.FINISHED and root is not None:
            manifests.append(root)
    # the logs' integrity is shown by the consistency proofs below; re-verifying every entry
    # of every log is the auditor's incremental `reelm audit verify`, not part of each run
    check = do_check(platform, settings, audit=False)
    body = {
        "run_id": run_id,
        "kind": run.kind,
        "started_at": run.started_at.isoformat(),
        "reported_at": utcnow().isoformat(),
        "policy_before": run.previous_hash,
        "policy_after": run.policy_hash,
        "policy_after_version": detail.get("version"),
        "moves": [
            {"from": src, "to": dst, **{k: int(v) for k, v in sorted(steps.items())}}
            for (src, dst), steps in sorted(moves.items())
        ],
        "moved": len(manifests),
        "manifest_root": run_root(manifests),
        "manifests": sorted(manifests),
        "regions": region_counts(platform),
        "logs": _log_evidence(platform, settings, detail.get("checkpoints_before", {})),
        "checks": check.summary(),
        "problems": check.problems()[:100],
        "complete": check.ok and all(set(s) == {m.FINISHED} for s in moves.values()),
    }
    return sign_document(REPORT_FORMAT, body, operator_signer(settings))


# --- checking a report offline ----------------------------------------------------------------


@dataclass
class ReportCheck:
    report: dict[str, Any]
    lines: list[str] = field(default_factory=list)


def verify_report(note: str, verifier: Verifier) -> ReportCheck:
    """Everything a report claims that can be checked with the operator's key alone: its
    signature; each region's checkpoints (signed by the region key the report names) and the
    consistency of the after-checkpoint with the before-checkpoint (the logs only grew during
    the run); the manifest root recomputed from the manifests; the checks all clean."""
    body = open_document(note, REPORT_FORMAT, verifier)
    out = ReportCheck(body, [f"signature by {verifier.name} verified"])
    manifests = body.get("manifests", [])
    if run_root(manifests) != body.get("manifest_root"):
        raise ReportInvalid("manifest_root is not the Merkle root of the listed manifests")
    if len(manifests) != body.get("moved"):
        raise ReportInvalid(f"{len(manifests)} manifests listed, {body.get('moved')} users moved")
    out.lines.append(f"manifest root {body['manifest_root'][:16]}… over {len(manifests)} users")
    for region, ev in sorted(body.get("logs", {}).items()):
        try:
            log_key = Verifier.from_vkey(ev["log_key"])
            after = verify_note(ev["checkpoint_after"], log_key, origin=log_key.name)
            if ev.get("checkpoint_before"):
                before = verify_note(ev["checkpoint_before"], log_key, origin=log_key.name)
                if before.size:
                    verify_consistency(
                        before.size,
                        after.size,
                        [unb64(h) for h in ev["consistency_proof"]],
                        before.root,
                        after.root,
                    )
                first = before.size
            else:
                first = 0
        except (CheckpointError, ProofError, KeyError, ValueError) as exc:
            raise ReportInvalid(
                f"region {region}: audit log evidence does not hold: {exc}"
            ) from exc
        out.lines.append(
            f"region {region}: log {log_key.name} grew from {first} to {after.size} entries, "
            f"consistently (root {b64(after.root)[:12]}…)"
        )
    checks = body.get("checks", {})
    bad = {k: v for k, v in checks.items() if k not in ("scan_rows", "manifests_checked") and v}
    if bad:
        raise ReportInvalid(f"the report records failed checks: {bad}; {body.get('problems')}")
    if not body.get("complete"):
        raise ReportInvalid("the report says the carve-out is not complete")
    counts = ", ".join(
        f"{r}: {c['users']} users, {c['rows']} rows, {c['blobs']} blobs"
        for r, c in sorted(body.get("regions", {}).items())
    )
    out.lines.append(f"checks clean ({checks.get('scan_rows', 0)} rows scanned); {counts}")
    out.lines.append(
        f"policy {str(body.get('policy_before'))[:12]}… → {str(body.get('policy_after'))[:12]}…"
    )
    return out
