"""The witness's rules, on logs built in memory under one key (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelm.audit.checkpoint import Signer, sign_checkpoint, verify_note
from reelm.audit.merkle import MemoryTree, consistency_proof, leaf_hash
from reelm.audit.witness import Witness, WitnessConflict, WitnessRefused

LOG = Signer.generate("reelm.example/us")
WITNESS = Signer.generate("witness.example.org")


def tree(prefix: bytes, size: int) -> MemoryTree:
    """A log of `size` made-up leaves; another prefix gives another history."""
    return MemoryTree(leaf_hash(prefix + bytes([i])) for i in range(size))


def note(t: MemoryTree, size: int | None = None) -> str:
    size = t.size if size is None else size
    return sign_checkpoint(LOG.name, size, t.root(size), LOG)


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    return Witness(LOG.verifier, WITNESS, tmp_path / "state")


def test_first_checkpoint_is_trusted_then_only_consistent_ones_are_cosigned(
    witness: Witness,
) -> None:
    honest = tree(b"a", 20)
    cosigned = witness.add_checkpoint(note(honest, 7))
    assert verify_note(cosigned, WITNESS.verifier).size == 7
    assert verify_note(cosigned, LOG.verifier).size == 7  # the log's signature is kept
    witness.add_checkpoint(note(honest, 20), consistency_proof(honest, 7, 20), old_size=7)
    latest = witness.latest()
    assert latest is not None
    assert latest.size == 20
    assert witness.add_checkpoint(note(honest, 20), old_size=20)  # the same head again is fine


def test_a_fork_is_refused_naming_both_heads(witness: Witness) -> None:
    honest, forked = tree(b"a", 20), tree(b"b", 20)
    witness.add_checkpoint(note(honest, 7))
    with pytest.raises(WitnessRefused, match=r"REFUSED \(fork\).*size 12 root.*size 7 root"):
        witness.add_checkpoint(note(forked, 12), consistency_proof(forked, 7, 12))
    with pytest.raises(WitnessRefused, match=r"REFUSED \(fork\).*same size"):
        witness.add_checkpoint(note(forked, 7))
    latest = witness.latest()
    assert latest is not None
    assert latest.root == honest.root(7)


def test_a_rollback_is_refused(witness: Witness) -> None:
    honest = tree(b"a", 20)
    witness.add_checkpoint(note(honest, 9))
    with pytest.raises(WitnessRefused, match=r"REFUSED \(rollback\).*size 4 root.*size 9 root"):
        witness.add_checkpoint(note(honest, 4))


def test_a_proof_from_the_wrong_size_is_a_conflict_not_a_verdict(witness: Witness) -> None:
    honest = tree(b"a", 20)
    witness.add_checkpoint(note(honest, 9))
    with pytest.raises(WitnessConflict) as caught:
        witness.add_checkpoint(note(honest, 15), consistency_proof(honest, 5, 15), old_size=5)
    assert caught.value.size == 9


def test_a_checkpoint_not_signed_by_the_log_is_refused(witness: Witness) -> None:
    impostor = Signer.generate(LOG.name)
    t = tree(b"a", 3)
    with pytest.raises(WitnessRefused, match="not signed by the log's key"):
        witness.add_checkpoint(sign_checkpoint(LOG.name, 3, t.root(), impostor))
    assert not witness.state.exists()


def test_a_tampered_state_file_is_refused_not_trusted_afresh(witness: Witness) -> None:
    t = tree(b"a", 5)
    witness.add_checkpoint(note(t))
    witness.state.write_text(note(t).replace("\n5\n", "\n6\n"))
    with pytest.raises(WitnessRefused, match="does not hold a checkpoint"):
        witness.add_checkpoint(note(t))
