"""RFC 9162 proofs: the transparency-dev vectors, and properties against a naive reference tree."""

from __future__ import annotations

import base64
import filecmp
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelm.audit.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    ProofError,
    consistency_proof,
    fold_range,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_nodes,
    root_from_inclusion,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parent / "rfc9162"
SHARED_VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "rfc9162"

# The leaves the vectors were generated from: the classic RFC 6962 test set.
RFC6962_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]


def _vectors(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(vector: dict[str, Any]) -> list[bytes]:
    return [_b64(h) for h in vector["proof"] or []]


# A naive reference straight from the RFC's recursive definitions.


def ref_split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = ref_split(len(leaves))
    return node_hash(ref_mth(leaves[:k]), ref_mth(leaves[k:]))


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = ref_split(len(leaves))
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [ref_mth(leaves)]
    k = ref_split(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], whole), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def make_leaves(seed: int, size: int) -> list[bytes]:
    return [leaf_hash(seed.to_bytes(8, "big") + i.to_bytes(4, "big")) for i in range(size)]


def flip(value: bytes, bit: int) -> bytes:
    bit %= len(value) * 8
    data = bytearray(value)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


# The vectors.


def test_vendored_vectors_match_the_shared_copy() -> None:
    if not SHARED_VECTORS.is_dir():
        pytest.skip("no shared/ checkout next to the repository")
    for kind in ("inclusion", "consistency"):
        for path in _vectors(kind):
            shared = SHARED_VECTORS / path.relative_to(VECTORS)
            assert filecmp.cmp(path, shared, shallow=False), path
        shared_count = len(list((SHARED_VECTORS / kind).rglob("*.json")))
        assert shared_count == len(_vectors(kind))


def test_vectors_are_present() -> None:
    assert len(_vectors("inclusion")) > 50
    assert len(_vectors("consistency")) > 50


@pytest.mark.parametrize("path", _vectors("inclusion"), ids=_id)
def test_inclusion_vector(path: Path) -> None:
    v = _load(path)
    args = (_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], _proof(v), _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _vectors("consistency"), ids=_id)
def test_consistency_vector(path: Path) -> None:
    v = _load(path)
    args = (v["size1"], v["size2"], _proof(v), _b64(v["root1"]), _b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


@pytest.mark.parametrize("path", sorted(VECTORS.glob("inclusion/[0-9]/happy-path.json")), ids=_id)
def test_memory_tree_reproduces_the_inclusion_vectors(path: Path) -> None:
    v = _load(path)
    tree = MemoryTree(leaf_hash(leaf) for leaf in RFC6962_LEAVES)
    assert inclusion_proof(tree, v["leafIdx"], v["treeSize"]) == _proof(v)
    assert tree.root(v["treeSize"]) == _b64(v["root"])


@pytest.mark.parametrize("path", sorted(VECTORS.glob("consistency/[0-9]/happy-path.json")), ids=_id)
def test_memory_tree_reproduces_the_consistency_vectors(path: Path) -> None:
    v = _load(path)
    tree = MemoryTree(leaf_hash(leaf) for leaf in RFC6962_LEAVES)
    assert consistency_proof(tree, v["size1"], v["size2"]) == _proof(v)
    assert tree.root(v["size1"]) == _b64(v["root1"])
    assert tree.root(v["size2"]) == _b64(v["root2"])


# Hashing and the tree.


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert leaf_hash(b"\x01ab") != node_hash(b"a", b"b")


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert root_from_leaf_hashes([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert MemoryTree().root() == EMPTY_ROOT


def test_root_of_a_million_leaves_is_fast_and_splits_like_the_rfc() -> None:
    hashes = [i.to_bytes(32, "big") for i in range(1_000_000)]
    started = time.perf_counter()
    root = root_from_leaf_hashes(hashes)
    assert time.perf_counter() - started < 5
    k = 1 << 19  # the largest power of two below 1,000,000
    left, right = root_from_leaf_hashes(hashes[:k]), root_from_leaf_hashes(hashes[k:])
    assert root == node_hash(left, right)


@settings(deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(0, 300))
def test_roots_match_the_reference_at_every_size(seed: int, size: int) -> None:
    leaves = make_leaves(seed, size)
    tree = MemoryTree(leaves)
    assert root_from_leaf_hashes(leaves) == ref_mth(leaves) == tree.root()
    for prefix in range(size + 1):
        assert tree.root(prefix) == ref_mth(leaves[:prefix])


def test_memory_tree_levels_hold_complete_aligned_blocks() -> None:
    leaves = make_leaves(7, 13)
    tree = MemoryTree(leaves)
    assert [len(level) for level in tree.levels] == [13, 6, 3, 1]
    for level, row in enumerate(tree.levels):
        width = 1 << level
        for i, value in enumerate(row):
            assert value == ref_mth(leaves[i * width : (i + 1) * width])


@settings(deadline=None)
@given(data=st.data(), size=st.integers(1, 300))
def test_subtree_hash_of_any_range_matches_the_reference(data: st.DataObject, size: int) -> None:
    leaves = make_leaves(size, size)
    tree = MemoryTree(leaves)
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start + 1, size))
    assert tree.subtree_hash(start, end) == ref_mth(leaves[start:end])


def test_range_nodes_reads_one_node_per_set_bit_of_the_length() -> None:
    assert range_nodes(8, 16) == [(3, 1)]
    assert range_nodes(8, 13) == [(2, 2), (0, 12)]
    assert range_nodes(0, 7) == [(2, 0), (1, 2), (0, 6)]
    leaves = make_leaves(1, 13)
    tree = MemoryTree(leaves)
    nodes = [tree.levels[level][i] for level, i in range_nodes(8, 13)]
    assert fold_range(nodes) == ref_mth(leaves[8:13])


@pytest.mark.parametrize(("start", "end"), [(2, 6), (4, 12), (3, 3), (5, 4), (-1, 1)])
def test_range_nodes_refuses_ranges_that_are_not_edge_aligned(start: int, end: int) -> None:
    with pytest.raises(ValueError, match="range|multiple"):
        range_nodes(start, end)


def test_memory_tree_refuses_a_leaf_that_is_not_a_hash() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        MemoryTree().append(b"leaf data")


def test_proofs_for_past_tree_sizes_still_verify_after_appends() -> None:
    tree = MemoryTree(make_leaves(3, 10))
    old_root, old_proof = tree.root(), inclusion_proof(tree, 4, 10)
    for value in make_leaves(4, 23):
        tree.append(value)
    assert inclusion_proof(tree, 4, 10) == old_proof
    verify_inclusion(tree.levels[0][4], 4, 10, old_proof, old_root)
    verify_consistency(10, 33, consistency_proof(tree, 10, 33), old_root, tree.root())


class CountingSource:
    """Counts reads of stored nodes, as a database-backed source would issue them."""

    def __init__(self, tree: MemoryTree) -> None:
        self.tree = tree
        self.reads = 0

    def subtree_hash(self, start: int, end: int) -> bytes:
        nodes = range_nodes(start, end)  # raises if a proof asked for an unaligned range
        self.reads += len(nodes)
        return fold_range([self.tree.levels[level][i] for level, i in nodes])


@pytest.mark.parametrize("size", [1, 2, 5, 8, 1000, 4097, 65_535])
def test_proofs_read_only_aligned_ranges_and_logarithmically_many_nodes(size: int) -> None:
    tree = MemoryTree(make_leaves(9, size))
    bound = 2 * size.bit_length() + 1
    for index in {0, size // 3, size // 2, size - 1}:
        source = CountingSource(tree)
        assert inclusion_proof(source, index, size) == inclusion_proof(tree, index, size)
        assert source.reads <= bound
    for size1 in {1, size // 3 or 1, size - 1 or 1, size}:
        source = CountingSource(tree)
        assert consistency_proof(source, size1, size) == consistency_proof(tree, size1, size)
        assert source.reads <= bound


# Inclusion properties.


@settings(deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32), size=st.integers(1, 300))
def test_inclusion_proofs_verify_and_any_bit_flip_is_caught(
    data: st.DataObject, seed: int, size: int
) -> None:
    leaves = make_leaves(seed, size)
    tree = MemoryTree(leaves)
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(tree, index, size)
    root = root_from_leaf_hashes(leaves)

    assert proof == ref_path(index, leaves)
    verify_inclusion(leaves[index], index, size, proof, root)
    assert root_from_inclusion(leaves[index], index, size, proof) == root

    bit = data.draw(st.integers(0, 255), label="bit")
    with pytest.raises(ProofError):
        verify_inclusion(flip(leaves[index], bit), index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[index], index, size, proof, flip(root, bit))
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="proof hash")
        bad = [*proof[:at], flip(proof[at], bit), *proof[at + 1 :]]
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], index, size, bad, root)


@settings(deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32), size=st.integers(2, 300))
def test_inclusion_proof_is_refused_for_another_position_or_length(
    data: st.DataObject, seed: int, size: int
) -> None:
    leaves = make_leaves(seed, size)
    tree = MemoryTree(leaves)
    index = data.draw(st.integers(0, size - 1), label="index")
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other")
    proof, root = inclusion_proof(tree, index, size), tree.root()
    # No claim about another tree size here: the root does not commit to the size (leaf 0 of
    # 3 and of 4 share the path shape), which is why a checkpoint signs size and root together.
    with pytest.raises(ProofError):
        verify_inclusion(leaves[index], other, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[index], index, size, [*proof, proof[0] if proof else root], root)


def test_every_bit_flip_of_an_inclusion_proof_is_caught() -> None:
    leaves = make_leaves(11, 77)
    tree = MemoryTree(leaves)
    proof, root = inclusion_proof(tree, 45, 77), tree.root()
    for at in range(len(proof)):
        for bit in range(256):
            bad = [*proof[:at], flip(proof[at], bit), *proof[at + 1 :]]
            with pytest.raises(ProofError):
                verify_inclusion(leaves[45], 45, 77, bad, root)


@pytest.mark.parametrize(
    ("index", "size", "message"),
    [(0, 0, "size 0"), (3, 3, "outside"), (-1, 3, "outside")],
)
def test_inclusion_in_an_impossible_position_is_refused(
    index: int, size: int, message: str
) -> None:
    with pytest.raises(ProofError, match=message):
        verify_inclusion(EMPTY_ROOT, index, size, [], EMPTY_ROOT)


def test_inclusion_with_hashes_of_the_wrong_length_is_refused() -> None:
    tree = MemoryTree(make_leaves(5, 6))
    leaf, proof, root = tree.levels[0][2], inclusion_proof(tree, 2, 6), tree.root()
    with pytest.raises(ProofError, match="leaf hash must be 32 bytes"):
        verify_inclusion(leaf[:31], 2, 6, proof, root)
    with pytest.raises(ProofError, match="root must be 32 bytes"):
        verify_inclusion(leaf, 2, 6, proof, root + b"\x00")
    with pytest.raises(ProofError, match="proof hash 1 must be 32 bytes"):
        verify_inclusion(leaf, 2, 6, [proof[0], proof[1][:-1], *proof[2:]], root)
    with pytest.raises(ProofError, match="needs 3 proof hashes, got 2"):
        verify_inclusion(leaf, 2, 6, proof[:2], root)


def test_inclusion_proof_generation_refuses_an_index_outside_the_tree() -> None:
    tree = MemoryTree(make_leaves(1, 4))
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(tree, 4, 4)


# Consistency properties.


@settings(deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32), size2=st.integers(1, 300))
def test_consistency_proofs_verify_and_any_bit_flip_is_caught(
    data: st.DataObject, seed: int, size2: int
) -> None:
    leaves = make_leaves(seed, size2)
    tree = MemoryTree(leaves)
    size1 = data.draw(st.integers(1, size2), label="size1")
    proof = consistency_proof(tree, size1, size2)
    root1, root2 = root_from_leaf_hashes(leaves[:size1]), root_from_leaf_hashes(leaves)

    assert proof == ref_subproof(size1, leaves, True)
    verify_consistency(size1, size2, proof, root1, root2)

    bit = data.draw(st.integers(0, 255), label="bit")
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, proof, flip(root1, bit), root2)
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, proof, root1, flip(root2, bit))
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="proof hash")
        bad = [*proof[:at], flip(proof[at], bit), *proof[at + 1 :]]
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, bad, root1, root2)


@settings(deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32), size2=st.integers(2, 300))
def test_consistency_proof_is_refused_reversed_or_truncated(
    data: st.DataObject, seed: int, size2: int
) -> None:
    tree = MemoryTree(make_leaves(seed, size2))
    size1 = data.draw(st.integers(1, size2 - 1), label="size1")
    proof, root1, root2 = consistency_proof(tree, size1, size2), tree.root(size1), tree.root()
    with pytest.raises(ProofError):
        verify_consistency(size2, size1, proof, root2, root1)
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, proof[:-1], root1, root2)


@pytest.mark.parametrize(
    ("size1", "size2", "proof_len", "message"),
    [
        (5, 3, 0, "never shrinks"),
        (0, 4, 0, "empty tree"),
        (0, 0, 0, "empty tree"),
        (4, 4, 1, "empty proof"),
        (3, 7, 0, "needs 4 proof hashes, got 0"),
    ],
)
def test_impossible_consistency_claims_are_refused(
    size1: int, size2: int, proof_len: int, message: str
) -> None:
    with pytest.raises(ProofError, match=message):
        verify_consistency(size1, size2, [EMPTY_ROOT] * proof_len, EMPTY_ROOT, EMPTY_ROOT)


def test_a_tree_is_consistent_with_itself_only_under_one_root() -> None:
    tree = MemoryTree(make_leaves(2, 9))
    assert consistency_proof(tree, 9, 9) == []
    verify_consistency(9, 9, [], tree.root(), tree.root())
    with pytest.raises(ProofError, match="different roots"):
        verify_consistency(9, 9, [], tree.root(), tree.root(8))


def test_consistency_proof_generation_refuses_size_zero() -> None:
    with pytest.raises(ValueError, match="0 < size1"):
        consistency_proof(MemoryTree(make_leaves(1, 3)), 0, 3)
