"""The FastAPI app factory and the one error handler that shapes every error body."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelm import __version__
from reelm.accounts.throttle import open_address_throttle
from reelm.config import Settings
from reelm.errors import FieldErrors, InvalidInput, RateLimited, ReelmError, TryAgainLater
from reelm.media.overlays import FONT_DIR
from reelm.residency.service import open_platform
from reelm.residency.store import Platform
from reelm.web.routers import (
    accounts,
    audit,
    federation,
    feed,
    media,
    moderation,
    pages,
    social,
    sounds,
    staff,
)
from reelm.web.security import SecurityMiddleware
from reelm.web.templating import make_templates

HERE = Path(__file__).parent


def error_body(
    code: str, message: str, fields: dict[str, ReelmError] | None = None
) -> dict[str, dict[str, Any]]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = {k: {"code": e.code, "message": e.message} for k, e in fields.items()}
    return {"error": body}


def app_from_environment() -> FastAPI:
    """The app of one of `reelm serve --workers N`'s web processes: its settings from the
    environment (the supervisor exported the data folder), its own Platform."""
    return create_app(Settings())


def create_app(settings: Settings | None = None, *, platform: Platform | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="reelm", version=__version__, docs_url="/api/docs", openapi_url="/api/openapi.json"
    )
    app.state.settings = settings
    app.state.platform = platform if platform is not None else open_platform(settings)
    app.state.login_throttle = open_address_throttle(settings)
    app.state.templates = make_templates()
    app.add_middleware(SecurityMiddleware, settings=settings)

    @app.exception_handler(ReelmError)
    async def reelm_error(_request: Request, exc: ReelmError) -> JSONResponse:
        retry = exc.retry_after if isinstance(exc, RateLimited | TryAgainLater) else None
        headers = dict(exc.headers or {})
        if retry is not None:
            headers["Retry-After"] = str(retry)
        fields = exc.fields if isinstance(exc, FieldErrors) else None
        return JSONResponse(
            error_body(exc.code, exc.message, fields), status_code=exc.status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        fields: dict[str, ReelmError] = {}
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
            if loc:
                fields.setdefault(loc, InvalidInput(f"{loc}: {err.get('msg')}"))
        return JSONResponse(
            error_body("invalid_input", "; ".join(parts), fields), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str | int]:
        # which web process answered: `reelm serve --workers N` runs several on one port
        return {"status": "ok", "process": os.getpid()}

    @app.get("/api/v1/ping", tags=["meta"])
    def ping() -> dict[str, str]:
        """A bare endpoint: the ceiling that benchmarks compare against."""
        return {"pong": "reelm"}

    from reelm.carveout.web import install_redirects

    install_redirects(app)  # public videos handed over to another operator: 308 to their new home
    app.include_router(accounts.router)
    app.include_router(staff.router)
    app.include_router(media.router)
    app.include_router(social.router)
    app.include_router(moderation.router)
    app.include_router(feed.router)
    app.include_router(pages.router)
    app.include_router(audit.router)
    app.include_router(sounds.router)
    app.include_router(federation.router)
    from reelm.federation.service import enable

    enable(app.state.platform, settings)  # when REELM_FEDERATION_BASE_URL is set
    # The text overlays' fonts, for the Create page's preview: the very files the transcode draws
    # with (before /static, which would otherwise take the path).
    app.mount("/static/fonts", StaticFiles(directory=FONT_DIR), name="fonts")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app
