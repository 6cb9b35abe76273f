"""Session cryptography, sans-IO: proofs, session keys and frame sealing (docs/security.md).

Everything here is a pure function of its arguments. Keys and nonces are passed in: protocol/
never draws randomness or reads a clock (docs/architecture.md principle 1). The hil shells draw
nonces and keys with ``secrets`` and hand them down.

The construction is pinned by docs/architecture.md and specified byte for byte in
docs/security.md:

- Proofs (mutual challenge-response): ``HMAC-SHA256(role_key, label || serial || role || pn ||
  dn)`` with ``label`` either ``b"pumpemu/1 programmer"`` or ``b"pumpemu/1 pump"``, ``serial``
  the pump serial's ASCII bytes, ``role`` one byte, ``pn`` the programmer's 16-byte nonce and
  ``dn`` the pump's (device's) 16-byte nonce. Every field but the serial has a fixed length and
  the serial sits between two fixed-length parts, so the encoding is unambiguous.
- Session keys: ``HKDF-SHA256(ikm=role_key, salt=pn || dn, info=b"pumpemu/1 session" || role ||
  serial, length=64)``; bytes 0-31 seal programmer-to-pump frames, bytes 32-63 pump-to-
  programmer frames.
- Sealing: AES-256-GCM. The associated data is the 15 header bytes; the 12-byte nonce is
  ``direction || 00 x 7 || SEQ (u32 LE)``, where ``direction`` is the header's REPLY flag (0 for
  programmer to pump, 1 for pump to programmer) and SEQ is read from header bytes 4-7. The
  sealed body is ``ciphertext || tag`` and is exactly 16 bytes longer than the plaintext; the
  header's LENGTH field must already say so.

Blame (docs/architecture.md principle 8): bad arguments from the local caller (a key of the wrong
length, a header whose LENGTH does not match what is being sealed) raise ``ValueError``; bytes from
the peer that do not open raise ``SessionError``.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass, field
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.device_state import Role
from protocol.errors import SessionError

KEY_LEN = 32
"""Role keys and directional session keys are 256-bit."""
NONCE_LEN = 16
"""Handshake nonces (programmer's and pump's) are 16 random bytes each."""
PROOF_LEN = 32
"""A proof is one HMAC-SHA256 output."""
TAG_LEN = 16
"""AES-GCM's authentication tag, appended to the ciphertext."""
AEAD_NONCE_LEN = 12
HEADER_LEN = 15
"""Frame header bytes 0-14 (SYNC .. LENGTH): the AEAD associated data."""
MAX_BODY_LEN = 1024
"""The frame LENGTH bound (docs/architecture.md)."""
MAX_SEALED_PLAINTEXT_LEN = MAX_BODY_LEN - TAG_LEN
SERIAL_MAX_LEN = 16
"""A pump serial is 1-16 printable ASCII characters other than space (0x21-0x7E)."""

PROGRAMMER_PROOF_LABEL = b"pumpemu/1 programmer"
PUMP_PROOF_LABEL = b"pumpemu/1 pump"
SESSION_KEY_INFO_LABEL = b"pumpemu/1 session"

# Header layout (docs/architecture.md): FLAGS at 3, SEQ u32 LE at 4, LENGTH u16 LE at 13.
FLAGS_OFFSET = 3
SEQ_OFFSET = 4
LENGTH_OFFSET = 13
FLAG_REPLY = 0x01
FLAG_SEALED = 0x02

DIRECTION_TO_PUMP = 0
"""Nonce direction byte of a request (REPLY flag clear): programmer to pump."""
DIRECTION_TO_PROGRAMMER = 1
"""Nonce direction byte of a reply (REPLY flag set): pump to programmer."""

_LENGTH_FIELD = struct.Struct("<H").unpack_from
_SEQ_FIELD = struct.Struct("<I").unpack_from


def serial_bytes(serial: str) -> bytes:
    """The serial as it enters proofs and key derivation: its ASCII bytes, nothing else.

    Raises ``ValueError`` unless it is 1-16 characters in 0x21-0x7E.
    """
    if not isinstance(serial, str):
        raise ValueError(f"serial must be a str, got {type(serial).__name__}")
    if not 1 <= len(serial) <= SERIAL_MAX_LEN:
        raise ValueError(f"serial must be 1-{SERIAL_MAX_LEN} characters, got {len(serial)}")
    bad = [c for c in serial if not 0x21 <= ord(c) <= 0x7E]
    if bad:
        raise ValueError(
            f"serial {serial!r} has {bad[0]!r}: only printable ASCII without spaces is allowed"
        )
    return serial.encode("ascii")


def _check_len(name: str, value: bytes, length: int) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ValueError(f"{name} must be bytes, got {type(value).__name__}")
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")


@dataclass(frozen=True, slots=True)
class Transcript:
    """What both proofs and the session keys are bound to: one handshake's public values."""

    serial: str
    role: Role
    programmer_nonce: bytes
    pump_nonce: bytes

    def __post_init__(self) -> None:
        serial_bytes(self.serial)
        object.__setattr__(self, "role", Role(self.role))
        _check_len("programmer_nonce", self.programmer_nonce, NONCE_LEN)
        _check_len("pump_nonce", self.pump_nonce, NONCE_LEN)

    def proof_input(self, label: bytes) -> bytes:
        """``label || serial || role || pn || dn``: the HMAC message of a proof."""
        return b"".join(
            (
                label,
                serial_bytes(self.serial),
                bytes([self.role.value]),
                bytes(self.programmer_nonce),
                bytes(self.pump_nonce),
            )
        )

    def key_info(self) -> bytes:
        """``"pumpemu/1 session" || role || serial``: the HKDF info."""
        return SESSION_KEY_INFO_LABEL + bytes([self.role.value]) + serial_bytes(self.serial)

    def key_salt(self) -> bytes:
        """``pn || dn``: the HKDF salt."""
        return bytes(self.programmer_nonce) + bytes(self.pump_nonce)


def _proof(label: bytes, role_key: bytes, transcript: Transcript) -> bytes:
    _check_len("role_key", role_key, KEY_LEN)
    return hmac.new(bytes(role_key), transcript.proof_input(label), sha256).digest()


def programmer_proof(role_key: bytes, transcript: Transcript) -> bytes:
    """The AUTHENTICATE proof: the programmer shows it holds ``role_key`` for this pump."""
    return _proof(PROGRAMMER_PROOF_LABEL, role_key, transcript)


def pump_proof(role_key: bytes, transcript: Transcript) -> bytes:
    """The SESSION_OPENED proof: the pump shows it holds ``role_key`` too (mutual auth)."""
    return _proof(PUMP_PROOF_LABEL, role_key, transcript)


def _verify(expected: bytes, proof: bytes) -> bool:
    if not isinstance(proof, bytes | bytearray | memoryview) or len(proof) != PROOF_LEN:
        return False
    return hmac.compare_digest(expected, bytes(proof))


def verify_programmer_proof(role_key: bytes, transcript: Transcript, proof: bytes) -> bool:
    """Constant-time check of an AUTHENTICATE proof. A proof of the wrong length is false."""
    return _verify(programmer_proof(role_key, transcript), proof)


def verify_pump_proof(role_key: bytes, transcript: Transcript, proof: bytes) -> bool:
    """Constant-time check of a SESSION_OPENED proof. A proof of the wrong length is false."""
    return _verify(pump_proof(role_key, transcript), proof)


@dataclass(frozen=True, slots=True, repr=False)
class SessionKeys:
    """The two directional AES-256-GCM keys of one session. ``repr`` never shows them."""

    to_pump: bytes
    """Seals requests, programmer to pump (HKDF output bytes 0-31)."""
    to_programmer: bytes
    """Seals replies, pump to programmer (HKDF output bytes 32-63)."""
    to_pump_aead: AESGCM = field(init=False, repr=False, compare=False)
    """AES-256-GCM under ``to_pump``, built once: every sealed frame of the session uses
    it (``seal_under``, ``open_under``), so no frame pays for a key schedule."""
    to_programmer_aead: AESGCM = field(init=False, repr=False, compare=False)
    """AES-256-GCM under ``to_programmer``, built once."""

    def __post_init__(self) -> None:
        _check_len("to_pump", self.to_pump, KEY_LEN)
        _check_len("to_programmer", self.to_programmer, KEY_LEN)
        if self.to_pump == self.to_programmer:
            raise ValueError("the two directional keys must differ")
        object.__setattr__(self, "to_pump_aead", AESGCM(bytes(self.to_pump)))
        object.__setattr__(self, "to_programmer_aead", AESGCM(bytes(self.to_programmer)))

    def __repr__(self) -> str:
        return "SessionKeys(<secret>)"


def derive_session_keys(role_key: bytes, transcript: Transcript) -> SessionKeys:
    """HKDF-SHA256 over the role key, salted with both nonces: fresh keys for every session."""
    _check_len("role_key", role_key, KEY_LEN)
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=2 * KEY_LEN,
        salt=transcript.key_salt(),
        info=transcript.key_info(),
    ).derive(bytes(role_key))
    return SessionKeys(to_pump=okm[:KEY_LEN], to_programmer=okm[KEY_LEN:])


def header_seq(header: bytes) -> int:
    """The SEQ field (u32 LE at offset 4) of a 15-byte header."""
    if header.__class__ is not bytes or len(header) != HEADER_LEN:
        _check_len("header", header, HEADER_LEN)
    seq: int = _SEQ_FIELD(header, SEQ_OFFSET)[0]
    return seq


def header_length(header: bytes) -> int:
    """The LENGTH field (u16 LE at offset 13) of a 15-byte header: the body length."""
    _check_len("header", header, HEADER_LEN)
    length: int = struct.unpack_from("<H", header, LENGTH_OFFSET)[0]
    return length


def header_is_reply(header: bytes) -> bool:
    if header.__class__ is not bytes or len(header) != HEADER_LEN:
        _check_len("header", header, HEADER_LEN)
    return bool(header[FLAGS_OFFSET] & FLAG_REPLY)


def header_is_sealed(header: bytes) -> bool:
    _check_len("header", header, HEADER_LEN)
    return bool(header[FLAGS_OFFSET] & FLAG_SEALED)


def aead_nonce(header: bytes) -> bytes:
    """The 12-byte AES-GCM nonce of a frame: ``direction || 00 x 7 || SEQ (u32 LE)``.

    ``direction`` is the REPLY flag (0 programmer to pump, 1 pump to programmer). Each
    direction has its own key as well, so the direction byte is defence in depth; the SEQ
    makes the nonce unique because a sender never seals two frames with one SEQ in a session.
    """
    _check_len("header", header, HEADER_LEN)
    return _nonce(header)


_NONCE_PREFIX = {
    False: bytes([DIRECTION_TO_PUMP]) + bytes(7),
    True: bytes([DIRECTION_TO_PROGRAMMER]) + bytes(7),
}
"""``direction || 00 x 7`` for each value of the REPLY flag."""


def _nonce(header: bytes) -> bytes:
    """``aead_nonce`` of a header already checked to be 15 bytes: the SEQ's four bytes are
    copied as they are, since the nonce carries them in the header's own order (u32 LE).
    ``seal`` and ``open`` check the header once and build the nonce with this: every
    sealed frame both ways passes here (docs/serve.md "The serve loop's cost")."""
    prefix = _NONCE_PREFIX[bool(header[FLAGS_OFFSET] & FLAG_REPLY)]
    return prefix + bytes(header[SEQ_OFFSET : SEQ_OFFSET + 4])


def seal(key: bytes, header: bytes, plaintext: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` under ``key``; returns the frame body.

    ``header`` is the frame's 15 header bytes, complete: SEALED flag set and LENGTH equal to
    ``len(plaintext) + 16``, the length of the returned ``ciphertext || tag``. The caller is
    responsible for never sealing twice with one (key, SEQ); the session objects enforce it.
    """
    _check_len("key", key, KEY_LEN)
    return seal_under(AESGCM(bytes(key)), header, plaintext)


def seal_under(aead: AESGCM, header: bytes, plaintext: bytes) -> bytes:
    """``seal`` with the key's AES-GCM already built (``SessionKeys.to_pump_aead`` or
    ``to_programmer_aead``): every check but the key's, which was checked when it was built."""
    if header.__class__ is not bytes or len(header) != HEADER_LEN:
        _check_len("header", header, HEADER_LEN)
    if not header[FLAGS_OFFSET] & FLAG_SEALED:
        raise ValueError("header must have the SEALED flag (bit 1 of FLAGS) set")
    size = len(plaintext)
    if size > MAX_SEALED_PLAINTEXT_LEN:
        raise ValueError(
            f"plaintext is {size} bytes; at most {MAX_SEALED_PLAINTEXT_LEN} fit "
            f"in a {MAX_BODY_LEN}-byte body with the {TAG_LEN}-byte tag"
        )
    want = size + TAG_LEN
    length: int = _LENGTH_FIELD(header, LENGTH_OFFSET)[0]
    if length != want:
        raise ValueError(
            f"header LENGTH is {length}, but the sealed body will be {want} "
            f"bytes (plaintext {size} + tag {TAG_LEN})"
        )
    return aead.encrypt(_nonce(header), bytes(plaintext), bytes(header))


def open(key: bytes, header: bytes, body: bytes) -> bytes:
    """Authenticate and decrypt a sealed frame body; returns the plaintext.

    Raises ``SessionError`` when the frame does not open: not marked SEALED, LENGTH not equal
    to the body's length (truncated or padded), shorter than a tag, or a tag that does not
    verify (tampered header or body, wrong key or direction).
    """
    _check_len("key", key, KEY_LEN)
    return open_under(AESGCM(bytes(key)), header, body)


def open_under(aead: AESGCM, header: bytes, body: bytes) -> bytes:
    """``open`` with the key's AES-GCM already built: every check but the key's."""
    if len(header) != HEADER_LEN:
        raise SessionError(f"header is {len(header)} bytes, not {HEADER_LEN}", path="header")
    if header.__class__ is not bytes:
        _check_len("header", header, HEADER_LEN)
    if not header[FLAGS_OFFSET] & FLAG_SEALED:
        raise SessionError("frame is not marked SEALED", path="header.flags")
    length: int = _LENGTH_FIELD(header, LENGTH_OFFSET)[0]
    size = len(body)
    if length != size:
        raise SessionError(
            f"header LENGTH {length} does not match the {size}-byte body",
            path="header.length",
        )
    if size < TAG_LEN:
        raise SessionError(f"sealed body is {size} bytes, shorter than the tag", "body")
    try:
        return aead.decrypt(_nonce(header), bytes(body), bytes(header))
    except InvalidTag:
        raise SessionError("sealed frame failed authentication", path="body") from None
