"""Create: uploads (tus 1.0 and multipart), the edit and publish step, processing, publishing.

Everything about a user's upload happens in the user's home region: the bytes arrive in the
region's work folder, are probed there, kept encrypted in the region's blob store, transcoded by
the region's workers, and the renditions are stored as the creator's blobs
(`<owner>/videos/<id>/…`). Only the PUBLIC video record leaves, through Egress, and only after
every file is in place: a video is never half-published.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from reelm.accounts.models import Account
from reelm.accounts.service import CurrentUser
from reelm.config import Settings
from reelm.db import utcnow
from reelm.effects.idempotency import Idempotency, remember, replay
from reelm.effects.service import action
from reelm.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    ReelmError,
    UploadNotFound,
    VideoNotFound,
)
from reelm.media import drafts
from reelm.media.captions import CAPTIONS_DIR, CAPTIONS_FILE, check_cues, parse_webvtt, to_webvtt
from reelm.media.models import PublishedVideo, Upload, UploadState, Video, VideoState
from reelm.media.probe import MediaLimits, probe_upload
from reelm.media.publish import creator_handle, do_publish, emit_publication, offer_original_sound
from reelm.media.schemas import (
    EditSpec,
    PublicVideoRead,
    UploadRead,
    VideoCreate,
    VideoRead,
    dumps,
)
from reelm.media.transcode import TranscodeFailed, transcode
from reelm.residency.blobs import BlobStat, BlobStore
from reelm.residency.store import Platform, RegionStore
from reelm.sounds.service import (
    annotate_sounds,
    check_song_licensed,
    get_song,
    song_file,
)
from reelm.text import parse_caption as parse_caption

log = logging.getLogger(__name__)


class UploadTooLarge(ReelmError):
    status = 413
    code = "too_large"


def limits(settings: Settings) -> MediaLimits:
    return MediaLimits(
        max_bytes=settings.max_upload_bytes, max_duration_s=settings.max_video_seconds
    )


# uploads


def _staging(store: RegionStore, upload_id: str) -> Path:
    path = store.work_dir / "uploads" / f"{upload_id}.part"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _upload_read(u: Upload) -> UploadRead:
    return UploadRead(
        id=u.id,
        state=u.state,
        filename=u.filename,
        size=u.declared_size,
        received=u.received,
        error={"code": u.error_code, "message": u.error_message or ""} if u.error_code else None,
        probe=json.loads(u.probe) if u.probe else None,
    )


def parse_tus_metadata(header: str) -> dict[str, str]:
    """`Upload-Metadata: filename d29ybGQ=,filetype dmlkZW8vbXA0` → {"filename": "world", …}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in header.split(","))):
        key, _, value = part.partition(" ")
        try:
            out[key] = base64.b64decode(value, validate=True).decode() if value else ""
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput(f"Upload-Metadata value of {key!r} is not base64.") from None
    return out


def do_create_upload(
    platform: Platform,
    settings: Settings,
    user: CurrentUser,
    *,
    size: int,
    filename: str,
    idempotency_key: str | None = None,
) -> UploadRead:
    """A new upload of `size` bytes. With an Idempotency-Key, a retried creation answers the
    upload the first one made (as it stands now) instead of making another."""
    request = Idempotency.of(idempotency_key, "upload", size, filename)
    if (reply := replay(platform, user.region, user.user_id, request)) is not None:
        return access_upload(platform, user, UploadRead.model_validate_json(reply).id)
    try:
        return _create_upload(
            platform, settings, user, size=size, filename=filename, request=request
        )
    except IntegrityError:  # the same key at the same moment: the other request made it
        if (reply := replay(platform, user.region, user.user_id, request)) is not None:
            return access_upload(platform, user, UploadRead.model_validate_json(reply).id)
        raise


def _create_upload(
    platform: Platform,
    settings: Settings,
    user: CurrentUser,
    *,
    size: int,
    filename: str,
    request: Idempotency | None,
) -> UploadRead:
    if size <= 0:
        raise InvalidInput("The file is empty.", code="empty_file")
    if size > settings.max_upload_bytes:
        raise UploadTooLarge(
            f"The file is {size / 2**20:.0f} MB; the most reelm accepts is "
            f"{settings.max_upload_bytes / 2**20:.0f} MB."
        )
    store = platform.region(user.region)
    with store.transaction() as s:
        upload = Upload(owner_id=user.user_id, filename=filename[:255], declared_size=size)
        s.add(upload)
        s.flush()
        result = _upload_read(upload)
        remember(s, user.user_id, request, result.model_dump_json())
        _staging(store, upload.id).touch()
        return result


def access_upload(platform: Platform, user: CurrentUser, upload_id: str) -> UploadRead:
    with platform.region(user.region).session() as s:
        upload = s.get(Upload, upload_id)
        if upload is None or upload.owner_id != user.user_id:
            raise UploadNotFound()
        return _upload_read(upload)


async def do_append_upload(
    platform: Platform,
    settings: Settings,
    user: CurrentUser,
    upload_id: str,
    *,
    offset: int,
    chunks: AsyncIterator[bytes],
) -> UploadRead:
    """Append one tus PATCH body at `offset`; completes the upload when the last byte arrives.

    A PATCH that dies half-way keeps what was written: the offset moves with every block, so
    the client resumes from there (tus core semantics)."""
    store = platform.region(user.region)
    with store.session() as s:
        upload = s.get(Upload, upload_id)
        if upload is None or upload.owner_id != user.user_id:
            raise UploadNotFound()
        if upload.state != UploadState.RECEIVING:
            raise Conflict("This upload is already complete.", code="upload_complete")
        if offset != upload.received:
            raise Conflict(
                f"Upload-Offset {offset} does not match the server's offset {upload.received}.",
                code="offset_mismatch",
            )
        declared = upload.declared_size
    path = _staging(store, upload_id)
    received = offset
    with path.open("r+b") as f:
        f.seek(offset)
        try:
            async for chunk in chunks:
                if received + len(chunk) > declared:
                    raise InvalidInput(
                        "More bytes than the declared Upload-Length.", code="too_many_bytes"
                    )
                f.write(chunk)
                received += len(chunk)
        finally:
            f.truncate(received)
            f.flush()
            with store.transaction() as s:
                s.execute(update(Upload).where(Upload.id == upload_id).values(received=received))
    if received == declared:
        return do_complete_upload(platform, settings, user, upload_id)
    return access_upload(platform, user, upload_id)


def do_complete_upload(
    platform: Platform, settings: Settings, user: CurrentUser, upload_id: str
) -> UploadRead:
    """Probe the received file; keep it encrypted, or reject it with the probe's clear error."""
    store = platform.region(user.region)
    path = _staging(store, upload_id)
    try:
        probe = probe_upload(path, limits=limits(settings))
    except InvalidInput as e:
        with store.transaction() as s:
            upload = s.get(Upload, upload_id)
            assert upload is not None
            upload.state, upload.error_code, upload.error_message = (
                UploadState.REJECTED,
                e.code,
                e.message,
            )
        path.unlink(missing_ok=True)
        raise
    key = f"{user.user_id}/uploads/{upload_id}.enc"
    sealed = path.with_suffix(".enc")
    store.cipher(user.user_id).encrypt_file(key, path, sealed)
    store.blobs.put_file(key, sealed)
    sealed.unlink()
    path.unlink(missing_ok=True)
    with store.transaction() as s:
        upload = s.get(Upload, upload_id)
        assert upload is not None
        upload.state, upload.blob_key, upload.completed_at = UploadState.READY, key, utcnow()
        upload.probe = dumps(dataclasses.asdict(probe))
        return _upload_read(upload)


def source_file(store: RegionStore, owner_id: str, upload_id: str) -> Path:
    """The decrypted upload in the region's work folder (cached; removed after processing)."""
    target = store.work_dir / "sources" / f"{upload_id}.src"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        key = f"{owner_id}/uploads/{upload_id}.enc"
        # concurrent previews of one upload each decrypt to their own file; the last rename wins
        tmp = target.with_name(f"{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            with store.blobs.open(key) as sealed, tmp.open("wb") as out:
                store.cipher(owner_id).decrypt_blob_to(key, sealed, out)
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)
            raise NotFound("The upload's file is gone.", code="upload_missing") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(target)
    return target


def render_upload_preview(
    platform: Platform,
    settings: Settings,
    user: CurrentUser,
    upload_id: str,
    *,
    filter_name: str,
    intensity: int,
    at_s: float,
) -> bytes:
    from reelm.media.filters import render_preview

    upload = access_upload(platform, user, upload_id)
    if upload.state != UploadState.READY:
        raise Conflict("The upload is not complete yet.", code="upload_incomplete")
    store = platform.region(user.region)
    return render_preview(
        source_file(store, user.user_id, upload_id),
        filter_name=filter_name,
        intensity=intensity,
        at_s=at_s,
        limits=limits(settings),
    )


# videos


def _video_read(v: Video) -> VideoRead:
    tags, mentions = parse_caption(v.caption)
    urls = None
    if v.state == VideoState.READY:
        urls = media_urls(v.id, v.published_at, captions=bool(v.captions_vtt))
    return VideoRead(
        id=v.id,
        state=v.state,
        progress=v.progress,
        failure=v.failure,
        caption=v.caption,
        hashtags=tags,
        mentions=mentions,
        visibility=v.visibility,
        allow_comments=v.allow_comments,
        allow_sound_reuse=v.allow_sound_reuse,
        has_captions=bool(v.captions_vtt),
        created_at=v.created_at,
        published_at=v.published_at,
        urls=urls,
    )


def media_version(video_id: str, published_at: datetime | str) -> str:
    """The version of a video's media in its URLs. A published video's files never change, so
    URLs that carry this may be cached for a year; it is derived from when the video was made
    ready, so every backend and every process computes the same one."""
    at = datetime.fromisoformat(published_at) if isinstance(published_at, str) else published_at
    at = (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC)
    return hashlib.sha256(f"{video_id}:{at:%Y%m%d%H%M%S%f}".encode()).hexdigest()[:16]


def media_urls(
    video_id: str, published_at: datetime | str | None = None, *, captions: bool = False
) -> dict[str, str]:
    """A video's HLS, MP4 and poster URLs (and its WebVTT captions, when it has some):
    versioned (immutable, cacheable for a year) when its publication time is known."""
    base = (
        f"/media/{video_id}"
        if published_at is None
        else f"/media/v/{video_id}/{media_version(video_id, published_at)}"
    )
    urls = {
        "hls": f"{base}/master.m3u8",
        "mp4": f"{base}/video.mp4",
        "poster": f"{base}/poster.jpg",
    }
    if captions:
        urls["captions"] = f"{base}/{CAPTIONS_DIR}/{CAPTIONS_FILE}"
    return urls


def check_create_video(
    platform: Platform, settings: Settings, user: CurrentUser, body: VideoCreate
) -> VideoRead:
    """Validate the edit against the probed upload and record the video, `queued`. Its
    processing job is queued after this commit by the caller (`media.tasks.create_video`)."""
    spec = body.spec()
    store = platform.region(user.region)
    with store.transaction() as s:
        upload = s.get(Upload, body.upload_id)
        if upload is None or upload.owner_id != user.user_id:
            raise UploadNotFound()
        if upload.state != UploadState.READY or upload.probe is None:
            raise Conflict("The upload is not complete yet.", code="upload_incomplete")
        from reelm.media.probe import ProbeResult

        spec.check_against(ProbeResult(**json.loads(upload.probe)))
        captions = check_captions(body.captions_vtt, duration_s=spec.output_duration_s)
        sound_id = spec.soundtrack.song_id if spec.soundtrack.kind == "song" else None
        if sound_id is not None:
            account = s.get(Account, user.user_id)
            assert account is not None
            _check_song(platform, sound_id, jurisdiction=account.jurisdiction)
        video = Video(
            owner_id=user.user_id,
            upload_id=upload.id,
            edit=spec.model_dump_json(),
            caption=body.caption,
            captions_vtt=captions,
            visibility=body.visibility,
            allow_comments=body.allow_comments,
            allow_sound_reuse=body.allow_sound_reuse,
            sound_id=sound_id,
        )
        s.add(video)
        draft_key = drafts.take_draft(s, user, body.draft_id, upload_id=upload.id)
        s.flush()
        result = _video_read(video)
    drafts.forget_draft_blobs(store, draft_key)
    return result


def check_captions(webvtt: str, *, duration_s: float) -> str:
    """Captions as they are kept: the WebVTT checked and fitted to the edited video, rewritten
    as plain-text cues; "" for none."""
    if not webvtt.strip():
        return ""
    cues = check_cues(parse_webvtt(webvtt), duration_s=duration_s)
    return to_webvtt(cues) if cues else ""


def _check_song(platform: Platform, song_id: str, *, jurisdiction: str) -> None:
    """The song exists and is licensed where the creator is (their jurisdiction is read in their
    own region by the caller)."""
    check_song_licensed(get_song(platform, song_id), jurisdiction)


def access_video(platform: Platform, user: CurrentUser, video_id: str) -> VideoRead:
    with platform.region(user.region).session() as s:
        video = s.get(Video, video_id)
        if video is None or video.owner_id != user.user_id:
            raise VideoNotFound()
        return _video_read(video)


def do_process_video(platform: Platform, settings: Settings, *, region: str, video_id: str) -> None:
    """The processing job: transcode, store renditions, mark ready, publish. Idempotent: a rerun
    after a crash at any point finishes the work and never publishes a partial video."""
    store = platform.region(region)
    with store.transaction() as s:
        video = s.get(Video, video_id)
        if video is None:
            log.warning("video %s: gone before processing", video_id)
            return
        if video.state == VideoState.FAILED:
            return
        owner, upload_id, ready = video.owner_id, video.upload_id, video.state == VideoState.READY
        if not ready:
            video.state, video.attempts = VideoState.PROCESSING, video.attempts + 1
        spec = EditSpec.model_validate_json(video.edit)
        sound_id, captions = video.sound_id, video.captions_vtt
    if not ready:
        try:
            _do_transcode_and_store(
                platform,
                settings,
                store,
                owner=owner,
                video_id=video_id,
                upload_id=upload_id,
                spec=spec,
                sound_id=sound_id,
                captions=captions,
            )
        except (InvalidInput, TranscodeFailed) as e:
            with store.transaction() as s:
                video = s.get(Video, video_id)
                if video is not None:
                    video.state, video.failure = VideoState.FAILED, e.message
            log.info("video %s failed: %s", video_id, e.message)
            return
    else:
        do_publish(platform, store, video_id)  # a rerun: the publication may not have applied
    shutil.rmtree(store.work_dir / "jobs" / video_id, ignore_errors=True)
    (store.work_dir / "sources" / f"{upload_id}.src").unlink(missing_ok=True)


def _do_transcode_and_store(
    platform: Platform,
    settings: Settings,
    store: RegionStore,
    *,
    owner: str,
    video_id: str,
    upload_id: str,
    spec: EditSpec,
    sound_id: str | None,
    captions: str,
) -> None:
    started = time.monotonic()
    source = source_file(store, owner, upload_id)
    out = store.work_dir / "jobs" / video_id
    last = [0.0]

    def progress(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5 and fraction < 1:
            return
        last[0] = now
        with store.transaction() as s:
            s.execute(
                update(Video)
                .where(Video.id == video_id)
                .values(progress=min(99, int(fraction * 100)))
            )

    with song_file(store, sound_id) if sound_id else nullcontext(None) as song:
        result = transcode(
            source,
            spec,
            out,
            song=song,
            captions_vtt=captions,
            progress=progress,
            limits=limits(settings),
        )
    published = out / "published"
    for path in sorted(published.rglob("*")):
        if path.is_file():
            store.blobs.put_file(
                f"{owner}/videos/{video_id}/{path.relative_to(published).as_posix()}", path
            )
    top = result.renditions[0]
    handle = creator_handle(platform, owner)
    with action(platform, store.name, owner) as (s, outbox):
        video = s.get(Video, video_id)
        assert video is not None
        video.state, video.progress, video.failure = VideoState.READY, 100, None
        video.duration_s, video.width, video.height = result.duration_s, top.width, top.height
        video.published_at = utcnow()
        emit_publication(outbox, video, handle=handle, region=store.name)
    offer_original_sound(platform, store, video, handle)
    log.info("video %s processed in %.1fs", video_id, time.monotonic() - started)


def unfinished_videos(platform: Platform, region: str) -> list[str]:
    """Videos a dead worker left `queued` or `processing` (processing them again is safe)."""
    unfinished = (VideoState.QUEUED, VideoState.PROCESSING)
    with platform.region(region).session() as s:
        return list(s.scalars(select(Video.id).where(Video.state.in_(unfinished))))


# public reads


def get_public_video(
    platform: Platform, video_id: str, viewer: CurrentUser | None = None
) -> PublicVideoRead:
    """A public video, with its sound as this viewer may hear it (muted where the song is not
    licensed for them; see sounds.service.annotate_sounds)."""
    with platform.global_store.session() as g:
        row = g.get(PublishedVideo, video_id)
        if row is None or row.visibility != "public":
            raise VideoNotFound()
        out = PublicVideoRead.model_validate(row)
        out.urls = media_urls(video_id, row.published_at, captions=row.has_captions)
    annotate_sounds(platform, viewer, [out])
    return out


@dataclass(frozen=True)
class MediaFile:
    """A file of a video that the viewer may fetch, and how it may be cached."""

    blobs: BlobStore
    key: str
    stat: BlobStat
    public: bool  # anyone may see it: shared caches (a CDN) may keep it
    version: str  # the version of the video's media (see media_version)


def media_file(
    platform: Platform,
    user: CurrentUser | None,
    video_id: str,
    name: str,
    *,
    version: str | None = None,
) -> MediaFile:
    """A video's file, if `user` may see it. Public videos: anyone. Followers-only and private:
    the creator. Files come from the creator's region's blob store. With `version`, only the
    files of that version of the video's media: a video withdrawn or deleted (or republished
    with new files) no longer answers its old URLs."""
    if ".." in name.split("/") or not re.fullmatch(r"[A-Za-z0-9_./-]{1,200}", name):
        raise NotFound("No such file.")
    with platform.global_store.session() as g:
        row = g.get(PublishedVideo, video_id)
        found = (row.creator_id, row.region, row.visibility, row.published_at) if row else None
    if found is None:
        if user is None:
            raise VideoNotFound()
        with platform.region(user.region).session() as s:
            video = s.get(Video, video_id)
            if video is None or video.owner_id != user.user_id or video.state != VideoState.READY:
                raise VideoNotFound()
            assert video.published_at is not None
            found = (user.user_id, user.region, "private", video.published_at)
    owner, region, visibility, published_at = found
    if visibility != "public" and (user is None or user.user_id != owner):
        raise VideoNotFound()
    current = media_version(video_id, published_at)
    if version is not None and version != current:
        raise NotFound("No such file.")
    blobs = platform.region(region).blobs
    key = f"{owner}/videos/{video_id}/{name}"
    stat = blobs.stat(key)
    if stat is None:
        raise NotFound("No such file.")
    return MediaFile(blobs, key, stat, visibility == "public", current)


def describe_upload_limits(settings: Settings) -> dict[str, Any]:
    return {
        "max_bytes": settings.max_upload_bytes,
        "max_seconds": settings.max_video_seconds,
        "containers": ["mp4", "mov", "webm", "mkv"],
        "max_side_px": 4096,
    }
