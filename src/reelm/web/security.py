"""Browser-facing defences: CSRF tokens for cookie sessions, and the headers every response carries.

CSRF. A request authenticated by the session cookie could be forged by another site; one with a
bearer token cannot. So an unsafe request (POST, PUT, PATCH, DELETE) that carries the session
cookie and no bearer token must carry `X-CSRF-Token`: an HMAC of the session token under
`secret_key`. Pages put it in `<meta name="csrf-token">` for their scripts and htmx; another site
can neither read it nor derive it (the session cookie is HttpOnly, the key is the server's).
Sign-up and login use no session, so they are exempt from the token; like every other unsafe
request without a bearer token, they are refused when the browser says they come from another
site (`Sec-Fetch-Site`, else `Origin`), which stops login CSRF.

Session passes. A signed-in read (GET, HEAD) whose session was looked up in its region's session
table is answered with a `reelm_pass` cookie: the session's user, handle, region and id, valid
for `session_pass_seconds`, MACed under `secret_key` together with the session token itself (a
pass is worth nothing without the token it was issued for). A read that brings a valid pass skips
the session-table lookup; it still reads the user's Directory entry, so a user whose home moved or
who is being moved is never served from the pass's region by mistake. Unsafe requests always look
the session up. So a revoked or expired session keeps reading for at most `session_pass_seconds`,
and never writes again.

Headers. A Content-Security-Policy without inline scripts or styles (every script is a file under
/static), `frame-ancestors 'none'`, nosniff and a strict referrer policy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from functools import cache
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelm.config import Settings
from reelm.errors import Forbidden

CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
SESSION_COOKIE = "reelm_session"
PASS_COOKIE = "reelm_pass"
# Requests that open a session rather than use one (the cookie a browser may still hold is ignored)
NO_SESSION_POSTS = frozenset({"/api/v1/accounts", "/api/v1/sessions", "/staff/api/v1/sessions"})

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        # hls.js gives each subtitles track it makes an empty `data:,WEBVTT` source
        "media-src 'self' blob: data:",
        "connect-src 'self'",
        # hls.js runs its demuxer in a worker it builds from a Blob URL
        "worker-src 'self' blob:",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# The OpenAPI explorer is a third-party page (Swagger UI) with inline bootstrapping: it gets the
# framing and sniffing protections but not the script policy.
_NO_CSP_PREFIXES = ("/api/docs", "/api/redoc")


class CsrfRejected(Forbidden):
    code = "csrf_failed"


CSRF_MESSAGE = "This request is missing its security token. Reload the page and try again."


def csrf_token(settings: Settings, session_token: str) -> str:
    """The token a page sends back with its unsafe requests; bound to this session."""
    mac = hmac.new(settings.secret_key.encode(), b"csrf|" + session_token.encode(), hashlib.sha256)
    return mac.hexdigest()


@dataclass(frozen=True)
class SessionPass:
    """What a pass vouches for until `valid_until` (Unix seconds)."""

    user_id: str
    handle: str
    region: str
    session_id: str
    valid_until: int


@cache
def _pass_key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), b"reelm session pass", hashlib.sha256).digest()


def _pass_mac(settings: Settings, session_token: str, payload: bytes) -> bytes:
    msg = session_token.encode() + b"|" + payload
    return hmac.new(_pass_key(settings.secret_key), msg, hashlib.sha256).digest()[:18]


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def issue_pass(settings: Settings, session_token: str, p: SessionPass) -> str:
    """The `reelm_pass` cookie value for `p`, bound to `session_token`."""
    fields = [p.user_id, p.handle, p.region, p.session_id, p.valid_until]
    payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
    return (payload + b"." + _b64(_pass_mac(settings, session_token, payload))).decode()


def read_pass(
    settings: Settings, session_token: str, value: str, *, now: float
) -> SessionPass | None:
    """The pass in `value` if its MAC is right for this token and it has not run out; else None
    (a forged, foreign or stale pass is ignored: the session is then looked up)."""
    payload, _, mac = value.encode().partition(b".")
    try:
        sent = base64.urlsafe_b64decode(mac + b"=" * (-len(mac) % 4))
        if not hmac.compare_digest(sent, _pass_mac(settings, session_token, payload)):
            return None
        fields = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        user_id, handle, region, session_id, until = fields
        p = SessionPass(str(user_id), str(handle), str(region), str(session_id), int(until))
    except (ValueError, TypeError, IndexError):
        return None
    return p if now < p.valid_until else None


def pass_cookie_header(settings: Settings, value: str) -> bytes:
    secure = "; Secure" if settings.cookie_secure else ""
    return (
        f"{PASS_COOKIE}={value}; Max-Age={settings.session_pass_seconds}; Path=/; HttpOnly; "
        f"SameSite=Lax{secure}"
    ).encode()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header is the client's problem: treat as absent
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def is_cross_site(scope: Scope) -> bool:
    """True when the browser says the request comes from another site."""
    site = _header(scope, b"sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = _header(scope, b"origin")
    if origin is None:
        return False  # not a browser, or an old one: the CSRF token still guards cookie sessions
    return origin == "null" or urlsplit(origin).netloc != _header(scope, b"host")


def refusal(scope: Scope, settings: Settings) -> tuple[str, str] | None:
    """Why an unsafe request must be refused, as (code, message), or None to let it through."""
    if scope.get("method", "GET") in SAFE_METHODS:
        return None
    if (_header(scope, b"authorization") or "").lower().startswith("bearer "):
        return None
    if is_cross_site(scope):
        return "cross_site", "Requests from other sites are not accepted."
    session = cookie(scope, SESSION_COOKIE)
    if session and scope.get("path", "") not in NO_SESSION_POSTS:
        sent = _header(scope, CSRF_HEADER.encode())
        if not sent or not hmac.compare_digest(sent, csrf_token(settings, session)):
            return CsrfRejected.code, CSRF_MESSAGE
    return None


class SecurityMiddleware:
    """Adds the security headers to every response and refuses forged unsafe requests."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        refused = refusal(scope, self.settings)
        if refused is not None:
            await _refuse(send, *refused)
            return
        csp = not path.startswith(_NO_CSP_PREFIXES)
        # the request's state, shared with the handlers (a dependency leaves a pass to send here)
        state = scope.setdefault("state", {})
        # Only the Create page records (camera and microphone, this origin only).
        devices = (
            "camera=(self), microphone=(self), geolocation=()"
            if path == "/create"
            else "camera=(), microphone=(), geolocation=()"
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                issued = state.get("session_pass")
                if issued is not None:
                    headers.append("set-cookie", pass_cookie_header(self.settings, issued).decode())
                if csp:
                    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                else:
                    headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault("Permissions-Policy", devices)
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(send: Send, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
