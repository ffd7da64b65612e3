"""Blob stores: where a region keeps files. Local folders by default; S3 when deployed wider.

Keys are `<owner_id>/<name>` for protected and per-user files, so the scanner and the carve-out
find every blob of a user without knowing which feature wrote it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from reelm.errors import InvalidInput

KEY = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)+$")


class BlobStore(Protocol):
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def put_file(self, key: str, source: Path) -> None: ...
    def open(self, key: str) -> BinaryIO: ...
    def read_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...
    def keys(self, prefix: str = "") -> Iterator[str]: ...
    def local_path(self, key: str) -> Path | None: ...


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

    def local_path(self, key: str) -> Path | None:
        return self._path(key)


def open_blob_store(spec: str) -> BlobStore:
    """A blob store from a policy's `blob_store` value: a folder path (S3 is documented, not here)."""
    if spec.startswith("s3://"):
        raise InvalidInput(
            f"blob_store {spec!r}: S3 stores are not available in this build; use a folder path",
            code="unsupported_blob_store",
        )
    return LocalBlobStore(Path(spec.removeprefix("file://")))
