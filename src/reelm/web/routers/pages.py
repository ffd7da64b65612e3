"""Server-rendered pages: feeds, video, profile, hashtag, sound, search, inbox, create, account.

Each route reads what its page shows through the domain services and renders one template; the
behaviour (playing, liking, uploading) lives in one small script per behaviour under
/static/js, which talks to /api/v1. A failed read renders the error page, not JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from reelm.accounts import rights
from reelm.accounts import service as accounts
from reelm.accounts.service import CurrentUser
from reelm.errors import NotFound, ReelmError
from reelm.feed import foryou
from reelm.feed import service as feed
from reelm.media import drafts
from reelm.media import service as media
from reelm.media.filters import FILTERS
from reelm.media.overlays import FONTS
from reelm.residency import service as residency
from reelm.residency.jurisdictions import all_jurisdictions, country_name
from reelm.residency.store import Platform
from reelm.social import service as social
from reelm.sounds import service as sounds
from reelm.sounds.schemas import SongRead
from reelm.web.deps import OptionalUserDep, PlatformDep, SettingsDep

Cursor = Annotated[str | None, Query(max_length=400)]


class PageRoute(APIRoute):
    """Renders a domain error (an unknown handle, a private video) as the error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except ReelmError as exc:
                return error_page(request, exc.status, exc.message)

        return page_handler


router = APIRouter(include_in_schema=False, route_class=PageRoute)


def _user_of(request: Request) -> CurrentUser | None:
    from reelm.web.deps import get_optional_user, get_platform

    try:
        return get_optional_user(request, get_platform(request))
    except ReelmError:
        return None


def render(
    request: Request,
    template: str,
    user: CurrentUser | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page with the shell's context: the viewer, the unread count, the regions overview."""
    platform: Platform = request.app.state.platform
    page: HTMLResponse = request.app.state.templates.TemplateResponse(
        request,
        template,
        {
            "user": user,
            "unread": social.unread_count(platform, user) if user else 0,
            "overview": residency.regions_overview(platform),
            "path": request.url.path,
            **context,
        },
        status_code=status_code,
    )
    return page


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    titles = {404: "Page not found", 401: "Log in to continue", 403: "Not allowed"}
    return render(
        request,
        "error.html",
        _user_of(request),
        status_code=status,
        title=titles.get(status, "Something went wrong"),
        message=message,
    )


def _login_first(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


# feeds and videos


@router.get("/", response_class=HTMLResponse)
def for_you(request: Request, user: OptionalUserDep) -> HTMLResponse:
    """The For You feed (the page's script reads /api/v1/feed/for-you)."""
    return render(request, "feed.html", user, source="for-you")


@router.get("/following", response_class=HTMLResponse)
def following(request: Request, user: OptionalUserDep) -> HTMLResponse:
    return render(request, "feed.html", user, source="following")


@router.get("/v/{video_id}", response_class=HTMLResponse)
def video_page(
    video_id: str, request: Request, platform: PlatformDep, user: OptionalUserDep
) -> HTMLResponse:
    """One video at a shareable address, with Open Graph tags for link previews."""
    video = media.get_public_video(platform, video_id, user)
    return render(
        request,
        "video.html",
        user,
        video=video,
        sound=video.sound,
        creator=accounts.get_public_profile(platform, video.creator_handle),
        comments=social.list_comments(platform, user, video_id, limit=50),
        base_url=str(request.base_url).rstrip("/"),
    )


# people, hashtags, sounds, search


@router.get("/@{handle}", response_class=HTMLResponse)
def profile(
    handle: str, request: Request, platform: PlatformDep, user: OptionalUserDep
) -> HTMLResponse:
    page = feed.profile_page(platform, user, handle, limit=18)
    return render(request, "profile.html", user, profile=page)


@router.get("/@{handle}/drafts", response_class=HTMLResponse, response_model=None)
def profile_drafts(
    handle: str, request: Request, platform: PlatformDep, user: OptionalUserDep
) -> HTMLResponse | RedirectResponse:
    """The creator's own drafts, under their profile; nobody else's (404, as for a stranger)."""
    if user is None:
        return _login_first(request)
    page = feed.profile_page(platform, user, handle, limit=1)
    if page.follow_state != "self":
        raise NotFound("No such page.")
    return render(
        request, "profile.html", user, profile=page, drafts=drafts.list_drafts(platform, user)
    )


@router.get("/@{handle}/grid", response_class=HTMLResponse)
def profile_grid(
    handle: str, request: Request, platform: PlatformDep, user: OptionalUserDep, cursor: Cursor
) -> HTMLResponse:
    """The next page of a profile's grid, for htmx to append."""
    page = feed.profile_page(platform, user, handle, cursor=cursor, limit=18)
    return render(
        request,
        "_grid_items.html",
        user,
        videos=page.items,
        next_url=f"/@{page.handle}/grid?cursor={page.next_cursor}" if page.next_cursor else None,
    )


@router.get("/tag/{tag}", response_class=HTMLResponse)
def hashtag(
    tag: str, request: Request, platform: PlatformDep, user: OptionalUserDep, cursor: Cursor = None
) -> HTMLResponse:
    data = feed.hashtag_page(platform, user, tag, cursor=cursor, limit=18)
    page = data["page"]
    next_url = f"/tag/{data['tag']}?cursor={page.next_cursor}" if page.next_cursor else None
    videos = [item.video for item in page.items]
    if request.headers.get("hx-request"):
        return render(request, "_grid_items.html", user, videos=videos, next_url=next_url)
    return render(request, "hashtag.html", user, data=data, videos=videos, next_url=next_url)


@router.get("/sound/{sound_id}", response_class=HTMLResponse)
def sound(
    sound_id: str,
    request: Request,
    platform: PlatformDep,
    user: OptionalUserDep,
    cursor: Cursor = None,
) -> HTMLResponse:
    data = feed.sound_page(platform, user, sound_id, cursor=cursor, limit=18)
    page = data["page"]
    next_url = f"/sound/{sound_id}?cursor={page.next_cursor}" if page.next_cursor else None
    videos = [item.video for item in page.items]
    if request.headers.get("hx-request"):
        return render(request, "_grid_items.html", user, videos=videos, next_url=next_url)
    return render(request, "sound.html", user, data=data, videos=videos, next_url=next_url)


@router.get("/search", response_class=HTMLResponse)
def search(
    request: Request,
    platform: PlatformDep,
    settings: SettingsDep,
    user: OptionalUserDep,
    q: Annotated[str, Query(max_length=100)] = "",
) -> HTMLResponse:
    """Search; with no query, Discover: popular hashtags, trending sounds, videos picked for you."""
    results = feed.search(platform, user, q) if q.strip() else None
    discover: dict[str, Any] = {}
    if results is None:
        discover = {
            "tags": foryou.popular_interests(platform, limit=12),
            "trending": sounds.trending_songs(platform, 6).items,
            "videos": [
                item.video
                for item in foryou.for_you_feed(
                    platform, settings, user, cursor=None, limit=12
                ).items
            ],
        }
    template = "_search_results.html" if request.headers.get("hx-request") else "search.html"
    return render(request, template, user, q=q, results=results, **discover)


# signed-in pages


@router.get("/inbox", response_class=HTMLResponse, response_model=None)
def inbox(
    request: Request, platform: PlatformDep, user: OptionalUserDep
) -> HTMLResponse | RedirectResponse:
    """Notifications (the page marks them read once shown) and follow requests."""
    if user is None:
        return _login_first(request)
    return render(
        request,
        "inbox.html",
        user,
        notifications=social.list_notifications(platform, user, limit=100),
        requests=social.follow_requests(platform, user),
    )


@router.get("/create", response_class=HTMLResponse, response_model=None)
def create(
    request: Request,
    platform: PlatformDep,
    settings: SettingsDep,
    user: OptionalUserDep,
    sound: Annotated[str | None, Query(max_length=100)] = None,
    draft: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse | RedirectResponse:
    """Upload, edit (trim, look, sound, texts, captions, cover), caption and publish;
    `?sound=` preselects a song, `?draft=` opens a draft."""
    if user is None:
        return _login_first(request)
    opened = drafts.access_draft(platform, user, draft) if draft else None
    chosen = None
    if sound:
        try:
            chosen = SongRead.of(sounds.get_song(platform, sound))
        except NotFound:
            chosen = None
    return render(
        request,
        "create.html",
        user,
        limits=media.describe_upload_limits(settings),
        filters=list(FILTERS.values()),
        fonts=list(FONTS.values()),
        chosen_sound=chosen,
        draft=opened,
    )


@router.get("/settings", response_class=HTMLResponse, response_model=None)
def settings_page(
    request: Request, platform: PlatformDep, user: OptionalUserDep
) -> HTMLResponse | RedirectResponse:
    """Profile and privacy, sessions, download my data, deletion, where the data lives."""
    if user is None:
        return _login_first(request)
    return render(
        request,
        "settings.html",
        user,
        account=accounts.get_account(platform, user),
        sessions=accounts.list_sessions(platform, user),
        info=rights.transparency(platform, user.region),
        export=rights.latest_export(platform, user),
    )


# signing up and in


def _where_each_jurisdiction_lives(platform: Platform) -> dict[str, dict[str, str]]:
    """Jurisdiction code → the region, operator and country its users' data would live in."""
    policy = platform.policy
    regions = {
        name: {
            "region": name,
            "operator": policy.operator_of(name).name,
            "location": country_name(region.location),
        }
        for name, region in policy.regions.items()
    }
    return {code: regions[policy.region_for(code)] for code in all_jurisdictions()}


@router.get("/signup", response_class=HTMLResponse)
def signup(request: Request, platform: PlatformDep, user: OptionalUserDep) -> HTMLResponse:
    return render(
        request,
        "signup.html",
        user,
        jurisdictions=sorted(all_jurisdictions().items(), key=lambda kv: kv[1]),
        homes=_where_each_jurisdiction_lives(platform),
        min_password=accounts.MIN_PASSWORD,
        age_refused=request.cookies.get(accounts.AGE_REFUSED_COOKIE) == "1",
        age_refusal=accounts.AGE_REFUSED,
    )


@router.get("/login", response_class=HTMLResponse)
def login(request: Request, user: OptionalUserDep) -> HTMLResponse:
    return render(request, "login.html", user)


@router.get("/transparency", response_class=HTMLResponse)
def transparency_page(
    request: Request, platform: PlatformDep, user: OptionalUserDep
) -> HTMLResponse:
    """Each category of data, where it lives (region, operator, country) and why."""
    region = user.region if user else platform.policy.default_region
    return render(request, "transparency.html", user, info=rights.transparency(platform, region))
