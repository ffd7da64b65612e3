"""The auditor's check of a region's log, trusting nothing but the log's public key.

From the last checkpoint the auditor verified (kept in a state file) to the log's latest one:
the new checkpoint's signature, its consistency with the old one, and every new entry, whose leaf
hash is recomputed from its bytes. The new entries are checked all at once: the inclusion proof of
the first new entry is verified, its left-hand siblings are exactly the complete blocks covering
the old entries, and folding those with every new leaf hash must give the signed root. So each new
entry is shown to sit at its index in the signed tree with O(log n) proof hashes in total, not
O(log n) per entry. The server's own claims (roots, leaf hashes) are never used, only compared.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from reelm.audit.checkpoint import Checkpoint, CheckpointError, Verifier, verify_note
from reelm.audit.entries import ENTRY_KINDS
from reelm.audit.log import RegionLog
from reelm.audit.merkle import (
    EMPTY_ROOT,
    ProofError,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from reelm.audit.schemas import (
    ConsistencyProofRead,
    EntriesPage,
    InclusionProofRead,
    b64,
    unb64,
)

_M = TypeVar("_M", bound=BaseModel)


class VerificationFailed(Exception):
    """The log, or what it served, does not hold up against its key: the message says what."""


class LogSource(Protocol):
    """Where a verifier or witness reads a log from: the public HTTP endpoints or a data folder.
    Nothing it returns is trusted."""

    def checkpoint(self) -> str: ...

    def entries(self, start: int, end: int) -> EntriesPage: ...

    def inclusion(self, index: int, size: int) -> InclusionProofRead: ...

    def consistency(self, first: int, second: int) -> ConsistencyProofRead: ...


class HttpLogSource:
    """A log's public endpoints under `base_url`, e.g. `https://reelm.example/audit/us`."""

    def __init__(self, client: httpx.Client, base_url: str) -> None:
        self.client = client
        self.base = base_url.rstrip("/")

    def _get(self, path: str, params: dict[str, int]) -> httpx.Response:
        url = f"{self.base}/{path}"
        try:
            response = self.client.get(url, params=params)
        except httpx.HTTPError as exc:
            raise VerificationFailed(f"could not fetch {url}: {exc}") from exc
        if response.status_code != 200:
            raise VerificationFailed(
                f"{url} answered {response.status_code}: {response.text[:300]}"
            )
        return response

    def _json(self, path: str, params: dict[str, int], model: type[_M]) -> _M:
        response = self._get(path, params)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise VerificationFailed(f"{self.base}/{path} served malformed JSON: {exc}") from exc

    def checkpoint(self) -> str:
        return self._get("checkpoint", {}).text

    def entries(self, start: int, end: int) -> EntriesPage:
        return self._json("entries", {"start": start, "end": end}, EntriesPage)

    def inclusion(self, index: int, size: int) -> InclusionProofRead:
        return self._json("proof/inclusion", {"index": index, "size": size}, InclusionProofRead)

    def consistency(self, first: int, second: int) -> ConsistencyProofRead:
        params = {"first": first, "second": second}
        return self._json("proof/consistency", params, ConsistencyProofRead)


class LocalLogSource:
    """A region's log read straight from its database (an operator checking their own copy)."""

    def __init__(self, log: RegionLog) -> None:
        self.log = log

    def checkpoint(self) -> str:
        return self.log.checkpoint()

    def entries(self, start: int, end: int) -> EntriesPage:
        return self.log.entries_page(start, end)

    def inclusion(self, index: int, size: int) -> InclusionProofRead:
        return self.log.inclusion_proof(index, size)

    def consistency(self, first: int, second: int) -> ConsistencyProofRead:
        return self.log.consistency_proof(first, second)


@dataclass
class Verified:
    """What one run established: the log grew from `old` to `new`, and these entries are in it."""

    old: Checkpoint | None
    new: Checkpoint
    note: str
    entries: int = 0
    kinds: Counter[str] = field(default_factory=Counter)


def _hashes(values: list[str], what: str) -> list[bytes]:
    try:
        return [unb64(v) for v in values]
    except ValueError as exc:
        raise VerificationFailed(f"{what}: {exc}") from exc


def describe(checkpoint: Checkpoint) -> str:
    return f"size {checkpoint.size} root {b64(checkpoint.root)}"


def read_state(path: Path, verifier: Verifier) -> tuple[str, Checkpoint] | None:
    """The last verified note in the state file, re-checked against the key (None: first run)."""
    if not path.exists():
        return None
    note = path.read_text(encoding="utf-8")
    try:
        return note, verify_note(note, verifier, origin=verifier.name)
    except CheckpointError as exc:
        raise VerificationFailed(
            f"the state file {path} does not hold a checkpoint signed by {verifier.name}: {exc}"
        ) from exc


def write_state(path: Path, note: str) -> None:
    """Replace the state file atomically, so a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(note)
    os.replace(tmp, path)


def check_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    try:
        return verify_note(note, verifier, origin=verifier.name)
    except CheckpointError as exc:
        raise VerificationFailed(
            f"the log's latest checkpoint does not verify with the key {verifier.vkey()}: {exc}"
        ) from exc


def check_consistent(source: LogSource, old: Checkpoint, new: Checkpoint) -> None:
    """Raise unless `new` extends `old`: a smaller size is a rollback, anything else a fork."""
    if new.size < old.size:
        raise VerificationFailed(
            f"ROLLBACK: the log now claims {describe(new)}, but it already committed to "
            f"{describe(old)}; a log never shrinks"
        )
    if new.size == old.size:
        if new.root != old.root:
            raise VerificationFailed(
                f"FORK: two signed checkpoints of size {new.size} with different roots: "
                f"{describe(old)} and {describe(new)}"
            )
        return
    served = source.consistency(old.size, new.size)
    if (served.first, served.second) != (old.size, new.size):
        raise VerificationFailed(
            f"asked for a consistency proof {old.size}->{new.size}, got "
            f"{served.first}->{served.second}"
        )
    try:
        verify_consistency(
            old.size, new.size, _hashes(served.proof, "consistency proof"), old.root, new.root
        )
    except ProofError as exc:
        raise VerificationFailed(
            f"FORK: the log's {describe(new)} is not consistent with the {describe(old)} "
            f"verified before: {exc}"
        ) from exc


def _left_blocks(index: int, size: int, path: list[bytes]) -> list[tuple[int, bytes]]:
    """The (height, hash) of the complete blocks covering leaves [0, index), biggest first:
    the left-hand siblings in PATH(index, D[0:size]), found by the walk that built the path."""
    top_down = list(reversed(path))
    blocks: list[tuple[int, bytes]] = []
    low, high, step = 0, size, 0
    while high - low > 1:
        k = 1 << ((high - low - 1).bit_length() - 1)
        if index >= low + k:
            blocks.append((k.bit_length() - 1, top_down[step]))
            low += k
        else:
            high = low + k
        step += 1
    return blocks


class _CompactRange:
    """The complete blocks of leaves [0, n) as a stack, merged like a binary counter."""

    def __init__(self, blocks: list[tuple[int, bytes]]) -> None:
        self.stack = list(blocks)

    def append(self, value: bytes) -> None:
        height = 0
        while self.stack and self.stack[-1][0] == height:
            value = node_hash(self.stack.pop()[1], value)
            height += 1
        self.stack.append((height, value))

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        result = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            result = node_hash(left, result)
        return result


def check_new_entries(
    source: LogSource,
    start: int,
    new: Checkpoint,
    *,
    on_entry: Callable[[int, bytes], None] | None = None,
) -> int:
    """Check every entry in [start, new.size) is in the tree `new` signs; returns how many."""
    end = new.size
    if start == end:  # nothing new; a non-empty tree was already checked for consistency
        if end == 0 and new.root != EMPTY_ROOT:
            raise VerificationFailed(f"an empty log must have the empty root, not {describe(new)}")
        return 0
    compact = _CompactRange([])
    position = start
    while position < end:
        page = source.entries(position, end)
        if not page.entries:
            raise VerificationFailed(
                f"the log's checkpoint has {end} entries but it served none from {position}"
            )
        for served in page.entries:
            if served.index != position:
                raise VerificationFailed(f"asked for entry {position}, got entry {served.index}")
            data = _hashes([served.data], f"entry {position}'s data")[0]
            value = leaf_hash(data)
            if _hashes([served.leaf_hash], f"entry {position}'s leaf hash")[0] != value:
                raise VerificationFailed(
                    f"entry {position}: the leaf hash served is not the hash of the entry's bytes "
                    "(the entry or its stored hash was changed)"
                )
            if position == start and start > 0:
                compact = _CompactRange(_first_new_leaf(source, start, new, value))
            compact.append(value)
            if on_entry is not None:
                on_entry(position, data)
            position += 1
            if position == end:
                break
    if compact.root() != new.root:
        raise VerificationFailed(
            f"entries {start}..{end - 1} as served do not hash to the signed root of "
            f"{describe(new)}: an entry was changed, removed or reordered"
        )
    return end - start


def _first_new_leaf(
    source: LogSource, index: int, new: Checkpoint, value: bytes
) -> list[tuple[int, bytes]]:
    """Verify the first new entry's inclusion; its proof's left siblings summarise the old tree."""
    served = source.inclusion(index, new.size)
    if (served.index, served.size) != (index, new.size):
        raise VerificationFailed(
            f"asked for the inclusion of {index} in {new.size}, got {served.index} in {served.size}"
        )
    path = _hashes(served.proof, "inclusion proof")
    try:
        verify_inclusion(value, index, new.size, path, new.root)
    except ProofError as exc:
        raise VerificationFailed(
            f"entry {index} is not included in the signed tree of {describe(new)}: {exc}"
        ) from exc
    return _left_blocks(index, new.size, path)


def verify_log(
    source: LogSource,
    verifier: Verifier,
    *,
    previous: str | None = None,
    on_entry: Callable[[int, bytes], None] | None = None,
) -> Verified:
    """Everything `reelm audit verify` checks, from the `previous` verified note (or from the
    empty log). Raises VerificationFailed on the first thing that does not hold."""
    old = None
    if previous is not None:
        try:
            old = verify_note(previous, verifier, origin=verifier.name)
        except CheckpointError as exc:
            raise VerificationFailed(f"the previous checkpoint does not verify: {exc}") from exc
    note = source.checkpoint()
    new = check_checkpoint(note, verifier)
    if old is not None:
        check_consistent(source, old, new)
    result = Verified(old=old, new=new, note=note)

    def seen(index: int, data: bytes) -> None:
        kind = _kind(data)
        result.kinds[kind if kind in ENTRY_KINDS else "unknown"] += 1
        if on_entry is not None:
            on_entry(index, data)

    start = old.size if old is not None else 0
    result.entries = check_new_entries(source, start, new, on_entry=seen)
    return result


def _kind(data: bytes) -> str:
    try:
        value = json.loads(data)
    except ValueError:
        return "unknown"
    kind = value.get("kind") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else "unknown"


def verify_with_state(
    source: LogSource,
    verifier: Verifier,
    state: Path,
    *,
    on_entry: Callable[[int, bytes], None] | None = None,
) -> Verified:
    """`verify_log` from the note in `state`, which is replaced only when all of it verified."""
    previous = read_state(state, verifier)
    result = verify_log(
        source, verifier, previous=previous[0] if previous else None, on_entry=on_entry
    )
    write_state(state, result.note)
    return result
