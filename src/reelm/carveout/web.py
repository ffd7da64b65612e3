"""Public video URLs of users handed over to another operator keep working: they answer with a
permanent redirect (308) to the same path on the deployment that now serves them."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from reelm.carveout.models import MovedVideo
from reelm.residency.store import Platform

VIDEO_PATH = re.compile(r"^/(?:media/v|media|api/v1/videos|v)/([0-9a-f]{32})(?:/|$)")
"""The public URLs of a video: its files, its JSON, its page."""


def moved_location(platform: Platform, video_id: str) -> str | None:
    with platform.global_store.session() as g:
        row = g.get(MovedVideo, video_id)
        return row.location if row is not None else None


def install_redirects(app: FastAPI) -> None:
    """Answer a 404 for a handed-over video with a 308 to its new home."""

    @app.middleware("http")
    async def moved_videos(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if response.status_code != 404 or request.method not in ("GET", "HEAD"):
            return response
        match = VIDEO_PATH.match(request.url.path)
        if match is None:
            return response
        platform: Platform = request.app.state.platform
        base = await run_in_threadpool(moved_location, platform, match.group(1))
        if base is None:
            return response
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{base}{request.url.path}{query}", status_code=308)
