"""Blob stores: where a region keeps files. Local folders by default; S3 when deployed wider.

Keys are `<owner_id>/<name>` for protected and per-user files, so the scanner and the carve-out
find every blob of a user without knowing which feature wrote it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from reelm.errors import InvalidInput

KEY = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)+$")
BLOCK = 256 * 1024


@dataclass(frozen=True)
class BlobStat:
    size: int
    tag: str  # changes whenever the blob's bytes do: an HTTP validator's raw material


class BlobStore(Protocol):
    """Where a region's files are, with no promise that they are files on this machine: readers
    stream (`open`, `read_range`), and code that needs a real file (a probe, a transcode) asks
    for `staged`. A missing key raises FileNotFoundError from every read."""

    def put_bytes(self, key: str, data: bytes) -> None: ...
    def put_file(self, key: str, source: Path) -> None: ...
    def open(self, key: str) -> BinaryIO: ...
    def read_bytes(self, key: str) -> bytes: ...
    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes `start` to `end` inclusive (as in an HTTP Range), in blocks."""
        ...

    def stat(self, key: str) -> BlobStat | None: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...
    def keys(self, prefix: str = "") -> Iterator[str]: ...
    def staged(self, key: str) -> AbstractContextManager[Path]:
        """The blob as a local file for the length of the block, to read and not to change: the
        file itself in a folder store, a copy in the region's work folder otherwise."""
        ...


def blob_digest(blobs: BlobStore, key: str) -> tuple[int, str]:
    """The size and sha256 (hex) of a blob, streamed from wherever the store keeps it."""
    digest, size = hashlib.sha256(), 0
    with blobs.open(key) as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def check_key(key: str) -> str:
    if not KEY.match(key) or ".." in key.split("/"):
        raise InvalidInput(f"invalid blob key {key!r}", code="invalid_blob_key")
    return key


class LocalBlobStore:
    """One folder per region. Writes are atomic (temp file + rename), so a crash never leaves
    a half-written blob under its final name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _atomic_target(self, key: str) -> tuple[Path, int, str]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        return path, fd, tmp

    def put_bytes(self, key: str, data: bytes) -> None:
        path, fd, tmp = self._atomic_target(key)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def put_file(self, key: str, source: Path) -> None:
        path, fd, tmp = self._atomic_target(key)
        with os.fdopen(fd, "wb") as f, source.open("rb") as src:
            shutil.copyfileobj(src, f, 1024 * 1024)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        with self._path(key).open("rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                block = f.read(min(BLOCK, left))
                if not block:
                    return
                left -= len(block)
                yield block

    def stat(self, key: str) -> BlobStat | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        return BlobStat(st.st_size, f"{st.st_size:x}-{st.st_mtime_ns:x}")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return
        for p in sorted(base.rglob("*")):
            if p.is_file() and not p.name.startswith(".tmp-"):
                yield p.relative_to(self.root).as_posix()

    @contextmanager
    def staged(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        yield path


def open_blob_store(spec: str) -> BlobStore:
    """A blob store from a policy's `blob_store` value: a folder path (S3 is documented, not here)."""
    if spec.startswith("s3://"):
        raise InvalidInput(
            f"blob_store {spec!r}: S3 stores are not available in this build; use a folder path",
            code="unsupported_blob_store",
        )
    return LocalBlobStore(Path(spec.removeprefix("file://")))
