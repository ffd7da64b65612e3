"""Handing jurisdictions over to another operator's deployment: export a signed, encrypted bundle
(format in `bundle.py`), import it there verifying every manifest and answering with a signed
receipt, and delete at the source only once that receipt verifies.

Exported users stay `moving` at the source (reads served, writes 503) until `finish` deletes them
with the receipt, or `abort` gives them back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from sqlalchemy import Table, delete, insert, select, update

from reelm.audit.checkpoint import Verifier, parse_checkpoint, parse_note
from reelm.audit.entries import CarveOutMove, KeyDestruction
from reelm.audit.log import region_log
from reelm.carveout import models as m
from reelm.carveout.bundle import (
    CHUNK,
    BundleInvalid,
    bundle_aead,
    catalog_owner,
    catalog_rows,
    catalog_tables,
    decrypt_file,
    encrypt_file,
    parse_public,
    primary_key,
    public_text,
    read_bundle,
    recipient_key,
    rows_in,
    rows_out,
)
from reelm.carveout.copy import delete_blobs, delete_rows
from reelm.carveout.journal import (
    DIRECTORY,
    JOURNAL,
    RUNS,
    journal_insert,
    logged_carveout_entries,
    repoint_tables,
    run_dir,
)
from reelm.carveout.manifest import OWNERS_PER_QUERY, compute_manifests, region_tables, run_root
from reelm.carveout.plan import select_users
from reelm.carveout.report import (
    BUNDLE_FORMAT,
    RECEIPT_FORMAT,
    ReportInvalid,
    open_document,
    operator_signer,
    sign_document,
)
from reelm.config import Settings
from reelm.db import GlobalModel, new_id, utcnow
from reelm.errors import Conflict, InvalidInput, NotFound
from reelm.residency.models import ACTIVE, MOVING
from reelm.residency.service import active_policy_hash
from reelm.residency.store import Platform, RegionStore
from reelm.sql import bind, chunks

EXPORT_TARGET = "export"
"""`moving_to` and journal `to_region` of users being handed over: no region has this name."""
BATCH = 500

# --- export ------------------------------------------------------------------------------------


def do_export(
    platform: Platform,
    settings: Settings,
    *,
    jurisdictions: Sequence[str],
    recipient: str,
    out: Path,
    recipient_url: str,
) -> tuple[str, int]:
    """Freeze the users of `jurisdictions` (Directory `moving`), write their bundle to `out`,
    encrypted to `recipient` and signed by this operator. Returns (bundle id, users)."""
    recipient_pub = parse_public(recipient)
    codes = sorted({j.strip().upper() for j in jurisdictions if j.strip()})
    if not codes:
        raise InvalidInput(
            "Name the jurisdictions to hand over, e.g. US,CA.", code="no_jurisdictions"
        )
    with platform.global_store.session() as g:
        busy = g.scalar(
            select(m.CarveOutRun.id).where(
                m.CarveOutRun.kind == m.EXPORT, m.CarveOutRun.state.in_((m.RUNNING, m.EXPORTED))
            )
        )
    if busy is not None:
        raise Conflict(
            f"hand-over {busy} is not finished; `reelm carveout finish` or `abort` it first",
            code="carveout_in_progress",
        )
    moves = select_users(platform, jurisdictions=codes)
    bundle_id = new_id()
    checkpoints = {
        n: region_log(settings, s).sign_checkpoint() for n, s in platform.regions.items()
    }
    detail = {
        "jurisdictions": codes,
        "recipient": public_text(recipient_pub),
        "recipient_url": recipient_url.rstrip("/"),
        "checkpoints_before": checkpoints,
    }
    now = utcnow()
    with platform.global_store.engine.begin() as g:
        g.execute(
            insert(RUNS).values(
                id=bundle_id, kind=m.EXPORT, state=m.RUNNING,
                previous_hash=active_policy_hash(platform), policy_hash=active_policy_hash(platform),
                detail=json.dumps(detail), started_at=now,
            )
        )  # fmt: skip
        planned = {u: (f, EXPORT_TARGET) for u, (f, _t, _j) in moves.items()}
        journal_insert(g, bundle_id, planned, now)
        for chunk in chunks(sorted(moves), 1000):
            g.execute(
                update(DIRECTORY)
                .where(DIRECTORY.c.user_id.in_(chunk), DIRECTORY.c.state == ACTIVE)
                .values(state=MOVING, moving_to=EXPORT_TARGET)
            )
    for store in platform.regions.values():
        store.wait_for_writers()
    users = _write_bundle(platform, settings, bundle_id, moves, recipient_pub, out)
    return bundle_id, users


def _write_bundle(
    platform: Platform,
    settings: Settings,
    bundle_id: str,
    moves: dict[str, tuple[str, str, str]],
    recipient: X25519PublicKey,
    out: Path,
) -> int:
    folder = run_dir(settings, bundle_id)
    folder.mkdir(parents=True, exist_ok=True)
    payload = folder / "payload.zip"
    roots: dict[str, str] = {}
    by_region: dict[str, list[str]] = defaultdict(list)
    for user, (region, _t, _j) in sorted(moves.items()):
        by_region[region].append(user)
    with (
        zipfile.ZipFile(payload, "w", zipfile.ZIP_STORED) as z,
        z.open("users.jsonl", "w") as lines,
    ):
        for region, users in by_region.items():
            store = platform.regions[region]
            for chunk in chunks(users, BATCH):
                for record in _export_batch(platform, store, bundle_id, chunk, moves, roots):
                    lines.write(json.dumps(record, sort_keys=True).encode() + b"\n")
    with zipfile.ZipFile(payload, "a", zipfile.ZIP_STORED) as z:
        for region, users in by_region.items():
            store = platform.regions[region]
            for user in users:
                for key in store.blobs.keys(f"{user}/"):
                    with (
                        store.blobs.open(key) as src,
                        z.open(f"blobs/{key}", "w", force_zip64=True) as dst,
                    ):
                        shutil.copyfileobj(src, dst, 1024 * 1024)
    ephemeral = X25519PrivateKey.generate()
    eph_pub = ephemeral.public_key().public_bytes_raw()
    aead = bundle_aead(
        ephemeral.exchange(recipient), eph_pub, recipient.public_bytes_raw(), bundle_id
    )
    sealed = folder / "payload.enc"
    encrypt_file(aead, bundle_id, payload, sealed)
    payload.unlink()
    with sealed.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    signer = operator_signer(settings)
    header = {
        "bundle_id": bundle_id,
        "source": signer.verifier.vkey(),
        "recipient": public_text(recipient),
        "ephemeral": base64.b64encode(eph_pub).decode(),
        "users": len(roots),
        "manifest_root": run_root(roots.values()),
        "payload_sha256": digest,
        "payload_size": sealed.stat().st_size,
        "created_at": utcnow().isoformat(),
        # where the users who stay are followed over ActivityPub (None: federation off here)
        "federation_url": settings.federation_base_url,
    }
    note = sign_document(BUNDLE_FORMAT, header, signer)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        z.writestr("header.note", note)
        z.write(sealed, "payload.enc")
    os.replace(tmp, out)
    sealed.unlink()
    with platform.global_store.engine.begin() as g:
        g.execute(
            update(RUNS)
            .where(RUNS.c.id == bundle_id)
            .values(
                state=m.EXPORTED,
                detail=_merge_detail(g, bundle_id, {
                    "header_sha256": hashlib.sha256(note.encode()).hexdigest(),
                    "manifest_root": header["manifest_root"],
                    "users": len(roots),
                }),
            )
        )  # fmt: skip
    return len(roots)


def _merge_detail(g: Any, run_id: str, extra: dict[str, Any]) -> str:
    detail = json.loads(g.execute(select(RUNS.c.detail).where(RUNS.c.id == run_id)).scalar_one())
    detail.update(extra)
    return json.dumps(detail)


def _export_batch(
    platform: Platform,
    store: RegionStore,
    bundle_id: str,
    users: list[str],
    moves: dict[str, tuple[str, str, str]],
    roots: dict[str, str],
) -> Iterator[dict[str, Any]]:
    manifests = compute_manifests(store, users)
    keys = store.keys.data_keys(users)
    tables: dict[str, dict[str, list[dict[str, Any]]]] = {u: {} for u in users}
    with store.unchecked_connection(reason="hand-over: export the users' rows") as conn:
        for table in region_tables(store):
            rows = list(conn.execute(select(table).where(table.c.owner_id.in_(users))))
            for data in rows_out(table, rows):
                tables[data["owner_id"]].setdefault(table.name, []).append(data)
    with platform.global_store.engine.connect() as g:
        entries = {
            r.user_id: r for r in g.execute(select(DIRECTORY).where(DIRECTORY.c.user_id.in_(users)))
        }
        catalog = catalog_rows(g, set(users))
    public: dict[str, dict[str, list[dict[str, Any]]]] = {u: {} for u in users}
    owner_of = catalog_owner(catalog)
    for name, rows in catalog.items():
        table = GlobalModel.metadata.tables[name]
        for row, out in zip(rows, rows_out(table, rows), strict=True):
            owner = owner_of.get((name, primary_key(table, row)))
            if owner in public:
                public[owner].setdefault(name, []).append(out)
    with platform.global_store.engine.begin() as g:
        for u in users:
            g.execute(
                update(JOURNAL)
                .where(JOURNAL.c.run_id == bundle_id, JOURNAL.c.user_id == u)
                .values(step=m.COPIED, manifest_root=manifests[u].root, updated_at=utcnow())
            )
    for u in users:
        entry = entries[u]
        roots[u] = manifests[u].root
        yield {
            "user_id": u,
            "handle": entry.handle,
            "handle_key": entry.handle_key,
            "created_at": entry.created_at.isoformat() if entry.created_at else None,
            "jurisdiction": moves[u][2],
            "from_region": store.name,
            "manifest_root": manifests[u].root,
            "key": base64.b64encode(keys[u]).decode() if u in keys else None,
            "tables": tables[u],
            "catalog": public[u],
        }


def do_abort_export(platform: Platform, bundle_id: str) -> int:
    """Give the users of an unfinished hand-over back (Directory `active` where they are)."""
    with platform.global_store.engine.begin() as g:
        run = g.execute(select(RUNS).where(RUNS.c.id == bundle_id, RUNS.c.kind == m.EXPORT)).first()
        if run is None or run.state not in (m.RUNNING, m.EXPORTED):
            raise NotFound(f"No unfinished hand-over {bundle_id}.", code="no_carveout")
        users = [
            u for (u,) in g.execute(select(JOURNAL.c.user_id).where(JOURNAL.c.run_id == bundle_id))
        ]
        for chunk in chunks(users, OWNERS_PER_QUERY):
            g.execute(
                update(DIRECTORY)
                .where(
                    DIRECTORY.c.user_id.in_(chunk),
                    DIRECTORY.c.state == MOVING,
                    DIRECTORY.c.moving_to == EXPORT_TARGET,
                )
                .values(state=ACTIVE, moving_to=None)
            )
        g.execute(
            update(RUNS).where(RUNS.c.id == bundle_id).values(state=m.ABORTED, finished_at=utcnow())
        )
    return len(users)


# --- import ------------------------------------------------------------------------------------


def do_import(platform: Platform, settings: Settings, *, bundle: Path, source_key: str) -> str:
    """Import a bundle addressed to this deployment; the signed receipt.

    Refused before anything is written when the source's signature, the recipient, the
    payload's digest or decryption fail, or when a user id or handle exists here already. Every
    user's manifest is recomputed here from what was written and must equal the one in the
    payload, and the payload's manifests must add up to the signed root."""
    source = Verifier.from_vkey(source_key)
    header, note = read_bundle(bundle, source)
    me = recipient_key(settings)
    if header.get("recipient") != public_text(me.public_key()):
        raise BundleInvalid(
            "the bundle is addressed to another recipient key than this deployment's"
        )
    bundle_id = str(header["bundle_id"])
    with platform.global_store.session() as g:
        done = g.get(m.CarveOutRun, bundle_id)
        if done is not None and done.state == m.DONE and done.report:
            return done.report
    with tempfile.TemporaryDirectory(dir=settings.data_dir) as tmp:
        sealed = Path(tmp) / "payload.enc"
        try:
            with (
                zipfile.ZipFile(bundle) as z,
                z.open("payload.enc") as src,
                sealed.open("wb") as dst,
            ):
                shutil.copyfileobj(src, dst, CHUNK)
        except (KeyError, zipfile.BadZipFile) as exc:  # damaged on the way (the zip's CRC)
            raise BundleInvalid(f"the bundle's payload is damaged: {exc}") from exc
        with sealed.open("rb") as f:
            if hashlib.file_digest(f, "sha256").hexdigest() != header["payload_sha256"]:
                raise BundleInvalid(
                    "the payload is not the one the source signed (SHA-256 differs)"
                )
        eph = base64.b64decode(header["ephemeral"])
        aead = bundle_aead(
            me.exchange(X25519PublicKey.from_public_bytes(eph)),
            eph,
            me.public_key().public_bytes_raw(),
            bundle_id,
        )
        payload = Path(tmp) / "payload.zip"
        decrypt_file(aead, bundle_id, sealed, payload)
        with zipfile.ZipFile(payload) as z:
            records = [json.loads(line) for line in z.read("users.jsonl").splitlines() if line]
            if (
                run_root(r["manifest_root"] for r in records) != header["manifest_root"]
                or len(records) != header["users"]
            ):
                raise BundleInvalid("the users' manifests do not add up to the signed root")
            return _import_records(platform, settings, bundle_id, note, header, records, z)


def _import_records(
    platform: Platform,
    settings: Settings,
    bundle_id: str,
    note: str,
    header: dict[str, Any],
    records: list[dict[str, Any]],
    z: zipfile.ZipFile,
) -> str:
    policy = platform.policy
    homes = {r["user_id"]: policy.region_for(r["jurisdiction"]) for r in records}
    with platform.global_store.engine.begin() as g:
        mine = {
            u for (u,) in g.execute(select(JOURNAL.c.user_id).where(JOURNAL.c.run_id == bundle_id))
        }
        clash = []
        newcomers = [r for r in records if r["user_id"] not in mine]
        for chunk in chunks([r["user_id"] for r in newcomers], OWNERS_PER_QUERY):
            clash += [
                f"user {u}"
                for (u,) in g.execute(
                    select(DIRECTORY.c.user_id).where(DIRECTORY.c.user_id.in_(chunk))
                )
            ]
        for chunk in chunks([r["handle_key"] for r in newcomers], OWNERS_PER_QUERY):
            clash += [
                f"handle @{h}"
                for (h,) in g.execute(
                    select(DIRECTORY.c.handle_key).where(DIRECTORY.c.handle_key.in_(chunk))
                )
            ]
        if clash:
            raise Conflict(
                f"{len(clash)} users of the bundle clash with this deployment ({', '.join(clash[:5])}"
                f"{'…' if len(clash) > 5 else ''}); nothing was imported",
                code="import_conflict",
            )
        if g.execute(select(RUNS.c.id).where(RUNS.c.id == bundle_id)).first() is None:
            before = {
                n: region_log(settings, s).sign_checkpoint() for n, s in platform.regions.items()
            }
            g.execute(
                insert(RUNS).values(
                    id=bundle_id, kind=m.IMPORT, state=m.RUNNING,
                    policy_hash=active_policy_hash(platform), previous_hash=active_policy_hash(platform),
                    detail=json.dumps({"checkpoints_before": before, "source": header["source"],
                                       "header_sha256": hashlib.sha256(note.encode()).hexdigest()}),
                    started_at=utcnow(),
                )
            )  # fmt: skip
    by_region: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_region[homes[r["user_id"]]].append(r)
    source_name = Verifier.from_vkey(header["source"]).name
    for region, recs in by_region.items():
        store = platform.regions[region]
        for batch in chunks(recs, BATCH):
            _import_batch(platform, settings, store, bundle_id, source_name, batch, z)
    with platform.global_store.engine.connect() as g:
        roots = [
            r
            for (r,) in g.execute(
                select(JOURNAL.c.manifest_root).where(
                    JOURNAL.c.run_id == bundle_id, JOURNAL.c.step == m.FINISHED
                )
            )
        ]
    logs = {}
    for name, store in platform.regions.items():
        log = region_log(settings, store)
        logs[name] = {"log_key": log.vkey(), "checkpoint": log.checkpoint()}
    signer = operator_signer(settings)
    receipt = sign_document(
        RECEIPT_FORMAT,
        {
            "bundle_id": bundle_id,
            "bundle_header_sha256": hashlib.sha256(note.encode()).hexdigest(),
            "users": len(roots),
            "manifest_root": run_root(roots),
            "importer": signer.verifier.vkey(),
            "regions": {n: sum(1 for r in records if homes[r["user_id"]] == n) for n in by_region},
            "logs": logs,
            "imported_at": utcnow().isoformat(),
        },
        signer,
    )
    with platform.global_store.engine.begin() as g:
        g.execute(
            update(RUNS)
            .where(RUNS.c.id == bundle_id)
            .values(state=m.DONE, finished_at=utcnow(), report=receipt)
        )
    from reelm.federation.follows import do_relink_imported

    do_relink_imported(  # their follows of users who stayed become federated follows
        platform, source_url=header.get("federation_url"), users=[r["user_id"] for r in records]
    )
    return receipt


def _import_batch(
    platform: Platform,
    settings: Settings,
    store: RegionStore,
    bundle_id: str,
    source_name: str,
    recs: list[dict[str, Any]],
    z: zipfile.ZipFile,
) -> None:
    """Import one batch of a bundle's users into `store`. Every step can run again (a killed
    import is resumed): users already finished are skipped, rows replace a killed attempt's."""
    todo, new = _unfinished(platform, bundle_id, recs)
    if not todo:
        return
    users = [r["user_id"] for r in todo]
    _mark_moving_in(platform, store, bundle_id, new)
    _write_rows(store, users, todo)
    _write_blobs_and_keys(store, users, todo, z)
    _check_manifests(store, users, todo)
    _activate(platform, store, users, todo)
    _log_and_finish(platform, settings, store, bundle_id, source_name, todo)


def _unfinished(
    platform: Platform, bundle_id: str, recs: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The records not yet finished, and those of them the journal has not seen at all."""
    users = [r["user_id"] for r in recs]
    with platform.global_store.engine.connect() as g:
        at = dict(
            g.execute(
                select(JOURNAL.c.user_id, JOURNAL.c.step).where(
                    JOURNAL.c.run_id == bundle_id, JOURNAL.c.user_id.in_(users)
                )
            ).all()
        )
    todo = [r for r in recs if at.get(r["user_id"]) != m.FINISHED]
    return todo, [r for r in todo if r["user_id"] not in at]


def _mark_moving_in(
    platform: Platform, store: RegionStore, bundle_id: str, new: list[dict[str, Any]]
) -> None:
    """The Directory entries, `moving` into their new home (writes refused until the end)."""
    with platform.global_store.engine.begin() as g:
        if new:
            g.execute(
                insert(DIRECTORY),
                [
                    {"user_id": r["user_id"], "handle": r["handle"], "handle_key": r["handle_key"],
                     "home_region": store.name, "state": MOVING, "moving_to": store.name,
                     "created_at": datetime.fromisoformat(r["created_at"]) if r["created_at"] else utcnow()}
                    for r in new
                ],
            )  # fmt: skip
            g.execute(
                insert(JOURNAL),
                [
                    {"run_id": bundle_id, "user_id": r["user_id"], "from_region": r["from_region"],
                     "to_region": store.name, "step": m.MARKED, "manifest_root": None,
                     "updated_at": utcnow()}
                    for r in new
                ],
            )  # fmt: skip


def _write_rows(store: RegionStore, users: list[str], todo: list[dict[str, Any]]) -> None:
    """The users' rows, in one transaction that first drops a killed attempt's."""
    tables = {t.name: t for t in region_tables(store)}
    with (
        store.unchecked_connection(reason="hand-over: import the users' rows") as conn,
        conn.begin(),
    ):
        for table in reversed(list(tables.values())):
            conn.execute(delete(table).where(table.c.owner_id.in_(users)))
        for name, table in tables.items():
            rows = [row for r in todo for row in r["tables"].get(name, [])]
            if rows:
                conn.execute(table.insert(), rows_in(table, rows))
        unknown = {n for r in todo for n in r["tables"]} - set(tables)
        if unknown:
            raise BundleInvalid(f"the bundle has tables this deployment lacks: {sorted(unknown)}")


def _write_blobs_and_keys(
    store: RegionStore, users: list[str], todo: list[dict[str, Any]], z: zipfile.ZipFile
) -> None:
    prefix = "blobs/"
    wanted = {f"{u}/" for u in users}
    for name in z.namelist():
        if name.startswith(prefix):
            key = name[len(prefix) :]
            if key.split("/", 1)[0] + "/" in wanted:
                store.blobs.put_bytes(key, z.read(name))
    keys = {r["user_id"]: base64.b64decode(r["key"]) for r in todo if r["key"]}
    if keys:
        store.keys.put_data_keys(keys)


def _check_manifests(store: RegionStore, users: list[str], todo: list[dict[str, Any]]) -> None:
    """Every manifest, recomputed here from what was written, must be the source's."""
    here = compute_manifests(store, users)
    bad = [r["user_id"] for r in todo if here[r["user_id"]].root != r["manifest_root"]]
    if bad:
        raise BundleInvalid(
            f"{len(bad)} users' data does not match their manifest after import (first: {bad[0]})"
        )


def _activate(
    platform: Platform, store: RegionStore, users: list[str], todo: list[dict[str, Any]]
) -> None:
    """The users `active` in their new home, their public catalog rows pointing here."""
    repoint = dict((t.name, c) for t, c in repoint_tables())
    with platform.global_store.engine.begin() as g:
        g.execute(
            update(DIRECTORY)
            .where(DIRECTORY.c.user_id.in_(users))
            .values(state=ACTIVE, moving_to=None, home_region=store.name)
        )
        for table, _fks in catalog_tables():
            rows = [row for r in todo for row in r["catalog"].get(table.name, [])]
            if not rows:
                continue
            values = rows_in(table, rows)
            if table.name in repoint:
                for v in values:
                    v["region"] = store.name
            pk = [c.name for c in table.primary_key.columns]
            for v in values:
                g.execute(delete(table).where(*(table.c[k] == v[k] for k in pk)))
            g.execute(insert(table), values)


def _log_and_finish(
    platform: Platform,
    settings: Settings,
    store: RegionStore,
    bundle_id: str,
    source_name: str,
    todo: list[dict[str, Any]],
) -> None:
    """`carve_out_move` (in) in this region's audit log, then journal `finished` with each
    user's manifest root."""
    log = region_log(settings, store)
    policy_hash = active_policy_hash(platform) or "0" * 64
    log.record_now(
        *[
            CarveOutMove(
                subject=log.pseudonym(r["user_id"]), run_id=bundle_id, direction="in",
                from_region=f"{source_name}/{r['from_region']}"[:128], to_region=store.name,
                manifest_root=r["manifest_root"], policy_hash=policy_hash,
            )
            for r in todo
        ]
    )  # fmt: skip
    with platform.global_store.engine.begin() as g:
        g.execute(
            update(JOURNAL)
            .where(JOURNAL.c.run_id == bundle_id, JOURNAL.c.user_id == bind("u"))
            .values(step=m.FINISHED, manifest_root=bind("root"), updated_at=utcnow()),
            [{"u": r["user_id"], "root": r["manifest_root"]} for r in todo],
        )


# --- finish at the source ------------------------------------------------------------------------


def do_finish_export(
    platform: Platform, settings: Settings, *, receipt: str, importer_key: str
) -> str:
    """Verify the importer's receipt, then delete the handed-over users here; the signed report.

    Deleted: their region rows, blobs and data keys (logged, with the move, in each source
    region's audit log), their Directory entries and PublicCatalog rows. Their public videos'
    URLs answer with a permanent redirect to the recipient deployment."""
    importer = Verifier.from_vkey(importer_key)
    body = open_document(receipt, RECEIPT_FORMAT, importer)
    bundle_id = str(body.get("bundle_id"))
    with platform.global_store.session() as g:
        run = g.get(m.CarveOutRun, bundle_id)
    if run is None or run.kind != m.EXPORT or run.state not in (m.EXPORTED, m.DONE):
        raise NotFound(f"No hand-over {bundle_id} waits for a receipt here.", code="no_carveout")
    detail = json.loads(run.detail)
    if run.state == m.DONE and run.report:
        return run.report
    expected = (detail["header_sha256"], detail["manifest_root"], detail["users"])
    got = (body.get("bundle_header_sha256"), body.get("manifest_root"), body.get("users"))
    if got != expected:
        raise ReportInvalid(
            f"the receipt does not acknowledge this bundle as exported: bundle/root/users "
            f"{got} ≠ {expected}; nothing was deleted"
        )
    with platform.global_store.engine.connect() as g:
        journal = g.execute(
            select(
                JOURNAL.c.user_id, JOURNAL.c.from_region, JOURNAL.c.step, JOURNAL.c.manifest_root
            )
            .where(JOURNAL.c.run_id == bundle_id)
            .order_by(JOURNAL.c.from_region, JOURNAL.c.user_id)
        ).all()
    by_region: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for u, region, step, root in journal:
        by_region[region].append((u, step, root))
    to_region = importer.name[:128]
    for region, items in by_region.items():
        store = platform.regions[region]
        for batch in chunks(items, BATCH):
            _finish_batch(platform, settings, store, bundle_id, detail, to_region, batch)
    from reelm.carveout.report import do_report

    report = do_report(platform, settings, bundle_id)
    with platform.global_store.engine.begin() as g:
        g.execute(
            update(RUNS)
            .where(RUNS.c.id == bundle_id)
            .values(state=m.DONE, finished_at=utcnow(), report=report)
        )
    from reelm.federation.follows import do_relink_finished

    do_relink_finished(  # follows of the users who left become federated follows
        platform, users=[u for u, _r, _s, _m in journal], recipient_url=detail["recipient_url"]
    )
    return report


def _finish_batch(
    platform: Platform,
    settings: Settings,
    store: RegionStore,
    bundle_id: str,
    detail: dict[str, Any],
    to_region: str,
    items: list[tuple[str, str, str]],
) -> None:
    users = [u for u, step, _r in items if step != m.FINISHED]
    if not users:
        return
    roots = {u: r for u, _s, r in items}
    keys = store.keys.data_keys(users)
    # the log first (an entry a killed attempt appended is not appended twice), then deletion
    log = region_log(settings, store)
    start = parse_checkpoint(parse_note(detail["checkpoints_before"][store.name]).text).size
    logged = logged_carveout_entries(log, start, bundle_id)
    policy_hash = active_policy_hash(platform) or "0" * 64
    entries: list[Any] = []
    for u in users:
        subject = log.pseudonym(u)
        if ("out", subject) not in logged:
            entries.append(
                CarveOutMove(
                    subject=subject, run_id=bundle_id, direction="out", from_region=store.name,
                    to_region=to_region, manifest_root=roots[u], policy_hash=policy_hash,
                )
            )  # fmt: skip
        if u in keys and ("key", subject) not in logged:
            entries.append(
                KeyDestruction(
                    subject=subject, key_digest=hashlib.sha256(keys[u]).hexdigest(),
                    reason="carve_out",
                )
            )  # fmt: skip
    if entries:
        log.record_now(*entries)
    delete_rows(store, users)
    delete_blobs(store, users)
    store.keys.destroy_data_keys(users)
    from reelm.media.models import PublishedVideo

    url = detail["recipient_url"]
    with platform.global_store.engine.begin() as g:
        videos = (
            g.execute(select(PublishedVideo.id).where(PublishedVideo.creator_id.in_(users)))
            .scalars()
            .all()
        )
        moved: Table = m.MovedVideo.__table__  # type: ignore[assignment]
        for v in videos:
            g.execute(delete(moved).where(moved.c.id == v))
        if videos:
            g.execute(
                insert(moved), [{"id": v, "location": url, "moved_at": utcnow()} for v in videos]
            )
        g.execute(delete(DIRECTORY).where(DIRECTORY.c.user_id.in_(users)))  # catalog rows cascade
    with platform.global_store.engine.begin() as g:
        g.execute(
            update(JOURNAL)
            .where(JOURNAL.c.run_id == bundle_id, JOURNAL.c.user_id.in_(users))
            .values(step=m.FINISHED, updated_at=utcnow())
        )
