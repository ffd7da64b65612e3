"""WebFinger, the actor, outbox and video documents as a remote server fetches them, the page
of known instances, and federation off (every endpoint 404, nothing federated)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from helpers import make_user, make_video
from reelm.config import Settings
from reelm.federation import service as fed_service
from reelm.federation.models import InstanceState
from reelm.media.models import PublishedVideo
from reelm.residency.store import Platform
from reelm.web.app import create_app

BASE = "https://reelm.example"
AP = {"Accept": "application/activity+json"}


@pytest.fixture
def fed_client(platform: Platform, settings: Settings) -> Iterator[TestClient]:
    s = settings.model_copy(update={"federation_base_url": BASE})
    with TestClient(create_app(s, platform=platform)) as c:
        yield c
    fed_service.disable(platform)


def test_webfinger_actor_outbox_and_video_as_a_remote_server_reads_them(
    fed_client: TestClient, platform: Platform, settings: Settings
) -> None:
    ava_id, region, _ = make_user(platform, settings, handle="ava")
    public = make_video(platform, owner_id=ava_id, region=region, caption="public one")
    private = make_video(platform, owner_id=ava_id, region=region, caption="mine", visibility="private")
    r = fed_client.get("/.well-known/webfinger", params={"resource": "acct:ava@reelm.example"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/jrd+json")
    self_link = next(link for link in r.json()["links"] if link["rel"] == "self")
    assert self_link["href"] == f"{BASE}/ap/actors/{ava_id}"
    assert fed_client.get("/.well-known/webfinger",
                          params={"resource": "acct:ava@elsewhere.example"}).status_code == 404  # fmt: skip
    assert fed_client.get("/.well-known/webfinger",
                          params={"resource": "acct:nobody@reelm.example"}).status_code == 404  # fmt: skip

    actor = fed_client.get(f"/ap/actors/{ava_id}", headers=AP)
    assert actor.status_code == 200
    assert actor.headers["content-type"].startswith("application/activity+json")
    doc = actor.json()
    assert doc["preferredUsername"] == "ava"
    assert doc["endpoints"]["sharedInbox"] == f"{BASE}/ap/inbox"
    assert doc["manuallyApprovesFollowers"] is False
    # the actor document holds public profile fields and the key, nothing personal
    assert "ava@example.org" not in actor.text
    assert "2000-01-01" not in actor.text

    outbox = fed_client.get(f"/ap/actors/{ava_id}/outbox", headers=AP).json()
    assert outbox["totalItems"] == 1
    assert outbox["orderedItems"][0]["object"]["id"] == f"{BASE}/ap/videos/{public}"
    assert fed_client.get(f"/ap/videos/{public}", headers=AP).json()["name"] == "public one"
    assert fed_client.get(f"/ap/videos/{private}", headers=AP).status_code == 404
    # an age-restricted video does not federate: other servers could not keep it from minors
    with platform.global_store.transaction() as g:
        row = g.get(PublishedVideo, public)
        assert row is not None
        row.age_restricted = True
    assert fed_client.get(f"/ap/videos/{public}", headers=AP).status_code == 404
    assert fed_client.get(f"/ap/actors/{ava_id}/outbox", headers=AP).json()["totalItems"] == 0


def test_the_instances_page_lists_what_the_operator_decided(
    fed_client: TestClient, platform: Platform
) -> None:
    fed_service.do_set_instance(platform, "peertube.example", InstanceState.ALLOWED)
    fed_service.do_set_instance(platform, "spam.example", InstanceState.BLOCKED)
    r = fed_client.get("/federation")
    assert r.status_code == 200
    assert "allowlist" in r.text
    assert "peertube.example" in r.text
    assert "spam.example" in r.text
    assert "blocked" in r.text


def test_with_federation_off_every_endpoint_answers_404(
    client: TestClient, platform: Platform, settings: Settings
) -> None:
    ava_id, region, _ = make_user(platform, settings, handle="ava")
    video = make_video(platform, owner_id=ava_id, region=region)
    for path in (f"/ap/actors/{ava_id}", f"/ap/videos/{video}", f"/ap/actors/{ava_id}/outbox"):
        assert client.get(path, headers=AP).status_code == 404
    assert client.get("/.well-known/webfinger", params={"resource": "acct:ava@x"}).status_code == 404
    assert client.post("/ap/inbox", content=b"{}").status_code == 404
    assert "Federation is off" in client.get("/federation").text
