"""Download my data, account deletion with a grace period, and the transparency listing."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from helpers import row_count
from reelm.accounts.rights import do_purge_due_deletions
from reelm.audit.entries import AccountDeletion, DataExport, KeyDestruction, parse_entry
from reelm.audit.log import region_log
from reelm.config import Settings
from reelm.db import utcnow
from reelm.residency.keys import FieldCipher, KeyDestroyed
from reelm.residency.store import Platform

PASSWORD = "correct horse battery"


def sign_up(client: TestClient, handle: str, jurisdiction: str = "US") -> tuple[str, str]:
    r = client.post(
        "/api/v1/accounts",
        json={
            "handle": handle,
            "password": PASSWORD,
            "email": f"{handle}@example.org",
            "birth_date": "2001-03-04",
            "jurisdiction": jurisdiction,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()["token"], r.json()["account"]["id"]


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_kinds(platform: Platform, settings: Settings, region: str) -> list[object]:
    log = region_log(settings, platform.regions[region])
    return [parse_entry(bytes(e.data)) for e in log.entries(0, log.size())]


def test_download_my_data_returns_every_record_decrypted_through_an_expiring_link(
    client: TestClient, platform: Platform, settings: Settings
) -> None:
    token, uid = sign_up(client, "ava")
    client.post("/api/v1/sessions", json={"handle": "ava", "password": PASSWORD})
    platform.regions["us"].blobs.put_bytes(f"{uid}/drafts/clip.mp4", b"raw video bytes")
    r = client.post("/api/v1/me/exports", headers=h(token))
    assert r.status_code == 202
    export_id = r.json()["id"]
    status = client.get(f"/api/v1/me/exports/{export_id}", headers=h(token)).json()
    assert status["state"] == "ready"
    assert status["progress"] == 100
    url = status["download_url"]
    anonymous = TestClient(client.app)
    got = anonymous.get(url)
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(got.content))
    accounts = json.loads(z.read("data/accounts.json"))
    assert accounts[0]["email"] == "ava@example.org"
    assert accounts[0]["birth_date"] == "2001-03-04"
    sessions = json.loads(z.read("data/sessions.json"))
    assert len(sessions) == 2
    assert all("client_address" in s for s in sessions)
    assert z.read("media/drafts/clip.mp4") == b"raw video bytes"
    # the archive is stored in the user's region, encrypted with the user's key
    keys = list(platform.regions["us"].blobs.keys(f"{uid}/exports/"))
    assert len(keys) == 1
    assert b"ava@example.org" not in platform.regions["us"].blobs.read_bytes(keys[0])
    assert list(platform.regions["sg"].blobs.keys()) == []
    events = [e.event for e in audit_kinds(platform, settings, "us") if isinstance(e, DataExport)]
    assert events == ["requested", "ready", "downloaded"]
    # tampered or expired links are refused
    assert anonymous.get(url.replace("sig=", "sig=0")).status_code == 403
    expired = url.split("?")[0] + "?expires=1&sig=" + url.split("sig=")[1]
    assert anonymous.get(expired).status_code == 403


def test_someone_elses_export_is_not_visible(client: TestClient) -> None:
    ava, _ = sign_up(client, "ava")
    mei, _ = sign_up(client, "mei", "SG")
    export_id = client.post("/api/v1/me/exports", headers=h(ava)).json()["id"]
    assert client.get(f"/api/v1/me/exports/{export_id}", headers=h(mei)).status_code == 404


def test_deletion_waits_30_days_can_be_cancelled_then_purges_and_shreds(
    client: TestClient, platform: Platform, settings: Settings, tmp_path: Path
) -> None:
    token, uid = sign_up(client, "ava")
    sign_up(client, "liam", "CA")
    due = client.post("/api/v1/me/deletion", headers=h(token)).json()["deletion_due_at"]
    assert due.startswith(str((utcnow() + timedelta(days=30)).date()))
    assert do_purge_due_deletions(platform, settings) == []
    assert client.delete("/api/v1/me/deletion", headers=h(token)).status_code == 204
    assert client.get("/api/v1/me", headers=h(token)).json()["deletion_due_at"] is None
    client.post("/api/v1/me/deletion", headers=h(token))

    store = platform.regions["us"]
    with store.session() as s:
        email_ct = s.execute(
            text("SELECT email_ct FROM accounts WHERE id = :i"), {"i": uid}
        ).scalar_one()
    backup = None
    if store.dialect.name == "sqlite":
        with store.unchecked_connection(reason="test: read below the hooks") as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        backup = tmp_path / "before-purge.db"
        shutil.copy(store.url.database or "", backup)

    purged = do_purge_due_deletions(platform, settings, now=utcnow() + timedelta(days=31))
    assert purged == [uid]
    assert row_count(platform, "us", "accounts", uid) == 0
    assert row_count(platform, "us", "sessions", uid) == 0
    assert row_count(platform, "us", "accounts") == 1  # liam stays
    assert client.get("/api/v1/users/ava").status_code == 404
    assert client.get("/api/v1/me", headers=h(token)).status_code == 401
    try:
        FieldCipher(store.keys, uid).decrypt("email", bytes(email_ct))
        raise AssertionError("the destroyed key still decrypts")
    except KeyDestroyed:
        pass
    if backup is not None:
        with create_engine(f"sqlite:///{backup}").connect() as conn:
            old = conn.execute(
                text("SELECT email_ct FROM accounts WHERE id = :i"), {"i": uid}
            ).scalar_one()
        assert bytes(old) == bytes(
            email_ct
        )  # the copy still has the ciphertext, but no key opens it
    entries = audit_kinds(platform, settings, "us")
    assert [e.event for e in entries if isinstance(e, AccountDeletion)] == [
        "scheduled",
        "cancelled",
        "scheduled",
        "completed",
    ]
    assert [e.reason for e in entries if isinstance(e, KeyDestruction)] == ["account_deletion"]
    # the handle is free again
    assert sign_up(client, "ava")[1] != uid


def test_transparency_names_region_operator_and_country(client: TestClient) -> None:
    us, _ = sign_up(client, "ava")
    sg, _ = sign_up(client, "amelie", "DE")
    t = client.get("/api/v1/me/transparency", headers=h(us)).json()
    assert t["region"] == {
        "region": "us",
        "operator": "USDS Joint Venture LLC",
        "operator_country": "United States",
        "location": "United States",
    }
    assert {c["category"] for c in t["categories"]} >= {
        "Account",
        "Sessions and devices",
        "Activity",
    }
    assert all(c["why"] for c in t["categories"])
    assert t["never_stored_in"] == ["China"]
    t2 = client.get("/api/v1/me/transparency", headers=h(sg)).json()
    assert t2["region"]["location"] == "Singapore"


def test_transparency_page_for_a_signed_in_user(client: TestClient) -> None:
    sign_up(client, "ava")  # the client keeps the session cookie
    page = client.get("/transparency")
    assert page.status_code == 200
    assert "USDS Joint Venture LLC" in page.text
    assert "region\n     <strong>us</strong>" in page.text or "<strong>us</strong>" in page.text
    assert "Sessions and devices" in page.text
    assert "China" in page.text
