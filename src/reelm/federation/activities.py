"""ActivityStreams 2.0 documents, built only from Egress records (`PublicProfileRecord`,
`PublicVideoRecord`, `PublicCommentRecord`, ...): a field that is not in a PUBLIC schema cannot
reach a document, because these functions never see anything else. And the parsers of what
other servers send (PeerTube's, Loops' and Fedify's `Video`, `Note`, actors)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reelm.accounts.schemas import PublicProfileRecord
from reelm.media.schemas import PublicVideoRecord
from reelm.social.schemas import PublicCommentRecord

AS = "https://www.w3.org/ns/activitystreams"
PUBLIC = f"{AS}#Public"
SECURITY = "https://w3id.org/security/v1"
CONTEXT: list[Any] = [
    AS,
    SECURITY,
    {
        "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
        "sensitive": "as:sensitive",
        "Hashtag": "as:Hashtag",
        "movedTo": {"@id": "as:movedTo", "@type": "@id"},
        "toot": "http://joinmastodon.org/ns#",
        "discoverable": "toot:discoverable",
        "pt": "https://joinpeertube.org/ns#",
        "commentsEnabled": "pt:commentsEnabled",
    },
]
ACTIVITY_JSON = "application/activity+json"
LD_JSON = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


@dataclass(frozen=True)
class Urls:
    """Where this deployment's public documents live (`base` is its public origin)."""

    base: str

    def actor(self, user_id: str) -> str:
        return f"{self.base}/ap/actors/{user_id}"

    def key(self, user_id: str) -> str:
        return f"{self.actor(user_id)}#main-key"

    def inbox(self, user_id: str) -> str:
        return f"{self.actor(user_id)}/inbox"

    def outbox(self, user_id: str) -> str:
        return f"{self.actor(user_id)}/outbox"

    def followers(self, user_id: str) -> str:
        return f"{self.actor(user_id)}/followers"

    def following(self, user_id: str) -> str:
        return f"{self.actor(user_id)}/following"

    @property
    def shared_inbox(self) -> str:
        return f"{self.base}/ap/inbox"

    def video(self, video_id: str) -> str:
        return f"{self.base}/ap/videos/{video_id}"

    def comment(self, comment_id: str) -> str:
        return f"{self.base}/ap/comments/{comment_id}"

    def activity(self, activity_id: str) -> str:
        return f"{self.base}/ap/activities/{activity_id}"

    def follow(self, follower_id: str, followee_id: str) -> str:
        """The id of a local user's Follow: stable, so its Undo needs nothing stored."""
        return f"{self.base}/ap/follows/{follower_id}/{followee_id}"

    def like(self, liker_id: str, video_id: str) -> str:
        return f"{self.base}/ap/likes/{liker_id}/{video_id}"

    def profile_page(self, handle: str) -> str:
        return f"{self.base}/@{handle}"

    def video_page(self, video_id: str) -> str:
        return f"{self.base}/v/{video_id}"

    def media(self, path: str) -> str:
        return f"{self.base}{path}"

    def hashtag(self, tag: str) -> str:
        return f"{self.base}/tag/{tag}"

    def sound(self, sound_id: str) -> str:
        return f"{self.base}/sound/{sound_id}"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: float) -> str:
    """An xsd:duration as PeerTube and Loops write it: whole seconds, `PT15S`."""
    return f"PT{max(1, round(seconds))}S"


def _html(text: str) -> str:
    return "<p>" + html.escape(text).replace("\n", "<br>") + "</p>"


def actor_document(
    urls: Urls, profile: PublicProfileRecord, *, public_pem: str, private_account: bool
) -> dict[str, Any]:
    """The `Person` of a local user, from their public profile record and public key."""
    uid = profile.user_id
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "id": urls.actor(uid),
        "type": "Person",
        "preferredUsername": profile.handle,
        "name": profile.display_name or profile.handle,
        "summary": _html(profile.bio) if profile.bio else "",
        "url": urls.profile_page(profile.handle),
        "inbox": urls.inbox(uid),
        "outbox": urls.outbox(uid),
        "followers": urls.followers(uid),
        "following": urls.following(uid),
        "endpoints": {"sharedInbox": urls.shared_inbox},
        "manuallyApprovesFollowers": private_account,
        "discoverable": True,
        "publicKey": {"id": urls.key(uid), "owner": urls.actor(uid), "publicKeyPem": public_pem},
    }
    if profile.avatar_url:
        doc["icon"] = {"type": "Image", "url": urls.media(profile.avatar_url)}
    return doc


def video_object(urls: Urls, video: PublicVideoRecord, media: dict[str, str]) -> dict[str, Any]:
    """A `Video` like PeerTube's and Loops': name, content, links to the HLS playlist, the MP4
    and the page, the poster as icon, duration, hashtags, and the sound as a tag."""
    caption = video.caption.strip()
    first_line = caption.splitlines()[0] if caption else ""
    to, cc = _audience(urls, video.creator_id, public=video.visibility == "public")
    obj: dict[str, Any] = {
        "id": urls.video(video.id),
        "type": "Video",
        "name": first_line[:120] or f"Video by @{video.creator_handle}",
        "content": _html(caption) if caption else "",
        "mediaType": "text/html",
        "attributedTo": urls.actor(video.creator_id),
        "published": iso(video.published_at),
        "duration": duration(video.duration_s),
        "to": to,
        "cc": cc,
        "sensitive": False,
        "commentsEnabled": video.allow_comments,
        "url": [
            {"type": "Link", "mediaType": "text/html", "href": urls.video_page(video.id)},
            {
                "type": "Link", "mediaType": "application/x-mpegURL",
                "href": urls.media(media["hls"]),
            },
            {
                "type": "Link", "mediaType": "video/mp4", "href": urls.media(media["mp4"]),
                "width": video.width, "height": video.height,
            },
        ],
        "icon": [
            {
                "type": "Image", "mediaType": "image/jpeg", "url": urls.media(media["poster"]),
                "width": video.width, "height": video.height,
            }
        ],
        "tag": [
            {"type": "Hashtag", "name": f"#{t}", "href": urls.hashtag(t)} for t in video.hashtags
        ],
    }  # fmt: skip
    if video.sound_id:
        obj["tag"].append({"type": "Link", "name": "sound", "rel": "sound",
                           "href": urls.sound(video.sound_id)})  # fmt: skip
    return obj


def _audience(urls: Urls, user_id: str, *, public: bool) -> tuple[list[str], list[str]]:
    if public:
        return [PUBLIC], [urls.followers(user_id)]
    return [urls.followers(user_id)], []


def note_object(
    urls: Urls, comment: PublicCommentRecord, *, in_reply_to: str, to: list[str]
) -> dict[str, Any]:
    """A comment as a `Note` in reply to a video (or to a comment)."""
    return {
        "id": urls.comment(comment.id),
        "type": "Note",
        "attributedTo": urls.actor(comment.author_id),
        "inReplyTo": in_reply_to,
        "content": _html(comment.text),
        "published": iso(comment.created_at),
        "to": [PUBLIC],
        "cc": to,
    }


def activity(
    kind: str, *, id: str, actor: str, obj: Any, to: list[str] | None = None,
    cc: list[str] | None = None, published: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    doc: dict[str, Any] = {"@context": CONTEXT, "id": id, "type": kind, "actor": actor,
                           "object": obj}  # fmt: skip
    if to is not None:
        doc["to"] = to
    if cc:
        doc["cc"] = cc
    if published is not None:
        doc["published"] = iso(published)
    return doc


# --- parsing what other servers send ------------------------------------------------------------


class Unparseable(ValueError):
    """A document that is not the object this server can take."""


def first_id(value: Any) -> str | None:
    """The id of a reference: an IRI, an object with an `id`, or the first of a list."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        v = value.get("id") or value.get("href")
        return v if isinstance(v, str) else None
    if isinstance(value, list) and value:
        return first_id(value[0])
    return None


def types_of(doc: Any) -> set[str]:
    t = doc.get("type") if isinstance(doc, dict) else None
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return {x for x in t if isinstance(x, str)}
    return set()


@dataclass(frozen=True)
class RemoteActorDoc:
    uri: str
    preferred_username: str
    name: str
    inbox: str
    shared_inbox: str | None
    key_id: str
    public_pem: str
    moved_to: str | None


def parse_actor(doc: Any) -> RemoteActorDoc:
    if not isinstance(doc, dict):
        raise Unparseable("the actor document is not a JSON object")
    uri, inbox = doc.get("id"), doc.get("inbox")
    key = doc.get("publicKey")
    if isinstance(key, list):
        key = key[0] if key else None
    if not (isinstance(uri, str) and isinstance(inbox, str) and isinstance(key, dict)):
        raise Unparseable("an actor needs an id, an inbox and a publicKey")
    pem, key_id = key.get("publicKeyPem"), key.get("id")
    if not (isinstance(pem, str) and isinstance(key_id, str)):
        raise Unparseable("the actor's publicKey lacks its id or its PEM")
    endpoints = doc.get("endpoints")
    shared = endpoints.get("sharedInbox") if isinstance(endpoints, dict) else None
    moved = doc.get("movedTo")
    return RemoteActorDoc(
        uri=uri,
        preferred_username=str(doc.get("preferredUsername") or ""),
        name=str(doc.get("name") or doc.get("preferredUsername") or ""),
        inbox=inbox,
        shared_inbox=shared if isinstance(shared, str) else None,
        key_id=key_id,
        public_pem=pem,
        moved_to=moved if isinstance(moved, str) else None,
    )


@dataclass(frozen=True)
class RemoteVideo:
    """What reelm keeps of a remote `Video`: its catalog fields and its media links."""

    uri: str
    attributed_to: str
    name: str
    content: str
    duration_s: float
    published_at: datetime
    hls_url: str | None
    mp4_url: str | None
    poster_url: str | None
    page_url: str | None
    width: int
    height: int
    hashtags: list[str]
    comments_enabled: bool


_DURATION = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(value: Any) -> float:
    """xsd:duration (`PT15S`, `PT1M3S`); PeerTube's old `30s` too."""
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return 0.0
    m = _DURATION.match(value.strip())
    if m is None:
        old = re.fullmatch(r"(\d+)s", value.strip())
        return float(old.group(1)) if old else 0.0
    d, h, mi, s = (float(m.group(k) or 0) for k in ("d", "h", "m", "s"))
    return d * 86400 + h * 3600 + mi * 60 + s


def _links(value: Any) -> list[dict[str, Any]]:
    """Every Link of a `url` (a string, a Link, a list of them, PeerTube's nested `tag`s)."""
    out: list[dict[str, Any]] = []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, str):
            out.append({"href": item, "mediaType": ""})
        elif isinstance(item, dict):
            out.append(item)
            out += _links(item.get("tag") or [])
    return out


def parse_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return at if at.tzinfo else at.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def text_of(content: Any) -> str:
    """The plain text of an HTML `content` (tags dropped, entities decoded)."""
    if isinstance(content, dict):  # contentMap
        content = next(iter(content.values()), "")
    if not isinstance(content, str):
        return ""
    text = re.sub(r"<br\s*/?>|</p>\s*<p>", "\n", content)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def is_video(doc: Any) -> bool:
    """A `Video` (PeerTube, reelm), or a top-level `Note` carrying a video attachment (how
    Loops federates a video, so that Mastodon shows it too)."""
    if not isinstance(doc, dict):
        return False
    if "Video" in types_of(doc):
        return True
    return (
        "Note" in types_of(doc)
        and not doc.get("inReplyTo")
        and any(str(a.get("mediaType", "")).startswith("video/") for a in _links(doc.get("attachment") or []))
    )


def parse_video(doc: Any) -> RemoteVideo:
    """A remote video (see `is_video`): links by media type (in `url`, or a Note's
    `attachment`), poster from `icon` (or `image`/`preview`), hashtags from `tag`."""
    if not is_video(doc):
        raise Unparseable("not a Video")
    uri = doc.get("id")
    attributed = doc.get("attributedTo")
    if isinstance(attributed, list):  # PeerTube: [Person, Group channel]
        people = [a for a in attributed if isinstance(a, dict) and "Person" in types_of(a)]
        attributed = people[0] if people else attributed[0] if attributed else None
    actor = first_id(attributed)
    if not isinstance(uri, str) or actor is None:
        raise Unparseable("a Video needs an id and attributedTo")
    hls = mp4 = page = None
    width = height = 0
    for link in _links(doc.get("url")) + _links(doc.get("attachment") or []):
        if not isinstance(link.get("href"), str) and isinstance(link.get("url"), str):
            link = {**link, "href": link["url"]}  # a Document's url
        media_type = str(link.get("mediaType") or "").lower()
        href = link.get("href")
        if not isinstance(href, str):
            continue
        if media_type in ("application/x-mpegurl", "application/vnd.apple.mpegurl") and hls is None:
            hls = href
        elif media_type == "video/mp4" and mp4 is None:
            mp4 = href
            width, height = int(link.get("width") or 0), int(link.get("height") or 0)
        elif media_type == "text/html" and page is None:
            page = href
        elif media_type == "" and href.endswith(".mp4") and mp4 is None:
            mp4 = href
    if mp4 is None and hls is None:
        raise Unparseable("the Video has no MP4 or HLS link")
    poster = None
    for key in ("icon", "image", "preview"):
        images = doc.get(key)
        images = images if isinstance(images, list) else [images]
        for image in images:
            if isinstance(image, dict):
                href = image.get("href")
                url = first_id(image.get("url")) or (href if isinstance(href, str) else None)
                if url:
                    poster = poster or url
                    if not width:
                        width, height = int(image.get("width") or 0), int(image.get("height") or 0)
            elif isinstance(image, str):
                poster = poster or image
    tags = []
    for tag in doc.get("tag") or []:
        if isinstance(tag, dict) and "Hashtag" in types_of(tag):
            name = str(tag.get("name") or "").lstrip("#").lower()
            if re.fullmatch(r"\w{1,100}", name):
                tags.append(name)
    content = text_of(doc.get("content") or doc.get("summary") or "")
    name = str(doc.get("name") or "").strip()
    return RemoteVideo(
        uri=uri,
        attributed_to=actor,
        name=name,
        content=content,
        duration_s=parse_duration(doc.get("duration")),
        published_at=parse_datetime(doc.get("published")),
        hls_url=hls,
        mp4_url=mp4,
        poster_url=poster,
        page_url=page,
        width=width or 720,
        height=height or 1280,
        hashtags=tags,
        comments_enabled=doc.get("commentsEnabled") is not False,
    )
