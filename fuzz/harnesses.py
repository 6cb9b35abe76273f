"""One check per fuzz target: ``check(data: bytes) -> None``.

A check returns when the input is handled as the spec says, raises ``AssertionError`` when a
property breaks, and lets every exception outside the project's error families
(``ERROR_FAMILIES``) escape: DESIGN.md principle 8 calls any of those a bug. Inputs are
plain bytes, so atheris (fuzz/run.py) and hypothesis (the default suite) drive the same
function; each check reads its input with ``Input``, which never fails on short data (a
missing byte reads as 0), so every byte string is a valid input.

Targets:

- ``framer``: protocol/framer.py under arbitrary chunking and noise;
- ``codec``: ``parse_frame``/``decode`` and ``decode_payload`` for every opcode;
- ``device``: ``PumpDevice.receive_data`` on a fresh pump, chunks and time steps taken from
  the input;
- ``session``: a session opened by the reference programmer side with fixed keys and
  nonces, then authentic requests with mutated plaintexts, forged frames, replays, noise;
- ``state``: ``PumpDevice.restore`` of mutated saved states, behind a pluggable envelope.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from emulator.command_ledger import fingerprint
from emulator.device import DEVICE_STATE_MAGIC, RX_IDLE_MS, PumpDevice
from emulator.errors import EmulatorError
from emulator.firmware.nvram import decode_record
from emulator.firmware.results import Refused
from emulator.profile import Profile, load_profile
from emulator.pump import SNAPSHOT_MAGIC, Pump
from fuzz.vectors import request_payloads
from hil.errors import HilError
from protocol import codec, crypto, wire
from protocol.checksum import crc16
from protocol.codec import DecodeError, Frame
from protocol.device_state import Role
from protocol.errors import ProtocolError
from protocol.framer import FrameBytes, Framer, Noise
from protocol.keys import generate_keys
from protocol.messages import (
    Ack,
    Authenticate,
    Challenge,
    Nak,
    Opcode,
    OpenSession,
    ReadStatus,
    SessionOpened,
)
from protocol.permissions import PERMISSIONS
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.refusal import RefusalCode
from protocol.request_kinds import COMMAND_OPCODES, REQUEST_KIND
from protocol.session import ProgrammerSession, ProgrammerState, SessionState

__all__ = [
    "ERROR_FAMILIES",
    "HARNESSES",
    "KEYS",
    "SESSION_OPS",
    "SESSION_REQUESTS",
    "Envelope",
    "Input",
    "PlainEnvelope",
    "check_codec",
    "check_device",
    "check_framer",
    "check_session",
    "check_state_file",
    "saved_device_blob",
    "split_device_blob",
]

ERROR_FAMILIES: tuple[type[Exception], ...] = (ProtocolError, EmulatorError, HilError)
"""The project's error roots: an input may be refused with one of these, never with
anything else (DESIGN.md principle 8)."""

SERIAL = "PE-000042"
KEYS = generate_keys(SERIAL, bytes(range(1, 65)))
"""Fixed, public test keys: the harnesses must be deterministic, one input one run."""

RX = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=10_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 500_000),),
    patient_bolus=PatientBolusLimits(20_000, 600, 600, 4),
    low_reservoir_threshold_nl=2_000_000,
)
"""The therapy the session and state harnesses' pump is running."""


@functools.cache
def _profile() -> Profile:
    return load_profile("peristaltic-20")


STEPS_MS = (0, 1, 7, 50, RX_IDLE_MS, 1_000, 60_000, 3_600_000)
"""Time steps an input can take between chunks or operations."""


class Input:
    """Reads an input front to back; past its end every byte reads as 0, so any bytes are
    a valid input and a fuzzer never wastes a run on a too-short one."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def exhausted(self) -> bool:
        return self._pos >= len(self._data)

    def u8(self) -> int:
        value = self._data[self._pos] if self._pos < len(self._data) else 0
        self._pos += 1
        return value

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size).ljust(size, b"\0"), "little")

    def take(self, n: int) -> bytes:
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def rest(self) -> bytes:
        chunk = self._data[self._pos :]
        self._pos = len(self._data)
        return chunk


def _chunks(stream: bytes, schedule: random.Random) -> list[tuple[bytes, int]]:
    """The stream cut into chunks, each with the time step before it, both chosen by a
    generator seeded from the input (so chunking and timing are part of the input)."""
    out = []
    i = 0
    while i < len(stream):
        n = schedule.choice((1, 2, 3, 15, 16, 17, 64, 1040, len(stream)))
        out.append((stream[i : i + n], schedule.choice(STEPS_MS)))
        i += n
    return out


# -- 1. framer ----------------------------------------------------------------------------


def _events_in_chunks(stream: bytes, schedule: random.Random) -> list[FrameBytes | Noise]:
    framer = Framer()
    events: list[FrameBytes | Noise] = []
    for chunk, _ in _chunks(stream, schedule):
        events += framer.feed(chunk)
        assert framer.buffered <= Framer.MAX_BUFFERED, framer.buffered
        assert framer.position <= len(stream)
    return events + framer.finish()


def _decode_error_path(frame: bytes) -> str | None:
    """Where ``parse_frame`` finds the frame wrong, or None if it parses."""
    try:
        codec.parse_frame(frame)
    except DecodeError as error:
        return error.path
    return None


@functools.cache
def _probe_frame() -> bytes:
    return codec.encode(ReadStatus(), seq=7)


def check_framer(data: bytes) -> None:
    """Input: u32 chunking seed, then the stream.

    The events are the same however the stream is chunked; they tile the stream exactly
    (frames and noise, back to back, noise runs merged); every frame has a good length and
    CRC; and a good frame appended to the stream is found unless a frame the framer
    emitted overlaps it (a CRC that happens to match, which rule 3 of docs/protocol.md
    section 3 allows).
    """
    inp = Input(data)
    seed = inp.uint(4)
    stream = inp.rest()
    whole = Framer()
    events = whole.feed(stream) + whole.finish()
    assert whole.buffered == 0
    assert _events_in_chunks(stream, random.Random(seed)) == events
    position = 0
    previous_was_noise = False
    for event in events:
        assert event.offset == position, (event, position)
        if isinstance(event, Noise):
            assert event.length > 0
            assert not previous_was_noise, "two noise runs in a row were not merged"
            position += event.length
            previous_was_noise = True
            continue
        previous_was_noise = False
        frame = event.data
        assert frame == stream[position : position + len(frame)]
        assert wire.MIN_FRAME_LEN <= len(frame) <= wire.MAX_FRAME_LEN
        assert frame[:2] == wire.SYNC
        assert crc16(frame[2:-2]) == int.from_bytes(frame[-2:], "little")
        # Length and CRC were the framer's to check: only the header may be wrong.
        path = _decode_error_path(frame)
        assert path is None or (path.startswith("header.") and path != "header.length"), path
        position += len(frame)
    assert position == len(stream)

    probe = _probe_frame()
    framer = Framer()
    tail = framer.feed(stream + probe) + framer.finish()
    start = len(stream)
    found = any(isinstance(e, FrameBytes) and e.offset == start and e.data == probe for e in tail)
    overlapped = any(
        isinstance(e, FrameBytes)
        and e.offset < start + len(probe)
        and e.offset + len(e.data) > start
        for e in tail
    )
    assert found or overlapped, "a good frame after the stream was lost"


# -- 2. codec -----------------------------------------------------------------------------


def check_codec(data: bytes) -> None:
    """Input: a mode byte, then (even mode) a whole frame or (odd mode) an opcode byte and
    a payload.

    ``parse_frame``, ``decode`` and ``decode_payload`` either succeed or raise
    ``DecodeError`` (codec.py promises nothing else); what they accept re-encodes to the
    same bytes (canonical encoding, docs/protocol.md section 1).
    """
    inp = Input(data)
    if inp.u8() % 2 == 0:
        frame_bytes = inp.rest()
        try:
            frame = codec.parse_frame(frame_bytes)
        except DecodeError:
            return
        assert codec.build_frame(frame) == frame_bytes
        try:
            decoded = codec.decode(frame_bytes)
        except DecodeError:
            return
        assert not frame.is_sealed
        again = codec.encode(decoded.message, seq=frame.seq, ref=frame.ref)
        assert again == frame_bytes, (again.hex(), frame_bytes.hex())
    else:
        opcode = inp.u8()
        payload = inp.rest()
        try:
            message = codec.decode_payload(opcode, payload)
        except DecodeError:
            return
        assert codec.encode_payload(message) == (opcode, payload), message


# -- 3. device ----------------------------------------------------------------------------


def _therapy_state(pump: Pump) -> dict[str, Any]:
    """The pump's whole snapshot record but its event log (as in the attack suite).

    The pump's own snapshot is trusted: read with ``json`` directly, not through
    ``decode_record``'s bounded parser, whose nesting scan costs ~20 ms per snapshot."""
    blob = pump.snapshot()
    assert blob[:8] == SNAPSHOT_MAGIC
    record: dict[str, Any] = json.loads(blob[_RECORD_HEAD.size : -32])
    del record["log"]
    return record


def _replies(out: bytes) -> list[Frame]:
    """The pump's output as frames; it must be whole frames and nothing else."""
    framer = Framer()
    events = framer.feed(out) + framer.finish()
    assert all(isinstance(e, FrameBytes) for e in events), events
    frames = [codec.parse_frame(e.data) for e in events if isinstance(e, FrameBytes)]
    assert all(f.is_reply for f in frames)
    return frames


def _deliver(device: PumpDevice, data: bytes, now: int) -> None:
    try:
        device.receive_data(data, now)
    except Exception as error:
        # receive_data answers anything with NAKs: even a project error is a bug here.
        raise AssertionError(f"receive_data raised {error!r} on {data.hex()}") from error


def check_device(data: bytes) -> None:
    """Input: u32 chunking seed, then the bytes a link delivers.

    ``receive_data`` on a fresh pump (no session) never raises, whatever the bytes and
    however they are cut and timed; the pump writes only whole unsealed reply frames, each
    a NAK or a CHALLENGE (no key, so no session can open); and its therapy state ends
    exactly as that of a twin pump that received nothing.
    """
    inp = Input(data)
    schedule = random.Random(inp.uint(4))
    stream = inp.rest()
    pump = Pump(_profile(), start_ms=0)
    twin = Pump(_profile(), start_ms=0)
    device = PumpDevice(pump, KEYS, random.Random(0).randbytes)
    now = 0
    out = bytearray()
    for chunk, step in _chunks(stream, schedule):
        now += step
        _deliver(device, chunk, now)
        out += device.data_to_send()
    now += RX_IDLE_MS
    device.handle_timer(now)
    out += device.data_to_send()
    for frame in _replies(bytes(out)):
        assert not frame.is_sealed
        message = codec.decode_payload(frame.opcode, frame.body)
        assert isinstance(message, Nak | Challenge), message
    twin.advance_to(now)
    assert _therapy_state(pump) == _therapy_state(twin), "unauthenticated bytes changed therapy"


# -- 4. session ---------------------------------------------------------------------------

SESSION_REQUESTS: tuple[Opcode, ...] = tuple(sorted(REQUEST_KIND, key=int))
"""Every request opcode a sealed frame may carry."""
SESSION_OPS = ("authentic", "forged", "replay", "noise", "wait")
"""What one operation of a session input does (``check_session``)."""
FRAME_MUTATIONS = 8


@functools.cache
def _base_payloads() -> dict[Opcode, bytes]:
    payloads = request_payloads()
    missing = set(SESSION_REQUESTS) - set(payloads)
    assert not missing, f"no documented vector for {missing}"
    return payloads


def with_crc(frame_without_crc: bytes) -> bytes:
    return frame_without_crc + crc16(frame_without_crc[2:]).to_bytes(2, "little")


def _mutate_payload(payload: bytes, inp: Input) -> bytes:
    out = bytearray(payload)
    for _ in range(inp.u8() % 4):
        kind = inp.u8() % 5
        at = inp.uint(2) % (len(out) + 1)
        if kind == 0 and out:
            out[at % len(out)] ^= 1 << (inp.u8() % 8)
        elif kind == 1 and out:
            out[at % len(out)] = inp.u8()
        elif kind == 2:
            del out[at:]
        elif kind == 3:
            out[at:at] = inp.take(inp.u8() % 32)
        elif kind == 4:
            out = bytearray(inp.take(inp.uint(2) % (wire.MAX_BODY_LEN - wire.TAG_LEN + 1)))
    return bytes(out[: wire.MAX_BODY_LEN - wire.TAG_LEN])


@dataclass
class SessionBench:
    """A programmed pump and the reference programmer side, joined byte for byte."""

    role: Role
    pump: Pump = field(init=False)
    device: PumpDevice = field(init=False)
    programmer: ProgrammerSession = field(init=False)
    now: int = 0
    attempts: int = 0
    pump_nonce: bytes = b""
    sent: list[bytes] = field(default_factory=list)
    """Authentic sealed frames delivered so far, for replays."""

    def __post_init__(self) -> None:
        self.pump = Pump(_profile(), start_ms=0)
        programmed = self.pump.program(RX, command_id=1)
        assert not isinstance(programmed, Refused), programmed
        self.device = PumpDevice(self.pump, KEYS, random.Random(0).randbytes)
        self.programmer = ProgrammerSession(SERIAL, self.role, KEYS.key_for(self.role))

    def exchange(self, data: bytes) -> list[Frame]:
        """Deliver ``data`` now, then let the link idle so a partial candidate is given up:
        the replies it provoked, all of them."""
        _deliver(self.device, data, self.now)
        self.now += RX_IDLE_MS
        self.device.handle_timer(self.now)
        return _replies(self.device.data_to_send())

    def open(self) -> bool:
        """A full handshake with fixed nonces; False if the pump refused it (lockout)."""
        self.attempts += 1
        nonce = hashlib.sha256(b"programmer nonce %d" % self.attempts).digest()[:16]
        start = self.programmer.start(nonce)
        hello = OpenSession(role=self.role, programmer_nonce=start.programmer_nonce)
        (frame,) = self.exchange(codec.encode(hello, seq=2 * self.attempts - 1))
        challenge = codec.decode_payload(frame.opcode, frame.body)
        if not isinstance(challenge, Challenge):
            assert isinstance(challenge, Nak), challenge
            self.programmer.refused()
            return False
        self.pump_nonce = challenge.pump_nonce
        answer = self.programmer.answer_challenge(challenge.pump_nonce, challenge.serial)
        (frame,) = self.exchange(codec.encode(Authenticate(answer.proof), seq=2 * self.attempts))
        opened = codec.decode_payload(frame.opcode, frame.body)
        if not isinstance(opened, SessionOpened):
            assert isinstance(opened, Nak), opened
            self.programmer.refused()
            return False
        self.programmer.confirm_opened(opened.proof, opened.idle_timeout_s, opened.max_session_s)
        assert self.device.session.state is SessionState.OPEN
        return True

    def sealed(self, opcode: Opcode, plaintext: bytes) -> bytes:
        seq = self.programmer.next_send_seq
        header = codec.header_bytes(wire.FLAG_SEALED, seq, 0, opcode, len(plaintext) + 16)
        body = self.programmer.seal(header, plaintext)
        return codec.build_frame(Frame(wire.FLAG_SEALED, seq, 0, opcode, body))

    def wrong_direction(self, opcode: Opcode, plaintext: bytes) -> bytes:
        """A request sealed with the session's *reply* key: an insider's forgery."""
        transcript = crypto.Transcript(SERIAL, self.role, self.programmer_nonce(), self.pump_nonce)
        keys = crypto.derive_session_keys(KEYS.key_for(self.role), transcript)
        seq = self.programmer.next_send_seq
        header = codec.header_bytes(wire.FLAG_SEALED, seq, 0, opcode, len(plaintext) + 16)
        body = crypto.seal(keys.to_programmer, header, plaintext)
        return codec.build_frame(Frame(wire.FLAG_SEALED, seq, 0, opcode, body))

    def programmer_nonce(self) -> bytes:
        return hashlib.sha256(b"programmer nonce %d" % self.attempts).digest()[:16]

    def state(self) -> tuple[dict[str, Any], tuple[Any, ...], Any, int]:
        """Therapy state, ledger, session state and the session's receive counter."""
        session = self.device.session
        return (
            _therapy_state(self.pump),
            self.device.ledger.entries(),
            session.state,
            session.last_received_seq,
        )


def _forge(bench: SessionBench, opcode: Opcode, inp: Input) -> bytes | None:
    """A mutation of an authentic frame (or one sealed wrongly); None if it came out
    unchanged (then it would be authentic, not forged)."""
    plaintext = _base_payloads()[opcode]
    kind = inp.u8() % FRAME_MUTATIONS
    if kind == 7:
        return bench.wrong_direction(opcode, plaintext)
    frame = bytearray(bench.sealed(opcode, plaintext))
    original = bytes(frame)
    body_end = len(frame) - wire.CRC_LEN
    if kind == 0:  # a header bit (after SYNC), CRC recomputed
        bit = inp.u8() % (8 * (wire.HEADER_LEN - 2))
        frame[2 + bit // 8] ^= 1 << (bit % 8)
    elif kind == 1:  # a ciphertext or tag bit, CRC recomputed
        bit = inp.uint(2) % (8 * (body_end - wire.HEADER_LEN))
        frame[wire.HEADER_LEN + bit // 8] ^= 1 << (bit % 8)
    elif kind == 2:  # another SEQ
        frame[4:8] = inp.uint(4).to_bytes(4, "little")
    elif kind == 3:  # another LENGTH
        frame[13:15] = inp.uint(2).to_bytes(2, "little")
    elif kind == 4:  # body cut short, LENGTH kept honest
        del frame[body_end - 1 - inp.u8() % (body_end - wire.HEADER_LEN) : body_end]
        frame[13:15] = (len(frame) - wire.MIN_FRAME_LEN).to_bytes(2, "little")
    elif kind == 5:  # body extended, LENGTH kept honest
        frame[body_end:body_end] = inp.take(1 + inp.u8() % 32)
        frame[13:15] = (len(frame) - wire.MIN_FRAME_LEN).to_bytes(2, "little")
    if kind == 6:  # any bit, CRC left as it was
        bit = inp.uint(2) % (8 * len(frame))
        frame[bit // 8] ^= 1 << (bit % 8)
        forged = bytes(frame)
    else:
        forged = with_crc(bytes(frame[: len(frame) - wire.CRC_LEN]))
    return None if forged == original else forged


def _holds_authentic_request(bench: SessionBench, data: bytes) -> bool:
    """Whether ``data`` holds a request that opens with the open session's key at a fresh
    SEQ. The keys and nonces are fixed, so the fuzzer can learn such a frame (atheris
    sees the ``forged == original`` comparison of ``_forge``) and paste it into noise:
    it is then authentic, not noise, and the pump rightly accepts it."""
    session = bench.device.session
    if session.state is not SessionState.OPEN or bench.programmer.state is not ProgrammerState.OPEN:
        return False
    transcript = crypto.Transcript(SERIAL, bench.role, bench.programmer_nonce(), bench.pump_nonce)
    key = crypto.derive_session_keys(KEYS.key_for(bench.role), transcript).to_pump
    framer = Framer()
    for event in framer.feed(data) + framer.finish():
        if not isinstance(event, FrameBytes):
            continue
        try:
            frame = codec.parse_frame(event.data)
            crypto.open(key, frame.header, frame.body)
        except ProtocolError:
            continue
        if frame.is_sealed and not frame.is_reply and frame.seq > session.last_received_seq:
            return True
    return False


def _refused_everything(bench: SessionBench, data: bytes, what: str) -> None:
    """Deliver bytes that carry no authentic request: nothing but NAKs (or a CHALLENGE,
    when no session is open) comes back, and therapy, ledger, session state and the
    receive counter are exactly as before."""
    bench.device.handle_timer(bench.now)  # time passes first; the frame lands at now
    if _holds_authentic_request(bench, data):
        _deliver(bench.device, data, bench.now)  # authentic after all: only "never raises"
        bench.now += RX_IDLE_MS
        bench.device.handle_timer(bench.now)
        _replies(bench.device.data_to_send())
        return
    before = bench.state()
    _deliver(bench.device, data, bench.now)
    after = bench.state()
    assert after == before, f"{what} changed the pump: {data.hex()}"
    bench.now += RX_IDLE_MS
    bench.device.handle_timer(bench.now)
    for frame in _replies(bench.device.data_to_send()):
        if frame.is_sealed:
            message = codec.decode_payload(
                frame.opcode, bench.programmer.open(frame.header, frame.body)
            )
        else:
            message = codec.decode_payload(frame.opcode, frame.body)
        assert isinstance(message, Nak | Challenge), (what, message)


def _authentic(bench: SessionBench, opcode: Opcode, plaintext: bytes) -> None:
    """Send a well-sealed request (its plaintext possibly mutated) in an open session."""
    bench.device.handle_timer(bench.now)
    bench.device.data_to_send()
    if bench.device.session.state is not SessionState.OPEN and not bench.open():
        return
    frame = bench.sealed(opcode, plaintext)
    before = bench.state()
    ledger_before = dict(bench.device.ledger.entries())
    _deliver(bench.device, frame, bench.now)
    after = bench.state()  # at the instant of delivery, so time passing hides nothing
    (reply,) = _replies(bench.device.data_to_send())
    bench.sent.append(frame)
    assert reply.is_sealed, reply
    assert reply.ref == crypto.header_seq(frame[: wire.HEADER_LEN]), reply
    message = codec.decode_payload(reply.opcode, bench.programmer.open(reply.header, reply.body))
    permitted = REQUEST_KIND[opcode] in PERMISSIONS[bench.role]
    if not permitted:
        assert isinstance(message, Nak), message
        assert message.code is RefusalCode.NOT_PERMITTED_FOR_ROLE, message
    if opcode is Opcode.CLOSE_SESSION and isinstance(message, Ack):
        bench.programmer.close()
        return
    if isinstance(message, Nak):
        # A refused request changes nothing (docs/protocol.md section 8).
        assert after[:2] == before[:2], (opcode, message)
    if opcode in COMMAND_OPCODES and isinstance(message, Ack):
        earlier = ledger_before.get(message.command_id)
        recorded = bench.device.ledger.lookup(message.command_id, fingerprint(opcode, plaintext))
        assert recorded == message, (recorded, message)
        if earlier is not None:
            # C1: a repeat is answered from the ledger and never applied twice.
            assert earlier.ack == message
            assert after[0] == before[0], "a repeated command id changed the therapy"


def check_session(data: bytes) -> None:
    """Input: a role byte (3 mod 4: patient, else clinician), then operations, each an op
    byte (``SESSION_OPS``), a time step byte, and the op's arguments.

    A session is opened over the wire by ``protocol.session.ProgrammerSession`` with fixed
    keys and nonces, then: authentic requests for every request opcode with mutated
    plaintexts (they reach the codec and the firmware), forged frames (header, body, tag,
    SEQ, LENGTH mutated; cut; extended; sealed with the reply key), replays of delivered
    frames, and raw noise. The device never raises; anything not authentic and fresh is
    refused and changes nothing; a refused request changes nothing; a patient session is
    refused what its role may not do; a repeated command id is never applied twice.
    """
    inp = Input(data)
    bench = SessionBench(Role.PATIENT if inp.u8() % 4 == 3 else Role.CLINICIAN)
    assert bench.open()
    while not inp.exhausted:
        op = SESSION_OPS[inp.u8() % len(SESSION_OPS)]
        bench.now += STEPS_MS[inp.u8() % len(STEPS_MS)]
        if op == "authentic":
            opcode = SESSION_REQUESTS[inp.u8() % len(SESSION_REQUESTS)]
            _authentic(bench, opcode, _mutate_payload(_base_payloads()[opcode], inp))
        elif op == "forged":
            opcode = SESSION_REQUESTS[inp.u8() % len(SESSION_REQUESTS)]
            if bench.programmer.state is not ProgrammerState.OPEN:
                continue
            forged = _forge(bench, opcode, inp)
            if forged is not None:
                _refused_everything(bench, forged, "a forged frame")
        elif op == "replay":
            if bench.sent:
                _refused_everything(bench, bench.sent[inp.u8() % len(bench.sent)], "a replay")
        elif op == "noise":
            _refused_everything(bench, inp.take(inp.u8()), "noise")
        else:
            bench.device.handle_timer(bench.now)
            bench.device.data_to_send()


# -- 5. state files -----------------------------------------------------------------------


class Envelope(Protocol):
    """What wraps a device record on disk. The inner ``PumpDevice.restore`` is fuzzed
    through it; hil/state_file.py's signed envelope plugs in here once it lands (its
    ``seal_state``/``unseal_state`` with the key file)."""

    def seal(self, record: bytes) -> bytes: ...

    def unseal(self, data: bytes) -> bytes: ...


class PlainEnvelope:
    """No envelope: the file is the device record (``PumpDevice.snapshot()``) itself."""

    def seal(self, record: bytes) -> bytes:
        return record

    def unseal(self, data: bytes) -> bytes:
        return data


_RECORD_HEAD = struct.Struct("<8sI")


def frame_record(magic: bytes, payload: bytes) -> bytes:
    """A record around ``payload`` with a correct checksum (emulator/firmware/nvram.py's
    layout): what someone who edits a state file and recomputes its SHA-256 writes."""
    head = _RECORD_HEAD.pack(magic, len(payload))
    return head + payload + hashlib.sha256(head + payload).digest()


@functools.cache
def saved_device_blob() -> bytes:
    """A real saved state: a pump running RX with a bolus, a staged prescription, ledger
    entries, a failed opening on record."""
    bench = SessionBench(Role.CLINICIAN)
    assert bench.open()
    for opcode in (Opcode.CLINICIAN_BOLUS, Opcode.STAGE_PRESCRIPTION, Opcode.ALARM_TEST):
        bench.now += 1_000
        _authentic(bench, opcode, _base_payloads()[opcode])
    assert len(bench.device.ledger) >= 1
    return bench.device.snapshot()


def split_device_blob(blob: bytes) -> tuple[bytes, bytes]:
    """The device record's JSON payload and the JSON of the pump record nested in it
    (docs/state-file.md: the device record holds the pump record as an object)."""
    payload = blob[_RECORD_HEAD.size : -32]
    record = decode_record(DEVICE_STATE_MAGIC, blob)
    pump = json.dumps(record["pump"], sort_keys=True, separators=(",", ":")).encode()
    return payload, pump


def _device_blob_around(pump_payload: bytes) -> bytes:
    """A good device record whose pump record is ``pump_payload`` (any bytes: a pump
    part that is not JSON makes the whole record not JSON, which restore must refuse)."""
    payload, pump = split_device_blob(saved_device_blob())
    assert payload.count(pump) == 1, "the device record must hold its pump record verbatim"
    device_payload = payload.replace(pump, pump_payload, 1)
    return frame_record(DEVICE_STATE_MAGIC, device_payload)


def check_state_file(data: bytes, envelope: Envelope | None = None) -> None:
    """Input: a layer byte, then (0) a whole saved state, (1) the device record's JSON
    payload, re-checksummed, or (2) the pump record's JSON payload, re-checksummed and put
    into an otherwise good device record.

    ``PumpDevice.restore`` either refuses with SnapshotError or gives a working device: it
    saves a state that restores to the same state, takes bytes without raising, and runs
    a day of pump time without an error outside the families.
    """
    envelope = envelope or PlainEnvelope()
    inp = Input(data)
    layer = inp.u8() % 3
    body = inp.rest()
    if layer == 0:
        record = body
    elif layer == 1:
        record = frame_record(DEVICE_STATE_MAGIC, body)
    else:
        record = _device_blob_around(body)
    stored = envelope.seal(record)
    entropy = random.Random(0).randbytes
    try:
        device = PumpDevice.restore(envelope.unseal(stored), KEYS, entropy)
    except ERROR_FAMILIES:
        return
    saved = device.snapshot()
    again = PumpDevice.restore(saved, KEYS, entropy)
    assert again.snapshot() == saved, "a restored state does not save and restore as itself"
    now = device.now_ms
    _deliver(device, codec.encode(ReadStatus(), seq=1), now)
    _replies(device.data_to_send())
    try:
        device.handle_timer(now + 86_400_000)
        device.pump.status()
    except ERROR_FAMILIES:
        pass


HARNESSES: dict[str, Callable[[bytes], None]] = {
    "framer": check_framer,
    "codec": check_codec,
    "device": check_device,
    "session": check_session,
    "state": check_state_file,
}
"""Every harness by name, as ``fuzz.run`` and the tests know them."""
