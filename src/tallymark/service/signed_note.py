"""Ed25519 signed notes in the C2SP format (https://c2sp.org/signed-note), and the key file.

A note is UTF-8 text ending in a newline, a blank line, then one or more signature lines::

    tallymark.example/audit
    42
    q3YbS2u1mD0ZlmSbN0F7uWnbWnT7P3S6Hh9sV1u3u0o=

    — tallymark.example/audit Qk2j0d…base64(4-byte key id ‖ 64-byte Ed25519 signature)…

The signature is Ed25519 (RFC 8032) over the text, newline included. The key id is the first four
bytes of ``SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key)``, as the spec recommends for
signature type 0x01. Key names may not hold spaces or ``+``.

Key encodings are the ones Go's ``golang.org/x/mod/sumdb/note`` reads, so other tools can use them:

- signer key (the private key file):  ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ 32-byte seed)>``
- verifier key (safe to publish):      ``<name>+<hex key id>+<base64(0x01 ‖ 32-byte public key)>``

The private key file is created with mode 0600 (written to a temporary file, then linked into place
so two processes starting at once end up with the same key) and refused when group or others can
read it, as ssh refuses a readable private key: a key anyone on the machine can read signs nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tallymark.service.private_files import create_once, readable_by_others

ED25519 = 0x01
MAX_NOTE_BYTES = 64 * 1024
MAX_SIGNATURES = 64
_NAME_RE = re.compile(r"[^\s+]+")


class NoteError(ValueError):
    """A note, a key or a key file that cannot be used; the message says why."""


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public).digest()[:4]


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name) or any(ord(c) < 0x20 for c in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces, '+' or control characters")
    return name


@dataclass(frozen=True)
class Verifier:
    """A public key that checks signatures: ``name`` plus the 4-byte ``key_id`` select it."""

    name: str
    key_id: bytes
    public: bytes

    def encode(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([ED25519]) + self.public).decode()}"

    @classmethod
    def decode(cls, text: str) -> Verifier:
        parts = text.strip().split("+", 2)  # base64 may hold "+": it is the last field
        if len(parts) != 3:
            raise NoteError("a verifier key reads NAME+KEYID+BASE64 (as `tallymark audit checkpoint` prints)")
        name, hex_id, b64 = parts
        try:
            raw = base64.b64decode(b64, validate=True)
            key_id = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError):
            raise NoteError("the verifier key is not valid hex/base64") from None
        if len(raw) != 33 or raw[0] != ED25519 or len(key_id) != 4:
            raise NoteError("the verifier key is not an Ed25519 key (type 0x01, 32 bytes)")
        if _key_id(_check_name(name), raw[1:]) != key_id:
            raise NoteError("the verifier key's id does not match its name and public key")
        return cls(name, key_id, raw[1:])


@dataclass(frozen=True)
class Signer:
    """A private key with its name; :attr:`verifier` is the matching public key."""

    name: str
    seed: bytes

    @property
    def verifier(self) -> Verifier:
        public = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw()
        return Verifier(self.name, _key_id(self.name, public), public)

    def encode(self) -> str:
        b64 = base64.b64encode(bytes([ED25519]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{b64}"

    @classmethod
    def decode(cls, text: str) -> Signer:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("not a signer key (PRIVATE+KEY+NAME+KEYID+BASE64)")
        try:
            raw = base64.b64decode(parts[4], validate=True)
        except binascii.Error:
            raise NoteError("the signer key is not valid base64") from None
        if len(raw) != 33 or raw[0] != ED25519:
            raise NoteError("the signer key is not an Ed25519 key (type 0x01, 32 bytes)")
        signer = cls(_check_name(parts[2]), raw[1:])
        if signer.verifier.key_id.hex() != parts[3].lower():
            raise NoteError("the signer key's id does not match its key")
        return signer

    def sign(self, text: str) -> str:
        """``text`` (which must end in a newline) as a signed note."""
        _check_text(text)
        sig = Ed25519PrivateKey.from_private_bytes(self.seed).sign(text.encode())
        line = base64.b64encode(self.verifier.key_id + sig).decode()
        return f"{text}\n\u2014 {self.name} {line}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("a note's text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note may not contain control characters other than newline")


def open_note(note: str, verifier: Verifier) -> str:
    """The text of ``note`` if ``verifier``'s key signed it; NoteError otherwise.

    As the spec asks: signatures of other keys are ignored, a failing signature of our key rejects
    the whole note, and a note without a valid signature of our key is rejected.
    """
    if len(note.encode("utf-8", "replace")) > MAX_NOTE_BYTES:
        raise NoteError(f"the note is larger than {MAX_NOTE_BYTES} bytes")
    if not note.endswith("\n"):
        raise NoteError("a signed note ends with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("no blank line separates the note's text from its signatures")
    text, lines = note[: split + 1], note[split + 2 : -1].split("\n")
    _check_text(text)
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    verified = False
    for line in lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014":
            raise NoteError(f"malformed signature line {line[:80]!r}")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise NoteError("a signature is not valid base64") from None
        if parts[1] != verifier.name or raw[:4] != verifier.key_id:
            continue  # someone else's key: ignored, as the spec says
        try:
            Ed25519PublicKey.from_public_bytes(verifier.public).verify(raw[4:], text.encode())
        except InvalidSignature:
            raise NoteError(
                f"the signature of {verifier.name} does not verify: the note was altered"
            ) from None
        verified = True
    if not verified:
        raise NoteError(
            f"the note is not signed by the key {verifier.name}+{verifier.key_id.hex()} "
            "(another key signed it, or nobody did)"
        )
    return text


def default_key_name() -> str:
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "localhost"
    return f"{host}/tallymark-audit"


def load_signer(path: Path) -> Signer:
    """The signer key in ``path``; NoteError (with the reason) when it is absent or unsafe."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise NoteError(f"no audit key at {path}") from None
    if readable_by_others(st):
        raise NoteError(f"the audit key {path} can be read by others: chmod 600 it")
    return Signer.decode(path.read_text())


def load_or_create_signer(path: Path, name: str | None = None) -> Signer:
    """The signer key in ``path``, created (mode 0600) with a new Ed25519 key when absent."""
    if path.exists():
        return load_signer(path)
    signer = Signer(_check_name(name or default_key_name()), Ed25519PrivateKey.generate().private_bytes_raw())
    create_once(path, signer.encode() + "\n")
    return load_signer(path)
