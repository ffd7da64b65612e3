"""Handing US, CA, AU and NZ to another operator's deployment (another data folder, other
databases) with a signed, encrypted bundle and a signed receipt; the source deletes only after
the receipt verifies, and public video URLs keep working."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carveout_seed import Seeded
from helpers import row_count
from reelm import migrations
from reelm.audit.checkpoint import Signer
from reelm.carveout.bundle import BundleInvalid, public_text, recipient_key
from reelm.carveout.handover import do_export, do_finish_export, do_import
from reelm.carveout.manifest import compute_manifests
from reelm.carveout.report import ReportInvalid, operator_signer, verify_report
from reelm.carveout.verify import do_check
from reelm.config import Settings
from reelm.residency.models import DirectoryEntry
from reelm.residency.service import do_activate_policy
from reelm.residency.store import Platform, make_engine
from reelm.web.app import create_app

# The recipient runs one region, `us`, by its own operator; everyone it holds lives there.
USDS_POLICY = """
version = "usds-2021"
never_store_in = ["CN"]

[operators.usds]
name = "USDS Joint Venture LLC"
country = "US"

[regions.us]
location = "US"
operator = "usds"
database_url = "sqlite:///{data_dir}/regions/us.db"
blob_store = "{data_dir}/regions/us/blobs"

[assignment]
default_region = "us"
"""
NEW_HOME = "https://usds.example"


@dataclass
class Deployment:
    platform: Platform
    settings: Settings


@pytest.fixture
def recipient(tmp_path: Path, seeded: Seeded) -> Iterator[Deployment]:
    """A second deployment on this machine: its own data folder and databases."""
    from reelm.residency.policy import load_policy

    data = tmp_path / "usds"
    data.mkdir()
    (data / "policy.toml").write_text(USDS_POLICY)
    source_url = seeded.platform.global_store.engine.url
    dropped: list[str] = []
    if source_url.get_backend_name() == "postgresql":
        import pgserver

        server = pgserver.get_server(
            Path(os.environ.get("REELM_TEST_PGDATA", "/tmp/reelm-test-pgdata")), cleanup_mode="stop"
        )
        urls = {}
        for name in ("global", "us"):
            db = f"reelm_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_usds_{name}"
            server.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE);")
            server.psql(f"CREATE DATABASE {db};")
            urls[name] = server.get_uri(db)
            dropped.append(db)
    else:
        urls = {"global": f"sqlite:///{data / 'global.db'}", "us": f"sqlite:///{data / 'us.db'}"}
    settings = Settings(
        data_dir=data, argon2_time_cost=1, argon2_memory_kib=64, argon2_parallelism=1,
        jobs_immediate=True, audit_origin="usds.example/{region}",
    )  # fmt: skip
    migrations.upgrade(make_engine(urls["global"]), "global")
    migrations.upgrade(make_engine(urls["us"]), "region")
    policy = load_policy(data / "policy.toml", data_dir=data)
    platform = Platform(
        policy=policy, global_url=urls["global"], keys_dir=data / "keys",
        region_urls={"us": urls["us"]},
    )  # fmt: skip
    do_activate_policy(platform, policy)
    try:
        yield Deployment(platform, settings)
    finally:
        platform.close()
        for db in dropped:
            server.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE);")


def test_hand_over_to_another_deployment_with_bundle_and_receipt(
    seeded: Seeded, recipient: Deployment, tmp_path: Path
) -> None:
    src, dst = seeded.platform, recipient.platform
    movers = seeded.movers()
    before = compute_manifests(src.regions["sg"], [p.user_id for p in movers])
    bundle = tmp_path / "handover.bundle"
    their_key = public_text(recipient_key(recipient.settings).public_key())
    bundle_id, users = do_export(
        src, seeded.settings, jurisdictions=["US", "CA", "AU", "NZ"], recipient=their_key,
        out=bundle, recipient_url=NEW_HOME,
    )  # fmt: skip
    assert users == 6
    # frozen at the source until the receipt: reads yes, writes no
    ava = seeded.people["ava_us"]
    with TestClient(create_app(seeded.settings, platform=src)) as web:
        auth = {"Authorization": f"Bearer {ava.token}"}
        assert web.get("/api/v1/me", headers=auth).status_code == 200
        assert web.patch("/api/v1/me/profile", headers=auth, json={"bio": "x"}).status_code == 503
    # nothing personal in the clear
    with zipfile.ZipFile(bundle) as z:
        assert sorted(z.namelist()) == ["header.note", "payload.enc"]
        raw = z.read("header.note") + z.read("payload.enc")
    for p in movers:
        assert p.user_id.encode() not in raw
        assert p.handle.encode() not in raw

    source_key = operator_signer(seeded.settings).verifier.vkey()
    # a bundle signed by someone else, or changed on the way, or for someone else: refused
    with pytest.raises(ReportInvalid, match="not signed by"):
        do_import(dst, recipient.settings, bundle=bundle,
                  source_key=Signer.generate("reelm.example/operator").verifier.vkey())  # fmt: skip
    changed = tmp_path / "changed.bundle"
    with zipfile.ZipFile(bundle) as z, zipfile.ZipFile(changed, "w") as out:
        out.writestr("header.note", z.read("header.note"))
        payload = bytearray(z.read("payload.enc"))
        payload[100] ^= 1
        out.writestr("payload.enc", bytes(payload))
    with pytest.raises(BundleInvalid, match="SHA-256 differs"):
        do_import(dst, recipient.settings, bundle=changed, source_key=source_key)
    with pytest.raises(BundleInvalid, match="another recipient"):
        do_import(src, seeded.settings, bundle=bundle, source_key=source_key)
    with dst.global_store.session() as g:
        assert g.scalar(select(DirectoryEntry.user_id).limit(1)) is None  # nothing imported

    receipt = do_import(dst, recipient.settings, bundle=bundle, source_key=source_key)
    # the recipient holds them, byte for byte, in its region us, under its own key
    after = compute_manifests(dst.regions["us"], [p.user_id for p in movers])
    for p in movers:
        assert after[p.user_id] == before[p.user_id], p.handle
    assert do_check(dst, recipient.settings).ok
    with TestClient(create_app(recipient.settings, platform=dst)) as web:
        r = web.post(
            "/api/v1/sessions", json={"handle": "ava_us", "password": "correct horse battery"}
        )
        assert r.status_code == 201, r.text
        assert r.json()["account"]["region"] == "us"
        poster = web.get(f"/media/{ava.videos[0]}/poster.jpg")
        assert poster.status_code == 200
    # the source has deleted nothing yet; a receipt by another key deletes nothing
    assert row_count(src, "sg", "accounts", ava.user_id) == 1
    with pytest.raises(ReportInvalid, match="not signed by"):
        do_finish_export(src, seeded.settings, receipt=receipt,
                         importer_key=Signer.generate("x.example/operator").verifier.vkey())  # fmt: skip
    assert row_count(src, "sg", "accounts", ava.user_id) == 1

    importer_key = operator_signer(recipient.settings).verifier.vkey()
    report = do_finish_export(src, seeded.settings, receipt=receipt, importer_key=importer_key)
    verify_report(report, operator_signer(seeded.settings).verifier)
    for p in seeded.people.values():
        assert row_count(src, "sg", "accounts", p.user_id) == (0 if p.moves else 1)
        assert src.regions["sg"].keys.has_data_key(p.user_id) is not p.moves
    assert do_check(src, seeded.settings).ok
    # public video URLs on the source point to the new home
    with TestClient(create_app(seeded.settings, platform=src)) as web:
        r = web.get(f"/media/{ava.videos[0]}/poster.jpg", follow_redirects=False)
        assert r.status_code == 308
        assert r.headers["location"] == f"{NEW_HOME}/media/{ava.videos[0]}/poster.jpg"
        versioned = f"/media/v/{ava.videos[0]}/{'0' * 16}/poster.jpg"
        r = web.get(versioned, follow_redirects=False)
        assert r.status_code == 308
        assert r.headers["location"] == f"{NEW_HOME}{versioned}"
        r = web.get(f"/api/v1/videos/{ava.videos[0]}", follow_redirects=False)
        assert r.status_code == 308
        gus = seeded.people["gus_sg"]
        assert web.get(f"/media/{gus.videos[0]}/poster.jpg").status_code == 200
    # and each deployment runs on its own: the moved users write at the recipient
    with TestClient(create_app(recipient.settings, platform=dst)) as web:
        r = web.post(
            "/api/v1/sessions", json={"handle": "dan_ca", "password": "correct horse battery"}
        )
        token = r.json()["token"]
        r = web.patch("/api/v1/me/profile", headers={"Authorization": f"Bearer {token}"},
                      json={"bio": "now served by usds"})  # fmt: skip
        assert r.status_code == 200
    with dst.global_store.session() as g:
        assert len(g.scalars(select(DirectoryEntry.user_id)).all()) == 6
    assert bundle_id
