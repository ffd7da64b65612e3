"""A viewer where a video's song is not licensed gets the video muted, with a notice saying why;
the viewer's jurisdiction is read in their own region."""

from __future__ import annotations

from fastapi.testclient import TestClient

from helpers import make_song, make_user, make_video
from reelm.accounts.service import CurrentUser
from reelm.config import Settings
from reelm.media.service import get_public_video
from reelm.residency.store import Platform
from reelm.sounds.service import annotate_sounds


def test_a_regionally_licensed_song_is_muted_where_it_is_not_licensed(
    client: TestClient, platform: Platform, settings: Settings
) -> None:
    hyperloop = make_song(platform, "Hyperloop", "DJ Tamarind", territories="AU,CA,NZ,US")
    creator, region, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    video = make_video(platform, owner_id=creator, region=region, sound_id=hyperloop)
    _, _, in_sg = make_user(platform, settings, handle="mei", jurisdiction="SG")
    _, _, in_ca = make_user(platform, settings, handle="leo", jurisdiction="CA")

    def seen_by(token: str | None) -> dict:  # type: ignore[type-arg]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = client.get(f"/api/v1/videos/{video}", headers=headers)
        assert r.status_code == 200
        return r.json()  # type: ignore[no-any-return]

    sg = seen_by(in_sg)
    assert sg["sound"] == {
        "id": hyperloop,
        "title": "Hyperloop",
        "artist": "DJ Tamarind",
        "cover_url": None,
        "original": False,
        "licensed_here": False,
    }
    assert sg["muted_notice"] == (
        "“Hyperloop” isn't licensed in Singapore, so this video plays without sound."
    )
    ca = seen_by(in_ca)
    assert ca["sound"]["licensed_here"] is True
    assert ca["muted_notice"] is None
    anonymous = seen_by(None)
    assert anonymous["sound"]["licensed_here"] is False
    assert "Sign in to hear it" in anonymous["muted_notice"]


def test_a_worldwide_song_plays_for_everyone_without_reading_any_region(
    client: TestClient, platform: Platform, settings: Settings
) -> None:
    anywhere = make_song(platform, "Anywhere", "A")
    creator, region, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    video = make_video(platform, owner_id=creator, region=region, sound_id=anywhere)
    body = client.get(f"/api/v1/videos/{video}").json()
    assert body["sound"]["licensed_here"] is True
    assert body["muted_notice"] is None
    # A viewer whose region cannot even be opened still gets the answer: nothing was read there.
    stranger = CurrentUser(user_id="0" * 32, handle="nobody", region="nowhere", session_id="s")
    assert get_public_video(platform, video, stranger).sound is not None


def test_a_video_without_a_song_has_no_sound_and_is_never_muted(
    client: TestClient, platform: Platform, settings: Settings
) -> None:
    creator, region, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    video = make_video(platform, owner_id=creator, region=region)
    body = client.get(f"/api/v1/videos/{video}").json()
    assert body["sound"] is None
    assert body["muted_notice"] is None


def test_a_page_of_videos_is_annotated_with_one_read_of_the_viewers_region(
    platform: Platform, settings: Settings
) -> None:
    north = make_song(platform, "North", "A", territories="CA,US")
    anywhere = make_song(platform, "Anywhere", "B")
    creator, region, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    ids = [
        make_video(platform, owner_id=creator, region=region, sound_id=north),
        make_video(platform, owner_id=creator, region=region, sound_id=anywhere),
        make_video(platform, owner_id=creator, region=region),
    ]
    viewer_id, viewer_region, _ = make_user(platform, settings, handle="mei", jurisdiction="SG")
    viewer = CurrentUser(user_id=viewer_id, handle="mei", region=viewer_region, session_id="s")
    videos = [get_public_video(platform, i) for i in ids]
    annotate_sounds(platform, viewer, videos)
    assert [v.sound.licensed_here if v.sound else None for v in videos] == [False, True, None]
    assert [v.muted_notice is not None for v in videos] == [True, False, False]
