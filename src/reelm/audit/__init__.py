"""The per-region audit log: Merkle tree proofs, signed checkpoints, staff access records."""
