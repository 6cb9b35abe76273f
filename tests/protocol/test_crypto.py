"""protocol.crypto: proofs, session keys and sealing, against docs/security.md's vectors.

The vectors are parsed out of the document, so the document and the code cannot drift, and
they are also recomputed with an independent implementation (the standard library's HMAC,
HKDF written out from RFC 5869), so a bug shared by the code and the vectors would show.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from protocol import crypto
from protocol.device_state import Role
from protocol.errors import SessionError
from protocol.keys import fingerprint

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
VECTOR_TAG = "pumpemu-security-test-vectors/1"


def json_blocks(text: str) -> list[Any]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]


def load_vectors() -> dict[str, Any]:
    blocks = [b for b in json_blocks(DOC.read_text("utf-8")) if b.get("vectors") == VECTOR_TAG]
    assert len(blocks) == 1, "docs/security.md must hold exactly one test-vector block"
    vectors: dict[str, Any] = blocks[0]
    return vectors


V = load_vectors()
ROLE_KEYS = {
    Role.CLINICIAN: bytes.fromhex(V["clinician_key"]),
    Role.PATIENT: bytes.fromhex(V["patient_key"]),
}
PN = bytes.fromhex(V["programmer_nonce"])
DN = bytes.fromhex(V["pump_nonce"])
SERIAL: str = V["serial"]


def transcript(role: Role) -> crypto.Transcript:
    return crypto.Transcript(SERIAL, role, PN, DN)


def header(flags: int, seq: int, length: int, ref: int = 0, opcode: int = 0x11) -> bytes:
    return struct.pack("<2sBBIIBH", b"\xa5\x5a", 1, flags, seq, ref, opcode, length)


# -- an independent implementation ----------------------------------------------------------


def rfc5869_hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def test_independent_hkdf_matches_rfc5869_test_case_1() -> None:
    # RFC 5869, appendix A.1: the reference implementation is itself checked.
    okm = rfc5869_hkdf_sha256(
        bytes.fromhex("0b" * 22),
        bytes.fromhex("000102030405060708090a0b0c"),
        bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


# -- the document's vectors --------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role), ids=[r.name for r in Role])
def test_proof_vectors(role: Role) -> None:
    v = V["roles"][role.name.lower()]
    key = ROLE_KEYS[role]
    assert v["role_byte"] == role.value
    message = transcript(role).proof_input(crypto.PROGRAMMER_PROOF_LABEL)
    assert message.hex() == v["programmer_proof_input"]
    expected_message = b"pumpemu/1 programmer" + SERIAL.encode() + bytes([role]) + PN + DN
    assert message == expected_message
    assert crypto.programmer_proof(key, transcript(role)).hex() == v["programmer_proof"]
    assert crypto.pump_proof(key, transcript(role)).hex() == v["pump_proof"]
    # independent: stdlib HMAC over the documented construction
    pump_message = b"pumpemu/1 pump" + SERIAL.encode() + bytes([role]) + PN + DN
    assert hmac.new(key, expected_message, hashlib.sha256).hexdigest() == v["programmer_proof"]
    assert hmac.new(key, pump_message, hashlib.sha256).hexdigest() == v["pump_proof"]


@pytest.mark.parametrize("role", list(Role), ids=[r.name for r in Role])
def test_session_key_vectors(role: Role) -> None:
    v = V["roles"][role.name.lower()]
    key = ROLE_KEYS[role]
    info = b"pumpemu/1 session" + bytes([role]) + SERIAL.encode()
    assert info.hex() == v["hkdf_info"] == transcript(role).key_info().hex()
    keys = crypto.derive_session_keys(key, transcript(role))
    assert keys.to_pump.hex() == v["to_pump_key"]
    assert keys.to_programmer.hex() == v["to_programmer_key"]
    okm = rfc5869_hkdf_sha256(key, PN + DN, info, 64)
    assert okm.hex() == v["to_pump_key"] + v["to_programmer_key"]


@pytest.mark.parametrize("frame", V["sealed_frames"], ids=lambda f: f["direction"])
def test_sealed_frame_vectors(frame: dict[str, str]) -> None:
    role_name, key_name = frame["key"].split(".")
    key = bytes.fromhex(V["roles"][role_name][key_name])
    hdr = bytes.fromhex(frame["header"])
    plaintext = bytes.fromhex(frame["plaintext"])
    body = bytes.fromhex(frame["body"])
    assert crypto.aead_nonce(hdr).hex() == frame["nonce"]
    assert crypto.seal(key, hdr, plaintext) == body
    assert crypto.open(key, hdr, body) == plaintext
    assert len(body) == len(plaintext) + crypto.TAG_LEN == crypto.header_length(hdr)
    # independent: AES-GCM called directly with the documented nonce and associated data
    assert AESGCM(key).encrypt(bytes.fromhex(frame["nonce"]), plaintext, hdr) == body
    # the full frame is header || body || CRC-16/CCITT-FALSE (LE) over bytes 2..end
    raw = hdr + body
    crc = struct.pack("<H", binascii.crc_hqx(raw[2:], 0xFFFF))
    assert bytes.fromhex(frame["frame"]) == raw + crc


def test_fingerprint_vectors() -> None:
    for role in Role:
        key = ROLE_KEYS[role]
        expected = V["fingerprints"][role.name.lower()]
        assert fingerprint(key) == expected
        digest = hashlib.sha256(b"pumpemu/1 fingerprint" + key).hexdigest()[:16]
        assert expected.replace("-", "") == digest


def test_vector_nonces_encode_direction_and_seq() -> None:
    request, reply = V["sealed_frames"]
    assert bytes.fromhex(request["nonce"]) == bytes(8) + struct.pack("<I", 3)
    assert bytes.fromhex(reply["nonce"]) == b"\x01" + bytes(7) + struct.pack("<I", 3)


# -- proofs ----------------------------------------------------------------------------------


def test_proofs_are_domain_separated_and_bound_to_every_input() -> None:
    key = ROLE_KEYS[Role.CLINICIAN]
    base = crypto.programmer_proof(key, transcript(Role.CLINICIAN))
    assert base != crypto.pump_proof(key, transcript(Role.CLINICIAN))
    variants = [
        crypto.Transcript(SERIAL, Role.PATIENT, PN, DN),
        crypto.Transcript("PE-000043", Role.CLINICIAN, PN, DN),
        crypto.Transcript(SERIAL, Role.CLINICIAN, DN, PN),
        crypto.Transcript(SERIAL, Role.CLINICIAN, PN, bytes(16)),
    ]
    for other in variants:
        assert crypto.programmer_proof(key, other) != base
    assert crypto.programmer_proof(ROLE_KEYS[Role.PATIENT], transcript(Role.CLINICIAN)) != base


@pytest.mark.hazard("C4")
def test_verification_accepts_only_the_right_proof() -> None:
    key = ROLE_KEYS[Role.CLINICIAN]
    t = transcript(Role.CLINICIAN)
    proof = crypto.programmer_proof(key, t)
    assert crypto.verify_programmer_proof(key, t, proof)
    assert not crypto.verify_programmer_proof(ROLE_KEYS[Role.PATIENT], t, proof)
    assert not crypto.verify_programmer_proof(key, t, crypto.pump_proof(key, t))
    assert not crypto.verify_pump_proof(key, t, proof)
    assert crypto.verify_pump_proof(key, t, crypto.pump_proof(key, t))
    for bad in (b"", proof[:-1], proof + b"\x00", bytes(32)):
        assert not crypto.verify_programmer_proof(key, t, bad)


@given(st.integers(0, crypto.PROOF_LEN * 8 - 1))
def test_any_changed_proof_bit_fails(bit: int) -> None:
    key = ROLE_KEYS[Role.PATIENT]
    t = transcript(Role.PATIENT)
    proof = bytearray(crypto.programmer_proof(key, t))
    proof[bit // 8] ^= 1 << (bit % 8)
    assert not crypto.verify_programmer_proof(key, t, bytes(proof))


@pytest.mark.parametrize(
    ("serial", "ok"),
    [("A", True), ("PE-000042", True), ("x" * 16, True), ("", False), ("x" * 17, False),
     ("PE 1", False), ("PÉ-1", False), ("PE\n1", False), ("~!", True)],
)  # fmt: skip
def test_serial_rules(serial: str, ok: bool) -> None:
    if ok:
        assert crypto.serial_bytes(serial) == serial.encode("ascii")
    else:
        with pytest.raises(ValueError, match="serial"):
            crypto.serial_bytes(serial)


def test_transcript_checks_lengths() -> None:
    with pytest.raises(ValueError, match="programmer_nonce must be 16 bytes"):
        crypto.Transcript(SERIAL, Role.CLINICIAN, PN[:15], DN)
    with pytest.raises(ValueError, match="pump_nonce must be 16 bytes"):
        crypto.Transcript(SERIAL, Role.CLINICIAN, PN, DN + b"\x00")
    with pytest.raises(ValueError, match="role_key must be 32 bytes"):
        crypto.programmer_proof(bytes(31), transcript(Role.CLINICIAN))
    with pytest.raises(ValueError, match="role_key must be 32 bytes"):
        crypto.derive_session_keys(bytes(33), transcript(Role.CLINICIAN))


def test_session_keys_are_fresh_per_nonce_pair_and_hidden_in_repr() -> None:
    key = ROLE_KEYS[Role.CLINICIAN]
    a = crypto.derive_session_keys(key, transcript(Role.CLINICIAN))
    b = crypto.derive_session_keys(key, crypto.Transcript(SERIAL, Role.CLINICIAN, PN, bytes(16)))
    c = crypto.derive_session_keys(key, crypto.Transcript(SERIAL, Role.CLINICIAN, bytes(16), DN))
    assert len({a.to_pump, a.to_programmer, b.to_pump, c.to_pump}) == 4
    assert a.to_pump.hex() not in repr(a)
    assert a.to_programmer.hex() not in repr(a)


# -- sealing -----------------------------------------------------------------------------------

KEY = bytes(range(100, 132))


@given(
    plaintext=st.binary(max_size=crypto.MAX_SEALED_PLAINTEXT_LEN),
    seq=st.integers(0, 0xFFFF_FFFF),
    ref=st.integers(0, 0xFFFF_FFFF),
    reply=st.booleans(),
    opcode=st.integers(0, 255),
)
def test_seal_open_round_trip(
    plaintext: bytes, seq: int, ref: int, reply: bool, opcode: int
) -> None:
    hdr = header(0x02 | int(reply), seq, len(plaintext) + 16, ref, opcode)
    body = crypto.seal(KEY, hdr, plaintext)
    assert len(body) == len(plaintext) + crypto.TAG_LEN
    assert crypto.open(KEY, hdr, body) == plaintext
    if len(plaintext) >= 8:
        assert plaintext not in body  # confidential


@pytest.mark.hazard("C3", "C4")
@given(plaintext=st.binary(max_size=64), data=st.data())
def test_any_single_bit_flip_in_header_or_body_fails(plaintext: bytes, data: st.DataObject) -> None:
    hdr = header(0x02, 9, len(plaintext) + 16)
    frame = bytearray(hdr + crypto.seal(KEY, hdr, plaintext))
    bit = data.draw(st.integers(0, len(frame) * 8 - 1), label="bit")
    frame[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SessionError):
        crypto.open(KEY, bytes(frame[:15]), bytes(frame[15:]))


@given(plaintext=st.binary(max_size=64), data=st.data())
def test_truncated_or_extended_body_fails(plaintext: bytes, data: st.DataObject) -> None:
    hdr = header(0x02, 1, len(plaintext) + 16)
    body = crypto.seal(KEY, hdr, plaintext)
    cut = data.draw(st.integers(0, len(body) - 1), label="cut")
    with pytest.raises(SessionError, match="LENGTH"):
        crypto.open(KEY, hdr, body[:cut])
    with pytest.raises(SessionError, match="LENGTH"):
        crypto.open(KEY, hdr, body + b"\x00")
    # even with LENGTH adjusted to the cut body, the tag fails
    short = header(0x02, 1, cut)
    with pytest.raises(SessionError):
        crypto.open(KEY, short, body[:cut])


def test_wrong_key_or_direction_fails() -> None:
    hdr = header(0x02, 5, 3 + 16)
    body = crypto.seal(KEY, hdr, b"abc")
    with pytest.raises(SessionError, match="failed authentication"):
        crypto.open(bytes(32), hdr, body)
    reflected = header(0x03, 5, 3 + 16)  # the same bytes presented as a reply
    with pytest.raises(SessionError, match="failed authentication"):
        crypto.open(KEY, reflected, body)
    assert crypto.aead_nonce(hdr) != crypto.aead_nonce(reflected)


def test_open_refuses_unsealed_and_short_frames() -> None:
    with pytest.raises(SessionError, match="not marked SEALED"):
        crypto.open(KEY, header(0x00, 1, 16), bytes(16))
    with pytest.raises(SessionError, match="shorter than the tag"):
        crypto.open(KEY, header(0x02, 1, 15), bytes(15))
    with pytest.raises(SessionError, match="header is 14 bytes"):
        crypto.open(KEY, header(0x02, 1, 16)[:14], bytes(16))


def test_seal_refuses_a_header_that_does_not_describe_the_body() -> None:
    with pytest.raises(ValueError, match="LENGTH is 3"):
        crypto.seal(KEY, header(0x02, 1, 3), b"abc")
    with pytest.raises(ValueError, match="SEALED flag"):
        crypto.seal(KEY, header(0x00, 1, 19), b"abc")
    big = bytes(crypto.MAX_SEALED_PLAINTEXT_LEN + 1)
    with pytest.raises(ValueError, match="at most 1008"):
        crypto.seal(KEY, header(0x02, 1, len(big) + 16), big)
    with pytest.raises(ValueError, match="key must be 32 bytes"):
        crypto.seal(KEY[:16], header(0x02, 1, 19), b"abc")


def test_the_nonce_is_unique_per_direction_and_seq() -> None:
    nonces = {
        crypto.aead_nonce(header(flags, seq, 16)) for flags in (0x02, 0x03) for seq in range(50)
    }
    assert len(nonces) == 100
    assert crypto.aead_nonce(header(0x03, 0x01020304, 16)).hex() == "010000000000000004030201"


@given(st.binary(min_size=crypto.HEADER_LEN, max_size=crypto.HEADER_LEN))
def test_the_nonce_is_direction_then_seven_zeros_then_seq_for_any_header(hdr: bytes) -> None:
    """``aead_nonce`` copies the SEQ's bytes rather than unpacking and repacking them
    (docs/security.md): the same nonce for any header, whatever buffer carries it."""
    seq = struct.unpack_from("<I", hdr, crypto.SEQ_OFFSET)[0]
    direction = hdr[crypto.FLAGS_OFFSET] & crypto.FLAG_REPLY
    expected = bytes([direction]) + bytes(7) + struct.pack("<I", seq)
    carriers: tuple[bytes, ...] = (hdr, bytearray(hdr), memoryview(hdr))  # type: ignore[assignment]
    for carrier in carriers:
        nonce = crypto.aead_nonce(carrier)
        assert nonce == expected
        assert type(nonce) is bytes


def test_open_checks_the_header_type_before_anything_else() -> None:
    with pytest.raises(ValueError, match="header must be bytes"):
        crypto.open(KEY, "x" * crypto.HEADER_LEN, bytes(16))  # type: ignore[arg-type]


@given(
    plaintext=st.binary(max_size=40),
    seq=st.integers(0, 0xFFFF_FFFF),
    flags=st.integers(0, 3),
    length_error=st.integers(-2, 2),
    cut=st.integers(0, 20),
)
def test_seal_under_and_open_under_answer_as_seal_and_open(
    plaintext: bytes, seq: int, flags: int, length_error: int, cut: int
) -> None:
    """The session's pre-built AES-GCM objects seal and open exactly as the key does:
    the same body, the same plaintext, the same error for a wrong header or body."""
    keys = crypto.SessionKeys(to_pump=KEY, to_programmer=bytes(32))
    hdr = header(flags, seq, max(len(plaintext) + 16 + length_error, 0))

    def result(call: Any, *args: Any) -> tuple[str, Any]:
        try:
            return "ok", call(*args)
        except (ValueError, SessionError) as error:
            return "error", (type(error), str(error))

    sealed = result(crypto.seal, KEY, hdr, plaintext)
    assert result(crypto.seal_under, keys.to_pump_aead, hdr, plaintext) == sealed
    body = sealed[1] if sealed[0] == "ok" else bytes(len(plaintext) + 16)
    for candidate in (body, body[cut:]):
        opened = result(crypto.open, KEY, hdr, candidate)
        assert result(crypto.open_under, keys.to_pump_aead, hdr, candidate) == opened
    assert result(crypto.open_under, keys.to_pump_aead, hdr[:14], body) == result(
        crypto.open, KEY, hdr[:14], body
    )


def test_session_keys_hide_their_aes_objects_and_compare_by_key() -> None:
    a = crypto.SessionKeys(to_pump=KEY, to_programmer=bytes(32))
    b = crypto.SessionKeys(to_pump=KEY, to_programmer=bytes(32))
    assert a == b  # the AES-GCM objects are not compared
    assert repr(a) == "SessionKeys(<secret>)"
    assert a.to_pump_aead is not a.to_programmer_aead
