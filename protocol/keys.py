"""Per-pump role keys and the key file format (docs/security.md, "Key file").

A key file is UTF-8 JSON with a format tag, the pump serial, and one 256-bit key per role in
hex::

    {
      "format": "pumpemu-keys/1",
      "serial": "PE-000042",
      "keys": {
        "clinician": "<64 hex digits>",
        "patient": "<64 hex digits>"
      }
    }

Keys are random and provisioned: ``generate_keys`` takes the random bytes from its caller
(protocol/ cannot import ``secrets``; ``pumpemu keys new`` draws them). No key is ever derived
from the serial, hard-coded, or shared between the roles of one pump. Parsing is strict: an
unknown format version, a missing or extra field, a key of the wrong length or a non-hex digit
is a ``KeyFileError`` naming the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from hashlib import sha256

from protocol.crypto import KEY_LEN, serial_bytes
from protocol.device_state import Role
from protocol.documents import DocumentError, parse_json
from protocol.errors import ProtocolError

KEY_FILE_FORMAT = "pumpemu-keys/1"
"""The format tag this version reads and writes."""
KEY_HEX_LEN = 2 * KEY_LEN
FINGERPRINT_LABEL = b"pumpemu/1 fingerprint"
FINGERPRINT_LEN = 8
"""A fingerprint is the first 8 bytes of SHA-256(label || key), shown as 4 groups of 4 hex."""

_ROLE_NAMES: dict[Role, str] = {Role.CLINICIAN: "clinician", Role.PATIENT: "patient"}
_TOP_FIELDS = ("format", "serial", "keys")


class KeyFileError(ProtocolError, ValueError):
    """A key file, or a key set, is malformed. ``path`` names the field (``keys.patient``)."""


def role_name(role: Role) -> str:
    """The role's name in key files and on screen: ``clinician`` or ``patient``."""
    return _ROLE_NAMES[Role(role)]


def _check_key(path: str, key: object) -> bytes:
    if not isinstance(key, bytes):
        raise KeyFileError(f"must be bytes, got {type(key).__name__}", path)
    if len(key) != KEY_LEN:
        raise KeyFileError(f"must be {KEY_LEN} bytes (256 bits), got {len(key)}", path)
    if key == bytes(KEY_LEN):
        raise KeyFileError("is all zeros: not a random key", path)
    return key


@dataclass(frozen=True, slots=True, repr=False)
class PumpKeys:
    """One pump's serial and its role keys. ``repr`` shows fingerprints, never keys."""

    serial: str
    clinician: bytes
    patient: bytes

    def __post_init__(self) -> None:
        try:
            serial_bytes(self.serial)
        except ValueError as exc:
            raise KeyFileError(str(exc), "serial") from None
        _check_key("keys.clinician", self.clinician)
        _check_key("keys.patient", self.patient)
        if self.clinician == self.patient:
            raise KeyFileError("the clinician and patient keys must differ", "keys")

    def key_for(self, role: Role) -> bytes:
        """The role key for ``role``."""
        return self.clinician if Role(role) is Role.CLINICIAN else self.patient

    def __repr__(self) -> str:
        return (
            f"PumpKeys(serial={self.serial!r}, clinician={fingerprint(self.clinician)}, "
            f"patient={fingerprint(self.patient)})"
        )


def generate_keys(serial: str, random_bytes: bytes) -> PumpKeys:
    """A new key set for ``serial`` from 64 fresh random bytes supplied by the caller.

    Bytes 0-31 become the clinician key and bytes 32-63 the patient key, unchanged: the serial
    plays no part in any key.
    """
    if len(random_bytes) != 2 * KEY_LEN:
        raise ValueError(f"random_bytes must be {2 * KEY_LEN} bytes, got {len(random_bytes)}")
    data = bytes(random_bytes)
    return PumpKeys(serial=serial, clinician=data[:KEY_LEN], patient=data[KEY_LEN:])


def fingerprint(key: bytes) -> str:
    """A short, non-secret name for a key, e.g. ``3f2a-9c1d-0b7e-44a2``."""
    digest = sha256(FINGERPRINT_LABEL + bytes(key)).digest()[:FINGERPRINT_LEN].hex()
    return "-".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def serialize_key_file(keys: PumpKeys) -> str:
    """The key file text for ``keys`` (JSON, 2-space indent, lowercase hex, final newline)."""
    document = {
        "format": KEY_FILE_FORMAT,
        "serial": keys.serial,
        "keys": {role_name(role): keys.key_for(role).hex() for role in Role},
    }
    return json.dumps(document, indent=2) + "\n"


def _field(document: dict[str, object], name: str, path: str) -> object:
    if name not in document:
        raise KeyFileError("missing field", path)
    return document[name]


def _parse_key(path: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise KeyFileError(f"must be a string of {KEY_HEX_LEN} hex digits", path)
    if len(value) != KEY_HEX_LEN:
        raise KeyFileError(
            f"must be {KEY_HEX_LEN} hex digits (256 bits), got {len(value)} characters", path
        )
    bad = [c for c in value if c not in "0123456789abcdefABCDEF"]
    if bad:
        raise KeyFileError(f"is not hex: {bad[0]!r} is not a hex digit", path)
    return bytes.fromhex(value)


def parse_key_file(text: str) -> PumpKeys:
    """Parse key file text. Raises ``KeyFileError`` with the field path on any defect."""
    try:
        document = parse_json(text)
    except DocumentError as exc:
        raise KeyFileError(str(exc)) from None
    if not isinstance(document, dict):
        raise KeyFileError("must be a JSON object")
    version = _field(document, "format", "format")
    if version != KEY_FILE_FORMAT:
        raise KeyFileError(
            f"unknown key file format {version!r}; this pumpemu reads {KEY_FILE_FORMAT!r}",
            "format",
        )
    extra = sorted(set(document) - set(_TOP_FIELDS))
    if extra:
        raise KeyFileError(f"unknown field {extra[0]!r}", extra[0])
    serial = _field(document, "serial", "serial")
    if not isinstance(serial, str):
        raise KeyFileError("must be a string", "serial")
    keys = _field(document, "keys", "keys")
    if not isinstance(keys, dict):
        raise KeyFileError("must be an object with one key per role", "keys")
    names = [role_name(role) for role in Role]
    extra = sorted(set(keys) - set(names))
    if extra:
        raise KeyFileError(f"unknown role {extra[0]!r} (roles are {', '.join(names)})", "keys")
    clinician = _parse_key("keys.clinician", _field(keys, "clinician", "keys.clinician"))
    patient = _parse_key("keys.patient", _field(keys, "patient", "keys.patient"))
    return PumpKeys(serial=serial, clinician=clinician, patient=patient)
