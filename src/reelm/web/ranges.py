"""Serving files with HTTP Range support (RFC 9110 §14): players seek in MP4s and songs with it."""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Iterator
from pathlib import Path

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from reelm.errors import ReelmError

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
BLOCK = 256 * 1024
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


def _read(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        while length > 0:
            block = f.read(min(BLOCK, length))
            if not block:
                return
            length -= len(block)
            yield block


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


def file_response(
    request: Request,
    path: Path,
    *,
    media_type: str | None = None,
    cache: str = "public, max-age=3600",
    etag: str | None = None,
) -> Response:
    """`path` whole or the byte range asked for, with its validator: a request whose
    `If-None-Match` names the file's ETag gets a bodiless 304."""
    st = os.stat(path)
    size = st.st_size
    etag = etag or f'"{size:x}-{st.st_mtime_ns:x}"'
    kind = media_type or TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    headers = {"Accept-Ranges": "bytes", "Cache-Control": cache, "ETag": etag}
    if etag_matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    try:
        wanted = parse_range(request.headers.get("range", ""), size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if wanted is None:
        return StreamingResponse(
            _read(path, 0, size), media_type=kind, headers={**headers, "Content-Length": str(size)}
        )
    start, end = wanted
    return StreamingResponse(
        _read(path, start, end - start + 1),
        status_code=206,
        media_type=kind,
        headers={
            **headers,
            "Content-Range": f"bytes {start}-{end}/{size}",
            "Content-Length": str(end - start + 1),
        },
    )
