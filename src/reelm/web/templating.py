"""The Jinja2 environment of the pages: autoescaped, with the few filters templates need to show
numbers, times and captions the way a short-video app does. Filters format; they never query."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from reelm.config import Settings
from reelm.web.security import SESSION_COOKIE, csrf_token

HERE = Path(__file__).parent
STATIC = HERE / "static"
# The caption grammar of media/service.py: #hashtags and @mentions become links.
_TOKENS = re.compile(r"(?<![\w#])#(\w{1,100})|(?<![\w@])@([A-Za-z0-9_.]{3,24})", re.UNICODE)


def compact(n: int | float | None) -> str:
    """1234 → 1.2K, 5300000 → 5.3M, as counts are shown under the rail's icons."""
    value = float(n or 0)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= limit:
            text = f"{value / limit:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return str(int(value))


def ago(when: datetime | str | None, now: datetime | None = None) -> str:
    """How long ago, in the app's short form: now, 5m, 3h, 2d, 4w, then the date."""
    if when is None:
        return ""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    if seconds < 60:
        return "now"
    for size, unit in ((604800, "w"), (86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size and (unit != "w" or seconds < 8 * 604800):
            return f"{int(seconds // size)}{unit}"
    return when.strftime("%Y-%m-%d")


def duration(seconds: float | None) -> str:
    s = round(seconds or 0)
    return f"{s // 60}:{s % 60:02d}"


def caption_html(text: str | None) -> Markup:
    """The caption, escaped, with hashtags and mentions linked. Every piece of user text goes
    through `escape`; only the anchors around them are ours."""
    text = text or ""
    out: list[str] = []
    last = 0
    for m in _TOKENS.finditer(text):
        out.append(escape(text[last : m.start()]))
        if m.group(1):
            tag = m.group(1).lower()
            out.append(f'<a class="tag" href="/tag/{escape(tag)}">#{escape(m.group(1))}</a>')
        else:
            handle = m.group(2).lower().strip(".")
            out.append(f'<a class="mention" href="/@{escape(handle)}">@{escape(m.group(2))}</a>')
        last = m.end()
    out.append(escape(text[last:]))
    return Markup("".join(str(part) for part in out))


def hue(seed: str | None) -> int:
    """A stable colour (one of 12 hues) for an avatar without a picture; static/js/api.js
    computes the same number for the slides it builds."""
    h = 0
    for ch in seed or "":
        h = (h * 31 + ord(ch)) % 2**32
    return h % 12


def initial(handle: str | None) -> str:
    return (handle or "?")[:1].upper()


@lru_cache(maxsize=256)
def _digest(path: str, mtime_ns: int) -> str:
    return hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:10]


def static_url(path: str) -> str:
    """/static/<path>?v=<content hash>: browsers may cache it for long, a change shows at once."""
    file = STATIC / path
    try:
        version = _digest(path, file.stat().st_mtime_ns)
    except FileNotFoundError:
        version = "missing"
    return f"/static/{path}?v={version}"


def _request_context(request: Request) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    session = request.cookies.get(SESSION_COOKIE)
    return {"csrf_token": csrf_token(settings, session) if session else ""}


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates", context_processors=[_request_context])
    env = templates.env
    env.autoescape = True
    env.filters.update(compact=compact, ago=ago, duration=duration, caption=caption_html, hue=hue)
    env.filters["initial"] = initial
    env.globals["static"] = static_url
    return templates
