"""A witness for a region's log, with C2SP tlog-witness semantics (https://c2sp.org/tlog-witness).

The witness keeps the last checkpoint it cosigned in a state file. It cosigns a new checkpoint only
when the log's key signed it and a consistency proof shows it extends that last one; a smaller
tree (rollback) or a different tree (fork) is refused with both sizes and roots in the message,
and the state is left as it was. An auditor who sees a checkpoint cosigned by witnesses they
trust knows the log showed the same history to all of them.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reelm.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteSigner,
    Verifier,
    cosign,
    verify_note,
)
from reelm.audit.merkle import ProofError, verify_consistency
from reelm.audit.verify import describe, write_state


class WitnessRefused(Exception):
    """The checkpoint is not cosigned; the message names what the witness saw and was offered."""


class WitnessConflict(WitnessRefused):
    """The submitter's idea of the witness's last size is wrong (tlog-witness's 409): it should
    fetch a proof from `size` and try again. Not evidence of misbehaviour by itself."""

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


@dataclass(frozen=True)
class Witness:
    """One log's witness: the log's public key, the witness's signing key and its state file."""

    log: Verifier
    signer: NoteSigner
    state: Path

    def latest(self) -> Checkpoint | None:
        """The last checkpoint cosigned, re-verified against the log's key (None: never)."""
        if not self.state.exists():
            return None
        try:
            return verify_note(
                self.state.read_text(encoding="utf-8"), self.log, origin=self.log.name
            )
        except CheckpointError as exc:
            raise WitnessRefused(
                f"the witness state {self.state} does not hold a checkpoint of {self.log.name}: "
                f"{exc}; restore it from a backup rather than trusting the log afresh"
            ) from exc

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One cosigning at a time per state file, so two submissions can't both advance it."""
        self.state.parent.mkdir(parents=True, exist_ok=True)
        with open(self.state.with_name(self.state.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def add_checkpoint(
        self, note: str, proof: Sequence[bytes] = (), *, old_size: int | None = None
    ) -> str:
        """Verify `note` against the last cosigned checkpoint and cosign it; the cosigned note.

        `proof` is the consistency proof from the witness's last size (`old_size`, when the
        submitter states it, must be that size). The first checkpoint a witness sees is taken on
        trust, as the spec's initial state of size 0 does."""
        with self._locked():
            try:
                new = verify_note(note, self.log, origin=self.log.name)
            except CheckpointError as exc:
                raise WitnessRefused(
                    f"the checkpoint is not signed by the log's key {self.log.vkey()}: {exc}"
                ) from exc
            old = self.latest()
            known = old.size if old is not None else 0
            if old_size is not None and old_size != known:
                raise WitnessConflict(
                    f"the proof is from size {old_size}, but this witness last cosigned size "
                    f"{known}: fetch a consistency proof from {known}",
                    size=known,
                )
            if old is not None:
                self._check_extends(old, new, list(proof))
            cosigned = cosign(note, self.signer, log=self.log)
            write_state(self.state, note)
            return cosigned

    def _check_extends(self, old: Checkpoint, new: Checkpoint, proof: list[bytes]) -> None:
        if new.size < old.size:
            raise WitnessRefused(
                f"REFUSED (rollback): offered {describe(new)}, but this witness already "
                f"cosigned {describe(old)}; a log never shrinks"
            )
        if new.size == old.size and new.root != old.root:
            raise WitnessRefused(
                f"REFUSED (fork): offered {describe(new)}, but this witness already cosigned "
                f"{describe(old)}: two trees of the same size"
            )
        try:
            verify_consistency(old.size, new.size, proof, old.root, new.root)
        except ProofError as exc:
            raise WitnessRefused(
                f"REFUSED (fork): offered {describe(new)}, which is not consistent with "
                f"{describe(old)} that this witness already cosigned: {exc}"
            ) from exc
