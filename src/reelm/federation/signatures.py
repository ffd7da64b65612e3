"""HTTP Signatures: draft-cavage-http-signatures-12 as Mastodon, PeerTube, Loops and Fedify use
it (rsa-sha256 over `(request-target) host date digest`), for signing and verifying, and RFC 9421
(HTTP Message Signatures) for verifying. Real cryptography (`cryptography`'s RSA and Ed25519);
nothing here touches a database."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from reelm.errors import Unauthorized

RSA_BITS = 2048


class SignatureRefused(Unauthorized):
    code = "bad_signature"


def new_key_pair() -> tuple[str, str]:
    """(public PEM, private PEM) of a fresh RSA key, as ActivityPub servers publish them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return public, private


@functools.lru_cache(maxsize=4096)
def _private_key(pem: str) -> rsa.RSAPrivateKey:
    """A loaded signing key, kept: loading one checks the RSA key's consistency, which costs
    hundreds of milliseconds, far more than signing with it."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def http_date(at: datetime | None = None) -> str:
    return format_datetime((at or datetime.now(UTC)).astimezone(UTC), usegmt=True)


def digest_header(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()


def sign_request(
    method: str,
    url: str,
    body: bytes | None,
    *,
    key_id: str,
    private_pem: str,
    at: datetime | None = None,
) -> dict[str, str]:
    """The headers (Host, Date, Digest for a body, Signature) that sign this request."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Host": parts.netloc, "Date": http_date(at)}
    names = ["(request-target)", "host", "date"]
    if body is not None:
        headers["Digest"] = digest_header(body)
        names.append("digest")
    lines = [f"(request-target): {method.lower()} {target}"]
    lines += [f"{n}: {headers[n.capitalize()]}" for n in names[1:]]
    signature = _private_key(private_pem).sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    headers["Signature"] = (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(names)}",'
        f'signature="{base64.b64encode(signature).decode()}"'
    )
    return headers


@dataclass(frozen=True)
class SignedRequest:
    """What a verifier needs of an incoming request."""

    method: str
    url: str  # as the client addressed it: scheme://host/path?query
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class Signature:
    """A parsed signature: who claims to have signed, and a check to run with their key."""

    key_id: str
    scheme: str  # "cavage" or "rfc9421"
    _base: bytes
    _signature: bytes
    _algorithm: str

    def verify(self, public_pem: str) -> None:
        key = serialization.load_pem_public_key(public_pem.encode())
        try:
            if isinstance(key, rsa.RSAPublicKey) and self._algorithm in (
                "rsa-sha256", "hs2019", "rsa-v1_5-sha256",
            ):  # fmt: skip
                key.verify(self._signature, self._base, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(key, Ed25519PublicKey) and self._algorithm in ("hs2019", "ed25519"):
                key.verify(self._signature, self._base)
            else:
                raise SignatureRefused(f"Unsupported signature algorithm {self._algorithm!r}.")
        except InvalidSignature:
            raise SignatureRefused("The HTTP signature does not verify.") from None


_PARAM = re.compile(r'([A-Za-z]+)="([^"]*)"')


def parse_signature(req: SignedRequest, *, max_skew_s: int) -> Signature:
    """Parse and pre-check the request's signature (Date fresh, Digest or Content-Digest equal
    to the body's, the required parts signed); `Signature.verify` then checks it with the key.
    Raises `SignatureRefused` (401) for anything missing, stale or inconsistent."""
    h = req.headers
    if "signature-input" in h and "signature" in h:
        return _parse_rfc9421(req, max_skew_s=max_skew_s)
    raw = h.get("signature")
    if raw is None and h.get("authorization", "").lower().startswith("signature "):
        raw = h["authorization"][len("signature ") :]
    if not raw:
        raise SignatureRefused("The request is not signed (no Signature header).", code="unsigned")
    params = dict(_PARAM.findall(raw))
    if "keyId" not in params or "signature" not in params:
        raise SignatureRefused("The Signature header lacks keyId or signature.")
    names = params.get("headers", "date").lower().split()
    if "date" not in names and "(created)" not in names:
        raise SignatureRefused("The signature must cover the Date header.")
    if req.body and "digest" not in names:
        raise SignatureRefused("The signature must cover the Digest of the body.")
    if "digest" in names:
        _check_digest(h.get("digest", ""), req.body)
    if "date" in names:
        _check_fresh(h.get("date"), max_skew_s)
    else:
        _check_created(params.get("created"), max_skew_s)
    parts = urlsplit(req.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = []
    for name in names:
        if name == "(request-target)":
            lines.append(f"(request-target): {req.method.lower()} {target}")
        elif name in ("(created)", "(expires)"):
            lines.append(f"{name}: {params.get(name[1:-1], '')}")
        elif name in h:
            lines.append(f"{name}: {h[name]}")
        else:
            raise SignatureRefused(f"The signed header {name!r} is missing from the request.")
    try:
        signature = base64.b64decode(params["signature"], validate=True)
    except ValueError:
        raise SignatureRefused("The signature is not base64.") from None
    return Signature(
        params["keyId"], "cavage", "\n".join(lines).encode(), signature,
        params.get("algorithm", "hs2019").lower(),
    )  # fmt: skip


def _check_digest(value: str, body: bytes) -> None:
    for item in value.split(","):
        algo, _, encoded = item.strip().partition("=")
        if algo.lower() == "sha-256":
            if encoded != base64.b64encode(hashlib.sha256(body).digest()).decode():
                raise SignatureRefused("The Digest does not match the body.")
            return
    raise SignatureRefused("The request has no SHA-256 Digest.")


def _check_fresh(date: str | None, max_skew_s: int) -> None:
    if not date:
        raise SignatureRefused("The signed Date header is missing.")
    try:
        at = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise SignatureRefused("The Date header is not an HTTP date.") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if abs((datetime.now(UTC) - at).total_seconds()) > max_skew_s:
        raise SignatureRefused(
            f"The request's Date is more than {max_skew_s} s from now (a replay, or a clock "
            "that is wrong).",
            code="stale_signature",
        )


def _check_created(created: str | None, max_skew_s: int) -> None:
    try:
        at = datetime.fromtimestamp(int(created or ""), UTC)
    except ValueError:
        raise SignatureRefused("The signature has no usable creation time.") from None
    _check_fresh(http_date(at), max_skew_s)


_RFC9421_INPUT = re.compile(r"^([A-Za-z0-9_-]+)=\((.*?)\)(.*)$")


def _parse_rfc9421(req: SignedRequest, *, max_skew_s: int) -> Signature:
    """The first signature of an RFC 9421 request; components @method, @target-uri,
    @authority, @path, @query and header fields; Content-Digest checked against the body."""
    h = req.headers
    m = _RFC9421_INPUT.match(h["signature-input"].split(",sig", 1)[0].strip())
    if m is None:
        raise SignatureRefused("Signature-Input is not understood.")
    label, inner, rest = m.groups()
    components = [c.strip('"') for c in inner.split()]
    params: dict[str, str] = {}
    for item in rest.split(";"):
        k, _, v = item.partition("=")
        if k:
            params[k.strip()] = v.strip().strip('"')
    sig_match = re.search(rf"{re.escape(label)}=:([^:]*):", h["signature"])
    if sig_match is None or "keyid" not in params:
        raise SignatureRefused("The RFC 9421 signature lacks its value or keyid.")
    if req.body:
        if "content-digest" not in components:
            raise SignatureRefused("The signature must cover the Content-Digest of the body.")
        digest = h.get("content-digest", "")
        want = base64.b64encode(hashlib.sha256(req.body).digest()).decode()
        if f"sha-256=:{want}:" not in digest.replace(" ", ""):
            raise SignatureRefused("The Content-Digest does not match the body.")
    _check_created(params.get("created"), max_skew_s)
    parts = urlsplit(req.url)
    values = {
        "@method": req.method.upper(),
        "@target-uri": req.url,
        "@authority": parts.netloc.lower(),
        "@path": parts.path,
        "@query": f"?{parts.query}",
    }
    lines = []
    for c in components:
        if c in values:
            lines.append(f'"{c}": {values[c]}')
        elif c in h:
            lines.append(f'"{c}": {h[c]}')
        else:
            raise SignatureRefused(f"The signed component {c!r} is missing from the request.")
    lines.append(f'"@signature-params": ({inner}){rest}')
    alg = params.get("alg", "rsa-v1_5-sha256").lower()
    try:
        signature = base64.b64decode(sig_match.group(1), validate=True)
    except ValueError:
        raise SignatureRefused("The signature is not base64.") from None
    return Signature(params["keyid"], "rfc9421", "\n".join(lines).encode(), signature, alg)
