"""Browser-facing defences: CSRF tokens for cookie sessions, and the headers every response carries.

CSRF. A request authenticated by the session cookie could be forged by another site; one with a
bearer token cannot. So an unsafe request (POST, PUT, PATCH, DELETE) that carries the session
cookie and no bearer token must carry `X-CSRF-Token`: an HMAC of the session token under
`secret_key`. Pages put it in `<meta name="csrf-token">` for their scripts and htmx; another site
can neither read it nor derive it (the session cookie is HttpOnly, the key is the server's).
Sign-up and login use no session, so they are exempt from the token; like every other unsafe
request without a bearer token, they are refused when the browser says they come from another
site (`Sec-Fetch-Site`, else `Origin`), which stops login CSRF.

Headers. A Content-Security-Policy without inline scripts or styles (every script is a file under
/static), `frame-ancestors 'none'`, nosniff and a strict referrer policy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelm.config import Settings
from reelm.errors import Forbidden

CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
SESSION_COOKIE = "reelm_session"
# Requests that open a session rather than use one (the cookie a browser may still hold is ignored)
NO_SESSION_POSTS = frozenset({"/api/v1/accounts", "/api/v1/sessions", "/staff/api/v1/sessions"})

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
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

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if csp:
                    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                else:
                    headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
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
