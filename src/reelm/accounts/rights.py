"""Users' data rights: download my data, account deletion, and where each kind of data lives.

Both the export and the purge walk `RegionModel.metadata` by `owner_id`, like the scanner and the
carve-out, so a new table is exported and deleted without new code here. Encrypted columns
(`<field>_ct`) are decrypted for the export with the field name as associated data; blobs whose key
ends in `.enc` are decrypted with the blob key as the name.

Purge order (each step idempotent, so a crash is finished by the next run): the Directory entry
turns `deleted` (no login, no writes) → every row and blob of the user in the home region goes →
the data key is destroyed → the log records completion and key destruction → the Directory entry
and the public profile go.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import shutil
import time
import zipfile
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update

from reelm.accounts.models import Account, DataExportJob, ExportState
from reelm.accounts.service import CurrentUser
from reelm.audit.entries import AccountDeletion, DataExport, KeyDestruction
from reelm.audit.log import region_log
from reelm.config import Settings
from reelm.crash import crash_point
from reelm.db import RegionModel, utcnow
from reelm.errors import Forbidden, NotFound, ReelmError
from reelm.residency.jurisdictions import country_name
from reelm.residency.keys import KeyDestroyed
from reelm.residency.models import DELETED, DirectoryEntry
from reelm.residency.store import Platform, RegionStore

GRACE = timedelta(days=30)
EXPORT_KEEP = timedelta(days=7)
Progress = Callable[[int], None]
logger = logging.getLogger(__name__)


# download my data

UNFINISHED = (ExportState.QUEUED, ExportState.BUILDING)
FAILED_UNEXPECTEDLY = "Something went wrong while building your data file. Try again."


def _export_read(job: DataExportJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state,
        "progress": job.progress,
        "size_bytes": job.size_bytes,
        "sha256": job.sha256,
        "error": job.error,
        "created_at": job.created_at.isoformat(),
    }


def do_request_export(
    platform: Platform, settings: Settings, user: CurrentUser
) -> tuple[str, bool]:
    """Record a new export, or find the one already under way (asking twice builds one
    archive); returns (export id, whether it is new and needs its job queued). A failed or ready
    export does not count: asking again after a failure is how a user retries.
    `accounts.tasks.request_export` queues the job after this commit."""
    store = platform.region(user.region)
    with store.transaction() as s:
        running = s.scalar(
            select(DataExportJob.id)
            .where(DataExportJob.owner_id == user.user_id, DataExportJob.state.in_(UNFINISHED))
            .order_by(DataExportJob.created_at.desc())
            .limit(1)
        )
        if running is not None:
            return running, False
        job = DataExportJob(
            owner_id=user.user_id, state=ExportState.QUEUED, expires_at=utcnow() + EXPORT_KEEP
        )
        s.add(job)
        s.flush()
        export_id = job.id
    log = region_log(settings, store)
    log.record_now(
        DataExport(subject=log.pseudonym(user.user_id), export_id=export_id, event="requested")
    )
    return export_id, True


def latest_export(platform: Platform, user: CurrentUser) -> dict[str, Any] | None:
    """The user's newest export (for the settings page to pick up where it was)."""
    with platform.region(user.region).session() as s:
        job = s.scalar(
            select(DataExportJob)
            .where(DataExportJob.owner_id == user.user_id)
            .order_by(DataExportJob.created_at.desc())
            .limit(1)
        )
        return None if job is None else _export_read(job)


def _jsonable(cipher: Any, column: str, value: Any) -> tuple[str, Any]:
    if column.endswith("_ct") and isinstance(value, bytes):
        field = column[: -len("_ct")]
        try:
            return field, cipher.decrypt(field, value)
        except Exception:
            return field, None
    if column == "password_hash":
        return column, "(argon2id hash; the password itself is never stored)"
    if isinstance(value, bytes):
        return column, base64.b64encode(value).decode()
    if isinstance(value, datetime | date):
        return column, value.isoformat()
    return column, value


def write_archive(
    store: RegionStore, user_id: str, target: Path, *, progress: Progress | None = None
) -> None:
    """Write a ZIP of everything `store` holds about `user_id` to `target`: one JSON file per
    table, and every blob decrypted (each read in the format it was written in: raw uploads are
    streams, small blobs sealed values). Blobs are streamed, so a large upload is never held in
    memory."""
    cipher = store.cipher(user_id)
    tables = RegionModel.metadata.sorted_tables
    blob_keys = [k for k in store.blobs.keys(f"{user_id}/") if "/exports/" not in k]
    steps = len(tables) + len(blob_keys)
    half = steps // 2
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if done == half:
            crash_point("export.half_way")
        if progress:
            progress(int(100 * done / steps))

    with (
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z,
        store.unchecked_connection(reason="data export: read one user's rows") as conn,
    ):
        index: dict[str, int] = {}
        for table in tables:
            rows = [
                dict(_jsonable(cipher, k, v) for k, v in row._mapping.items())
                for row in conn.execute(select(table).where(table.c.owner_id == user_id))
            ]
            index[table.name] = len(rows)
            z.writestr(f"data/{table.name}.json", json.dumps(rows, indent=2, ensure_ascii=False))
            step()
        for key in blob_keys:
            name = key.split("/", 1)[1]
            encrypted = key.endswith(".enc")
            if encrypted:
                name = name[: -len(".enc")]
            with store.blobs.open(key) as src, z.open(f"media/{name}", "w", force_zip64=True) as dst:
                if encrypted:
                    cipher.decrypt_blob_to(key, src, dst)
                else:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
            step()
        z.writestr(
            "README.txt",
            (
                "Everything reelm stores about you in region "
                f"{store.name!r}, as of {utcnow().isoformat()}.\n"
                "data/<table>.json: your records, decrypted; media/: your files, decrypted.\n"
                f"Records per table: {json.dumps(index)}\n"
            ),
        )


def do_build_export(
    platform: Platform,
    settings: Settings,
    *,
    region: str,
    export_id: str,
    final_attempt: bool = True,
) -> None:
    """Build one export's archive in its region (the job: ids in, commits its own steps).

    Idempotent: a ready export is left alone, and a rerun after a crash starts the archive again
    from nothing (it is written aside under a name of this attempt, then encrypted and put in
    place in one atomic blob write), so a killed attempt leaves no half archive behind. An
    attempt that fails records why; the last one marks the export `failed`, which the settings
    page shows, and the user asks again."""
    store = platform.region(region)
    with store.transaction() as s:
        job = s.get(DataExportJob, export_id)
        if job is None or job.state not in UNFINISHED:
            return
        job.state, job.progress, job.error = ExportState.BUILDING, 0, None
        user_id = job.owner_id

    def progress(percent: int) -> None:
        with store.transaction() as s:
            s.execute(
                update(DataExportJob)
                .where(DataExportJob.id == export_id)
                .values(progress=min(percent, 99))
            )

    folder = store.work_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    attempt = secrets.token_hex(6)
    plain = folder / f"{export_id}.{attempt}.zip"
    sealed = folder / f"{export_id}.{attempt}.zip.enc"
    key = f"{user_id}/exports/{export_id}.zip.enc"
    started = time.monotonic()
    try:
        for stale in folder.glob(f"{export_id}.*"):
            if stale not in (plain, sealed):
                stale.unlink(missing_ok=True)  # a killed attempt's files
        write_archive(store, user_id, plain, progress=progress)
        digest, size = _sha256_file(plain)
        store.cipher(user_id).encrypt_file(key, plain, sealed)
        store.blobs.put_file(key, sealed)
    except Exception as e:
        message = e.message if isinstance(e, ReelmError) else FAILED_UNEXPECTEDLY
        logger.exception("export %s (attempt failed, last=%s)", export_id, final_attempt)
        with store.transaction() as s:
            s.execute(
                update(DataExportJob)
                .where(DataExportJob.id == export_id)
                .values(
                    state=ExportState.FAILED if final_attempt else ExportState.BUILDING,
                    error=message if final_attempt else f"Retrying: {message}",
                )
            )
        raise
    finally:
        plain.unlink(missing_ok=True)
        sealed.unlink(missing_ok=True)
    with store.transaction() as s:
        s.execute(
            update(DataExportJob)
            .where(DataExportJob.id == export_id)
            .values(state=ExportState.READY, progress=100, blob_key=key, size_bytes=size, sha256=digest)
        )
    logger.info("export %s ready: %d bytes in %.2f s", export_id, size, time.monotonic() - started)
    audit = region_log(settings, store)
    audit.record_now(
        DataExport(
            subject=audit.pseudonym(user_id),
            export_id=export_id,
            event="ready",
            archive_sha256=digest,
        )
    )


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def unfinished_exports(platform: Platform, region: str) -> list[str]:
    """Exports left `queued` or `building` (by a dead worker, when none is running)."""
    with platform.region(region).session() as s:
        return list(
            s.scalars(select(DataExportJob.id).where(DataExportJob.state.in_(UNFINISHED)))
        )


def _link_signature(
    settings: Settings, region: str, user_id: str, export_id: str, expires: int
) -> str:
    msg = f"export|{region}|{user_id}|{export_id}|{expires}".encode()
    return hmac.new(settings.secret_key.encode(), msg, hashlib.sha256).hexdigest()


def export_status(
    platform: Platform, settings: Settings, user: CurrentUser, export_id: str
) -> dict[str, Any]:
    with platform.region(user.region).session() as s:
        job = s.get(DataExportJob, export_id)
        if job is None or job.owner_id != user.user_id:
            raise NotFound("No such export.", code="export_not_found")
        out = _export_read(job)
        if job.state == ExportState.READY:
            expires = int(
                (utcnow() + timedelta(seconds=settings.export_link_ttl_seconds)).timestamp()
            )
            sig = _link_signature(settings, user.region, user.user_id, job.id, expires)
            out["download_url"] = (
                f"/api/v1/exports/{user.region}/{user.user_id}/{job.id}?expires={expires}&sig={sig}"
            )
            out["link_expires_at"] = datetime.fromtimestamp(expires).astimezone().isoformat()
        return out


def access_export_download(
    platform: Platform,
    settings: Settings,
    *,
    region: str,
    user_id: str,
    export_id: str,
    expires: int,
    sig: str,
) -> Path:
    """The archive behind an expiring signed link (the link is the capability), decrypted into
    a file of the region's work folder that the caller sends and removes. Decrypted whole before
    a byte is sent, so a damaged archive is a clear error, not a cut-off download."""
    good = _link_signature(settings, region, user_id, export_id, expires)
    if not hmac.compare_digest(good, sig):
        raise Forbidden("This download link is not valid.", code="bad_link")
    if expires < utcnow().timestamp():
        raise Forbidden("This download link has expired; ask for a new one.", code="link_expired")
    store = platform.region(region)
    with store.session() as s:
        job = s.get(DataExportJob, export_id)
        if job is None or job.owner_id != user_id or job.blob_key is None:
            raise NotFound("No such export.", code="export_not_found")
        key = job.blob_key
    folder = store.work_dir / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{export_id}.{secrets.token_hex(6)}.zip"
    try:
        with store.blobs.open(key) as src, target.open("wb") as dst:
            store.cipher(user_id).decrypt_blob_to(key, src, dst)
        digest, _ = _sha256_file(target)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    audit = region_log(settings, store)
    audit.record_now(
        DataExport(
            subject=audit.pseudonym(user_id),
            export_id=export_id,
            event="downloaded",
            archive_sha256=digest,
        )
    )
    return target


# account deletion


def do_schedule_deletion(platform: Platform, settings: Settings, user: CurrentUser) -> datetime:
    store = platform.region(user.region)
    due = utcnow() + GRACE
    with store.transaction() as s:
        account = s.get(Account, user.user_id)
        if account is None:
            raise NotFound("No such account.")
        if account.deletion_due_at is not None:
            return account.deletion_due_at
        account.deletion_due_at = due
    log = region_log(settings, store)
    log.record_now(
        AccountDeletion(subject=log.pseudonym(user.user_id), event="scheduled", effective_at=due)
    )
    return due


def do_cancel_deletion(platform: Platform, settings: Settings, user: CurrentUser) -> None:
    store = platform.region(user.region)
    with store.transaction() as s:
        account = s.get(Account, user.user_id)
        if account is None or account.deletion_due_at is None:
            raise NotFound("No deletion is scheduled.", code="no_deletion")
        account.deletion_due_at = None
    log = region_log(settings, store)
    log.record_now(AccountDeletion(subject=log.pseudonym(user.user_id), event="cancelled"))


def do_purge_user(platform: Platform, settings: Settings, *, user_id: str) -> None:
    """Hard-delete one user now (the grace period is the caller's business)."""
    with platform.global_store.transaction() as g:
        entry = g.get(DirectoryEntry, user_id)
        if entry is None:
            return
        entry.state = DELETED
        region = entry.home_region
    store = platform.region(region)
    with store.unchecked_connection(reason="purge: delete one user's rows") as conn, conn.begin():
        for table in reversed(RegionModel.metadata.sorted_tables):
            conn.execute(delete(table).where(table.c.owner_id == user_id))
    for key in list(store.blobs.keys(f"{user_id}/")):
        store.blobs.delete(key)
    try:
        digest = hashlib.sha256(store.keys.data_key(user_id)).hexdigest()
    except KeyDestroyed:
        digest = None
    log = region_log(settings, store)
    subject = log.pseudonym(user_id)
    if digest is not None:
        store.keys.destroy_data_key(user_id)
        log.record_now(
            AccountDeletion(subject=subject, event="completed"),
            KeyDestruction(subject=subject, key_digest=digest, reason="account_deletion"),
        )
    with platform.global_store.transaction() as g:
        g.execute(delete(DirectoryEntry).where(DirectoryEntry.user_id == user_id))


def do_purge_due_deletions(
    platform: Platform, settings: Settings, *, now: datetime | None = None
) -> list[str]:
    """Purge every account whose grace period is over, and finish purges a crash interrupted."""
    now = now or utcnow()
    due: list[str] = []
    for store in platform.regions.values():
        with store.session() as s:
            due += list(s.scalars(select(Account.id).where(Account.deletion_due_at <= now)))
    with platform.global_store.session() as g:
        due += list(
            g.scalars(select(DirectoryEntry.user_id).where(DirectoryEntry.state == DELETED))
        )
    for user_id in dict.fromkeys(due):
        do_purge_user(platform, settings, user_id=user_id)
    return list(dict.fromkeys(due))


# transparency

CATEGORIES: list[tuple[str, str, str]] = [
    (
        "Account",
        "email, phone, birth date, password hash, settings",
        "to let you log in, keep you safe and meet age rules; email and birth date are encrypted with "
        "your own key",
    ),
    (
        "Sessions and devices",
        "IP address, browser or device",
        "to keep you logged in and let you see and revoke sessions; encrypted with your own key",
    ),
    (
        "Uploads and drafts",
        "raw video files, unpublished edits",
        "to make your videos; encrypted with your own key until you publish",
    ),
    (
        "Activity",
        "watch time, likes, follows, shares, searches, 'not interested'",
        "to rank your For You feed; the model learns only from your region's records",
    ),
    ("Comments", "the comments you write", "the source stays here; the text you publish is public"),
]


def transparency(platform: Platform, region: str) -> dict[str, Any]:
    """What is kept, where it lives (region, operator, country) and why."""
    pol = platform.policy
    r = pol.regions[region]
    op = pol.operators[r.operator]
    where = {
        "region": region,
        "operator": op.name,
        "operator_country": country_name(op.country),
        "location": country_name(r.location),
    }
    return {
        "region": where,
        "categories": [
            {"category": c, "includes": inc, "why": why, **where} for c, inc, why in CATEGORIES
        ]
        + [
            {
                "category": "Public profile and published videos",
                "includes": "handle, display name, bio, avatar, videos you publish, counts",
                "why": "you chose to publish them; they are public and may be cached anywhere",
                "region": "global catalog",
                "operator": "all operators",
                "operator_country": "-",
                "location": "replicated to every region",
            }
        ],
        "never_stored_in": sorted(country_name(c) for c in pol.never_store_in),
    }
