"""The audit log stored in a region database: appends, proofs, checkpoints, keys, pseudonyms."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import text

from reelm.audit.checkpoint import Verifier, verify_note
from reelm.audit.entries import (
    AccountDeletion,
    KeyDestruction,
    StaffAccess,
    canonical_json,
    parse_entry,
)
from reelm.audit.log import RegionLog, region_log
from reelm.audit.merkle import (
    MemoryTree,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from reelm.audit.schemas import unb64
from reelm.config import Settings
from reelm.errors import InvalidInput
from reelm.residency.store import Platform

MakeAccess = Callable[[int], StaffAccess]


def leaf_hashes(log: RegionLog) -> list[bytes]:
    hashes: list[bytes] = []
    while len(hashes) < log.size():
        hashes += [unb64(e.leaf_hash) for e in log.entries_page(len(hashes)).entries]
    return hashes


def empty_log(log: RegionLog) -> None:
    with log.store.unchecked_connection(reason="test: write below the hooks") as conn, conn.begin():
        for table in ("audit_entries", "audit_nodes", "audit_checkpoints", "audit_head"):
            conn.execute(text(f"DELETE FROM {table}"))


def test_batched_appends_give_the_rfc9162_tree_and_every_proof_verifies(
    us_log: RegionLog, make_access: MakeAccess
) -> None:
    n = 0
    for batch in (1, 2, 5, 1, 64, 27):
        indexes = us_log.record_now(*[make_access(n + i) for i in range(batch)])
        assert indexes == list(range(n, n + batch))
        n += batch
    tree = MemoryTree(leaf_hashes(us_log))
    assert tree.size == n == 100
    assert us_log.root() == tree.root()
    for size in (1, 2, 3, 63, 64, 65, 99, 100):
        for index in {0, size // 2, size - 1}:
            p = us_log.inclusion_proof(index, size)
            verify_inclusion(
                tree.levels[0][index], index, size, [unb64(h) for h in p.proof], tree.root(size)
            )
            assert unb64(p.root) == tree.root(size)
    for first in (1, 2, 7, 64, 99, 100):
        c = us_log.consistency_proof(first)
        assert c.second == 100
        verify_consistency(first, 100, [unb64(h) for h in c.proof], tree.root(first), tree.root())


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=8))
def test_stored_root_equals_the_reference_root_for_any_batch_sizes(
    us_log: RegionLog, make_access: MakeAccess, batches: list[int]
) -> None:
    empty_log(us_log)
    n = 0
    for batch in batches:
        us_log.record_now(*[make_access(n + i) for i in range(batch)])
        n += batch
        hashes = leaf_hashes(us_log)
        assert len(hashes) == n
        assert us_log.root() == root_from_leaf_hashes(hashes)
    assert us_log.fsck() == []


def test_concurrent_appenders_never_fork_the_tree(
    us_log: RegionLog, make_access: MakeAccess
) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def appender(offset: int) -> None:
        start.wait()
        try:
            for round_ in range(15):
                base = offset + round_ * 10
                us_log.record_now(*[make_access(base + i) for i in range(1 + round_ % 4)])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=appender, args=(k * 1000,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    expected = 2 * sum(1 + r % 4 for r in range(15))
    assert us_log.size() == expected
    hashes = leaf_hashes(us_log)
    assert us_log.root() == root_from_leaf_hashes(hashes)
    assert us_log.fsck() == []
    tickets = [json.loads(bytes(e.data))["ticket"] for e in us_log.entries(0, expected)]
    assert len(set(tickets)) == expected  # nothing lost, nothing written twice


def test_record_inside_the_callers_transaction_rolls_back_with_it(
    us_log: RegionLog, make_access: MakeAccess
) -> None:
    with us_log.store.transaction() as s:
        assert us_log.record(s, make_access(1)) == 0

    def failing_work() -> None:
        with us_log.store.transaction() as s:
            us_log.record(s, make_access(2))
            raise RuntimeError("the caller's work failed")

    with pytest.raises(RuntimeError):
        failing_work()
    assert us_log.size() == 1
    assert us_log.record_now(make_access(3)) == [1]
    assert us_log.fsck() == []


def test_an_entry_is_canonical_json_with_time_and_kind(us_log: RegionLog) -> None:
    subject = us_log.pseudonym("a" * 32)
    us_log.record_now(AccountDeletion(subject=subject, event="scheduled"))
    data = bytes(us_log.entries(0, 1)[0].data)
    value = json.loads(data)
    assert canonical_json(value) == data
    assert b" " not in data
    assert value["kind"] == "account_deletion"
    assert value["subject"] == subject
    assert value["time"].endswith("Z")
    entry = parse_entry(data)
    assert isinstance(entry, AccountDeletion)
    assert entry.event == "scheduled"


def test_pseudonyms_are_stable_per_region_and_hide_the_user_id(
    platform: Platform, settings: Settings
) -> None:
    us, sg = (
        region_log(settings, platform.region("us")),
        region_log(settings, platform.region("sg")),
    )
    uid = "0123456789abcdef0123456789abcdef"
    assert us.pseudonym(uid) == region_log(settings, platform.region("us")).pseudonym(uid)
    assert us.pseudonym(uid) != sg.pseudonym(uid)
    assert uid not in us.pseudonym(uid)
    assert us.pseudonym(uid).startswith("p_")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "0123456789abcdef0123456789abcdef"),
        ("purpose", "ava@example.org"),
        ("purpose", "read her mail"),
    ],
)
def test_entries_refuse_raw_user_ids_emails_and_free_text(field: str, value: str) -> None:
    fields = {
        "staff_id": "s1",
        "operator": "usds",
        "subject": "p_" + "0" * 32,
        "data_category": "account",
        "purpose": "support",
        "decision": "allow",
        field: value,
    }
    with pytest.raises(ValidationError):
        StaffAccess(**fields)  # type: ignore[arg-type]


def test_region_keys_are_created_once_owner_only_and_the_checkpoint_verifies(
    us_log: RegionLog, make_access: MakeAccess, settings: Settings
) -> None:
    us_log.record_now(make_access(0), make_access(1), make_access(2))
    note = us_log.checkpoint()
    key_file = settings.data_dir / "keys" / "us" / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = settings.data_dir / "keys" / "us" / "audit-pseudonym.key"
    us_log.pseudonym("x")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    vkey = us_log.vkey()
    assert vkey.startswith("reelm.example/us+")
    checkpoint = verify_note(note, Verifier.from_vkey(vkey), origin="reelm.example/us")
    assert checkpoint.size == 3
    assert checkpoint.root == us_log.root()
    assert us_log.checkpoint() == note  # not re-signed while the tree has not grown
    us_log.record_now(make_access(3))
    assert verify_note(us_log.checkpoint(), Verifier.from_vkey(vkey)).size == 4
    again = RegionLog(us_log.store, us_log.key_dir, origin_template="other.example/{region}")
    assert again.vkey() == vkey  # an existing key keeps its origin


def test_fsck_finds_a_changed_entry_and_a_changed_node(
    us_log: RegionLog, make_access: MakeAccess
) -> None:
    us_log.record_now(*[make_access(i) for i in range(8)])
    assert us_log.fsck() == []
    with (
        us_log.store.unchecked_connection(reason="test: write below the hooks") as conn,
        conn.begin(),
    ):
        conn.execute(text("UPDATE audit_entries SET data = :d WHERE idx = 3"), {"d": b'{"v":1}'})
        conn.execute(
            text("UPDATE audit_nodes SET hash = :h WHERE level = 2 AND idx = 1"), {"h": bytes(32)}
        )
    problems = us_log.fsck()
    assert "entry 3: stored leaf hash is not the data's hash" in problems
    assert "node (2, 1) does not match the entries" in problems


def test_proof_requests_outside_the_tree_are_refused_clearly(
    us_log: RegionLog, make_access: MakeAccess
) -> None:
    us_log.record_now(*[make_access(i) for i in range(5)])
    with pytest.raises(InvalidInput, match="entry 5 is not in a tree of size 5"):
        us_log.inclusion_proof(5)
    with pytest.raises(InvalidInput, match="tree size 6 is outside this log"):
        us_log.consistency_proof(2, 6)
    with pytest.raises(InvalidInput, match="need 0 < first"):
        us_log.consistency_proof(0, 5)


def test_other_entry_kinds_round_trip(us_log: RegionLog) -> None:
    subject = us_log.pseudonym("b" * 32)
    us_log.record_now(
        KeyDestruction(subject=subject, key_digest="ab" * 32, reason="account_deletion")
    )
    assert isinstance(parse_entry(bytes(us_log.entries(0, 1)[0].data)), KeyDestruction)
