"""/api/v1 accounts: sign-up, login, logout, sessions, profile."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from reelm.accounts import rights, service, tasks
from reelm.accounts.schemas import (
    AccountRead,
    Login,
    ProfileUpdate,
    PublicProfileRead,
    SessionRead,
    SignedIn,
    SignUp,
)
from reelm.errors import FieldErrors
from reelm.residency.jurisdictions import all_jurisdictions
from reelm.web.deps import (
    PASS_COOKIE,
    SESSION_COOKIE,
    ClientAddress,
    CurrentUserDep,
    PlatformDep,
    SettingsDep,
    ThrottleDep,
)

router = APIRouter(prefix="/api/v1", tags=["accounts"])


def _set_cookie(response: Response, token: str, settings: SettingsDep) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_ttl_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )


@router.get("/jurisdictions")
def list_jurisdictions() -> dict[str, str]:
    """Every ISO 3166-1 jurisdiction a user may declare, code → name."""
    return all_jurisdictions()


@router.post("/accounts", status_code=status.HTTP_201_CREATED)
def sign_up(
    body: SignUp,
    request: Request,
    response: Response,
    platform: PlatformDep,
    settings: SettingsDep,
    address: ClientAddress,
) -> SignedIn:
    """Sign up; every wrong field is reported at once. A refusal for age is remembered in this
    browser for a day (a cookie), so changing the birth date and trying again does not pass."""
    try:
        signed = service.check_sign_up(
            platform,
            settings,
            body,
            client_address=address,
            user_agent=request.headers.get("user-agent", ""),
            age_refused=request.cookies.get(service.AGE_REFUSED_COOKIE) == "1",
        )
    except FieldErrors as e:
        if e.has_code("too_young"):
            e.headers = {"Set-Cookie": _age_refused_cookie(settings)}
        raise
    _set_cookie(response, signed.token, settings)
    return signed


def _age_refused_cookie(settings: SettingsDep) -> str:
    probe = Response()
    probe.set_cookie(
        service.AGE_REFUSED_COOKIE,
        "1",
        max_age=service.AGE_REFUSED_SECONDS,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )
    return probe.headers["set-cookie"]


@router.post("/sessions", status_code=status.HTTP_201_CREATED)
def login(
    body: Login,
    request: Request,
    response: Response,
    platform: PlatformDep,
    settings: SettingsDep,
    throttle: ThrottleDep,
    address: ClientAddress,
) -> SignedIn:
    signed = service.check_login(
        platform,
        settings,
        throttle,
        handle=body.handle,
        password=body.password,
        client_address=address,
        user_agent=request.headers.get("user-agent", ""),
    )
    _set_cookie(response, signed.token, settings)
    return signed


@router.delete("/sessions/current", status_code=status.HTTP_204_NO_CONTENT)
def logout(user: CurrentUserDep, platform: PlatformDep, response: Response) -> None:
    service.do_logout(platform, user)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(PASS_COOKIE, path="/")


@router.get("/sessions")
def sessions(user: CurrentUserDep, platform: PlatformDep) -> list[SessionRead]:
    return service.list_sessions(platform, user)


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_session(session_id: str, user: CurrentUserDep, platform: PlatformDep) -> None:
    service.do_revoke_session(platform, user, session_id=session_id)


@router.get("/me")
def me(user: CurrentUserDep, platform: PlatformDep) -> AccountRead:
    return service.get_account(platform, user)


@router.patch("/me/profile")
def update_profile(body: ProfileUpdate, user: CurrentUserDep, platform: PlatformDep) -> AccountRead:
    return service.do_update_profile(platform, user, body)


@router.get("/users/{handle}")
def public_profile(handle: str, platform: PlatformDep) -> PublicProfileRead:
    return service.get_public_profile(platform, handle)


@router.post("/me/exports", status_code=status.HTTP_202_ACCEPTED)
def request_export(
    user: CurrentUserDep, platform: PlatformDep, settings: SettingsDep
) -> dict[str, str]:
    """Queue the building of a ZIP of everything stored about you, on your region's workers."""
    return {"id": tasks.request_export(platform, settings, user)}


@router.get("/me/exports/{export_id}")
def export_status(
    export_id: str, user: CurrentUserDep, platform: PlatformDep, settings: SettingsDep
) -> dict[str, Any]:
    """Progress of an export; when ready, an expiring download link."""
    return rights.export_status(platform, settings, user, export_id)


@router.get("/exports/{region}/{user_id}/{export_id}")
def download_export(
    region: str,
    user_id: str,
    export_id: str,
    expires: int,
    sig: str,
    platform: PlatformDep,
    settings: SettingsDep,
) -> Response:
    path = rights.access_export_download(
        platform,
        settings,
        region=region,
        user_id=user_id,
        export_id=export_id,
        expires=expires,
        sig=sig,
    )
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"reelm-data-{export_id}.zip",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.post("/me/deletion")
def schedule_deletion(
    user: CurrentUserDep, platform: PlatformDep, settings: SettingsDep
) -> dict[str, str]:
    """Delete my account after a 30-day grace period (cancel any time before)."""
    due = rights.do_schedule_deletion(platform, settings, user)
    return {"deletion_due_at": due.isoformat()}


@router.delete("/me/deletion", status_code=status.HTTP_204_NO_CONTENT)
def cancel_deletion(user: CurrentUserDep, platform: PlatformDep, settings: SettingsDep) -> None:
    rights.do_cancel_deletion(platform, settings, user)


@router.get("/me/transparency")
def my_transparency(user: CurrentUserDep, platform: PlatformDep) -> dict[str, Any]:
    """Each category of data kept about you, where it lives and why."""
    return rights.transparency(platform, user.region)
