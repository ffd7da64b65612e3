"""The hand-over bundle's format: the recipient's key, the encryption, rows as typed JSON, and
which PublicCatalog rows travel with a user.

A bundle is a ZIP of two members:
- `header.note`: a signed note (the source operator's Ed25519 key) whose JSON names the bundle,
  the recipient's X25519 public key, an ephemeral X25519 public key, the number of users, the
  Merkle root over their manifests (`manifest.run_root`) and the SHA-256 of the encrypted
  payload. Nothing personal: no user ids, no jurisdiction per user.
- `payload.enc`: the payload ZIP (`users.jsonl`: per user the Directory entry, jurisdiction, data
  key, region rows per table with typed values, blob list, PublicCatalog rows, manifest root;
  `blobs/<key>`: the files), encrypted to the recipient: X25519(ephemeral, recipient) →
  HKDF-SHA256 → AES-256-GCM over 1 MiB chunks, each sealed with its index and whether it is the
  last, under the bundle id as associated data.
"""

from __future__ import annotations

import base64
import os
import zipfile
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Table, select

from reelm.audit.checkpoint import Verifier
from reelm.carveout.manifest import OWNERS_PER_QUERY, kind_of
from reelm.carveout.report import BUNDLE_FORMAT, ReportInvalid, open_document
from reelm.config import Settings
from reelm.db import GlobalModel
from reelm.errors import InvalidInput
from reelm.sql import chunks

RECIPIENT_KEY_FILE = "handover-x25519.key"
PUBLIC_PREFIX = "reelm-x25519:"
CHUNK = 1 << 20


class BundleInvalid(ReportInvalid):
    """A bundle failed verification or decryption; nothing was imported."""


# --- keys -----------------------------------------------------------------------------------


def recipient_key(settings: Settings) -> X25519PrivateKey:
    """This deployment's X25519 key for receiving bundles (created at first use, mode 0600)."""
    path = settings.data_dir / "keys" / RECIPIENT_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = X25519PrivateKey.generate().private_bytes_raw()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(raw).decode() + "\n")
    return X25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text().strip()))


def public_text(key: X25519PublicKey) -> str:
    return PUBLIC_PREFIX + base64.b64encode(key.public_bytes_raw()).decode()


def parse_public(text: str) -> X25519PublicKey:
    text = text.strip()
    if not text.startswith(PUBLIC_PREFIX):
        raise InvalidInput(f"a recipient key looks like {PUBLIC_PREFIX}<base64>", code="bad_key")
    try:
        return X25519PublicKey.from_public_bytes(base64.b64decode(text[len(PUBLIC_PREFIX) :]))
    except ValueError as exc:
        raise InvalidInput(f"not an X25519 public key: {exc}", code="bad_key") from None


def bundle_aead(shared: bytes, ephemeral: bytes, recipient: bytes, bundle_id: str) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=ephemeral + recipient,
        info=b"reelm-carveout-bundle/v1 " + bundle_id.encode(),
    ).derive(shared)
    return AESGCM(key)


def _nonce(index: int) -> bytes:
    return b"\x00\x00\x00\x00" + index.to_bytes(8, "big")


def _chunk_aad(bundle_id: str, index: int, last: bool) -> bytes:
    return f"{bundle_id}|{index}|{int(last)}".encode()


def encrypt_file(aead: AESGCM, bundle_id: str, source: Path, target: Path) -> None:
    size = source.stat().st_size
    count = max(1, -(-size // CHUNK))
    with source.open("rb") as src, target.open("wb") as dst:
        for i in range(count):
            sealed = aead.encrypt(
                _nonce(i), src.read(CHUNK), _chunk_aad(bundle_id, i, i == count - 1)
            )
            dst.write(len(sealed).to_bytes(4, "big") + sealed)


def decrypt_file(aead: AESGCM, bundle_id: str, source: Path, target: Path) -> None:
    with source.open("rb") as src, target.open("wb") as dst:
        i = 0
        while True:
            head = src.read(4)
            if len(head) != 4:
                raise BundleInvalid("the payload is truncated")
            sealed = src.read(int.from_bytes(head, "big"))
            last = src.peek(1)[:1] == b""
            try:
                dst.write(aead.decrypt(_nonce(i), sealed, _chunk_aad(bundle_id, i, last)))
            except InvalidTag:
                raise BundleInvalid(
                    "the payload does not decrypt with this deployment's recipient key "
                    "(another recipient, or changed bytes)"
                ) from None
            if last:
                return
            i += 1


# --- typed JSON for rows ----------------------------------------------------------------------


def _to_json(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _from_json(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "bytes":
        return base64.b64decode(value)
    if kind in ("timestamptz", "timestamp"):
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "float":
        return float(value)
    return value


def rows_out(table: Table, rows: Sequence[Any]) -> list[dict[str, Any]]:
    kinds = {c.name: kind_of(c) for c in table.columns}
    return [{k: _to_json(kinds[k], v) for k, v in r._mapping.items()} for r in rows]


def rows_in(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kinds = {c.name: kind_of(c) for c in table.columns}
    return [{k: _from_json(kinds[k], v) for k, v in r.items() if k in kinds} for r in rows]


def catalog_tables() -> list[tuple[Table, list[tuple[str, str, str]]]]:
    """Global tables holding a user's public data (a foreign key to the Directory's user id, or
    to such a table), parents first, with their foreign keys (column, table, column)."""
    linked = {"directory"}
    out = []
    for table in GlobalModel.metadata.sorted_tables:
        if table.name in ("directory",) or table.name.startswith("carveout_"):
            continue
        fks = [(fk.parent.name, fk.column.table.name, fk.column.name) for fk in table.foreign_keys]
        if fks and all(t in linked for _c, t, _k in fks):
            out.append((table, fks))
            linked.add(table.name)
    return out


def catalog_rows(g: Any, users: set[str]) -> dict[str, list[Any]]:
    """The users' PublicCatalog rows whose every link points at them or their rows."""
    keys: dict[tuple[str, str], set[Any]] = {("directory", "user_id"): set(users)}
    out: dict[str, list[Any]] = {}
    for table, fks in catalog_tables():
        first_col, first_table, first_key = fks[0]
        wanted = sorted(keys.get((first_table, first_key), set()))
        rows = []
        for chunk in chunks(wanted, OWNERS_PER_QUERY):
            rows += list(g.execute(select(table).where(table.c[first_col].in_(chunk))))
        rows = [
            r
            for r in rows
            if all(
                getattr(r, col) is None or getattr(r, col) in keys.get((t, k), set())
                for col, t, k in fks
            )
        ]
        out[table.name] = rows
        for col in table.columns:
            keys[(table.name, col.name)] = {getattr(r, col.name) for r in rows}
    return out


def primary_key(table: Table, row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, c.name) for c in table.primary_key.columns)


def catalog_owner(catalog: dict[str, list[Any]]) -> dict[tuple[str, tuple[Any, ...]], str]:
    """Which user each catalog row belongs to: through its first link, to the Directory or to
    a row already attributed."""
    owner: dict[tuple[str, tuple[Any, ...]], str] = {}
    by_key: dict[tuple[str, str, Any], str] = {}
    for table, fks in catalog_tables():
        col, parent, key = fks[0]
        for row in catalog.get(table.name, []):
            link = getattr(row, col)
            who = link if parent == "directory" else by_key.get((parent, key, link))
            if who is None:
                continue
            owner[(table.name, primary_key(table, row))] = who
            for c in table.columns:
                by_key[(table.name, c.name, getattr(row, c.name))] = who
    return owner


def read_bundle(bundle: Path, source: Verifier) -> tuple[dict[str, Any], str]:
    """The verified header of a bundle (signature by `source`) and its note text."""
    try:
        with zipfile.ZipFile(bundle) as z:
            note = z.read("header.note").decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise BundleInvalid(f"{bundle} is not a carve-out bundle: {exc}") from exc
    header = open_document(note, BUNDLE_FORMAT, source)
    if header.get("source") != source.vkey():
        raise BundleInvalid("the bundle names another source key than the one that signed it")
    return header, note
