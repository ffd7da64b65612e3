"""Federation's core: the registry that turns it on for a platform, instances allowed or
blocked, the remote actor cache, this deployment's public documents (WebFinger, actors,
outboxes, videos, comments), and the federator that writes deliveries with the actions that
cause them. Sending is `delivery.py`, the inbox `inbox.py`, cross-server follows `follows.py`.

Residency across federation:
- out: a delivery is made only from an Egress record, in the transaction of the action that
  emits it (`_federate`, registered with the outbox), and stored in the actor's home region
  (`fed_deliveries`); the document sent is built from that record by `activities.py`;
- in: remote actors, videos, comments, likes and follows of local users by remote actors are
  public remote data, written into the global catalog; what reaches a local user (a
  notification, the answer to their follow) is written in their home region;
- a local user's follow, like or comment of remote content is theirs, in their region, as any.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reelm.accounts.schemas import PublicProfileRecord
from reelm.config import Settings
from reelm.db import new_id, utcnow
from reelm.effects.outbox import federate_with
from reelm.errors import Forbidden, InvalidInput, NotFound, ReelmError, UserNotFound
from reelm.federation import activities as ap
from reelm.federation.models import (
    ActorKey,
    Delivery,
    Instance,
    InstanceState,
    RemoteActor,
    RemoteFollower,
    RemoteObject,
)
from reelm.federation.signatures import (
    new_key_pair,
)
from reelm.media.models import PublishedVideo, VideoTag
from reelm.media.schemas import PublicVideoRecord, VideoWithdrawal
from reelm.media.service import media_urls
from reelm.residency.egress import PublicRecord
from reelm.residency.models import (
    ACTIVE,
    MOVING,
    REMOTE,
    REMOTE_REGION,
    DirectoryEntry,
    PublicProfile,
)
from reelm.residency.store import Platform
from reelm.social.models import FollowStatus, PublicComment
from reelm.social.schemas import (
    CommentRemoval,
    CountChange,
    CounterKind,
    NotificationRecord,
    PublicCommentRecord,
)

log = logging.getLogger(__name__)



class FederationOff(NotFound):
    code = "federation_off"


class InstanceRefused(Forbidden):
    code = "instance_refused"


class WrongActor(Forbidden):
    code = "wrong_actor"


class RemoteUnreachable(ReelmError):
    status = 502
    code = "remote_unreachable"


@dataclass
class Federation:
    """Federation of one deployment: its platform, settings and public URLs."""

    platform: Platform
    settings: Settings
    urls: ap.Urls
    client: httpx.Client = field(repr=False)

    @property
    def domain(self) -> str:
        return urlsplit(self.urls.base).netloc


_ON: dict[tuple[str, str], Federation] = {}
_ON_LOCK = threading.Lock()


def enable(platform: Platform, settings: Settings) -> Federation | None:
    """Turn federation on for `platform` in this process (when `federation_base_url` is set):
    the outbox's federator then finds it from any of the platform's region sessions. Without
    the setting, federation is turned off for the platform's databases."""
    keys = [(name, str(store.url)) for name, store in platform.regions.items()]
    keys.append(("global", str(platform.global_store.engine.url)))
    base = settings.federation_base_url
    with _ON_LOCK:
        current = _ON.get(keys[-1])
        if current is not None and current.platform is platform and base:
            return current
        for key in keys:
            _ON.pop(key, None)
        if not base:
            return None
        fed = Federation(
            platform, settings, ap.Urls(base.rstrip("/")),
            httpx.Client(timeout=10.0, follow_redirects=False,
                         headers={"User-Agent": "reelm (ActivityPub)"}),
        )  # fmt: skip
        for key in keys:
            _ON[key] = fed
    return fed


def federation_of(platform: Platform) -> Federation | None:
    return _ON.get(("global", str(platform.global_store.engine.url)))


def require(platform: Platform) -> Federation:
    fed = federation_of(platform)
    if fed is None:
        raise FederationOff("Federation is off on this deployment (set REELM_FEDERATION_BASE_URL).")
    return fed


def disable(platform: Platform) -> None:
    with _ON_LOCK:
        for key in [k for k, f in _ON.items() if f.platform is platform]:
            fed = _ON.pop(key)
            fed.client.close()


def _session_federation(session: Session) -> Federation | None:
    region = session.info.get("region")
    if region is None:
        return None
    return _ON.get((region, str(session.get_bind().engine.url)))


# --- instances ---------------------------------------------------------------------------------


def domain_of(url: str) -> str:
    return urlsplit(url).netloc.lower()


def instance_allows(fed: Federation, domain: str) -> bool:
    with fed.platform.global_store.session() as g:
        state = g.scalar(select(Instance.state).where(Instance.domain == domain))
    if state == InstanceState.BLOCKED:
        return False
    return fed.settings.federation_mode == "open" or state == InstanceState.ALLOWED


def check_instance(fed: Federation, domain: str) -> None:
    if domain == fed.domain:
        return
    if not instance_allows(fed, domain):
        raise InstanceRefused(f"This server does not federate with {domain}.")


def do_set_instance(platform: Platform, domain: str, state: InstanceState) -> None:
    domain = domain.strip().lower()
    if not domain or "/" in domain or " " in domain:
        raise InvalidInput("Give a domain (host or host:port), not a URL.", code="bad_domain")
    with platform.global_store.transaction() as g:
        row = g.get(Instance, domain)
        if row is None:
            g.add(Instance(domain=domain, state=state))
        else:
            row.state = state


@dataclass(frozen=True)
class InstanceInfo:
    domain: str
    state: str
    actors: int
    followers: int
    videos: int
    last_seen: datetime


def list_instances(platform: Platform) -> list[InstanceInfo]:
    with platform.global_store.session() as g:
        actors = dict(g.execute(select(RemoteActor.domain, func.count()).group_by(RemoteActor.domain)).all())
        followers = dict(
            g.execute(
                select(RemoteActor.domain, func.count())
                .join(RemoteFollower, RemoteFollower.remote_id == RemoteActor.id)
                .group_by(RemoteActor.domain)
            ).all()
        )
        videos = dict(
            g.execute(
                select(RemoteActor.domain, func.count())
                .join(RemoteObject, RemoteObject.actor_id == RemoteActor.id)
                .where(RemoteObject.kind == "video")
                .group_by(RemoteActor.domain)
            ).all()
        )
        rows = list(g.scalars(select(Instance).order_by(Instance.domain)))
    return [
        InstanceInfo(r.domain, r.state, actors.get(r.domain, 0), followers.get(r.domain, 0),
                     videos.get(r.domain, 0), r.last_seen)  # fmt: skip
        for r in rows
    ]


def _seen(g: Session, domain: str) -> None:
    row = g.get(Instance, domain)
    if row is None:
        g.add(Instance(domain=domain, state=InstanceState.KNOWN))
    else:
        row.last_seen = utcnow()


# --- fetching remote documents ------------------------------------------------------------------


def check_fetchable(fed: Federation, url: str) -> None:
    """Refuse URLs federation must not fetch: not https (plain http only with the test-only
    setting), or pointing at loopback/private addresses (request forgery)."""
    parts = urlsplit(url)
    loopback_ok = fed.settings.federation_loopback_http_for_tests
    if parts.scheme != "https" and not (loopback_ok and parts.scheme == "http"):
        raise InvalidInput(f"Federation fetches only https URLs, not {url!r}.", code="bad_url")
    host = parts.hostname or ""
    if loopback_ok:
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as e:
        raise RemoteUnreachable(f"{host}: {e}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved:
            raise InvalidInput(f"{host} resolves to a private address.", code="bad_url")


def fetch_json(fed: Federation, url: str) -> Any:
    check_fetchable(fed, url)
    try:
        r = fed.client.get(url, headers={"Accept": f"{ap.ACTIVITY_JSON}, {ap.LD_JSON}"})
    except httpx.HTTPError as e:
        raise RemoteUnreachable(f"{url}: {e}") from None
    if r.status_code != 200:
        raise RemoteUnreachable(f"{url} answered {r.status_code}")
    if len(r.content) > fed.settings.federation_max_body_bytes * 4:
        raise RemoteUnreachable(f"{url}: document too large")
    try:
        return r.json()
    except ValueError:
        raise RemoteUnreachable(f"{url} did not answer JSON") from None


def _acct(doc: ap.RemoteActorDoc) -> str:
    return f"{doc.preferred_username or 'actor'}@{domain_of(doc.uri)}"


def store_actor(g: Session, doc: ap.RemoteActorDoc, *, local_id: str | None = None) -> RemoteActor:
    """Insert or refresh the cached actor and its Directory entry (state remote)."""
    row = g.scalar(select(RemoteActor).where(RemoteActor.uri == doc.uri))
    acct = _acct(doc)
    if row is None:
        uid = local_id or new_id()
        entry = g.get(DirectoryEntry, uid)
        if entry is None:
            g.add(
                DirectoryEntry(
                    user_id=uid, handle=acct[:30],
                    handle_key="~" + hashlib.sha256(doc.uri.encode()).hexdigest()[:29],
                    home_region=REMOTE_REGION, state=REMOTE,
                )
            )  # fmt: skip
            g.flush()
        row = RemoteActor(id=uid, uri=doc.uri)
        g.add(row)
    row.domain = domain_of(doc.uri)
    row.acct = acct
    row.inbox = doc.inbox
    row.shared_inbox = doc.shared_inbox
    row.key_id = doc.key_id
    row.public_pem = doc.public_pem
    row.display_name = doc.name[:200]
    row.moved_to = doc.moved_to
    row.fetched_at = utcnow()
    _seen(g, row.domain)
    g.flush()
    return row


def remote_actor(fed: Federation, uri: str, *, refresh: bool = False) -> RemoteActor:
    """The cached actor of `uri`, fetched (and cached) when unknown or when `refresh`."""
    with fed.platform.global_store.session() as g:
        row = g.scalar(select(RemoteActor).where(RemoteActor.uri == uri))
    if row is not None and not refresh:
        return row
    doc = ap.parse_actor(fetch_json(fed, uri))
    if doc.uri != uri:
        raise RemoteUnreachable(f"{uri} answered the actor {doc.uri}")
    check_instance(fed, domain_of(doc.uri))
    with fed.platform.global_store.transaction() as g:
        return store_actor(g, doc)


def resolve_account(fed: Federation, account: str) -> RemoteActor:
    """`user@host` (or an actor URL) to its cached actor, through the host's WebFinger."""
    account = account.strip().removeprefix("@").removeprefix("acct:")
    with fed.platform.global_store.session() as g:
        known = g.scalar(select(RemoteActor).where(
            (RemoteActor.acct == account) | (RemoteActor.uri == account)))  # fmt: skip
    if known is not None:
        check_instance(fed, known.domain)
        return known
    if account.startswith(("https://", "http://")):
        check_instance(fed, domain_of(account))
        return remote_actor(fed, account)
    user, _, host = account.partition("@")
    if not user or not host:
        raise InvalidInput("Give a remote account as user@host.", code="bad_account")
    check_instance(fed, host.lower())
    scheme = "http" if fed.settings.federation_loopback_http_for_tests else "https"
    doc = fetch_json(
        fed, f"{scheme}://{host}/.well-known/webfinger?resource=acct:{user}@{host}"
    )
    links = doc.get("links", []) if isinstance(doc, dict) else []
    for link in links:
        if (
            isinstance(link, dict)
            and link.get("rel") == "self"
            and "activity+json" in str(link.get("type", "")) + "activity+json"
            and isinstance(link.get("href"), str)
        ):
            return remote_actor(fed, link["href"])
    raise RemoteUnreachable(f"{account} has no ActivityPub actor")


# --- local actors and their documents -----------------------------------------------------------


def actor_key(platform: Platform, user_id: str) -> ActorKey:
    """The actor's key pair, made at first use."""
    with platform.global_store.session() as g:
        row = g.get(ActorKey, user_id)
    if row is not None:
        return row
    public, private = new_key_pair()
    try:
        with platform.global_store.transaction() as g:
            row = ActorKey(user_id=user_id, public_pem=public, private_pem=private)
            g.add(row)
        return row
    except IntegrityError:
        with platform.global_store.session() as g:
            found = g.get(ActorKey, user_id)
        assert found is not None
        return found


@dataclass(frozen=True)
class LocalActor:
    user_id: str
    handle: str
    region: str
    state: str


def local_actor(platform: Platform, user_id: str) -> LocalActor:
    with platform.global_store.session() as g:
        e = g.get(DirectoryEntry, user_id)
    if e is None or e.state not in (ACTIVE, MOVING):
        raise UserNotFound()
    return LocalActor(e.user_id, e.handle, e.home_region, e.state)


def local_actor_by_handle(platform: Platform, handle: str) -> LocalActor:
    with platform.global_store.session() as g:
        e = g.scalar(select(DirectoryEntry).where(DirectoryEntry.handle_key == handle.lower()))
    if e is None or e.state not in (ACTIVE, MOVING):
        raise UserNotFound(handle)
    return LocalActor(e.user_id, e.handle, e.home_region, e.state)


def webfinger(fed: Federation, resource: str) -> dict[str, Any]:
    res = resource.removeprefix("acct:")
    if resource.startswith(("https://", "http://")):
        user_id = resource.rstrip("/").rsplit("/", 1)[-1]
        actor = local_actor(fed.platform, user_id)
    else:
        handle, _, host = res.partition("@")
        if host.lower() != fed.domain.lower():
            raise NotFound(f"{resource} is not an account of this server.")
        actor = local_actor_by_handle(fed.platform, handle)
    uri = fed.urls.actor(actor.user_id)
    return {
        "subject": f"acct:{actor.handle}@{fed.domain}",
        "aliases": [uri, fed.urls.profile_page(actor.handle)],
        "links": [
            {"rel": "self", "type": ap.ACTIVITY_JSON, "href": uri},
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html",
             "href": fed.urls.profile_page(actor.handle)},
        ],
    }  # fmt: skip


def _profile_record(g: Session, user_id: str) -> PublicProfileRecord:
    """The profile as the PUBLIC record that was egressed: the only input to an actor doc."""
    row = g.get(PublicProfile, user_id)
    if row is None:
        raise UserNotFound()
    return PublicProfileRecord(
        user_id=row.user_id, handle=row.handle, display_name=row.display_name, bio=row.bio,
        avatar_url=row.avatar_url, region=row.region,
    )  # fmt: skip


def is_private_account(platform: Platform, actor: LocalActor) -> bool:
    from reelm.social.service import Person, is_private

    return is_private(platform, Person(actor.user_id, actor.handle, actor.region))


def actor_document(fed: Federation, user_id: str) -> dict[str, Any]:
    actor = local_actor(fed.platform, user_id)
    with fed.platform.global_store.session() as g:
        profile = _profile_record(g, actor.user_id)
    key = actor_key(fed.platform, actor.user_id)
    return ap.actor_document(
        fed.urls, profile, public_pem=key.public_pem,
        private_account=is_private_account(fed.platform, actor),
    )  # fmt: skip


def video_record(g: Session, row: PublishedVideo) -> PublicVideoRecord:
    """A catalog video as the PUBLIC record that put it there."""
    tags = g.execute(select(VideoTag.kind, VideoTag.value).where(VideoTag.video_id == row.id)).all()
    return PublicVideoRecord(
        id=row.id, creator_id=row.creator_id, creator_handle=row.creator_handle,
        region=row.region, caption=row.caption,
        hashtags=[v for k, v in tags if k == "hashtag"],
        mentions=[v for k, v in tags if k == "mention"],
        visibility="followers" if row.visibility == "followers" else "public",
        allow_comments=row.allow_comments, allow_sound_reuse=row.allow_sound_reuse,
        sound_id=row.sound_id, duration_s=row.duration_s, width=row.width, height=row.height,
        published_at=row.published_at, age_restricted=row.age_restricted,
    )  # fmt: skip


def video_object(fed: Federation, video: PublicVideoRecord) -> dict[str, Any]:
    return ap.video_object(fed.urls, video, media_urls(video.id, video.published_at))


def video_document(fed: Federation, video_id: str) -> dict[str, Any]:
    with fed.platform.global_store.session() as g:
        row = g.get(PublishedVideo, video_id)
        if (
            row is None or row.region == REMOTE_REGION or row.visibility != "public"
            or row.age_restricted
        ):  # fmt: skip
            raise NotFound("No such public video here.", code="video_not_found")
        record = video_record(g, row)
    return {"@context": ap.CONTEXT, **video_object(fed, record)}


def create_activity(fed: Federation, video: PublicVideoRecord, *, update: bool = False) -> dict[str, Any]:
    obj = video_object(fed, video)
    kind = "Update" if update else "Create"
    suffix = "/update" if update else "/create"
    return ap.activity(
        kind, id=obj["id"] + suffix, actor=fed.urls.actor(video.creator_id), obj=obj,
        to=obj["to"], cc=obj["cc"], published=video.published_at,
    )  # fmt: skip


def outbox_document(fed: Federation, user_id: str, *, limit: int = 20) -> dict[str, Any]:
    """The actor's public videos, newest first, as Create activities (one page inline)."""
    actor = local_actor(fed.platform, user_id)
    with fed.platform.global_store.session() as g:
        base = select(PublishedVideo).where(
            PublishedVideo.creator_id == actor.user_id, PublishedVideo.visibility == "public",
            PublishedVideo.age_restricted.is_(False),
        )
        total = g.scalar(select(func.count()).select_from(base.subquery())) or 0
        rows = list(g.scalars(base.order_by(PublishedVideo.published_at.desc()).limit(limit)))
        records = [video_record(g, r) for r in rows]
    return {
        "@context": ap.CONTEXT,
        "id": fed.urls.outbox(actor.user_id),
        "type": "OrderedCollection",
        "totalItems": int(total),
        "orderedItems": [create_activity(fed, r) for r in records],
    }


def followers_document(fed: Federation, user_id: str) -> dict[str, Any]:
    """Counts only: who follows whom is not published here."""
    from reelm.social.models import PublicCounts

    actor = local_actor(fed.platform, user_id)
    with fed.platform.global_store.session() as g:
        counts = g.get(PublicCounts, actor.user_id)
    return {
        "@context": ap.CONTEXT, "id": fed.urls.followers(actor.user_id),
        "type": "OrderedCollection", "totalItems": counts.followers if counts else 0,
    }  # fmt: skip


def comment_document(fed: Federation, comment_id: str) -> dict[str, Any]:
    with fed.platform.global_store.session() as g:
        row = g.get(PublicComment, comment_id)
        if row is None or g.get(RemoteObject, comment_id) is not None:
            raise NotFound("No such comment here.", code="comment_not_found")
        record = PublicCommentRecord(
            id=row.id, video_id=row.video_id, author_id=row.author_id,
            author_handle=row.author_handle, parent_id=row.parent_id, text=row.text,
            created_at=row.created_at,
        )  # fmt: skip
        reply_to = object_uri(fed, g, row.parent_id or row.video_id, kind="comment" if row.parent_id else "video")
    return {"@context": ap.CONTEXT, **ap.note_object(fed.urls, record, in_reply_to=reply_to, to=[])}


def object_uri(fed: Federation, g: Session, local_id: str, *, kind: str) -> str:
    remote = g.get(RemoteObject, local_id)
    if remote is not None:
        return remote.uri
    return fed.urls.video(local_id) if kind == "video" else fed.urls.comment(local_id)


def moved_actor_location(platform: Platform, user_id: str) -> str | None:
    """Where a user handed over to another operator now lives (`<their url>/ap/actors/<id>`),
    read from the finished hand-over's journal; None for anyone else."""
    from reelm.carveout.journal import JOURNAL, RUNS
    from reelm.carveout.models import DONE, EXPORT, FINISHED

    with platform.global_store.engine.connect() as c:
        row = c.execute(
            select(RUNS.c.detail)
            .join(JOURNAL, JOURNAL.c.run_id == RUNS.c.id)
            .where(JOURNAL.c.user_id == user_id, JOURNAL.c.step == FINISHED,
                   RUNS.c.kind == EXPORT, RUNS.c.state == DONE)  # fmt: skip
        ).first()
    if row is None:
        return None
    url = json.loads(row[0]).get("recipient_url")
    return f"{str(url).rstrip('/')}/ap/actors/{user_id}" if url else None


def remote_media(platform: Platform, video_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """The media links of remote videos held in the catalog."""
    ids = list(video_ids)
    if not ids:
        return {}
    with platform.global_store.session() as g:
        rows = list(g.scalars(select(RemoteObject).where(RemoteObject.id.in_(ids))))
    return {
        r.id: {k: v for k, v in (("hls", r.hls_url), ("mp4", r.mp4_url), ("poster", r.poster_url),
                                 ("page", r.page_url)) if v}  # fmt: skip
        for r in rows
    }




# --- the federator: deliveries written with the action that causes them -------------------------

FOLLOWER_KINDS = {"video", "video_update", "video_delete", "profile"}


def _federate(session: Session, actor_id: str, record: PublicRecord, hint: str | None) -> bool:
    """Called for every record an action emits (see `Outbox.emit`). Adds the deliveries it
    causes to the action's session; answers whether the record is still emitted as an effect
    (a notification for a remote actor is not: its delivery replaces it)."""
    fed = _session_federation(session)
    if fed is None:
        return hint != REMOTE_REGION
    try:
        return _federate_with(fed, session, actor_id, record, hint)
    except ReelmError:
        raise
    except Exception:
        log.exception("federation: deliveries of a %s by %s not made", type(record).__name__, actor_id)
        raise


def _federate_with(
    fed: Federation, session: Session, actor_id: str, record: PublicRecord, hint: str | None
) -> bool:
    pending = session.info.setdefault("fed_comments", {})
    if isinstance(record, PublicVideoRecord):
        with fed.platform.global_store.session() as g:
            row = g.get(PublishedVideo, record.id)
            federated = row is not None and not row.age_restricted
        if record.age_restricted:
            # other servers cannot keep it from minors: it does not federate (and leaves if it had)
            if federated:
                queue_delivery(fed, session, actor_id, "video_delete", VideoWithdrawal(id=record.id))
        else:
            queue_delivery(fed, session, actor_id, "video_update" if federated else "video", record)
    elif isinstance(record, VideoWithdrawal):
        queue_delivery(fed, session, actor_id, "video_delete", record)
    elif isinstance(record, PublicProfileRecord):
        queue_delivery(fed, session, actor_id, "profile", record)
    elif isinstance(record, PublicCommentRecord):
        pending[record.id] = record
    elif isinstance(record, CommentRemoval):
        with fed.platform.global_store.session() as g:
            remote_video = g.get(RemoteObject, record.video_id)
            target = remote_video.actor_id if remote_video is not None else None
        if target is not None:
            queue_delivery(fed, session, actor_id, "comment_delete", record, target_id=target)
    elif isinstance(record, CountChange) and record.field == CounterKind.LIKE_COUNT and record.delta < 0:
        with fed.platform.global_store.session() as g:
            remote_video = g.get(RemoteObject, record.id)
            target = remote_video.actor_id if remote_video is not None else None
        if target is not None:
            queue_delivery(fed, session, actor_id, "undo_like", record, target_id=target)
    elif isinstance(record, NotificationRecord) and hint == REMOTE_REGION:
        if record.kind == "like":
            queue_delivery(fed, session, actor_id, "like", record, target_id=record.recipient_id)
        elif (
            record.kind in ("comment", "reply")
            and record.comment_id in pending
            and record.comment_id not in session.info.setdefault("fed_sent", set())
        ):
            session.info["fed_sent"].add(record.comment_id)
            queue_delivery(fed, session, actor_id, "comment", pending[record.comment_id],
                       target_id=record.recipient_id)  # fmt: skip
        return False
    return True


def queue_delivery(
    fed: Federation, session: Session, actor_id: str, kind: str, record: PublicRecord,
    *, target_id: str | None = None, extra: dict[str, Any] | None = None,
) -> int:  # fmt: skip
    """Add the deliveries of one activity to `session` (the actor's region): one per remote
    inbox, a shared inbox standing for every follower on its server."""
    inboxes = _inboxes(fed, actor_id, kind, target_id)
    if not inboxes:
        return 0
    activity_id = new_id()
    payload = json.dumps({"kind": type(record).__name__, "record": record.model_dump(mode="json"),
                          **(extra or {})})  # fmt: skip
    session.add_all(
        Delivery(owner_id=actor_id, activity_id=activity_id, kind=kind, record=payload,
                 target_id=target_id, inbox=inbox)  # fmt: skip
        for inbox in inboxes
    )
    return len(inboxes)


def _inboxes(fed: Federation, actor_id: str, kind: str, target_id: str | None) -> list[str]:
    with fed.platform.global_store.session() as g:
        if kind in FOLLOWER_KINDS:
            rows = g.execute(
                select(RemoteActor.domain, func.coalesce(RemoteActor.shared_inbox, RemoteActor.inbox))
                .join(RemoteFollower, RemoteFollower.remote_id == RemoteActor.id)
                .where(RemoteFollower.user_id == actor_id,
                       RemoteFollower.state == FollowStatus.ACTIVE)  # fmt: skip
                .distinct()
            ).all()
        else:
            rows = g.execute(
                select(RemoteActor.domain, RemoteActor.inbox).where(RemoteActor.id == target_id)
            ).all()
        states = dict(g.execute(select(Instance.domain, Instance.state)).all())
    open_mode = fed.settings.federation_mode == "open"
    out = []
    for domain, inbox in rows:
        state = states.get(domain)
        if state == InstanceState.BLOCKED or (not open_mode and state != InstanceState.ALLOWED):
            continue
        out.append(inbox)
    return sorted(set(out))


federate_with(_federate)
