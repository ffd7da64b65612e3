"""Encryption at rest with per-user keys, and crypto-shredding that reaches earlier copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from helpers import make_user
from reelm.accounts.models import Account, LoginSession
from reelm.config import Settings
from reelm.errors import ReelmError
from reelm.residency.keys import KeyDestroyed, LocalKeyRing
from reelm.residency.store import Platform


def raw_bytes(platform: Platform, region: str) -> bytes:
    """Everything the region database holds, as an attacker with the file (or a dump) sees it."""
    out = b""
    with platform.regions[region].unchecked_connection(reason="test: read below the hooks") as conn:
        for table in ("accounts", "sessions"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                out += repr(tuple(row)).encode()
    return out


def test_email_birth_date_and_client_address_are_ciphertext_at_rest(
    platform: Platform, settings: Settings
) -> None:
    uid, region, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    dump = raw_bytes(platform, region)
    assert b"ava@example.org" not in dump
    assert b"2000-01-01" not in dump
    store = platform.regions[region]
    with store.session() as s:
        account = s.get(Account, uid)
        assert account is not None
        assert store.cipher(uid).decrypt("email", account.email_ct) == "ava@example.org"


def test_data_keys_live_outside_the_region_database(platform: Platform, settings: Settings) -> None:
    uid, region, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    keyring = platform.regions[region].keys
    assert isinstance(keyring, LocalKeyRing)
    assert keyring.has_data_key(uid)
    assert keyring.directory == settings.data_dir / "keys" / region
    with platform.regions[region].unchecked_connection(reason="test: read below the hooks") as conn:
        tables = {
            t
            for (t,) in conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                    if conn.dialect.name == "postgresql"
                    else "SELECT name FROM sqlite_master WHERE type='table'"
                )
            )
        }
    assert not any("key" in t for t in tables)


def test_destroyed_key_makes_an_earlier_database_copy_unreadable(
    platform: Platform, settings: Settings, tmp_path: Path
) -> None:
    uid, region, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    store = platform.regions[region]
    # The "backup": a copy of every account and session row, ciphertexts included, taken before.
    with store.session() as s:
        account = s.get(Account, uid)
        assert account is not None
        backup = {
            "email": account.email_ct,
            "birth_date": account.birth_date_ct,
            **{
                f"client_address#{i}": r.client_address_ct
                for i, r in enumerate(
                    s.scalars(select(LoginSession).where(LoginSession.owner_id == uid))
                )
            },
        }
    if store.dialect.name == "sqlite":
        db_file = Path(store.url.database or "")
        with store.unchecked_connection(reason="test: read below the hooks") as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy(db_file, tmp_path / "backup.db")

    assert store.keys.destroy_data_key(uid) is True

    with pytest.raises(KeyDestroyed):
        store.cipher(uid)
    keyfile = (store.keys.directory / "user-keys.db").read_bytes()  # type: ignore[attr-defined]
    assert uid.encode() not in keyfile  # secure_delete overwrote the row
    if store.dialect.name == "sqlite":
        copy = create_engine(f"sqlite:///{tmp_path / 'backup.db'}")
        with copy.connect() as conn:
            email_ct = conn.execute(
                text("SELECT email_ct FROM accounts WHERE id = :i"), {"i": uid}
            ).scalar_one()
        assert email_ct == backup["email"]
    # Even with the region's KEK file and a fresh key ring over the same folder, nothing decrypts.
    again = LocalKeyRing(store.keys.directory, region=region)  # type: ignore[attr-defined]
    with pytest.raises(KeyDestroyed):
        again.data_key(uid)
    assert len(backup) >= 3


def test_tampered_ciphertext_is_detected(platform: Platform, settings: Settings) -> None:
    uid, region, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    store = platform.regions[region]
    with store.session() as s:
        account = s.get(Account, uid)
        assert account is not None
        flipped = bytearray(account.email_ct)
        flipped[-1] ^= 1
        with pytest.raises(ReelmError, match="integrity"):
            store.cipher(uid).decrypt("email", bytes(flipped))
        # a ciphertext moved to another field does not decrypt either
        with pytest.raises(ReelmError, match="integrity"):
            store.cipher(uid).decrypt("birth_date", account.email_ct)


def test_one_users_key_does_not_open_another_users_fields(
    platform: Platform, settings: Settings
) -> None:
    a, region, _ = make_user(platform, settings, handle="ava", jurisdiction="US")
    b, _, _ = make_user(platform, settings, handle="liam", jurisdiction="CA")
    store = platform.regions[region]
    with store.session() as s:
        account = s.get(Account, a)
        assert account is not None
        with pytest.raises(ReelmError, match="integrity"):
            store.cipher(b).decrypt("email", account.email_ct)
