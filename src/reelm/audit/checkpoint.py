"""Signed checkpoints of a region's audit log, in the C2SP tlog-checkpoint and signed-note formats.

An outside auditor checks them with any C2SP note verifier (e.g. Go's golang.org/x/mod/sumdb/note)
and the region's public key alone: https://c2sp.org/tlog-checkpoint, https://c2sp.org/signed-note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from reelm.audit.merkle import HASH_SIZE

SIGNATURE_TYPE_ED25519 = 0x01
"""The signed-note signature type byte for plain Ed25519 over the note text."""

MAX_SIGNATURES = 100
"""Notes with more signature lines are refused (the spec asks for a limit of at least 16)."""

PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_ED25519_SIGNATURE_SIZE = 64
_MAX_TREE_SIZE = 2**64 - 1  # sizes are uint64 in every other implementation
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX_KEY_ID = re.compile(r"[0-9a-fA-F]{8}")


class CheckpointError(ValueError):
    """A note, key or checkpoint is malformed, or its signature does not verify."""


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64: no whitespace, no missing padding, no non-zero spare bits."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise CheckpointError(f"{what} is not canonical base64")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _check_text(text: str, what: str) -> None:
    """Signed notes are UTF-8 with no ASCII control character other than newline."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CheckpointError(f"{what} is not valid UTF-8") from exc
    for char in text:
        if char < " " and char != "\n":
            raise CheckpointError(f"{what} contains the control character {char!r}")


def _check_key_name(name: str) -> None:
    if not name:
        raise CheckpointError("a key name must not be empty")
    if "+" in name or any(char.isspace() for char in name):
        raise CheckpointError(f"key name {name!r} must not contain spaces or '+'")
    _check_text(name, f"key name {name!r}")


def key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || public key)[:4], the signed-note key ID of an Ed25519 key.

    The type byte makes the same key under the same name a different key for another algorithm.
    """
    _check_key_name(name)
    material = name.encode("utf-8") + b"\n" + bytes([SIGNATURE_TYPE_ED25519]) + public_key
    return hashlib.sha256(material).digest()[:4]


def _parse_key_id(text: str, what: str) -> bytes:
    if not _HEX_KEY_ID.fullmatch(text):
        raise CheckpointError(f"{what} key ID {text!r} is not 8 hex digits")
    return bytes.fromhex(text)


def _parse_key_data(text: str, what: str) -> bytes:
    raw = _b64decode(text, f"{what} key data")
    if not raw or raw[0] != SIGNATURE_TYPE_ED25519:
        kind = f"0x{raw[0]:02x}" if raw else "missing"
        raise CheckpointError(f"{what} has signature type {kind}; only Ed25519 (0x01) is supported")
    if len(raw) != 33:
        raise CheckpointError(f"{what} must hold a 32-byte Ed25519 key, got {len(raw) - 1} bytes")
    return raw[1:]


@dataclass(frozen=True)
class Verifier:
    """A trusted public key under its name: what an auditor configures to check checkpoints."""

    name: str
    public_key: bytes
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        if len(self.public_key) != 32:
            raise CheckpointError(f"an Ed25519 public key is 32 bytes, got {len(self.public_key)}")
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key))

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse `<name>+<hex key ID>+<base64(0x01 || public key)>`; the ID must match the key."""
        parts = vkey.strip().split("+", 2)  # base64 key data may itself contain '+'
        if len(parts) != 3:
            raise CheckpointError("a verifier key has the form <name>+<hex key id>+<base64 key>")
        name, hex_id, data = parts
        claimed = _parse_key_id(hex_id, "verifier")
        verifier = cls(name, _parse_key_data(data, "verifier key"))
        if verifier.key_id != claimed:
            expected = verifier.key_id.hex()
            raise CheckpointError(f"verifier key ID {hex_id} does not match its key ({expected})")
        return verifier

    def vkey(self) -> str:
        data = _b64encode(bytes([SIGNATURE_TYPE_ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{data}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class NoteSigner(Protocol):
    """Something that signs note text under a key name: the local `Signer` or a region's KMS."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature (64 bytes) over `message`."""
        ...


@dataclass(frozen=True)
class Signer:
    """An Ed25519 private key under its name, kept in a key file.

    Key file format (the one Go's golang.org/x/mod/sumdb/note uses), one line:
    `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>`.
    """

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        _check_key_name(self.name)

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_key_text(cls, text: str) -> Signer:
        """Parse the key file line; the key ID must match the name and the derived public key."""
        text = text.strip()
        if not text.startswith(PRIVATE_KEY_PREFIX):
            raise CheckpointError(f"a signer key starts with {PRIVATE_KEY_PREFIX!r}")
        parts = text.removeprefix(PRIVATE_KEY_PREFIX).split("+", 2)
        if len(parts) != 3:
            raise CheckpointError(
                "a signer key has the form PRIVATE+KEY+<name>+<hex key id>+<base64 seed>"
            )
        name, hex_id, data = parts
        claimed = _parse_key_id(hex_id, "signer")
        signer = cls(
            name, Ed25519PrivateKey.from_private_bytes(_parse_key_data(data, "signer key"))
        )
        if signer.key_id != claimed:
            expected = signer.key_id.hex()
            raise CheckpointError(f"signer key ID {hex_id} does not match its key ({expected})")
        return signer

    def key_text(self) -> str:
        data = _b64encode(bytes([SIGNATURE_TYPE_ED25519]) + self.private_key.private_bytes_raw())
        return f"{PRIVATE_KEY_PREFIX}{self.name}+{self.key_id.hex()}+{data}"

    def save(self, path: Path) -> None:
        """Write the key file readable by its owner only; never overwrites an existing key,
        since losing a log's key means no further checkpoint can be verified against it."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(self.key_text() + "\n")

    @classmethod
    def load(cls, path: Path) -> Signer:
        return cls.from_key_text(path.read_text(encoding="utf-8"))

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes_raw()

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: the note text of a checkpoint, validated so it always serialises."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin:
            raise CheckpointError("a checkpoint's origin must not be empty")
        _check_text(self.origin, "checkpoint origin")
        if "\n" in self.origin:
            raise CheckpointError("a checkpoint's origin is a single line")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise CheckpointError(f"tree size {self.size} is outside 0..2^64-1")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError(f"a root hash is {HASH_SIZE} bytes, got {len(self.root)}")
        for line in self.extensions:
            if not line or "\n" in line:
                raise CheckpointError("an extension line must be one non-empty line")
            _check_text(line, "extension line")

    def body(self) -> str:
        """The note text that gets signed, each line ending in a newline."""
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint's note text (the body, not a signed note: see `verify_note`)."""
    _check_text(text, "checkpoint")
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("a checkpoint has an origin, a tree size and a root hash line")
    if "" in lines:
        raise CheckpointError(
            "a checkpoint has no empty lines (a signed note must be read with verify_note)"
        )
    origin, size, root, *extensions = lines
    if not _DECIMAL.fullmatch(size):
        raise CheckpointError(f"tree size {size!r} is not a decimal number without leading zeros")
    return Checkpoint(origin, int(size), _b64decode(root, "root hash"), tuple(extensions))


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {_b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A signed note split into its text (ending in a newline) and its signature lines."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_text(self) -> str:
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise CheckpointError(f"signature line {line!r} does not start with an em dash and a space")
    parts = line.removeprefix(SIGNATURE_PREFIX).split(" ")
    if len(parts) != 2:
        raise CheckpointError(f"signature line {line!r} is not '— <key name> <signature>'")
    name, data = parts
    _check_key_name(name)
    raw = _b64decode(data, f"signature by {name}")
    if len(raw) < 5:
        raise CheckpointError(f"signature by {name} is too short to hold a key ID and a signature")
    return NoteSignature(name, raw[:4], raw[4:])


def parse_note(note: str) -> Note:
    """Split a signed note at its last blank line; nothing here is verified or trusted yet."""
    _check_text(note, "signed note")
    if not note.endswith("\n"):
        raise CheckpointError("a signed note ends with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("a signed note has a blank line between its text and signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise CheckpointError("a signed note has at least one signature line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"a signed note may carry at most {MAX_SIGNATURES} signatures")
    return Note(text, tuple(_parse_signature_line(line) for line in lines))


def _sign(text: str, signer: NoteSigner) -> NoteSignature:
    return NoteSignature(signer.name, signer.key_id, signer.sign(text.encode("utf-8")))


def sign_checkpoint(
    origin: str, size: int, root: bytes, signer: NoteSigner, *, extensions: Sequence[str] = ()
) -> str:
    """A signed note for the tree head; the log's key name should be its origin (C2SP)."""
    text = Checkpoint(origin, size, root, tuple(extensions)).body()
    return Note(text, (_sign(text, signer),)).to_text()


def _check_signed_by(note: Note, verifier: Verifier) -> None:
    """Signatures under another name or key ID are ignored, as the spec requires; a signature
    under this key that fails rejects the whole note, since it means tampering."""
    message = note.text.encode("utf-8")
    verified = False
    for sig in note.signatures:
        if sig.name != verifier.name or sig.key_id != verifier.key_id:
            continue
        if not verifier.verify(message, sig.signature):
            raise CheckpointError(f"the signature by {verifier.name} does not verify")
        verified = True
    if not verified:
        wanted = f"{verifier.name}+{verifier.key_id.hex()}"
        signers = ", ".join(f"{sig.name}+{sig.key_id.hex()}" for sig in note.signatures)
        raise CheckpointError(f"the note is not signed by {wanted} (signed by {signers})")


def verify_note(note: str, verifier: Verifier, *, origin: str | None = None) -> Checkpoint:
    """The checkpoint in `note` once `verifier`'s signature on it checks out.

    The text is parsed only after the signature verifies (signed-note: unverified text must be
    ignored). Pass `origin` to also refuse a validly signed checkpoint of another log.
    """
    parsed = parse_note(note)
    _check_signed_by(parsed, verifier)
    checkpoint = parse_checkpoint(parsed.text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def cosign(note: str, witness: NoteSigner, *, log: Verifier) -> str:
    """`note` with the witness's signature line appended, once the log's own signature verifies.

    The witness signs the same note text with plain Ed25519 (type 0x01), so its line verifies
    with `verify_note(note, witness_verifier)` like any other; this is not the timestamped
    tlog-cosignature/v1 (type 0x04) format. Checking that the checkpoint is consistent with the
    last one the witness cosigned stays the caller's job. A previous line by the same key is
    replaced, so cosigning twice leaves one signature.
    """
    parsed = parse_note(note)
    _check_signed_by(parsed, log)
    parse_checkpoint(parsed.text)
    mine = _sign(parsed.text, witness)
    others = tuple(
        sig for sig in parsed.signatures if (sig.name, sig.key_id) != (mine.name, mine.key_id)
    )
    return Note(parsed.text, (*others, mine)).to_text()
