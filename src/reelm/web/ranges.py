"""Serving files with HTTP Range support (RFC 9110 §14): players seek in MP4s and songs with it."""

from __future__ import annotations

import mimetypes
import re
from pathlib import PurePosixPath

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from reelm.errors import NotFound, ReelmError
from reelm.residency.blobs import BlobStat, BlobStore

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt; charset=utf-8",
}


class RangeNotSatisfiable(ReelmError):
    status = 416
    code = "range_not_satisfiable"


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a `Range` header asks for, or None to send the whole file.

    One range only (multipart/byteranges is not offered); a malformed header is ignored, as the
    RFC allows; an unsatisfiable one raises 416."""
    m = RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable(f"bytes */{size}")
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(f"Range {header!r} is outside the file's {size} bytes.")
    return start, end


IMMUTABLE = "public, max-age=31536000, immutable"
"""Cache-Control of a public video's versioned files: they never change under their URL."""
PRIVATE = "private, max-age=3600"
"""Cache-Control of a file only its viewer may see: never in a shared cache."""


def etag_matches(header: str, etag: str) -> bool:
    """`If-None-Match` (RFC 9110 §13.1.2): weak comparison, a list, or `*`."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in header.split(","))


def blob_response(
    request: Request,
    blobs: BlobStore,
    key: str,
    *,
    stat: BlobStat | None = None,
    media_type: str | None = None,
    cache: str = "public, max-age=3600",
    etag: str | None = None,
) -> Response:
    """A blob whole or the byte range asked for, streamed from its store (a folder or a bucket),
    with its validator: a request whose `If-None-Match` names the blob's ETag gets a bodiless
    304. `stat` saves a look-up when the caller has just made one."""
    stat = stat or blobs.stat(key)
    if stat is None:
        raise NotFound("No such file.")
    size = stat.size
    etag = etag or f'"{stat.tag}"'
    name = key.rsplit("/", 1)[-1]
    kind = media_type or TYPES.get(PurePosixPath(name).suffix) or mimetypes.guess_type(name)[0]
    headers = {"Accept-Ranges": "bytes", "Cache-Control": cache, "ETag": etag}
    if etag_matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    try:
        wanted = parse_range(request.headers.get("range", ""), size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if wanted is None:
        return StreamingResponse(
            blobs.read_range(key, 0, size - 1),
            media_type=kind,
            headers={**headers, "Content-Length": str(size)},
        )
    start, end = wanted
    return StreamingResponse(
        blobs.read_range(key, start, end),
        status_code=206,
        media_type=kind,
        headers={
            **headers,
            "Content-Range": f"bytes {start}-{end}/{size}",
            "Content-Length": str(end - start + 1),
        },
    )
