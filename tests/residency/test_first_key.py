"""A new user's first data key, asked for by several processes at once (the web process that
signs them up, a region worker, a second web worker), is one key that opens everything any of
them wrote with it."""

from __future__ import annotations

import multiprocessing
import threading
from multiprocessing.synchronize import Barrier
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reelm.residency.keys import FieldCipher, LocalKeyRing

OWNER = "u1"


def _ask_then_write(directory: str, barrier: Barrier, out: str, n: int) -> None:
    """In a process of its own: open the ring (perhaps creating the region's KEK), ask for the
    user's first key at the same moment as the others, and write `n` ciphertexts with it."""
    barrier.wait()
    ring = LocalKeyRing(Path(directory), region="sg")
    ring.ensure_data_key(OWNER)
    cipher = FieldCipher(ring, OWNER)
    blobs = [cipher.encrypt_bytes(f"{out}/{i}", f"{out} {i}".encode()) for i in range(n)]
    Path(out).write_bytes(b"\n".join(b.hex().encode() for b in blobs))


def _all_open(directory: Path, outs: list[Path]) -> None:
    ring = LocalKeyRing(directory, region="sg")
    cipher = FieldCipher(ring, OWNER)
    for out in outs:
        for i, line in enumerate(out.read_bytes().split(b"\n")):
            plain = cipher.decrypt_bytes(f"{out}/{i}", bytes.fromhex(line.decode()))
            assert plain == f"{out} {i}".encode()
    assert list(ring.owners()) == [OWNER]


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(processes=st.integers(min_value=2, max_value=6), writes=st.integers(1, 3))
def test_processes_asking_at_once_for_a_first_key_share_one_key(
    tmp_path_factory: object, processes: int, writes: int
) -> None:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="first-key-"))
    directory = root / "keys"  # fresh: the KEK is created by whichever process comes first
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes)
    outs = [root / f"p{i}" for i in range(processes)]
    procs = [
        ctx.Process(target=_ask_then_write, args=(str(directory), barrier, str(o), writes))
        for o in outs
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * processes
    _all_open(directory, outs)


@settings(max_examples=10, deadline=None)
@given(threads=st.integers(min_value=2, max_value=8))
def test_threads_asking_at_once_for_a_first_key_share_one_key(threads: int) -> None:
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="first-key-")) / "keys"
    ring = LocalKeyRing(directory, region="sg")
    barrier = threading.Barrier(threads)
    keys: list[bytes] = []

    def ask() -> None:
        barrier.wait()
        keys.append(ring.ensure_data_key(OWNER))

    workers = [threading.Thread(target=ask) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert len(set(keys)) == 1
    assert LocalKeyRing(directory, region="sg").data_key(OWNER) == keys[0]
