"""Request dependencies: the platform, settings, and the signed-in user from cookie or bearer."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Header, Request

from reelm.accounts.service import CurrentUser, access_session
from reelm.accounts.throttle import AddressThrottle
from reelm.config import Settings
from reelm.errors import TryAgainLater, Unauthorized
from reelm.residency.models import ACTIVE, MOVING
from reelm.residency.store import MOVING_RETRY_AFTER, Platform
from reelm.web.security import PASS_COOKIE, SESSION_COOKIE, SessionPass, issue_pass, read_pass

__all__ = ["PASS_COOKIE", "SESSION_COOKIE"]

_clock = time.time  # the session passes' clock (tests move it)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_throttle(request: Request) -> AddressThrottle:
    throttle: AddressThrottle = request.app.state.login_throttle
    return throttle


def session_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.cookies.get(SESSION_COOKIE)


def _signed_in(request: Request, platform: Platform, token: str) -> CurrentUser:
    """The user of the session `token`. A read with a valid session pass (web/security.py) takes
    the session from the pass and reads only the user's Directory entry, which must still name
    the pass's region as home (or the move in progress from it); anything else looks the session
    up in its region, and a read looked up that way is answered with a fresh pass."""
    settings: Settings = request.app.state.settings
    passes = settings.session_pass_seconds > 0 and request.method in SAFE_METHODS
    if passes and (value := request.cookies.get(PASS_COOKIE)):
        p = read_pass(settings, token, value, now=_clock())
        if p is not None:
            home = platform.directory.home(p.user_id)
            if home is not None and home.region == p.region and home.state in (ACTIVE, MOVING):
                return CurrentUser(
                    p.user_id, p.handle, p.region, p.session_id, moving=home.state == MOVING
                )
    user = access_session(platform, token)
    if passes:
        until = int(_clock()) + settings.session_pass_seconds
        request.state.session_pass = issue_pass(
            settings,
            token,
            SessionPass(user.user_id, user.handle, user.region, user.session_id, until),
        )
    return user


def get_current_user(
    request: Request, platform: Annotated[Platform, Depends(_platform)]
) -> CurrentUser:
    token = session_token(request)
    if not token:
        raise Unauthorized("Log in to do that.", code="not_signed_in")
    user = _signed_in(request, platform, token)
    if user.moving and request.method not in SAFE_METHODS:
        # refused before anything is written (files included); the region hooks refuse the
        # database writes of a request that started before the move anyway
        raise TryAgainLater(
            "Your account's data is being moved to another region; try again in a few seconds.",
            retry_after=MOVING_RETRY_AFTER,
            code="user_moving",
        )
    return user


def get_optional_user(
    request: Request, platform: Annotated[Platform, Depends(_platform)]
) -> CurrentUser | None:
    token = session_token(request)
    if not token:
        return None
    try:
        return _signed_in(request, platform, token)
    except Unauthorized:
        return None


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


# The dependencies that only read app state are coroutines: FastAPI runs a plain function
# dependency in its thread pool, a hop that cost more than the lookup itself.
async def _platform(request: Request) -> Platform:
    return get_platform(request)


async def _settings(request: Request) -> Settings:
    return get_settings(request)


async def _client_address(request: Request) -> str:
    return client_address(request)


PlatformDep = Annotated[Platform, Depends(_platform)]
SettingsDep = Annotated[Settings, Depends(_settings)]
ThrottleDep = Annotated[AddressThrottle, Depends(get_throttle)]
CurrentUserDep = Annotated[CurrentUser, Depends(get_current_user)]
OptionalUserDep = Annotated[CurrentUser | None, Depends(get_optional_user)]
ClientAddress = Annotated[str, Depends(_client_address)]
IdempotencyKeyDep = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Send the same key again to retry this request safely: the first "
        "result is answered and nothing is created twice (kept for 24 hours).",
    ),
]
