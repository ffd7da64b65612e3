"""/api/v1 Create: tus 1.0 resumable uploads, multipart uploads, previews, videos; /media files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, UploadFile, status
from pydantic import BaseModel, Field

from reelm.errors import InvalidInput, ReelmError
from reelm.media import drafts, service, tasks
from reelm.media.captions import MAX_WEBVTT_BYTES, Cue, parse_webvtt
from reelm.media.drafts import DraftRead
from reelm.media.filters import FILTERS
from reelm.media.schemas import PublicVideoRead, UploadRead, VideoCreate, VideoRead
from reelm.web.deps import (
    CurrentUserDep,
    IdempotencyKeyDep,
    OptionalUserDep,
    PlatformDep,
    SettingsDep,
)
from reelm.web.ranges import IMMUTABLE, PRIVATE, blob_response

router = APIRouter(tags=["create"])
TUS_VERSION = "1.0.0"


def tus_headers(settings: SettingsDep, **extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **extra}


class UnsupportedTusVersion(ReelmError):
    status = 412
    code = "tus_version"


def _check_tus(version: str | None) -> None:
    if version is not None and version != TUS_VERSION:
        raise UnsupportedTusVersion(f"This server speaks tus {TUS_VERSION}.")


@router.options("/api/v1/uploads", include_in_schema=False)
def tus_options(settings: SettingsDep) -> Response:
    return Response(
        status_code=204,
        headers={
            "Tus-Resumable": TUS_VERSION,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": "creation",
            "Tus-Max-Size": str(settings.max_upload_bytes),
        },
    )


@router.post("/api/v1/uploads", status_code=status.HTTP_201_CREATED)
def tus_create(
    user: CurrentUserDep,
    platform: PlatformDep,
    settings: SettingsDep,
    upload_length: Annotated[int, Header()],
    upload_metadata: Annotated[str, Header()] = "",
    tus_resumable: Annotated[str | None, Header()] = None,
    idempotency_key: IdempotencyKeyDep = None,
) -> Response:
    """tus creation: declare the size; PATCH the bytes to the returned Location."""
    _check_tus(tus_resumable)
    meta = service.parse_tus_metadata(upload_metadata)
    upload = service.do_create_upload(
        platform,
        settings,
        user,
        size=upload_length,
        filename=meta.get("filename", ""),
        idempotency_key=idempotency_key,
    )
    return Response(
        status_code=201,
        headers=tus_headers(
            settings,
            Location=f"/api/v1/uploads/{upload.id}",
            **{"Upload-Offset": str(upload.received)},
        ),
    )


@router.head("/api/v1/uploads/{upload_id}", include_in_schema=False)
def tus_head(
    upload_id: str, user: CurrentUserDep, platform: PlatformDep, settings: SettingsDep
) -> Response:
    upload = service.access_upload(platform, user, upload_id)
    return Response(
        status_code=200,
        headers=tus_headers(
            settings, **{"Upload-Offset": str(upload.received), "Upload-Length": str(upload.size)}
        ),
    )


@router.patch("/api/v1/uploads/{upload_id}", include_in_schema=False)
async def tus_patch(
    upload_id: str,
    request: Request,
    user: CurrentUserDep,
    platform: PlatformDep,
    settings: SettingsDep,
    upload_offset: Annotated[int, Header()],
    content_type: Annotated[str, Header()] = "",
    tus_resumable: Annotated[str | None, Header()] = None,
) -> Response:
    _check_tus(tus_resumable)
    if content_type != "application/offset+octet-stream":
        raise ReelmError(
            "PATCH needs Content-Type: application/offset+octet-stream.",
            code="unsupported_media_type",
            status=415,
        )
    upload = await service.do_append_upload(
        platform, settings, user, upload_id, offset=upload_offset, chunks=request.stream()
    )
    return Response(
        status_code=204, headers=tus_headers(settings, **{"Upload-Offset": str(upload.received)})
    )


@router.post("/api/v1/uploads/file", status_code=status.HTTP_201_CREATED)
async def upload_file(
    file: UploadFile, user: CurrentUserDep, platform: PlatformDep, settings: SettingsDep
) -> UploadRead:
    """A plain multipart upload, for small files."""
    size = file.size if file.size is not None else 0
    upload = service.do_create_upload(
        platform, settings, user, size=size, filename=file.filename or ""
    )

    async def chunks() -> AsyncIterator[bytes]:
        while block := await file.read(1024 * 1024):
            yield block

    return await service.do_append_upload(
        platform, settings, user, upload.id, offset=0, chunks=chunks()
    )


@router.get("/api/v1/uploads/{upload_id}")
def upload_status(upload_id: str, user: CurrentUserDep, platform: PlatformDep) -> UploadRead:
    return service.access_upload(platform, user, upload_id)


@router.get("/api/v1/uploads/{upload_id}/preview", responses={200: {"content": {"image/jpeg": {}}}})
def upload_preview(
    upload_id: str,
    user: CurrentUserDep,
    platform: PlatformDep,
    settings: SettingsDep,
    filter: Annotated[str, Query(max_length=40)] = "none",
    intensity: Annotated[int, Query(ge=0, le=100)] = 70,
    at: Annotated[float, Query(ge=0)] = 0.0,
) -> Response:
    """One JPEG frame of your upload with a filter applied."""
    if filter != "none" and filter not in FILTERS:
        raise InvalidInput(f"Unknown filter {filter!r}.", code="unknown_filter")
    jpeg = service.render_upload_preview(
        platform,
        settings,
        user,
        upload_id,
        filter_name=filter if filter != "none" else next(iter(FILTERS)),
        intensity=intensity if filter != "none" else 0,
        at_s=at,
    )
    return Response(
        jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"}
    )


class CaptionsCheck(BaseModel):
    webvtt: str = Field(max_length=MAX_WEBVTT_BYTES)


@router.post("/api/v1/captions/check")
def check_captions(body: CaptionsCheck, user: CurrentUserDep) -> dict[str, list[Cue]]:
    """Read a WebVTT file's captions (the Create page shows them for editing), or say which
    line is not valid WebVTT (422 `invalid_webvtt`)."""
    return {"cues": parse_webvtt(body.webvtt)}


@router.get("/api/v1/filters")
def list_filters() -> list[dict[str, str]]:
    """The filter looks, for the filter strip."""
    return [
        {"name": f.name, "label": f.label, "description": f.description} for f in FILTERS.values()
    ]


@router.get("/api/v1/upload-limits")
def upload_limits(settings: SettingsDep) -> dict[str, Any]:
    return service.describe_upload_limits(settings)


@router.post("/api/v1/videos", status_code=status.HTTP_202_ACCEPTED)
def create_video(
    body: VideoCreate, user: CurrentUserDep, platform: PlatformDep, settings: SettingsDep
) -> VideoRead:
    """Publish an upload with an edit: queued for processing; poll /api/v1/me/videos/{id}."""
    return tasks.create_video(platform, settings, user, body)


@router.post("/api/v1/drafts", status_code=status.HTTP_201_CREATED)
def save_draft(body: VideoCreate, user: CurrentUserDep, platform: PlatformDep) -> DraftRead:
    """Keep an unfinished edit (sealed with your key, in your region); publish it later with
    `POST /api/v1/videos` and its `draft_id`."""
    return drafts.check_save_draft(platform, user, body)


@router.put("/api/v1/drafts/{draft_id}")
def update_draft(
    draft_id: str, body: VideoCreate, user: CurrentUserDep, platform: PlatformDep
) -> DraftRead:
    return drafts.check_save_draft(platform, user, body, draft_id=draft_id)


@router.get("/api/v1/me/drafts")
def my_drafts(user: CurrentUserDep, platform: PlatformDep) -> list[DraftRead]:
    """Your drafts (only you see them), the latest change first."""
    return drafts.list_drafts(platform, user)


@router.get("/api/v1/drafts/{draft_id}")
def get_draft(draft_id: str, user: CurrentUserDep, platform: PlatformDep) -> DraftRead:
    return drafts.access_draft(platform, user, draft_id)


@router.delete("/api/v1/drafts/{draft_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_draft(draft_id: str, user: CurrentUserDep, platform: PlatformDep) -> Response:
    drafts.do_delete_draft(platform, user, draft_id)
    return Response(status_code=204)


@router.get("/api/v1/me/videos/{video_id}")
def my_video(video_id: str, user: CurrentUserDep, platform: PlatformDep) -> VideoRead:
    """Your video's processing state (queued, processing with percent, ready, failed)."""
    return service.access_video(platform, user, video_id)


@router.get("/api/v1/videos/{video_id}")
def public_video(video_id: str, platform: PlatformDep, user: OptionalUserDep) -> PublicVideoRead:
    """A public video; `sound.licensed_here` false and `muted_notice` set: play it muted."""
    return service.get_public_video(platform, video_id, user)


@router.get("/media/v/{video_id}/{version}/{name:path}", include_in_schema=False)
def versioned_media(
    video_id: str,
    version: str,
    name: str,
    request: Request,
    platform: PlatformDep,
    user: OptionalUserDep,
) -> Response:
    """A video's files under its versioned URL: a public video's are immutable (a CDN keeps
    them a year); a withdrawn or deleted video's, or another version's, are 404."""
    found = service.media_file(platform, user, video_id, name, version=version)
    return blob_response(
        request,
        found.blobs,
        found.key,
        stat=found.stat,
        cache=IMMUTABLE if found.public else PRIVATE,
        etag=f'"{found.version}-{found.stat.size:x}"',
    )


@router.get("/media/{video_id}/{name:path}", include_in_schema=False)
def media(
    video_id: str, name: str, request: Request, platform: PlatformDep, user: OptionalUserDep
) -> Response:
    """A published video's files (HLS, MP4, poster) with HTTP Range support, under the URL that
    names no version (links made before versions; cached an hour only)."""
    found = service.media_file(platform, user, video_id, name)
    cache = "public, max-age=3600" if found.public else PRIVATE
    return blob_response(request, found.blobs, found.key, stat=found.stat, cache=cache)
