"""RFC 9162 Merkle tree hashing over SHA-256, and the inclusion and consistency proofs of a log.

Proofs are generated from a `HashSource` (memory or database) and verified from hashes alone.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}): the root of the empty tree (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(ValueError):
    """A proof, or the claim it was offered for, does not hold; the message says which part."""


def leaf_hash(data: bytes) -> bytes:
    """The 0x00 prefix keeps a leaf from ever hashing like an interior node (second preimages)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over `hashes`, one level at a time.

    Carrying an odd last node up unchanged builds exactly RFC 9162's tree, where the left
    subtree is always the largest power of two: the lone node is the right edge's block.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    sha256 = hashlib.sha256
    while len(level) > 1:
        pairs = iter(level)
        parents = [
            sha256(_NODE_PREFIX + a + b).digest() for a, b in zip(pairs, pairs, strict=False)
        ]
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    return level[0]


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[tuple[int, int]]:
    """The (level, index) of the stored nodes whose `fold_range` is MTH(D[start:end]).

    Only valid for a range whose start is a multiple of the largest power of two not above its
    length: a complete aligned block (one node) or a right edge of the tree like [8, 13)
    (nodes (2, 2) and (0, 12)). Every range `inclusion_proof` and `consistency_proof` request
    has this shape; anything else raises ValueError rather than return a wrong hash.
    """
    length = end - start
    if start < 0 or length <= 0:
        raise ValueError(f"[{start}, {end}) is not a non-empty range of leaves")
    top = length.bit_length() - 1
    if start % (1 << top):
        raise ValueError(f"[{start}, {end}) does not start on a multiple of {1 << top}")
    nodes = []
    position = start
    for level in range(top, -1, -1):
        if length >> level & 1:
            nodes.append((level, position >> level))
            position += 1 << level
    return nodes


def fold_range(hashes: Sequence[bytes]) -> bytes:
    """Combine the hashes of `range_nodes` (same order) into the range's MTH, right to left."""
    if not hashes:
        raise ValueError("a range has at least one node")
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


class HashSource(Protocol):
    """Anything that can give the Merkle hash of a range of its leaves.

    Storage layout shared by `MemoryTree` and a database-backed log: level 0 holds the leaf
    hashes in order; level k holds, at index i, the hash of the complete aligned block of
    leaves [i * 2^k, (i + 1) * 2^k), written when that block fills and never changed after,
    so proofs for past tree sizes keep working. Every range the proof functions request is
    either such a block (one stored node) or a right edge of the tree with an aligned start,
    for which `range_nodes` lists the O(log n) stored nodes and `fold_range` combines them: a
    database answers each request with one indexed read, e.g.
    `WHERE (level, idx) IN (...)`, and a whole proof touches O(log n) rows.
    """

    def subtree_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) of the leaves in [start, end), complete or not (start < end)."""
        ...


class MemoryTree:
    """An append-only Merkle tree in memory, stored in the layout a database log uses.

    Invariant: `len(levels[k]) == size >> k` for every stored level k, and `levels[k][i]` is
    the hash of leaves [i * 2^k, (i + 1) * 2^k). Appending a leaf completes at most one block
    per level, and on average one, so appends are amortised O(1).
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for value in leaf_hashes:
            self.append(value)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> int:
        """Add a leaf hash (not leaf data: see `append_data`) and return its index."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf)}")
        index = self.size
        self.levels[0].append(leaf)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            row = self.levels[level]
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(node_hash(row[-2], row[-1]))
            level += 1
        return index

    def append_data(self, data: bytes) -> int:
        return self.append(leaf_hash(data))

    def subtree_hash(self, start: int, end: int) -> bytes:
        """O(log n) for the ranges proofs use; other ranges are split as MTH splits them."""
        if not 0 <= start < end <= self.size:
            raise ValueError(
                f"[{start}, {end}) is not a non-empty range of a tree of size {self.size}"
            )
        length = end - start
        if start % (1 << (length.bit_length() - 1)) == 0:
            return fold_range([self.levels[lvl][i] for lvl, i in range_nodes(start, end)])
        k = _split(length)
        return node_hash(self.subtree_hash(start, start + k), self.subtree_hash(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """The tree head at `size` leaves (default: all of them)."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is outside 0..{self.size}")
        return EMPTY_ROOT if size == 0 else self.subtree_hash(0, size)


def inclusion_proof(source: HashSource, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, nearest the leaf first.

    Walks from the root down. Siblings on the left are complete aligned blocks; a sibling on
    the right ends at `size` until the walk first turns left, so at most one request touches
    the incomplete right edge and the whole proof costs O(log n) stored nodes.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    low, high = 0, size
    while high - low > 1:
        k = _split(high - low)
        if index < low + k:
            path.append(source.subtree_hash(low + k, high))
            high = low + k
        else:
            path.append(source.subtree_hash(low, low + k))
            low += k
    path.reverse()
    return path


def consistency_proof(source: HashSource, size1: int, size2: int) -> list[bytes]:
    """PROOF(size1, D[0:size2]) = SUBPROOF(size1, D[0:size2], true) of RFC 9162 §2.1.4.1.

    Same walk and the same O(log n) cost as `inclusion_proof`. Equal sizes give the empty
    proof; size1 = 0 is refused because `verify_consistency` rejects it.
    """
    if not 0 < size1 <= size2:
        raise ValueError(
            f"no consistency proof from size {size1} to size {size2}: need 0 < size1 <= size2"
        )
    proof: list[bytes] = []
    low, high = 0, size2
    whole_old_tree = True  # SUBPROOF's b: the old tree's own root need not be sent.
    while size1 - low != high - low:
        k = _split(high - low)
        if size1 - low <= k:
            proof.append(source.subtree_hash(low + k, high))
            high = low + k
        else:
            proof.append(source.subtree_hash(low, low + k))
            low += k
            whole_old_tree = False
    if not whole_old_tree:
        proof.append(source.subtree_hash(low, high))
    proof.reverse()
    return proof


def inclusion_proof_size(index: int, size: int) -> int:
    """Hashes in PATH(index, D[0:size]): those below the last shared ancestor with the right
    edge (`inner`) plus one per left-side block on the edge above it (`border`)."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def consistency_proof_size(size1: int, size2: int) -> int:
    """Hashes in PROOF(size1, D[0:size2]) for 0 < size1 < size2."""
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = ((size1 - 1) >> inner).bit_count()
    shift = (size1 & -size1).bit_length() - 1  # the old tree's last complete block is 2^shift
    seed = 0 if size1 == 1 << shift else 1
    return seed + inner - shift + border


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_proof(proof: Sequence[bytes], expected: int, claim: str) -> None:
    if len(proof) != expected:
        raise ProofError(f"{claim} needs {expected} proof hashes, got {len(proof)}")
    for i, value in enumerate(proof):
        _check_hash(value, f"proof hash {i}")


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` commits to if the leaf is at `index` (RFC 9162 §2.1.3.2, 1-4).

    The exact proof length is checked first only to give a clearer message; the RFC steps
    that follow would reject a wrong length on their own.
    """
    if size <= 0:
        raise ProofError(f"no leaf is included in a tree of size {size}")
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(leaf_hash, "leaf hash")
    _check_proof(proof, inclusion_proof_size(index, size), f"leaf {index} of a tree of size {size}")
    fn, sn, result = index, size - 1, leaf_hash
    for value in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            result = node_hash(value, result)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, value)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    return result


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless `proof` shows the leaf at `index` in the tree with `root`."""
    _check_hash(root, "root")
    computed = root_from_inclusion(leaf_hash, index, size, proof)
    if not hmac.compare_digest(computed, root):
        raise ProofError(
            f"inclusion proof for leaf {index} leads to root {computed.hex()}, not {root.hex()}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise ProofError unless `proof` shows the tree (size2, root2) extends (size1, root1).

    RFC 9162 §2.1.4.2, plus the cases it leaves to the caller: the log can't shrink; size1 = 0
    is rejected since the empty tree is a prefix of every tree and such a proof proves nothing
    about this log; equal sizes need an empty proof and equal roots. In that last case the roots
    are only compared with each other (a tree is trivially consistent with itself), matching
    the transparency-dev vectors; everywhere else every hash must be 32 bytes.
    """
    if size1 < 0 or size2 < 0:
        raise ProofError(f"tree sizes must not be negative, got {size1} and {size2}")
    if size1 > size2:
        raise ProofError(f"size1 ({size1}) is larger than size2 ({size2}): a log never shrinks")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree (size1 = 0) proves nothing")
    if size1 == size2:
        if proof:
            raise ProofError(f"trees of equal size need an empty proof, got {len(proof)} hashes")
        if not hmac.compare_digest(root1, root2):
            raise ProofError(f"two trees of size {size1} have different roots")
        return
    _check_hash(root1, "root1")
    _check_hash(root2, "root2")
    _check_proof(
        proof, consistency_proof_size(size1, size2), f"consistency from {size1} to {size2}"
    )
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first = second = path[0]
    for value in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            first = node_hash(value, first)
            second = node_hash(value, second)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            second = node_hash(second, value)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    if not hmac.compare_digest(first, root1):
        raise ProofError(f"consistency proof leads to root1 {first.hex()}, not {root1.hex()}")
    if not hmac.compare_digest(second, root2):
        raise ProofError(f"consistency proof leads to root2 {second.hex()}, not {root2.hex()}")
