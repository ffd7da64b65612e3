"""Drafts: an unfinished edit (its clip, look, song, trim, texts, captions, cover and settings),
kept in its creator's home region and shown only to them, to publish later or throw away.

What the draft says is personal data that nobody has published: it is kept like a raw upload,
sealed with the creator's data key, as the blob `<owner>/drafts/<id>.enc` (AES-256-GCM bound to
that key), so destroying the key shreds it and a carve-out or an export moves or reads it with
the user's other blobs. The `drafts` row holds only ids and times. The edit need not be valid
yet; it is checked in full when the draft is published.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from reelm.accounts.service import CurrentUser
from reelm.db import utcnow
from reelm.errors import Conflict, InvalidInput, NotFound, UploadNotFound
from reelm.media.models import Draft, Upload, UploadState, Video
from reelm.media.schemas import VideoCreate
from reelm.residency.store import Platform, RegionStore

log = logging.getLogger(__name__)

MAX_DRAFTS = 50
MAX_DRAFT_BYTES = 256 * 1024


class DraftNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such draft.", code="draft_not_found")


class DraftRead(BaseModel):
    id: str
    created_at: datetime
    updated_at: datetime
    content: VideoCreate
    duration_s: float  # of the clip
    preview_url: str  # a frame of the clip (owner only)


def _own_draft(s: Session, user: CurrentUser, draft_id: str) -> Draft:
    """The user's draft `draft_id`; another user's draft is as missing as one that never was."""
    draft = s.get(Draft, draft_id)
    if draft is None or draft.owner_id != user.user_id:
        raise DraftNotFound()
    return draft


def _blob_key(owner_id: str, draft_id: str) -> str:
    return f"{owner_id}/drafts/{draft_id}.enc"


def _seal(store: RegionStore, owner_id: str, key: str, content: VideoCreate) -> None:
    data = content.model_dump_json(exclude={"draft_id"}).encode()
    if len(data) > MAX_DRAFT_BYTES:
        raise InvalidInput(
            f"This draft is {len(data) // 1024} KB; a draft may be at most "
            f"{MAX_DRAFT_BYTES // 1024} KB.",
            code="draft_too_large",
        )
    store.blobs.put_bytes(key, store.cipher(owner_id).encrypt_bytes(key, data))


def _open(store: RegionStore, owner_id: str, key: str) -> VideoCreate:
    plain = store.cipher(owner_id).decrypt_bytes(key, store.blobs.read_bytes(key))
    return VideoCreate.model_validate_json(plain)


def _read(store: RegionStore, draft: Draft, upload: Upload) -> DraftRead:
    probe = json.loads(upload.probe or "{}")
    duration = float(probe.get("duration_s", 0.0))
    content = _open(store, draft.owner_id, draft.blob_key)
    edit = content.edit
    at = edit.get("cover_time_s") if isinstance(edit.get("cover_time_s"), int | float) else None
    at = float(at if at is not None else min(duration * 0.3, max(0.0, duration - 0.1)))
    return DraftRead(
        id=draft.id,
        created_at=draft.created_at,
        updated_at=draft.updated_at,
        content=content,
        duration_s=duration,
        preview_url=f"/api/v1/uploads/{upload.id}/preview?filter=none&intensity=0&at={at:.1f}",
    )


def check_save_draft(
    platform: Platform, user: CurrentUser, body: VideoCreate, *, draft_id: str | None = None
) -> DraftRead:
    """Keep an edit as a draft: a new one, or `draft_id` updated. The clip must be the user's
    and complete; the rest is kept as it is."""
    store = platform.region(user.region)
    with store.transaction() as s:
        upload = s.get(Upload, body.upload_id)
        if upload is None or upload.owner_id != user.user_id:
            raise UploadNotFound()
        if upload.state != UploadState.READY:
            raise Conflict("The upload is not complete yet.", code="upload_incomplete")
        if draft_id is None:
            count = len(s.scalars(select(Draft.id).where(Draft.owner_id == user.user_id)).all())
            if count >= MAX_DRAFTS:
                raise Conflict(
                    f"You have {MAX_DRAFTS} drafts, the most reelm keeps. Post or delete one "
                    "first.",
                    code="too_many_drafts",
                )
            draft = Draft(owner_id=user.user_id, upload_id=upload.id, blob_key="")
            s.add(draft)
            s.flush()
            draft.blob_key = _blob_key(user.user_id, draft.id)
        else:
            draft = _own_draft(s, user, draft_id)
            draft.upload_id, draft.updated_at = upload.id, utcnow()
        s.flush()
        # The sealed content is written before the row commits: a failure here leaves no
        # draft that points at nothing (a blob without its row is overwritten or purged).
        _seal(store, user.user_id, draft.blob_key, body)
        return _read(store, draft, upload)


def access_draft(platform: Platform, user: CurrentUser, draft_id: str) -> DraftRead:
    store = platform.region(user.region)
    with store.session() as s:
        draft = _own_draft(s, user, draft_id)
        upload = s.get(Upload, draft.upload_id)
        assert upload is not None
        return _read(store, draft, upload)


def list_drafts(platform: Platform, user: CurrentUser) -> list[DraftRead]:
    """The user's own drafts, the latest change first."""
    store = platform.region(user.region)
    with store.session() as s:
        rows = s.execute(
            select(Draft, Upload)
            .join(Upload, Upload.id == Draft.upload_id)
            .where(Draft.owner_id == user.user_id)
            .order_by(Draft.updated_at.desc(), Draft.id)
        ).all()
        return [_read(store, draft, upload) for draft, upload in rows]


def do_delete_draft(platform: Platform, user: CurrentUser, draft_id: str) -> None:
    """Throw a draft away: its sealed content, and its clip unless a video or another draft
    uses it."""
    store = platform.region(user.region)
    with store.transaction() as s:
        draft = _own_draft(s, user, draft_id)
        upload_id, key = draft.upload_id, draft.blob_key
        s.delete(draft)
        s.flush()
        used = s.scalar(select(Video.id).where(Video.upload_id == upload_id).limit(1)) or s.scalar(
            select(Draft.id).where(Draft.upload_id == upload_id).limit(1)
        )
        upload = None if used else s.get(Upload, upload_id)
        upload_key = upload.blob_key if upload is not None else None
        if upload is not None:
            s.delete(upload)
    forget_draft_blobs(store, key, upload_key)


def take_draft(
    s: Session, user: CurrentUser, draft_id: str | None, *, upload_id: str
) -> str | None:
    """The draft a video is published from, deleted in the video's transaction; the key of its
    sealed content, to forget after the commit (`forget_draft_blobs`)."""
    if draft_id is None:
        return None
    draft = _own_draft(s, user, draft_id)
    if draft.upload_id != upload_id:
        raise InvalidInput("This draft is of another clip.", code="draft_mismatch")
    key = draft.blob_key
    s.delete(draft)
    return key


def forget_draft_blobs(store: RegionStore, *keys: str | None) -> None:
    """Delete blobs whose rows are gone (after the commit; a failure only leaves an orphan
    that the user's purge or the scanner finds)."""
    for key in keys:
        if key is None:
            continue
        try:
            store.blobs.delete(key)
        except OSError:
            log.exception("draft blob %s could not be deleted", key)
