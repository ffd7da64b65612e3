"""Per-user data keys, wrapped by the region's key-encryption key: encryption at rest that can be
shredded.

Each user has one AES-256-GCM data key. It is stored only wrapped (AES-256-GCM under the region's
KEK, bound to the user id and region as associated data) in the region's key store, which is kept
apart from the region database and its backups. Destroying the wrapped key (and overwriting its
bytes) makes every ciphertext of that user unreadable everywhere: the live database, replicas and
any earlier copy or backup of it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reelm.errors import ReelmError
from reelm.sql import chunks, qmarks

NONCE = 12
CACHE_SECONDS = 30.0
_BATCH = 500  # owners per statement in the batch methods (far below SQLite's variable limit)
VERSION = b"\x01"


class KeyDestroyed(ReelmError):
    """The user's data key no longer exists: their encrypted data is unreadable, by design."""

    status = 410
    code = "key_destroyed"


class KeyRing(Protocol):
    """A region's key ring. `LocalKeyRing` keeps keys in files; a KMS implementation wraps data
    keys with a KMS key (see docs/keys.md) and stores the wrapped keys the same way."""

    region: str

    def ensure_data_key(self, owner_id: str) -> bytes: ...
    def data_key(self, owner_id: str) -> bytes: ...
    def has_data_key(self, owner_id: str) -> bool: ...
    def put_data_key(self, owner_id: str, key: bytes) -> None: ...
    def destroy_data_key(self, owner_id: str) -> bool: ...
    def owners(self) -> Iterator[str]: ...

    # batches, for a carve-out moving thousands of users at once
    def data_keys(self, owner_ids: Sequence[str]) -> dict[str, bytes]: ...
    def put_data_keys(self, keys: Mapping[str, bytes]) -> None: ...
    def destroy_data_keys(self, owner_ids: Sequence[str]) -> set[str]: ...


class LocalKeyRing:
    """KEK in `<dir>/kek.key` (mode 0600, created on first use); wrapped data keys in
    `<dir>/user-keys.db`, a SQLite file with secure_delete so a destroyed key's bytes are
    overwritten in the file, and rollback journaling (no WAL copy of the page lingers)."""

    def __init__(self, directory: Path, *, region: str) -> None:
        self.region = region
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._kek = AESGCM(self._load_or_create_kek(directory / "kek.key"))
        self._db_path = directory / "user-keys.db"
        self._local = threading.local()
        self._cache: dict[str, tuple[bytes, float]] = {}
        self._cache_lock = threading.Lock()
        with self._conn() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS user_keys (owner_id TEXT PRIMARY KEY, wrapped BLOB NOT NULL)"
            )

    @staticmethod
    def _load_or_create_kek(path: Path) -> bytes:
        """The region's KEK. Processes that start together (the web process and its region
        workers) may all find no KEK: each writes a candidate to a file of its own and links it
        into place, which succeeds for exactly one; the others read the winner's. The KEK is
        never visible half-written."""
        if not path.exists():
            key = AESGCM.generate_key(bit_length=256)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(base64.b64encode(key).decode() + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                with contextlib.suppress(FileExistsError):  # another process won: use its KEK
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        kek = base64.b64decode(path.read_text().strip())
        if len(kek) != 32:
            raise ReelmError(
                f"The key-encryption key {path} is damaged ({len(kek)} bytes, not 32).",
                code="bad_kek",
                status=500,
            )
        return kek

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        """One connection per thread, kept open; each use is one transaction."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._db_path, timeout=30)
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA journal_mode=DELETE")
            self._local.conn = conn
        with conn:
            yield conn

    def _aad(self, owner_id: str) -> bytes:
        return f"reelm-dek|{self.region}|{owner_id}".encode()

    def _wrap(self, owner_id: str, key: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return VERSION + nonce + self._kek.encrypt(nonce, key, self._aad(owner_id))

    def _unwrap(self, owner_id: str, wrapped: bytes) -> bytes:
        if wrapped[:1] != VERSION:
            raise ReelmError("unknown wrapped-key version", code="bad_wrapped_key", status=500)
        return self._kek.decrypt(wrapped[1 : 1 + NONCE], wrapped[1 + NONCE :], self._aad(owner_id))

    def ensure_data_key(self, owner_id: str) -> bytes:
        """The user's data key, created if they have none yet.

        Never replaces a stored key: anything encrypted with a key that is later overwritten is
        lost. Callers in any number of processes and threads asking at once all get the one key
        that the first insert stored (INSERT … ON CONFLICT DO NOTHING, then the stored row is
        read back in the same transaction)."""
        candidate = AESGCM.generate_key(bit_length=256)
        with self._conn() as c:
            c.execute(
                "INSERT INTO user_keys (owner_id, wrapped) VALUES (?, ?) "
                "ON CONFLICT(owner_id) DO NOTHING",
                (owner_id, self._wrap(owner_id, candidate)),
            )
            (wrapped,) = c.execute(
                "SELECT wrapped FROM user_keys WHERE owner_id = ?", (owner_id,)
            ).fetchone()
        key = self._unwrap(owner_id, wrapped)
        with self._cache_lock:
            self._cache[owner_id] = (key, time.monotonic() + CACHE_SECONDS)
        return key

    def put_data_key(self, owner_id: str, key: bytes) -> None:
        """Store a data key re-wrapped here from another region's ring (a carve-out copies the
        same key bytes, so a copy another process has cached stays right). A new user's key
        comes from `ensure_data_key`, which never overwrites."""
        if len(key) != 32:
            raise ValueError("a data key is 32 bytes")
        with self._cache_lock:
            self._cache.pop(owner_id, None)
        with self._conn() as c:
            c.execute(
                "INSERT INTO user_keys (owner_id, wrapped) VALUES (?, ?) "
                "ON CONFLICT(owner_id) DO UPDATE SET wrapped = excluded.wrapped",
                (owner_id, self._wrap(owner_id, key)),
            )

    def data_key(self, owner_id: str) -> bytes:
        """The unwrapped key. Kept in memory for CACHE_SECONDS: a key destroyed by another
        process stops working here within that time (in this process, at once)."""
        now = time.monotonic()
        with self._cache_lock:
            hit = self._cache.get(owner_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        key = self._read_key(owner_id)
        with self._cache_lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[owner_id] = (key, now + CACHE_SECONDS)
        return key

    def _read_key(self, owner_id: str) -> bytes:
        with self._conn() as c:
            row = c.execute(
                "SELECT wrapped FROM user_keys WHERE owner_id = ?", (owner_id,)
            ).fetchone()
        if row is None:
            raise KeyDestroyed(
                f"No data key for user {owner_id} in region {self.region!r}: "
                "their encrypted data cannot be read."
            )
        return self._unwrap(owner_id, row[0])

    def has_data_key(self, owner_id: str) -> bool:
        with self._conn() as c:
            row = c.execute("SELECT 1 FROM user_keys WHERE owner_id = ?", (owner_id,)).fetchone()
        return row is not None

    def destroy_data_key(self, owner_id: str) -> bool:
        """Shred a user's key; returns whether there was one."""
        with self._cache_lock:
            self._cache.pop(owner_id, None)
        with self._conn() as c:
            n = c.execute("DELETE FROM user_keys WHERE owner_id = ?", (owner_id,)).rowcount
        return n > 0

    def owners(self) -> Iterator[str]:
        with self._conn() as c:
            rows = c.execute("SELECT owner_id FROM user_keys ORDER BY owner_id").fetchall()
        for (owner,) in rows:
            yield owner

    def data_keys(self, owner_ids: Sequence[str]) -> dict[str, bytes]:
        """The unwrapped keys of those of `owner_ids` that have one (no cache: a carve-out reads
        each key once)."""
        out: dict[str, bytes] = {}
        with self._conn() as c:
            for chunk in chunks(owner_ids, _BATCH):
                marks = qmarks(len(chunk))
                for owner, wrapped in c.execute(
                    f"SELECT owner_id, wrapped FROM user_keys WHERE owner_id IN ({marks})", chunk
                ):
                    out[owner] = self._unwrap(owner, wrapped)
        return out

    def put_data_keys(self, keys: Mapping[str, bytes]) -> None:
        """Store many keys (re-wrapped under this region's KEK) in one transaction."""
        if any(len(k) != 32 for k in keys.values()):
            raise ValueError("a data key is 32 bytes")
        with self._cache_lock:
            for owner in keys:
                self._cache.pop(owner, None)
        with self._conn() as c:
            c.executemany(
                "INSERT INTO user_keys (owner_id, wrapped) VALUES (?, ?) "
                "ON CONFLICT(owner_id) DO UPDATE SET wrapped = excluded.wrapped",
                [(owner, self._wrap(owner, key)) for owner, key in keys.items()],
            )

    def destroy_data_keys(self, owner_ids: Sequence[str]) -> set[str]:
        """Shred many keys in one transaction; returns the owners that had one."""
        with self._cache_lock:
            for owner in owner_ids:
                self._cache.pop(owner, None)
        had: set[str] = set()
        with self._conn() as c:
            for chunk in chunks(owner_ids, _BATCH):
                marks = qmarks(len(chunk))
                had.update(
                    owner
                    for (owner,) in c.execute(
                        f"SELECT owner_id FROM user_keys WHERE owner_id IN ({marks})", chunk
                    )
                )
                c.execute(f"DELETE FROM user_keys WHERE owner_id IN ({marks})", chunk)
        return had


CHUNK = 4 * 1024 * 1024
STREAM_MAGIC = b"RLMS1"


class FieldCipher:
    """Encrypts one user's sensitive fields with their data key; the field name and owner are
    associated data, so a ciphertext cannot be moved to another field or user unnoticed."""

    def __init__(self, keys: KeyRing, owner_id: str) -> None:
        self.owner_id = owner_id
        self._aead = AESGCM(keys.data_key(owner_id))

    def _aad(self, field: str) -> bytes:
        return f"reelm-field|{self.owner_id}|{field}".encode()

    def encrypt(self, field: str, value: str) -> bytes:
        nonce = os.urandom(NONCE)
        return VERSION + nonce + self._aead.encrypt(nonce, value.encode(), self._aad(field))

    def decrypt(self, field: str, blob: bytes) -> str:
        try:
            return self._aead.decrypt(
                blob[1 : 1 + NONCE], blob[1 + NONCE :], self._aad(field)
            ).decode()
        except InvalidTag:
            raise ReelmError(
                f"The stored {field} of user {self.owner_id} failed its integrity check.",
                code="ciphertext_tampered",
                status=500,
            ) from None

    def encrypt_bytes(self, name: str, data: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return VERSION + nonce + self._aead.encrypt(nonce, data, self._aad(name))

    def decrypt_bytes(self, name: str, blob: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[1 : 1 + NONCE], blob[1 + NONCE :], self._aad(name))
        except InvalidTag:
            raise ReelmError(
                f"The stored {name} of user {self.owner_id} failed its integrity check.",
                code="ciphertext_tampered",
                status=500,
            ) from None

    def encrypt_file(self, name: str, source: Path, target: Path) -> None:
        """Encrypt a file of any size in 4 MiB chunks (each sealed with its index and whether it
        is the last, so chunks cannot be reordered, dropped or truncated unnoticed)."""
        size = source.stat().st_size
        count = max(1, -(-size // CHUNK))
        with source.open("rb") as src, target.open("wb") as dst:
            dst.write(STREAM_MAGIC)
            for i in range(count):
                chunk = src.read(CHUNK)
                nonce = os.urandom(NONCE)
                sealed = self._aead.encrypt(nonce, chunk, self._chunk_aad(name, i, i == count - 1))
                dst.write(len(sealed).to_bytes(4, "big") + nonce + sealed)

    def decrypt_file(self, name: str, source: Path, target: Path) -> None:
        with source.open("rb") as src, target.open("wb") as dst:
            if src.read(len(STREAM_MAGIC)) != STREAM_MAGIC:
                raise ReelmError(
                    f"{name} is not an encrypted stream", code="ciphertext_tampered", status=500
                )
            self._decrypt_chunks(name, src, dst)

    def decrypt_blob_to(self, name: str, src: IO[bytes], dst: IO[bytes]) -> None:
        """Decrypt a blob of either format (a stream from `encrypt_file`, or a sealed value from
        `encrypt_bytes`), told apart by its first bytes, into `dst`. For readers that do not
        know which writer made a blob (the export walks every blob of a user)."""
        head = src.read(len(STREAM_MAGIC))
        if head == STREAM_MAGIC:
            self._decrypt_chunks(name, src, dst)
        elif head[:1] == VERSION:
            dst.write(self.decrypt_bytes(name, head + src.read()))
        else:
            raise ReelmError(
                f"The stored {name} of user {self.owner_id} is not in a format reelm wrote.",
                code="ciphertext_tampered",
                status=500,
            )

    def _decrypt_chunks(self, name: str, src: IO[bytes], dst: IO[bytes]) -> None:
        """The chunks after the magic. The last chunk is the one no header follows (read
        ahead, so any readable stream works, not only one that can peek)."""
        head = src.read(4 + NONCE)
        i = 0
        while True:
            length = int.from_bytes(head[:4], "big") if len(head) == 4 + NONCE else -1
            sealed = src.read(length) if length > 0 else b""
            if length <= 0 or len(sealed) != length:
                raise ReelmError(f"{name} is truncated", code="ciphertext_tampered", status=500)
            following = src.read(4 + NONCE)
            last = following == b""
            try:
                plain = self._aead.decrypt(head[4:], sealed, self._chunk_aad(name, i, last))
            except InvalidTag:
                raise ReelmError(
                    f"The stored {name} of user {self.owner_id} failed its integrity check.",
                    code="ciphertext_tampered",
                    status=500,
                ) from None
            dst.write(plain)
            if last:
                return
            head = following
            i += 1

    def _chunk_aad(self, name: str, index: int, last: bool) -> bytes:
        return f"reelm-stream|{self.owner_id}|{name}|{index}|{int(last)}".encode()
