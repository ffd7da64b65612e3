"""The public audit endpoints, and `verify_log` reading them the way an outside auditor does."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from reelm.audit.checkpoint import Verifier, verify_note
from reelm.audit.entries import StaffAccess
from reelm.audit.log import MAX_PAGE, RegionLog
from reelm.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from reelm.audit.schemas import unb64
from reelm.audit.verify import HttpLogSource, VerificationFailed, verify_log, verify_with_state

MakeAccess = Callable[[int], StaffAccess]
BASE = "/audit/us"


@pytest.fixture
def key(client: TestClient) -> Verifier:
    r = client.get(f"{BASE}/key")
    assert r.status_code == 200
    return Verifier.from_vkey(r.text)


@pytest.fixture
def source(client: TestClient) -> HttpLogSource:
    return HttpLogSource(client, BASE)


def fill(log: RegionLog, make_access: MakeAccess, start: int, count: int) -> None:
    log.record_now(*[make_access(i) for i in range(start, start + count)])


def sql(log: RegionLog, statement: str, **params: Any) -> None:
    with log.store.unchecked_connection(reason="test: write below the hooks") as conn, conn.begin():
        conn.execute(text(statement), params)


def test_endpoints_serve_a_signed_checkpoint_entries_and_proofs_that_verify(
    client: TestClient, us_log: RegionLog, make_access: MakeAccess, key: Verifier
) -> None:
    fill(us_log, make_access, 0, 13)
    r = client.get(f"{BASE}/checkpoint")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    checkpoint = verify_note(r.text, key, origin="reelm.example/us")
    assert checkpoint.size == 13

    page = client.get(f"{BASE}/entries", params={"start": 3, "end": 6}).json()
    assert [e["index"] for e in page["entries"]] == [3, 4, 5]
    first = page["entries"][0]
    data = base64.b64decode(first["data"])
    assert json.loads(data) == first["entry"]
    assert base64.b64decode(first["leaf_hash"]) == leaf_hash(data)

    proof = client.get(f"{BASE}/proof/inclusion", params={"index": 3, "size": 13}).json()
    verify_inclusion(leaf_hash(data), 3, 13, [unb64(h) for h in proof["proof"]], checkpoint.root)
    consistency = client.get(f"{BASE}/proof/consistency", params={"first": 5, "second": 13}).json()
    verify_consistency(
        5,
        13,
        [unb64(h) for h in consistency["proof"]],
        unb64(consistency["first_root"]),
        checkpoint.root,
    )


def test_endpoints_limit_pages_and_refuse_bad_requests(
    client: TestClient, us_log: RegionLog, make_access: MakeAccess
) -> None:
    fill(us_log, make_access, 0, MAX_PAGE + 5)
    page = client.get(f"{BASE}/entries", params={"start": 2}).json()
    assert len(page["entries"]) == MAX_PAGE
    assert page["end"] == MAX_PAGE + 2
    assert page["size"] == MAX_PAGE + 5
    assert client.get("/audit/mars/checkpoint").json()["error"]["code"] == "unknown_region"
    bad = client.get(f"{BASE}/proof/inclusion", params={"index": MAX_PAGE + 5})
    assert bad.status_code == 422
    assert "is not in a tree of size" in bad.json()["error"]["message"]
    assert client.get(f"{BASE}/proof/consistency", params={"first": 0}).status_code == 422


def test_verify_from_one_checkpoint_to_the_next_updates_the_state(
    tmp_path: Path, us_log: RegionLog, make_access: MakeAccess, key: Verifier, source: HttpLogSource
) -> None:
    state = tmp_path / "state"
    fill(us_log, make_access, 0, 5)
    first = verify_with_state(source, key, state)
    assert (first.old, first.new.size, first.entries) == (None, 5, 5)
    assert first.kinds == {"staff_access": 5}
    fill(us_log, make_access, 5, 9)
    second = verify_with_state(source, key, state)
    assert second.old is not None
    assert (second.old.size, second.new.size, second.entries) == (5, 14, 9)
    assert verify_note(state.read_text(), key).size == 14
    third = verify_with_state(source, key, state)  # nothing new: still fine
    assert third.entries == 0


def _verified_at(source: HttpLogSource, key: Verifier, state: Path) -> str:
    verify_with_state(source, key, state)
    return state.read_text()


def test_a_changed_entry_is_detected_and_the_state_is_kept(
    tmp_path: Path, us_log: RegionLog, make_access: MakeAccess, key: Verifier, source: HttpLogSource
) -> None:
    state = tmp_path / "state"
    fill(us_log, make_access, 0, 5)
    before = _verified_at(source, key, state)
    fill(us_log, make_access, 5, 6)
    entry = bytes(us_log.entries(7, 8)[0].data)
    forged = entry.replace(b'"decision":"allow"', b'"decision":"deny"')
    assert forged != entry
    # the forger updates the stored leaf hash too, so only the tree can give it away
    sql(
        us_log,
        "UPDATE audit_entries SET data = :d, leaf_hash = :h WHERE idx = 7",
        d=forged,
        h=leaf_hash(forged),
    )
    with pytest.raises(VerificationFailed, match="do not hash to the signed root"):
        verify_with_state(source, key, state)
    assert state.read_text() == before
    with pytest.raises(VerificationFailed):  # an auditor starting from scratch sees it too
        verify_with_state(source, key, tmp_path / "fresh")


def test_a_changed_entry_without_its_hash_is_detected(
    tmp_path: Path, us_log: RegionLog, make_access: MakeAccess, key: Verifier, source: HttpLogSource
) -> None:
    fill(us_log, make_access, 0, 4)
    sql(us_log, "UPDATE audit_entries SET data = :d WHERE idx = 2", d=b'{"v":1,"kind":"x"}')
    with pytest.raises(VerificationFailed, match="entry 2: the leaf hash served is not the hash"):
        verify_log(source, key)


def test_a_changed_tree_node_is_detected(
    tmp_path: Path, us_log: RegionLog, make_access: MakeAccess, key: Verifier, source: HttpLogSource
) -> None:
    state = tmp_path / "state"
    fill(us_log, make_access, 0, 5)
    _verified_at(source, key, state)
    fill(us_log, make_access, 5, 7)
    # [0, 4) is in both the consistency proof 5 -> 12 and the inclusion proof of entry 5
    sql(us_log, "UPDATE audit_nodes SET hash = :h WHERE level = 2 AND idx = 0", h=bytes(32))
    with pytest.raises(VerificationFailed, match="FORK|not included"):
        verify_with_state(source, key, state)


def test_a_changed_checkpoint_text_is_detected(
    client: TestClient,
    us_log: RegionLog,
    make_access: MakeAccess,
    key: Verifier,
    source: HttpLogSource,
) -> None:
    fill(us_log, make_access, 0, 3)
    note = client.get(f"{BASE}/checkpoint").text
    lines = note.split("\n")
    lines[1] = "2"  # claim a smaller tree under the same signature
    sql(us_log, "UPDATE audit_checkpoints SET note = :n", n="\n".join(lines))
    with pytest.raises(VerificationFailed, match="does not verify with the key"):
        verify_log(source, key)


def tampering_client(client: TestClient, path_part: str) -> httpx.Client:
    """A client to the app whose answers under `path_part` have their first proof hash flipped."""

    def handler(request: httpx.Request) -> httpx.Response:
        r = client.get(request.url.path, params=dict(request.url.params))
        body = r.content
        if path_part in request.url.path:
            data = r.json()
            raw = bytearray(unb64(data["proof"][0]))
            raw[0] ^= 1
            data["proof"][0] = base64.b64encode(bytes(raw)).decode()
            body = json.dumps(data).encode()
        return httpx.Response(
            r.status_code, content=body, headers={"content-type": r.headers["content-type"]}
        )

    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://testserver")


@pytest.mark.parametrize(
    ("path_part", "message"),
    [("proof/consistency", "FORK"), ("proof/inclusion", "not included in the signed tree")],
)
def test_a_changed_proof_is_detected(
    tmp_path: Path,
    client: TestClient,
    us_log: RegionLog,
    make_access: MakeAccess,
    key: Verifier,
    path_part: str,
    message: str,
) -> None:
    state = tmp_path / "state"
    fill(us_log, make_access, 0, 6)
    _verified_at(HttpLogSource(client, BASE), key, state)
    fill(us_log, make_access, 6, 5)
    with (
        tampering_client(client, path_part) as bad,
        pytest.raises(VerificationFailed, match=message),
    ):
        verify_with_state(HttpLogSource(bad, BASE), key, state)


def test_a_log_rebuilt_with_other_history_is_a_fork_or_a_rollback(
    tmp_path: Path, us_log: RegionLog, make_access: MakeAccess, key: Verifier, source: HttpLogSource
) -> None:
    state = tmp_path / "state"
    fill(us_log, make_access, 0, 6)
    _verified_at(source, key, state)
    sql(us_log, "DELETE FROM audit_entries")
    sql(us_log, "DELETE FROM audit_nodes")
    sql(us_log, "DELETE FROM audit_checkpoints")
    sql(us_log, "DELETE FROM audit_head")
    fill(us_log, make_access, 100, 4)  # same key, a smaller, different tree
    with pytest.raises(VerificationFailed, match="ROLLBACK"):
        verify_with_state(source, key, state)
    fill(us_log, make_access, 200, 4)  # now larger than what the auditor saw, still different
    with pytest.raises(VerificationFailed, match="FORK"):
        verify_with_state(source, key, state)


def test_a_checkpoint_under_another_key_is_refused(
    tmp_path: Path,
    client: TestClient,
    us_log: RegionLog,
    make_access: MakeAccess,
    source: HttpLogSource,
) -> None:
    fill(us_log, make_access, 0, 2)
    sg_key = Verifier.from_vkey(client.get("/audit/sg/key").text)
    with pytest.raises(VerificationFailed, match="does not verify with the key"):
        verify_log(source, sg_key)
