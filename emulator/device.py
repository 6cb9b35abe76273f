"""The emulated pump behind the wire: bytes and ``now`` in, bytes and timers out (sans-IO).

``PumpDevice`` joins the framer, the codec, the secure session, the command ledger and the
pump model (docs/architecture.md, "Data flow"):

    receive_data(bytes, now) -> framer (resync) -> codec (CRC, header) -> session (open,
    counter, role) -> ledger (exactly once) -> pump (state table, interlocks) -> reply ->
    seal -> frame -> data_to_send()

It does no I/O and reads no clock. The serve loop (hil/) passes ``now`` in, calls
``handle_timer`` at ``get_timer()``, and supplies randomness for the pump's session nonces
through ``entropy``. Everything a programmer or an attacker does is answered by the rules
of docs/protocol.md and docs/security.md:

- a frame that fails its CRC is never interpreted (C2); if its header survived, the pump
  answers NAK FRAME_CORRUPT so the programmer can resend at once;
- before a session is open only the handshake is accepted, and every refusal is a logged
  security event (C3, C4);
- inside a session every reply is sealed, NAKs included;
- a command id is applied at most once, whatever the link does. A repeat gets the
  original ACK from the ledger (C1);
- a session that ends for any reason drops a staged prescription, so a cut between STAGE
  and COMMIT changes nothing (C5).

Two timelines (docs/security.md section 6, docs/serve.md "Two timelines"). ``now_ms`` is the
pump's internal timeline, ``Pump.now_ms``: therapy, the log, the battery. ``link_ms`` is the
link's: the session idle timeout and maximum length, the opening lockout, the stage lifetime
and the give-up on a partial frame. They are separate inputs because a rig runs pump time
fast (``--clock x1000``) or by hand (``--clock manual``) while the programmer at the other
end, and the clinician at its prompt, live in real time. The serve loop feeds ``link_ms``
from a monotonic clock whatever the pump clock does. A caller that never passes
``link_ms`` (an in-process simulation where both move together) gets one timeline:
``link_ms`` is then ``now_ms``, and ``get_timer`` gives the earlier of the two deadlines.

Every instant a reply carries (STATUS and CLOCK, ACK values, log stamps,
alarms' ``since_ms``, PRESCRIPTION_STAGED's predictions) is on the pump clock, as
docs/protocol.md section 1 says: the firmware gives them so, and this module passes them on
unconverted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulator.command_ledger import CommandLedger, fingerprint
from emulator.device_service import apply_service_command, read_reply
from emulator.firmware.firmware import FirmwareStatus
from emulator.firmware.nvram import SnapshotError, canonical_json, decode_record, encode_record
from emulator.firmware.results import (
    Accepted,
    BolusStarted,
    RefillBegun,
    RefillCompleted,
    Refused,
    Staged,
)
from emulator.profile import Profile
from emulator.pump import Pump
from emulator.snapshot_rules import first_difference, need_int, need_keys
from emulator.status_reply import status_payload
from protocol import codec, wire
from protocol.checksum import crc16
from protocol.codec import DecodeError, Frame
from protocol.device_state import AlarmKind, EventKind
from protocol.errors import ProtocolError
from protocol.framer import FrameBytes, Framer, Noise
from protocol.keys import PumpKeys
from protocol.messages import (
    MAX_ALARMS,
    NEVER_MS,
    Ack,
    AcknowledgeAlarm,
    AlarmList,
    AlarmTest,
    Authenticate,
    BridgeBolus,
    CancelBolus,
    ClinicianBolus,
    Clock,
    CommitPrescription,
    CurrentPrescription,
    DeviceInfo,
    EventLogPage,
    Message,
    Nak,
    Opcode,
    OpenSession,
    PatientBolusRequest,
    PrescriptionStaged,
    PrimingBolus,
    ProfileLimits,
    ReadAlarms,
    ReadClock,
    ReadDeviceInfo,
    ReadEventLog,
    ReadPrescription,
    ReadStatus,
    RefillBegin,
    RefillComplete,
    SessionOpened,
    SetClock,
    StagedWithOverride,
    StagePrescription,
    StagePrescriptionOverride,
    StartTherapy,
    Status,
    StopTherapy,
)
from protocol.messages import Challenge as ChallengeMessage
from protocol.refusal import FieldId, RefusalCode
from protocol.request_kinds import COMMAND_OPCODES, REQUEST_KIND
from protocol.session import (
    Accepted as SessionAccepted,
)
from protocol.session import (
    Action,
    PumpSession,
    SessionEvent,
    SessionEventKind,
    SessionLimits,
    SessionState,
)
from protocol.session import (
    Refused as SessionRefused,
)
from protocol.units import U32_MAX, U64_MAX

Entropy = Callable[[int], bytes]
"""n fresh random bytes: ``secrets.token_bytes`` in hil, a seeded source in tests."""

Persist = Callable[[bytes], None]
"""Stores a device state record (``PumpDevice.snapshot()``) durably, or raises (any
``Exception``) if it could not. The device only calls it: the writing is the shell's (hil)."""

FIRMWARE_VERSION = "pumpemu-1"
RX_IDLE_MS = 200
"""A link quiet this long after a partial frame means the rest is never coming: the
framer gives the candidate up, so a real frame inside it is still found (C2)."""
MAX_LEDGER_CAPACITY = 65_536
"""The largest ledger a saved state may declare (a restore allocates nothing for it, but a
bound keeps a hostile record from naming an absurd one)."""

DEVICE_STATE_MAGIC = b"PEMU-DV2"
"""The device state record (``PumpDevice.snapshot``): the pump's own snapshot record, the
command ledger and the failed-opening count and lockout, in one checksummed record."""
DEVICE_STATE_VERSION = 2

_DEVICE_KEYS = frozenset({"version", "serial", "pump", "ledger", "session"})
_LEDGER_KEYS = frozenset({"capacity", "entries"})
_SESSION_KEYS = frozenset({"failed_openings", "lockout_left_ms"})

SECURITY_RUN_MS = 60_000
"""The coalescing window for security events, on the link timeline (docs/protocol.md
section 11.3): after a SECURITY_EVENT entry, further security events with the same refusal
code are counted, not written, until this long after it; then one SECURITY_SUMMARY entry
says how many and when the last came. A flood of one kind writes at most two entries per
window, and a summary is never more than one window late."""

_SESSION_END_EVENTS = frozenset(
    {
        SessionEventKind.SESSION_CLOSED,
        SessionEventKind.SESSION_EXPIRED,
        SessionEventKind.LOCKOUT_STARTED,
    }
)


@dataclass(slots=True)
class _SecurityRun:
    """Security events of one refusal code since its last SECURITY_EVENT entry."""

    ends_link_ms: int
    """The end of the window, on the link timeline: the SECURITY_EVENT's arrival + window."""
    counted: int = 0
    """Events after the first that were counted instead of written."""
    last_ms: int = 0
    """When the last counted event came, on the pump's internal timeline."""


def default_session_limits(profile: Profile) -> SessionLimits:
    """The session rules of the pump's profile ([session], docs/security.md section 6): what
    a device uses when it is given no limits of its own."""
    return SessionLimits(
        idle_timeout_s=profile.session_idle_timeout_s,
        max_session_s=profile.session_max_s,
        max_failed_openings=profile.session_max_failed_openings,
        lockout_s=profile.session_lockout_s,
    )


class PumpDevice:
    """One emulated pump as a programmer sees it over a link."""

    def __init__(
        self,
        pump: Pump,
        keys: PumpKeys,
        entropy: Entropy,
        *,
        limits: SessionLimits | None = None,
        ledger: CommandLedger | None = None,
        persist: Persist | None = None,
    ) -> None:
        """``persist``, if given, receives ``snapshot()`` before any reply leaves whenever
        the ledger, the failed openings, the lockout or the pump's time changed since the
        last call; a command whose state it fails to store is undone and refused
        NOT_STORED (docs/protocol.md section 8, rule 11)."""
        self._pump = pump
        self._persist = persist
        self._persisted_key: tuple[int, int, int | None, int] | None = None
        self._persist_error: str | None = None
        self._keys = keys
        self._entropy = entropy
        self._session = PumpSession(keys, limits or default_session_limits(pump.profile))
        self._ledger = ledger if ledger is not None else CommandLedger()  # an empty one is falsy
        self._framer = Framer()
        self._outbox = bytearray()
        self._rx_idle_deadline: int | None = None
        """When a partial frame is given up on, on the link timeline."""
        self._stage_deadline: int | None = None
        """When the staged prescription's lifetime ends, on the link timeline."""
        self._link_now = 0
        self._joint = True
        """True while no caller has passed ``link_ms``: the link timeline is pump time."""
        self._history = bytearray()
        """The last bytes received, so a rejected frame's header can be read back."""
        self._history_base = 0
        self._security_runs: dict[int, _SecurityRun] = {}
        """Open coalescing runs by refusal code (docs/protocol.md section 11.3). Not saved
        with the device's state: a clean shutdown ends them first (``end_security_runs``);
        a crash loses what they had counted."""

    # -- inspection, for the serve loop, scenarios and tests --

    @property
    def pump(self) -> Pump:
        return self._pump

    @property
    def session(self) -> PumpSession:
        return self._session

    @property
    def ledger(self) -> CommandLedger:
        return self._ledger

    @property
    def now_ms(self) -> int:
        return self._pump.now_ms

    def uncounted_security_events(self) -> dict[int, int]:
        """Security events counted in open runs and not yet written, by refusal code: what
        the SECURITY_SUMMARY entries will say when the runs end (docs/protocol.md 11.3)."""
        return {code: run.counted for code, run in self._security_runs.items()}

    @property
    def link_ms(self) -> int:
        """The link timeline's latest instant (pump time while the timelines are one)."""
        return self._link_now

    # -- persistence: what survives a restart of the emulator --

    def snapshot(self) -> bytes:
        """The pump's non-volatile state as a restarted pump would find it, checksummed.

        The pump snapshot record (``Pump.snapshot_record``), the command ledger (ids in
        order, with their fingerprints and original ACKs), the failed-opening count and any
        lockout, and the serial of the keys. An open session is not saved: a restart drops
        it (C5: a staged prescription goes with it).
        """
        return encode_record(DEVICE_STATE_MAGIC, self.snapshot_record())

    def snapshot_record(self) -> dict[str, Any]:
        """``snapshot()``'s record before encoding (plain JSON values)."""
        entries = [
            [command_id, entry.fingerprint.hex(), codec.encode_payload(entry.ack)[1].hex()]
            for command_id, entry in self._ledger.entries()
        ]
        return {
            "version": DEVICE_STATE_VERSION,
            "serial": self._keys.serial,
            "pump": self._pump.snapshot_record(),
            "ledger": {"capacity": self._ledger.capacity, "entries": entries},
            "session": {
                "failed_openings": self._session.failed_openings,
                "lockout_left_ms": self._session.lockout_left_ms,
            },
        }

    @classmethod
    def restore(
        cls,
        blob: bytes,
        keys: PumpKeys,
        entropy: Entropy,
        *,
        limits: SessionLimits | None = None,
        link_ms: int | None = None,
        persist: Persist | None = None,
    ) -> PumpDevice:
        """The device ``snapshot()`` saved, resumed at its pump time with no session open.

        ``link_ms`` is where the link timeline resumes (None: at the restored pump time, for
        a caller that keeps one timeline); a saved lockout resumes with the time it had
        left, counted from there.

        SnapshotError (and never another exception) if the blob is corrupt, truncated or
        malformed, if any field breaks a rule (emulator/snapshot_rules.py), or if it belongs
        to a pump with another serial than ``keys``.
        """
        return cls.from_record(
            decode_record(DEVICE_STATE_MAGIC, blob),
            keys,
            entropy,
            limits=limits,
            link_ms=link_ms,
            persist=persist,
        )

    @classmethod
    def from_record(
        cls,
        record: object,
        keys: PumpKeys,
        entropy: Entropy,
        *,
        limits: SessionLimits | None = None,
        link_ms: int | None = None,
        persist: Persist | None = None,
    ) -> PumpDevice:
        """``restore`` from an already decoded record (``snapshot_record()``)."""
        if not isinstance(record, dict) or record.get("version") != DEVICE_STATE_VERSION:
            version = record.get("version") if isinstance(record, dict) else None
            raise SnapshotError(f"unsupported device state version {version!r:.20}")
        need_keys("device", record, _DEVICE_KEYS)
        serial = record["serial"]
        if serial != keys.serial:
            raise SnapshotError(
                f"the state belongs to pump {serial!r:.40}, the key file to {keys.serial!r}"
            )
        pump = Pump.from_record(record["pump"])
        try:
            ledger = _ledger_from_record(record["ledger"])
            device = cls(pump, keys, entropy, limits=limits, ledger=ledger, persist=persist)
            _check_ledger_against_pump(ledger, pump)
            session = need_keys("device.session", record["session"], _SESSION_KEYS)
            most = device._session.limits.max_failed_openings
            need_int("device.session.failed_openings", session["failed_openings"], 0, most)
            device._link_now = pump.now_ms if link_ms is None else link_ms
            device._session.restore_openings(
                session["failed_openings"], session["lockout_left_ms"], device._link_now
            )
            again = device.snapshot_record()
            # The pump's part was compared by Pump.from_record, before its first read
            # (a read forgets boluses older than 24 h, so it may differ now).
            again["pump"] = record["pump"]
        except SnapshotError:
            raise
        except Exception as exc:
            # Outside data: whatever breaks while resuming it is one line, never a traceback.
            raise SnapshotError(
                f"state does not describe a pump device: {type(exc).__name__}: {exc}"
            ) from exc
        if canonical_json(again) != canonical_json(record):
            raise SnapshotError(
                "the device record is not in canonical form: "
                f"{first_difference(record, again, 'device')} was altered"
            )
        pump.discard_staged()  # the session that staged it is gone (C5)
        return device

    # -- persistence before replies (C1, H8) --

    def _memory_key(self) -> tuple[int, int, int | None, int]:
        """What a reply may reveal and a restart must not lose: the ledger, the failed
        openings and the lockout, and the pump's time (never behind what a programmer read)."""
        session = self._session
        return (
            self._ledger.recorded,
            session.failed_openings,
            session.lockout_until_ms,
            self._pump.now_ms,
        )

    @property
    def persists(self) -> bool:
        return self._persist is not None

    def save(self) -> None:
        """Hand ``snapshot()`` to ``persist`` now; its exception propagates (a start or a
        clean stop reports it)."""
        if self._persist is None:
            return
        key = self._memory_key()
        self._persist(self.snapshot())
        self._persisted_key = key

    def save_if_changed(self) -> bool:
        """Persist if anything a reply may reveal changed since the last save. False if
        ``persist`` failed (the reason waits in ``pop_persist_error``)."""
        if self._persist is None or self._memory_key() == self._persisted_key:
            return True
        try:
            self.save()
        except Exception as exc:  # persist's contract: any exception means not stored
            self._persist_error = f"{type(exc).__name__}: {exc}"
            return False
        return True

    def pop_persist_error(self) -> str | None:
        """Why the last save failed, once (the serve loop logs it), or None."""
        error, self._persist_error = self._persist_error, None
        return error

    # -- sans-IO interface --

    def receive_data(self, data: bytes, now_ms: int, link_ms: int | None = None) -> None:
        """Bytes arrived from the link at pump time ``now_ms`` and link time ``link_ms``."""
        link = self._advance(now_ms, link_ms)
        self._remember(data)
        events = self._framer.feed(data)
        if not self._framer.buffered:
            # No candidate pending: a noise run (a damaged frame) is complete now. Report it
            # at once, so its FRAME_CORRUPT answer is not held back until the next bytes.
            events += self._framer.finish()
        self._on_events(events)
        self._rx_idle_deadline = link + RX_IDLE_MS if self._framer.buffered else None

    def data_to_send(self) -> bytes:
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    def get_pump_timer(self) -> int | None:
        """The next pump-timeline instant the pump changes by itself (therapy, alarms)."""
        return self._pump.next_deadline()

    def get_link_timer(self) -> int | None:
        """The next link-timeline instant something expires: the session's idle timeout or
        maximum length, a lockout's end, the stage lifetime, or a partial frame."""
        # Compared as they come, no tuple or generator built: the serve loop asks after
        # every chunk it hands over (docs/serve.md, "The serve loop's cost").
        best = self._session.get_timer()
        for t in (self._rx_idle_deadline, self._stage_deadline):
            if t is not None and (best is None or t < best):
                best = t
        for run in self._security_runs.values():
            if best is None or run.ends_link_ms < best:
                best = run.ends_link_ms
        return best

    def get_timer(self) -> int | None:
        """The next instant anything changes by itself, while the timelines are one.

        A caller that passes ``link_ms`` keeps two timelines and must ask each
        (``get_pump_timer``, ``get_link_timer``): their instants cannot be compared.
        """
        if not self._joint:
            raise RuntimeError(
                "this device runs two timelines: use get_pump_timer() and get_link_timer()"
            )
        times = (self.get_pump_timer(), self.get_link_timer())
        return min((t for t in times if t is not None), default=None)

    def handle_timer(self, now_ms: int, link_ms: int | None = None) -> None:
        """Fire what is due at pump time ``now_ms`` and link time ``link_ms``."""
        link = self._advance(now_ms, link_ms)
        if self._rx_idle_deadline is not None and link >= self._rx_idle_deadline:
            self._rx_idle_deadline = None
            self._on_events(self._framer.finish())

    # -- time --

    def _advance(self, now_ms: int, link_ms: int | None) -> int:
        """Bring the pump to ``now_ms`` and the link timers to ``link_ms``, firing due
        timers; returns the link time."""
        if link_ms is None:
            if not self._joint:
                raise ValueError("this device runs two timelines: pass link_ms every time")
            link_ms = now_ms
        else:
            self._joint = False
        if isinstance(link_ms, bool) or not isinstance(link_ms, int) or link_ms < self._link_now:
            raise ValueError(f"link time must not go backwards: {link_ms!r} < {self._link_now}")
        self._pump.advance_to(now_ms)
        self._link_now = link_ms
        self._session.handle_timer(link_ms)
        self._drain_session_events(None, 0)
        self._end_security_runs(link_ms)
        if self._stage_deadline is not None and link_ms >= self._stage_deadline:
            self._stage_deadline = None
            self._pump.expire_staged()
        return link_ms

    # -- frames --

    def _remember(self, data: bytes) -> None:
        self._history += data
        excess = len(self._history) - 2 * wire.MAX_FRAME_LEN
        if excess > 0:
            del self._history[:excess]
            self._history_base += excess

    def _on_events(self, events: list[FrameBytes | Noise]) -> None:
        for event in events:
            if isinstance(event, FrameBytes):
                self._on_frame(event.data)
            else:
                self._on_noise(event)

    def _on_noise(self, noise: Noise) -> None:
        """Answer FRAME_CORRUPT to a damaged frame whose header still reads (C2), and
        UNSUPPORTED_VERSION to a request header of another protocol version.

        The framer rejects a candidate for a bad CRC or a truncation. If the rejected
        bytes begin with a plausible header, its SEQ probably survived. An unsealed NAK
        naming it lets the programmer resend at once instead of waiting for its timeout.
        The NAK is unauthenticated, so a programmer treats it only as a hint to resend.
        """
        start = noise.offset - self._history_base
        head = bytes(self._history[max(start, 0) : start + wire.HEADER_LEN])
        if start < 0 or len(head) < wire.HEADER_LEN or head[:2] != wire.SYNC:
            return
        version, flags, seq, ref, _opcode, length = wire.parse_header(head)
        if flags & wire.FLAG_REPLY or ref != 0 or seq == 0:
            return
        if version != wire.VERSION:
            # The framer never passes another version on (docs/protocol.md section 3, rule
            # 2). A whole frame of another version, its CRC intact, comes from a sender that
            # speaks one: tell it which this pump speaks (section 12: UNSUPPORTED_VERSION,
            # limit = the supported version), unsealed like every frame-level refusal
            # (section 4). A VERSION byte damaged on the link fails the CRC: no answer, as
            # before, so line noise never reads as a version mismatch (C2).
            if self._intact(start, length):
                self._send_unsealed(_nak(RefusalCode.UNSUPPORTED_VERSION, wire.VERSION), seq)
            return
        self._send_unsealed(Nak(code=RefusalCode.FRAME_CORRUPT, field=FieldId.NONE, limit=0), seq)

    def _intact(self, start: int, length: int) -> bool:
        """Whether the received bytes from history offset ``start`` hold a whole frame of
        ``length`` body bytes whose CRC verifies."""
        if length > wire.MAX_BODY_LEN:
            return False
        data = bytes(self._history[start : start + wire.MIN_FRAME_LEN + length])
        if len(data) != wire.MIN_FRAME_LEN + length:
            return False
        return crc16(data[2:-2]) == int.from_bytes(data[-2:], "little")

    def _on_frame(self, data: bytes) -> None:
        try:
            frame = codec.parse_framed(data)
        except DecodeError as error:
            # CRC good, header not ours (version, opcode): say so, if there is a SEQ to name.
            _version, flags, seq, _ref, _opcode, _length = wire.parse_header(
                data[: wire.HEADER_LEN]
            )
            if seq and not flags & wire.FLAG_REPLY:
                self._reply(_nak(error.refusal), seq, sealed=False)
            return
        if frame.is_reply:
            return  # A reply sent to the pump is nobody's request: ignore it.
        if frame.is_sealed:
            # The header as received is the AEAD associated data: the same bytes
            # ``frame.header`` would pack again from the fields parsed out of it.
            self._on_sealed(frame, data[: wire.HEADER_LEN])
        elif frame.opcode is Opcode.OPEN_SESSION or frame.opcode is Opcode.AUTHENTICATE:
            self._on_handshake(frame)
        else:
            refused = self._session.receive_unsealed(self._link_now)
            self._drain_session_events(frame.opcode, frame.seq)
            # Unsealed, even inside a session (docs/security.md section 10): the sender
            # proved nothing, and it must not make the pump spend a sealed reply SEQ.
            self._reply(self._session_nak(refused.code), frame.seq, sealed=False)

    def _on_handshake(self, frame: Frame) -> None:
        self._handshake(frame)
        # A failed opening or a lockout is stored before its refusal leaves (C4); a failure
        # to store is retried at the next change (the serve loop logs it).
        self.save_if_changed()

    def _handshake(self, frame: Frame) -> None:
        now = self._link_now
        try:
            message = codec.decode_payload(frame.opcode, frame.body)
        except DecodeError as error:
            self._send_unsealed(_nak(error.refusal, error.limit, error.field), frame.seq)
            return
        if isinstance(message, OpenSession):
            result = self._session.open_request(
                message.role, message.programmer_nonce, self._fresh_nonce(), now
            )
            self._drain_session_events(frame.opcode, frame.seq)
            if isinstance(result, SessionRefused):
                self._send_unsealed(self._session_nak(result.code), frame.seq)
                return
            reply: Message = ChallengeMessage(pump_nonce=result.pump_nonce, serial=result.serial)
            self._outbox += codec.encode(reply, seq=result.seq, ref=frame.seq)
        elif isinstance(message, Authenticate):
            opened = self._session.authenticate(message.proof, now)
            self._drain_session_events(frame.opcode, frame.seq)
            if isinstance(opened, SessionRefused):
                self._send_unsealed(self._session_nak(opened.code), frame.seq)
                return
            if not opened.repeat:
                self._pump.telemetry_session()
            reply = SessionOpened(
                proof=opened.proof,
                idle_timeout_s=opened.idle_timeout_s,
                max_session_s=opened.max_session_s,
            )
            self._outbox += codec.encode(reply, seq=opened.seq, ref=frame.seq)

    def _fresh_nonce(self) -> bytes:
        nonce = self._entropy(16)
        if len(nonce) != 16:
            raise ValueError("the entropy source must return the number of bytes asked for")
        return nonce

    def _on_sealed(self, frame: Frame, header: bytes) -> None:
        now = self._link_now
        kind = REQUEST_KIND.get(frame.opcode)
        if kind is None:
            # A sealed OPEN_SESSION or AUTHENTICATE: the handshake is never sealed.
            self._reply(_nak(RefusalCode.MALFORMED_PAYLOAD), frame.seq)
            return
        result = self._session.receive_sealed(header, frame.body, kind, now)
        self._drain_session_events(frame.opcode, frame.seq)
        if isinstance(result, SessionRefused):
            self._reply(self._session_nak(result.code), frame.seq)
            return
        # READ_STATUS, the most frequent request, is answered from a plan: the same bytes
        # as the reference ``_status`` (emulator/status_reply.py), or None and the reference.
        status = None
        if (
            frame.opcode is Opcode.READ_STATUS
            and result.action is Action.DELIVER
            and not result.plaintext
        ):
            status = status_payload(self._pump)
        reply: Message | None = None
        if status is None:
            reply = self._handle_accepted(frame.opcode, result)
        if not self.save_if_changed():
            # A reply never shows a time or a state a restart could lose (docs/serve.md).
            reply, status = _nak(RefusalCode.NOT_STORED), None
        if status is None:
            assert reply is not None
            self._reply(reply, frame.seq)
        elif self._session.can_seal:
            self._reply_sealed(Opcode.STATUS, status, frame.seq)
        else:
            self._reply(self._status(), frame.seq)  # as the reference answers it

    def _handle_accepted(self, opcode: Opcode, accepted: SessionAccepted) -> Message:
        if accepted.action is Action.ACK_KEEP_ALIVE or accepted.action is Action.END_SESSION:
            # The full status is built only for the ACK that carries it: a read builds its
            # own reply, and a firmware status costs more than the rest of a READ_STATUS.
            return _ack(0, opcode, self._pump.status(), 0)
        try:
            request = codec.decode_payload(opcode, accepted.plaintext)
        except DecodeError as error:
            return _nak(error.refusal, error.limit, error.field)
        if opcode not in COMMAND_OPCODES:
            return self._read_or_stage(request)
        command_id = int(getattr(request, "command_id"))  # noqa: B009 - every command has one
        request_print = fingerprint(opcode, accepted.plaintext)
        earlier = self._ledger.lookup(command_id, request_print)
        if isinstance(earlier, Ack):
            return earlier  # C1: applied once already; answer as the first time, do nothing
        if isinstance(earlier, RefusalCode):
            self._pump.record_event(EventKind.COMMAND_REFUSED, earlier, opcode, command_id)
            return _nak(earlier, field=FieldId.COMMAND_ID)
        before = self._pump.snapshot() if self._persist is not None else b""
        checkpoint = self._ledger.checkpoint()
        reply = self._apply(request, command_id)
        if not isinstance(reply, Ack):
            return reply
        self._ledger.record(command_id, request_print, reply)
        if self.save_if_changed():
            return reply
        # Never an ACK without a save (C1, H8): a command the pump could not store is
        # undone, pump and ledger, and refused, so a restart can never lose an ACKed
        # command. The pump keeps its therapy: no memory-error safe state, since its own
        # memory is intact (docs/protocol.md section 12, NOT_STORED).
        self._pump.rollback(before)
        self._ledger.rollback(checkpoint)
        self._pump.record_event(
            EventKind.COMMAND_REFUSED, RefusalCode.NOT_STORED, opcode, command_id
        )
        return _nak(RefusalCode.NOT_STORED)

    # -- requests --

    def _read_or_stage(self, request: Message) -> Message:
        pump = self._pump
        match request:
            case ReadStatus():
                return self._status()
            case ReadDeviceInfo():
                return DeviceInfo(
                    model=pump.profile.name[:16],
                    serial=self._keys.serial,
                    firmware_version=FIRMWARE_VERSION,
                    limits=profile_limits(pump.profile),
                )
            case ReadPrescription():
                # The committed prescription: during a bridge, the one that takes effect
                # when the old drug is out (docs/protocol.md section 10.3).
                s = pump.status()
                committed = s.waiting_prescription or s.prescription
                return CurrentPrescription(prescription=committed)
            case ReadEventLog(from_seq=from_seq, count=count):
                entries = pump.log(from_seq)[:count]
                held = pump.log()
                status = pump.status()
                return EventLogPage(
                    oldest_seq=held[0].seq if held else status.log_next_seq,
                    next_seq=status.log_next_seq,
                    entries=entries,
                )
            case ReadAlarms():
                return AlarmList(alarms=pump.alarms()[:MAX_ALARMS])
            case ReadClock():
                return Clock(pump_time_ms=pump.status().local_time_ms)
            case StagePrescription(prescription=prescription):
                staged = pump.stage(prescription, expires=False)
                if isinstance(staged, Refused):
                    return _refusal(staged)
                # The lifetime runs on the link: a clinician reviewing at a prompt lives in
                # real time, whatever the pump clock does (docs/protocol.md section 7).
                # Expired strictly after it, as on the pump timeline: the timer fires 1 ms on.
                lifetime_ms = pump.profile.stage_lifetime_s * 1000
                self._stage_deadline = self._link_now + lifetime_ms + 1
                return _staged_reply(staged, pump.profile.stage_lifetime_s)
            case StagePrescriptionOverride(overrides=overrides, prescription=prescription):
                # STAGE_PRESCRIPTION with the clinician's overrides (docs/protocol.md 7):
                # the same stage, its lifetime on the link, and the review says what
                # was overridden.
                staged = pump.stage(prescription, expires=False, overrides=overrides)
                if isinstance(staged, Refused):
                    return _refusal(staged)
                lifetime_ms = pump.profile.stage_lifetime_s * 1000
                self._stage_deadline = self._link_now + lifetime_ms + 1
                return _override_reply(staged, pump.profile.stage_lifetime_s)
            case _:
                reply = read_reply(pump, request)  # issue 12 (emulator/device_service.py)
                return _nak(RefusalCode.BAD_STATE) if reply is None else reply

    def _apply(self, request: Message, command_id: int) -> Message:
        pump = self._pump
        opcode = request.OPCODE
        before = pump.status()
        result: Accepted | Refused | BolusStarted | RefillBegun | RefillCompleted
        value = 0
        match request:
            case CommitPrescription(digest=digest):
                result = pump.commit(digest, command_id=command_id)
            case SetClock(pump_time_ms=pump_time_ms):
                result = pump.set_clock(pump_time_ms, command_id=command_id)
                value = before.local_time_ms  # the clock before the change (section 8.1)
            case StartTherapy():
                result = pump.start(command_id=command_id)
            case StopTherapy():
                result = pump.stop(command_id=command_id)
            case ClinicianBolus(dose_nl=dose_nl, duration_s=duration_s):
                result = pump.clinician_bolus(dose_nl, duration_s, command_id=command_id)
            case CancelBolus():
                result = pump.cancel_bolus(command_id=command_id)
            case PatientBolusRequest():
                result = pump.patient_bolus(command_id=command_id)
            case PrimingBolus(catheter_volume_nl=volume):
                result = pump.prime_volume(volume, command_id=command_id)
            case RefillBegin():
                result = pump.refill_begin(command_id=command_id)
            case RefillComplete(
                withdrawn_nl=withdrawn,
                new_volume_nl=new_volume,
                new_concentration_ug_per_ml=concentration,
            ):
                result = pump.refill_complete(
                    new_volume,
                    withdrawn_nl=withdrawn,
                    new_concentration_ug_per_ml=concentration,
                    command_id=command_id,
                )
            case AcknowledgeAlarm(alarm=alarm):
                result = pump.acknowledge_alarm(AlarmKind(alarm), command_id=command_id)
            case AlarmTest():
                result = pump.alarm_test(command_id=command_id)
            case BridgeBolus():
                result = pump.bridge_bolus(command_id=command_id)
            case _:
                service = apply_service_command(pump, request, command_id)  # issue 12
                if service is None:
                    return _nak(RefusalCode.BAD_STATE)
                result, value = service
        if isinstance(result, Refused):
            return _refusal(result)
        if isinstance(result, BolusStarted):
            value = result.ends_ms  # pump clock, like STATUS (section 8.1)
        elif isinstance(result, RefillBegun):
            value = result.predicted_residual_nl
        elif isinstance(result, RefillCompleted) and isinstance(request, RefillComplete):
            # Section 8.1: the residual predicted at REFILL_BEGIN. The discrepancy is
            # withdrawn minus predicted, so the prediction is recovered exactly.
            value = request.withdrawn_nl - result.discrepancy_nl
        return _ack(command_id, opcode, pump.status(), value)

    def _status(self) -> Status:
        s = self._pump.status()
        capacity = self._pump.profile.battery_capacity_nah
        return Status(
            state=s.state,
            rate_nl_per_day=min(s.basal_rate_nl_per_day, U32_MAX),
            reservoir_nl=min(s.reservoir_estimate_nl, U32_MAX),
            battery_percent=min(100, max(0, s.battery_nah * 100 // capacity)),
            active_alarms=frozenset(a.kind for a in s.alarms),
            last_command_id=s.last_command_id or 0,
            pump_time_ms=s.local_time_ms,
        )

    # -- replies --

    def _session_nak(self, code: RefusalCode) -> Nak:
        """A session-layer refusal with the field and limit docs/protocol.md section 12
        gives it: LOCKED_OUT names the seconds left, REPLAY_DETECTED the last accepted SEQ,
        NOT_PERMITTED_FOR_ROLE the ROLE field."""
        if code is RefusalCode.LOCKED_OUT:
            until = self._session.lockout_until_ms
            left_ms = 0 if until is None else max(until - self._link_now, 0)
            return _nak(code, -(-left_ms // 1000))
        if code is RefusalCode.SESSION_BUSY:
            # When the open session ends unless it is used again: a programmer whose own
            # session was orphaned by lost replies knows how long to wait (section 12).
            ends = self._session.get_timer()
            left_ms = 0 if ends is None else max(ends - self._link_now, 0)
            return _nak(code, -(-left_ms // 1000))
        if code is RefusalCode.REPLAY_DETECTED:
            return _nak(code, self._session.last_received_seq)
        if code is RefusalCode.NOT_PERMITTED_FOR_ROLE:
            return _nak(code, field=FieldId.ROLE)
        return _nak(code)

    def _reply(self, message: Message, ref: int, *, sealed: bool | None = None) -> None:
        """Send a reply: sealed while the session can seal, unsealed otherwise."""
        if sealed is None:
            sealed = self._session.can_seal
        if not sealed:
            self._send_unsealed(message, ref)
            return
        opcode, plaintext = codec.encode_payload(message)
        self._reply_sealed(opcode, plaintext, ref)

    def _reply_sealed(self, opcode: Opcode, plaintext: bytes, ref: int) -> None:
        """Seal an encoded reply payload under the session's next SEQ."""
        seq = self._session.next_send_seq
        flags = wire.FLAG_REPLY | wire.FLAG_SEALED
        self._outbox += codec.seal_frame(
            flags, seq, ref, opcode, plaintext, seal=self._session.seal
        )

    def _send_unsealed(self, message: Message, ref: int) -> None:
        # Unsealed replies carry SEQ 1: outside a session SEQ is not checked (security.md 5).
        self._outbox += codec.encode(message, seq=1, ref=ref)

    # -- logging --

    def _drain_session_events(self, opcode: Opcode | None, seq: int) -> None:
        """Copy session events into the pump's event log (docs/protocol.md section 11)."""
        for event in self._session.pop_events():
            self._log_session_event(event, opcode, seq)
            if event.kind in _SESSION_END_EVENTS:
                self._pump.discard_staged()  # C5: a cut session never half-applies
                self._stage_deadline = None

    def _log_session_event(self, event: SessionEvent, opcode: Opcode | None, seq: int) -> None:
        role = int(event.role) if event.role is not None else 0
        if event.kind is SessionEventKind.SESSION_OPENED:
            # A session's programmer reads every security event from before its opening.
            self._end_security_runs(None)
            self._pump.record_event(EventKind.SESSION_OPENED, role, 0, 0)
        elif event.kind in (SessionEventKind.SESSION_CLOSED, SessionEventKind.SESSION_EXPIRED):
            self._pump.record_event(EventKind.SESSION_CLOSED, role, 0, 0)
        elif event.kind.is_security:
            code = int(event.code) if event.code is not None else 0
            self._log_security_event(code, int(opcode) if opcode else 0, seq)

    def _log_security_event(self, code: int, opcode: int, seq: int) -> None:
        """Write a SECURITY_EVENT, or count it in the open run of its refusal code
        (docs/protocol.md section 11.3)."""
        run = self._security_runs.get(code)
        if run is not None and self._link_now < run.ends_link_ms:
            run.counted += 1
            run.last_ms = self._pump.now_ms
            return
        if run is not None:
            self._end_security_run(code)
        self._pump.record_event(EventKind.SECURITY_EVENT, code, opcode, seq)
        self._security_runs[code] = _SecurityRun(ends_link_ms=self._link_now + SECURITY_RUN_MS)

    def end_security_runs(self) -> None:
        """End every open coalescing run now, writing its SECURITY_SUMMARY (docs/protocol.md
        section 11.3): a clean shutdown calls this before its last save, so a restart loses
        no counted event."""
        self._end_security_runs(None)

    def _end_security_runs(self, link_ms: int | None) -> None:
        """End the runs whose window is over at ``link_ms`` (None: every run), oldest
        window first."""
        if not self._security_runs:
            return  # the usual case: no run open, nothing to sort on every read
        due = sorted(
            (run.ends_link_ms, code)
            for code, run in self._security_runs.items()
            if link_ms is None or link_ms >= run.ends_link_ms
        )
        for _ends, code in due:
            self._end_security_run(code)

    def _end_security_run(self, code: int) -> None:
        run = self._security_runs.pop(code)
        if run.counted:
            last = self._pump.pump_clock_ms(run.last_ms)
            self._pump.record_event(EventKind.SECURITY_SUMMARY, code, run.counted, last)


# -- restoring the ledger ---------------------------------------------------------------------


def _ledger_from_record(value: object) -> CommandLedger:
    data = need_keys("device.ledger", value, _LEDGER_KEYS)
    capacity = need_int("device.ledger.capacity", data["capacity"], 1, MAX_LEDGER_CAPACITY)
    entries = data["entries"]
    if not isinstance(entries, list) or len(entries) > capacity:
        raise SnapshotError(f"device.ledger.entries must be a list of at most {capacity}")
    ledger = CommandLedger(capacity)
    for i, entry in enumerate(entries):
        where = f"device.ledger.entries[{i}]"
        if not isinstance(entry, list) or len(entry) != 3:
            raise SnapshotError(f"{where} must be [command id, fingerprint, ack]")
        command_id = need_int(where + "[0]", entry[0], 1, U32_MAX)
        request_hex, ack_hex = entry[1], entry[2]
        if not isinstance(request_hex, str) or not isinstance(ack_hex, str):
            raise SnapshotError(f"{where}: fingerprint and ack must be hex strings")
        if len(request_hex) != 64 or len(ack_hex) > 2 * wire.MAX_BODY_LEN:
            raise SnapshotError(f"{where}: fingerprint or ack of the wrong length")
        try:
            ack = codec.decode_payload(Opcode.ACK, bytes.fromhex(ack_hex))
            request_print = bytes.fromhex(request_hex)
        except (ValueError, ProtocolError) as exc:
            raise SnapshotError(f"{where}: {exc}") from None
        if not isinstance(ack, Ack) or ack.command_id != command_id:
            raise SnapshotError(f"{where}: the ACK is not for command id {command_id}")
        if command_id in ledger.applied_ids():
            raise SnapshotError(f"{where}: command id {command_id} appears twice")
        ledger.record(command_id, request_print, ack)
    return ledger


def _check_ledger_against_pump(ledger: CommandLedger, pump: Pump) -> None:
    """The last command the ledger applied is the one the pump reports (STATUS rule 4)."""
    applied = ledger.applied_ids()
    if applied and pump.status().last_command_id != applied[-1]:
        raise SnapshotError(
            "the ledger's last command id is not the pump's last_command_id: "
            "the ledger and the pump were not saved together"
        )


# -- reply builders -------------------------------------------------------------------------


def _nak(code: RefusalCode, limit: int | None = None, field: FieldId = FieldId.NONE) -> Nak:
    return Nak(code=code, field=field, limit=min(limit or 0, U64_MAX))


def _refusal(refused: Refused) -> Nak:
    return _nak(refused.code, refused.limit, refused.field)


def _ack(command_id: int, opcode: Opcode, status: FirmwareStatus, value: int) -> Ack:
    return Ack(
        command_id=command_id,
        request=opcode,
        state=status.state,
        reservoir_nl=min(status.reservoir_estimate_nl, U32_MAX),
        value=min(max(value, 0), U64_MAX),
    )


def _staged_reply(staged: Staged, lifetime_s: int) -> PrescriptionStaged:
    def instant(ms: int | None) -> int:
        return NEVER_MS if ms is None else ms

    return PrescriptionStaged(
        digest=staged.digest,
        daily_volume_nl=min(staged.daily_volume_nl, U32_MAX),
        daily_mass_pg=min(staged.daily_mass_pg, U64_MAX),
        low_reservoir_at_ms=instant(staged.predicted_low_reservoir_ms),
        empty_at_ms=instant(staged.predicted_empty_ms),
        stage_lifetime_s=lifetime_s,
    )


def _override_reply(staged: Staged, lifetime_s: int) -> StagedWithOverride:
    plain = _staged_reply(staged, lifetime_s)
    return StagedWithOverride(
        digest=plain.digest,
        daily_volume_nl=plain.daily_volume_nl,
        daily_mass_pg=plain.daily_mass_pg,
        low_reservoir_at_ms=plain.low_reservoir_at_ms,
        empty_at_ms=plain.empty_at_ms,
        stage_lifetime_s=plain.stage_lifetime_s,
        overrides_used=staged.overrides_used,
        soft_limit_pg=min(staged.soft_limit_pg, U64_MAX),
        reference_daily_mass_pg=min(staged.reference_daily_mass_pg, U64_MAX),
    )


def profile_limits(profile: Profile) -> ProfileLimits:
    """The profile's limits as DEVICE_INFO reports them."""
    return ProfileLimits(
        reservoir_capacity_nl=profile.reservoir_usable_nl,
        stroke_volume_nl=profile.stroke_nl,
        rate_min_nl_per_day=profile.rate_min_nl_per_day,
        rate_max_nl_per_day=profile.rate_max_nl_per_day,
        max_clinician_bolus_nl=profile.max_clinician_bolus_nl,
        max_daily_dose_pg=profile.max_daily_mass_pg,
        max_flex_steps=profile.max_flex_steps,
        patient_bolus_dose_max_nl=profile.patient_bolus_dose.high,
        patient_bolus_duration_min_s=profile.patient_bolus_duration_s.low,
        patient_bolus_duration_max_s=profile.patient_bolus_duration_s.high,
        patient_bolus_lockout_min_s=profile.patient_bolus_lockout_s.low,
        patient_bolus_lockout_max_s=profile.patient_bolus_lockout_s.high,
        patient_bolus_max_per_24h=profile.patient_bolus_max_per_24h.high,
        low_reservoir_threshold_min_nl=profile.low_reservoir_threshold.low,
        low_reservoir_threshold_max_nl=profile.low_reservoir_threshold.high,
        max_priming_volume_nl=profile.catheter_volume_nl(profile.catheter_max_length_cm),
    )


__all__ = [
    "CommandLedger",
    "PumpDevice",
    "SessionState",
    "default_session_limits",
    "profile_limits",
]
