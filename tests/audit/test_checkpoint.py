"""Signed checkpoints: C2SP note format, Go note interoperability, tampering and key handling."""

from __future__ import annotations

import base64
import hashlib
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from reelm.audit.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    CheckpointError,
    NoteSignature,
    Signer,
    Verifier,
    cosign,
    key_id,
    parse_checkpoint,
    parse_note,
    sign_checkpoint,
    verify_note,
)
from reelm.audit.merkle import MemoryTree, leaf_hash

# The example key and note of Go's golang.org/x/mod/sumdb/note documentation; the signer
# key's base64 contains a '+', which the key parser must not split on.
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIGNATURE_LINE = (
    "\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

ORIGIN = "reelm.example/audit/us"
ROOT = MemoryTree(leaf_hash(bytes([i])) for i in range(5)).root()


@pytest.fixture(scope="module")
def log_key() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture(scope="module")
def signed(log_key: Signer) -> str:
    return sign_checkpoint(ORIGIN, 5, ROOT, log_key)


def replace_line(note: str, index: int, line: str) -> str:
    lines = note.split("\n")
    lines[index] = line
    return "\n".join(lines)


# Interoperability and keys.


def test_keys_and_signature_match_the_go_note_package() -> None:
    signer = Signer.from_key_text(GO_SIGNER_KEY)
    assert signer.key_text() == GO_SIGNER_KEY
    assert signer.verifier.vkey() == GO_VERIFIER_KEY
    assert Verifier.from_vkey(GO_VERIFIER_KEY) == signer.verifier
    signature = NoteSignature(signer.name, signer.key_id, signer.sign(GO_TEXT.encode()))
    assert signature.line() == GO_SIGNATURE_LINE


def test_go_signed_note_parses_and_its_signature_verifies() -> None:
    note = parse_note(GO_TEXT + "\n" + GO_SIGNATURE_LINE)
    verifier = Verifier.from_vkey(GO_VERIFIER_KEY)
    assert note.text == GO_TEXT
    (signature,) = note.signatures
    assert (signature.name, signature.key_id) == (verifier.name, verifier.key_id)
    assert verifier.verify(GO_TEXT.encode(), signature.signature)


def test_key_id_is_the_truncated_hash_of_name_type_and_key() -> None:
    signer = Signer.generate("example.com/log")
    material = b"example.com/log\n\x01" + signer.public_key
    assert key_id("example.com/log", signer.public_key) == hashlib.sha256(material).digest()[:4]
    assert signer.key_id == signer.verifier.key_id == hashlib.sha256(material).digest()[:4]
    assert bytes.fromhex("c74f20a3") == Verifier.from_vkey(GO_VERIFIER_KEY).key_id


def test_vkey_round_trips_and_names_its_parts() -> None:
    verifier = Signer.generate("reelm.example/audit/eu").verifier
    name, hex_id, data = verifier.vkey().split("+", 2)
    assert name == "reelm.example/audit/eu"
    assert hex_id == verifier.key_id.hex()
    assert base64.b64decode(data) == b"\x01" + verifier.public_key
    assert Verifier.from_vkey(verifier.vkey() + "\n") == verifier
    assert Verifier.from_vkey(f"{name}+{hex_id.upper()}+{data}") == verifier


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeuman+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3+Alpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "type 0x02"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy", "32-byte"),
        ("PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex digits"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy1!TW", "base64"),
        ("PeterNeumann+c74f20a3", "form"),
        ("Peter+Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex digits"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "empty"),
    ],
)
def test_malformed_or_mismatched_vkeys_are_refused(vkey: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        Verifier.from_vkey(vkey)


def test_signer_key_file_round_trips_and_is_private(tmp_path: Path) -> None:
    signer = Signer.generate(ORIGIN)
    path = tmp_path / "audit.key"
    signer.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith(f"PRIVATE+KEY+{ORIGIN}+{signer.key_id.hex()}+")
    loaded = Signer.load(path)
    assert loaded.verifier == signer.verifier
    assert loaded.sign(b"x") == signer.sign(b"x")


def test_saving_a_signer_never_overwrites_an_existing_key(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    Signer.generate(ORIGIN).save(path)
    before = path.read_text()
    with pytest.raises(FileExistsError):
        Signer.generate(ORIGIN).save(path)
    assert path.read_text() == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz", "PRIVATE\\+KEY"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz", "match"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXH", "32-byte"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3", "form"),
    ],
)
def test_malformed_signer_keys_are_refused(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        Signer.from_key_text(text)


@pytest.mark.parametrize("name", ["", "with space", "a+b", "tab\there", "nbsp\u00a0name"])
def test_key_names_with_spaces_or_plus_are_refused(name: str) -> None:
    with pytest.raises(CheckpointError, match="key name"):
        Signer.generate(name)


def test_signer_repr_does_not_show_the_private_key() -> None:
    signer = Signer.from_key_text(GO_SIGNER_KEY)
    assert "AYEKFALV" not in repr(signer)
    assert "private_key" not in repr(signer)


# Checkpoints.


def test_signed_checkpoint_has_the_c2sp_layout(signed: str, log_key: Signer) -> None:
    root_b64 = base64.b64encode(ROOT).decode()
    body = f"{ORIGIN}\n5\n{root_b64}\n"
    assert signed.startswith(body + "\n\u2014 " + ORIGIN + " ")
    assert signed.endswith("\n")
    (signature,) = parse_note(signed).signatures
    assert signature.key_id == log_key.key_id
    assert len(signature.signature) == 64


def test_signed_checkpoint_round_trips(signed: str, log_key: Signer) -> None:
    checkpoint = verify_note(signed, log_key.verifier)
    assert checkpoint == Checkpoint(ORIGIN, 5, ROOT)
    assert verify_note(signed, log_key.verifier, origin=ORIGIN) == checkpoint


def test_extension_lines_round_trip(log_key: Signer) -> None:
    note = sign_checkpoint(ORIGIN, 5, ROOT, log_key, extensions=["policy v3", "more"])
    checkpoint = verify_note(note, log_key.verifier)
    assert checkpoint.extensions == ("policy v3", "more")
    assert parse_checkpoint(checkpoint.body()) == checkpoint


def test_empty_tree_checkpoint_round_trips(log_key: Signer) -> None:
    root = MemoryTree().root()
    note = sign_checkpoint(ORIGIN, 0, root, log_key)
    assert note.split("\n")[1] == "0"
    assert verify_note(note, log_key.verifier) == Checkpoint(ORIGIN, 0, root)


@pytest.mark.parametrize(
    ("line", "replacement"),
    [
        (0, "reelm.example/audit/eu"),
        (1, "6"),
        (1, "50"),
        (2, base64.b64encode(bytes(32)).decode()),
    ],
    ids=["origin", "size", "size-digit-added", "root"],
)
def test_tampered_checkpoint_is_rejected(
    signed: str, log_key: Signer, line: int, replacement: str
) -> None:
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_note(replace_line(signed, line, replacement), log_key.verifier)


def test_added_extension_line_is_rejected(signed: str, log_key: Signer) -> None:
    text, rest = signed.split("\n\n", 1)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_note(text + "\nsneaky\n\n" + rest, log_key.verifier)


def test_tampered_signature_is_rejected(signed: str, log_key: Signer) -> None:
    signature_line = signed.split("\n")[4]
    prefix, data = signature_line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(data))
    for position in (4, 20, len(raw) - 1):
        bad = bytearray(raw)
        bad[position] ^= 0x01
        tampered = replace_line(signed, 4, f"{prefix} {base64.b64encode(bad).decode()}")
        with pytest.raises(CheckpointError, match="does not verify"):
            verify_note(tampered, log_key.verifier)


def test_note_signed_by_another_key_is_rejected(signed: str) -> None:
    same_name = Signer.generate(ORIGIN).verifier
    with pytest.raises(CheckpointError, match="not signed by"):
        verify_note(signed, same_name)
    other_name = Signer.generate("reelm.example/audit/eu").verifier
    with pytest.raises(CheckpointError, match="not signed by"):
        verify_note(signed, other_name)


def test_unknown_extra_signatures_are_ignored(signed: str, log_key: Signer) -> None:
    stranger = Signer.generate("stranger.example/witness")
    extra = NoteSignature(stranger.name, stranger.key_id, stranger.sign(b"anything")).line()
    assert verify_note(signed + extra, log_key.verifier).size == 5
    text, ours = signed.split("\n\n", 1)
    assert verify_note(text + "\n\n" + extra + ours, log_key.verifier).size == 5


def test_signatures_sharing_only_the_name_or_only_the_id_are_ignored(
    signed: str, log_key: Signer
) -> None:
    junk = bytes(64)
    same_name = NoteSignature(log_key.name, b"\x00\x00\x00\x00", junk).line()
    same_id = NoteSignature("impostor.example", log_key.key_id, junk).line()
    assert verify_note(signed + same_name + same_id, log_key.verifier).size == 5


def test_bad_signature_under_the_trusted_key_rejects_even_beside_a_good_one(
    signed: str, log_key: Signer
) -> None:
    forged = NoteSignature(log_key.name, log_key.key_id, bytes(64)).line()
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_note(signed + forged, log_key.verifier)


def test_checkpoint_of_another_log_is_rejected_when_origin_is_given(log_key: Signer) -> None:
    note = sign_checkpoint("reelm.example/audit/eu", 5, ROOT, log_key)
    with pytest.raises(CheckpointError, match="not 'reelm.example/audit/us'"):
        verify_note(note, log_key.verifier, origin=ORIGIN)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda n: n.rstrip("\n"), "ends with a newline"),
        (lambda n: n.replace("\n\n", "\n"), "blank line"),
        (lambda n: n.split("\u2014")[0], "at least one signature"),
        (lambda n: n.replace("\u2014", "-"), "em dash"),
        (lambda n: n.replace("\u2014 ", "\u2014  "), "is not"),
        (lambda n: n.replace("\n", "\r\n"), "control character"),
        (lambda n: n.replace("audit/us", "audit\tus", 1), "control character"),
        (lambda n: n[:-3] + "!=\n", "base64"),
        (lambda n: n.replace("reelm.example", "\ud800", 1), "UTF-8"),
    ],
    ids=[
        "no-final-newline",
        "no-blank-line",
        "no-signature",
        "hyphen",
        "double-space",
        "crlf",
        "tab",
        "bad-base64",
        "surrogate",
    ],
)
def test_malformed_notes_are_rejected(
    signed: str, log_key: Signer, mangle: Callable[[str], str], message: str
) -> None:
    with pytest.raises(CheckpointError, match=message):
        verify_note(mangle(signed), log_key.verifier)


def test_note_with_too_many_signatures_is_rejected(signed: str, log_key: Signer) -> None:
    extra = NoteSignature("w.example", b"\x00\x00\x00\x01", bytes(64)).line()
    assert verify_note(signed + extra * 15, log_key.verifier).size == 5
    with pytest.raises(CheckpointError, match=f"at most {MAX_SIGNATURES}"):
        verify_note(signed + extra * MAX_SIGNATURES, log_key.verifier)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("05", "leading zeros"),
        ("+5", "decimal"),
        ("-1", "decimal"),
        (" 5", "decimal"),
        ("\u0665", "decimal"),
        ("5_0", "decimal"),
        ("", "empty lines"),
        (str(2**64), "outside"),
    ],
)
def test_tree_size_must_be_plain_ascii_decimal(size: str, message: str) -> None:
    root = base64.b64encode(ROOT).decode()
    with pytest.raises(CheckpointError, match=message):
        parse_checkpoint(f"{ORIGIN}\n{size}\n{root}\n")


@pytest.mark.parametrize(
    ("root", "message"),
    [
        (base64.b64encode(bytes(31)).decode(), "32 bytes"),
        (base64.b64encode(ROOT).decode().rstrip("="), "base64"),
        (base64.b64encode(ROOT).decode()[:-2] + "B=", "canonical"),
        ("not base64!", "base64"),
    ],
)
def test_root_hash_must_be_32_bytes_of_canonical_base64(root: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        parse_checkpoint(f"{ORIGIN}\n5\n{root}\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{ORIGIN}\n5\n", "origin, a tree size and a root"),
        ("\n5\nAAAA\n", "empty lines"),
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT).decode()}\n\next\n", "empty lines"),
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT).decode()}", "newline"),
    ],
)
def test_malformed_checkpoint_text_is_rejected(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        parse_checkpoint(text)


def test_checkpoint_refuses_values_it_could_not_serialise() -> None:
    with pytest.raises(CheckpointError, match="origin"):
        Checkpoint("", 1, ROOT)
    with pytest.raises(CheckpointError, match="single line"):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(CheckpointError, match="outside"):
        Checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(CheckpointError, match="32 bytes"):
        Checkpoint(ORIGIN, 1, ROOT[:16])
    with pytest.raises(CheckpointError, match="extension"):
        Checkpoint(ORIGIN, 1, ROOT, ("",))


# Witness cosignatures.


def test_witness_cosignature_verifies_alongside_the_log_signature(
    signed: str, log_key: Signer
) -> None:
    witness = Signer.generate("witness.example/w1")
    cosigned = cosign(signed, witness, log=log_key.verifier)
    assert cosigned.startswith(signed)
    assert verify_note(cosigned, log_key.verifier) == verify_note(cosigned, witness.verifier)
    assert [s.name for s in parse_note(cosigned).signatures] == [ORIGIN, witness.name]


def test_cosigning_twice_leaves_one_witness_signature(signed: str, log_key: Signer) -> None:
    witness = Signer.generate("witness.example/w1")
    once = cosign(signed, witness, log=log_key.verifier)
    assert cosign(once, witness, log=log_key.verifier) == once


def test_witness_refuses_to_cosign_what_the_log_did_not_sign(signed: str, log_key: Signer) -> None:
    witness = Signer.generate("witness.example/w1")
    other_log = Signer.generate(ORIGIN).verifier
    with pytest.raises(CheckpointError, match="not signed by"):
        cosign(signed, witness, log=other_log)
    tampered = replace_line(signed, 1, "6")
    with pytest.raises(CheckpointError, match="does not verify"):
        cosign(tampered, witness, log=log_key.verifier)


def test_tampered_cosigned_note_fails_for_the_witness_too(signed: str, log_key: Signer) -> None:
    witness = Signer.generate("witness.example/w1")
    cosigned = cosign(signed, witness, log=log_key.verifier)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_note(replace_line(cosigned, 1, "6"), witness.verifier)
