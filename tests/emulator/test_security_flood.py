"""Issue 11 part 4: security events cannot flush the event log, and a lockout is no
denial of service.

docs/protocol.md section 11.3 (coalescing into runs, the log's security share) and
docs/security.md section 6 (a lockout never refuses a proof that verifies). The flood is
made of junk a stranger on the link can send without any key: wrong proofs over fresh
nonces, AUTHENTICATEs that answer nothing, unsealed requests, sealed frames under made-up
keys, and line garbage. A clinician programs the pump between the floods through the
reference programmer, and reads the log back over READ_EVENT_LOG as any client would.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.clock import ManualClock
from emulator.device import SECURITY_RUN_MS, PumpDevice
from emulator.firmware.event_log import EventLog
from emulator.pump import Pump
from hil.programmer.core import Outcome, ProgrammerCore, Result
from hil.two_peer import PerfectLink, TwoPeer
from protocol import codec, crypto, wire
from protocol.codec import Frame
from protocol.device_state import SECURITY_KINDS, EventKind, LogEntry, Role
from protocol.framer import FrameBytes, Framer
from protocol.keys import generate_keys
from protocol.messages import (
    Ack,
    AlarmTest,
    Authenticate,
    CancelBolus,
    Challenge,
    ClinicianBolus,
    CommitPrescription,
    EventLogPage,
    Message,
    Nak,
    OpenSession,
    PrescriptionStaged,
    ReadEventLog,
    ReadStatus,
    RefillBegin,
    RefillComplete,
    StagePrescription,
    StartTherapy,
    Status,
    StopTherapy,
)
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.refusal import RefusalCode
from protocol.session import Challenge as SessionChallenge
from protocol.session import Opened, PumpSession, Refused, SessionLimits, SessionState

KEYS = generate_keys("PE-FLOOD-1", bytes(range(7, 71)))
OTHER_PUMP = generate_keys("PE-FLOOD-1", bytes(range(90, 154)))
RX = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=10_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 500_000),),
    patient_bolus=None,
    low_reservoir_threshold_nl=2_000_000,
)
PROGRAMMING = (
    frozenset(EventKind)
    - SECURITY_KINDS
    - {
        EventKind.SESSION_OPENED,
        EventKind.SESSION_CLOSED,
    }
)
"""The programming history: prescriptions, therapy, boluses, refills, alarms."""
SESSION_CODES = range(0x10, 0x20)
"""Refusal codes of the session layer: each such NAK is one security event."""


def parse(data: bytes) -> list[Message]:
    """The pump's unsealed replies in ``data``, decoded."""
    framer = Framer()
    frames = [e for e in framer.feed(data) + framer.finish() if isinstance(e, FrameBytes)]
    out = []
    for event in frames:
        frame = codec.parse_frame(event.data)
        assert not frame.is_sealed  # a stranger has no session: nothing is sealed for it
        out.append(codec.decode_payload(frame.opcode, frame.body))
    return out


@dataclass
class Rig:
    """A pump on a perfect link with the reference programmer, and a stranger on the
    same link who feeds the pump junk between the programmer's sessions."""

    seed: int = 0
    pump: Pump = field(init=False)
    device: PumpDevice = field(init=False)
    tp: TwoPeer = field(init=False)
    security_naks: Counter[int] = field(default_factory=Counter)
    """Session-layer NAKs the junk was answered with, by code: one security event each."""
    opened_by_junk: int = 0

    def __post_init__(self) -> None:
        self.pump = Pump("peristaltic-20", start_ms=0)
        self.device = PumpDevice(self.pump, KEYS, random.Random(self.seed).randbytes)
        core = ProgrammerCore(
            KEYS.serial, Role.CLINICIAN, KEYS.clinician, random.Random(self.seed + 1).randbytes
        )
        self.tp = TwoPeer(self.device, core, ManualClock(0), PerfectLink(latency_ms=1))
        self.rng = random.Random(self.seed + 2)
        self.ids = itertools.count(1)

    @property
    def now(self) -> int:
        return self.tp.clock.now_ms()

    # -- the clinician --

    def ok(self, message: Message) -> Result:
        result = self.tp.request(message)
        assert result.outcome in (Outcome.ANSWERED, Outcome.APPLIED), result
        return result

    def program(self) -> None:
        """One clinic visit: about 30 programming entries."""
        staged = self.ok(StagePrescription(prescription=RX)).reply
        assert isinstance(staged, PrescriptionStaged)
        assert isinstance(
            self.ok(CommitPrescription(command_id=next(self.ids), digest=staged.digest)).reply,
            Ack,
        )
        for _ in range(4):
            self.ok(StopTherapy(command_id=next(self.ids)))
            self.ok(StartTherapy(command_id=next(self.ids)))
            self.ok(ClinicianBolus(command_id=next(self.ids), dose_nl=2_000, duration_s=600))
            self.ok(CancelBolus(command_id=next(self.ids)))
            self.ok(AlarmTest(command_id=next(self.ids)))
        begun = self.ok(RefillBegin(command_id=next(self.ids))).reply
        assert isinstance(begun, Ack)
        self.ok(
            RefillComplete(
                command_id=next(self.ids),
                withdrawn_nl=begun.value,
                new_volume_nl=18_000_000,
                new_concentration_ug_per_ml=10_000,
            )
        )
        self.tp.close()

    def read_log(self) -> tuple[list[LogEntry], EventLogPage]:
        """The whole log as a client reads it: pages of READ_EVENT_LOG, from seq + 1."""
        entries: list[LogEntry] = []
        from_seq = 0
        while True:
            page = self.ok(ReadEventLog(from_seq=from_seq, count=32)).reply
            assert isinstance(page, EventLogPage)
            entries.extend(page.entries)
            if not page.entries or page.entries[-1].seq + 1 >= page.next_seq:
                return entries, page
            from_seq = page.entries[-1].seq + 1

    # -- the stranger --

    def send(self, data: bytes) -> list[Message]:
        self.device.receive_data(data, self.now)
        replies = parse(self.device.data_to_send())
        for reply in replies:
            if isinstance(reply, Nak) and reply.code in SESSION_CODES:
                self.security_naks[reply.code] += 1
        return replies

    def junk(self) -> None:
        """One junk handshake, of a kind drawn at random."""
        rng = self.rng
        kind = rng.randrange(6)
        if kind <= 1:  # a wrong proof over a fresh nonce: zero, random or another key's
            role = rng.choice([Role.CLINICIAN, Role.PATIENT])
            nonce = rng.randbytes(16)
            (challenge,) = self.send(codec.encode(OpenSession(role, nonce), seq=1))
            assert isinstance(challenge, Challenge), challenge  # never refused by a lockout
            transcript = crypto.Transcript(KEYS.serial, role, nonce, challenge.pump_nonce)
            proof = rng.choice(
                [
                    bytes(32),
                    rng.randbytes(32),
                    crypto.programmer_proof(OTHER_PUMP.key_for(role), transcript),
                ]
            )
            (answer,) = self.send(codec.encode(Authenticate(proof=proof), seq=2))
            if not isinstance(answer, Nak):
                self.opened_by_junk += 1
        elif kind == 2:  # an AUTHENTICATE that answers no challenge
            self.send(codec.encode(Authenticate(proof=rng.randbytes(32)), seq=rng.randrange(1, 9)))
        elif kind == 3:  # an unsealed request
            message = rng.choice([ReadStatus(), StopTherapy(command_id=rng.randrange(1, 1_000))])
            self.send(codec.encode(message, seq=rng.randrange(1, 1_000)))
        elif kind == 4:  # a sealed frame under a made-up key
            opcode, plaintext = codec.encode_payload(
                ClinicianBolus(command_id=rng.randrange(1, 1_000), dose_nl=50_000, duration_s=60)
            )
            seq = rng.randrange(3, 1_000)
            header = codec.header_bytes(
                wire.FLAG_SEALED, seq, 0, opcode, len(plaintext) + wire.TAG_LEN
            )
            body = crypto.seal(rng.randbytes(32), header, plaintext)
            self.send(codec.build_frame(Frame(wire.FLAG_SEALED, seq, 0, opcode, body)))
        else:  # line garbage
            self.send(rng.randbytes(rng.randrange(1, 64)))
        # The link goes quiet for up to 4 s: a partial frame is given up on the way.
        self.tp.run_until(self.now + rng.randrange(1, 4_000))

    def flood(self, count: int) -> None:
        for _ in range(count):
            self.junk()


def reconstruct(entries: list[LogEntry]) -> Counter[int]:
    """Security events by refusal code, as docs/protocol.md section 11.3 says to count
    them: each SECURITY_EVENT is one, each SECURITY_SUMMARY stands for ``value_a`` more."""
    counts: Counter[int] = Counter()
    for e in entries:
        if e.kind is EventKind.SECURITY_EVENT:
            counts[e.detail] += 1
        elif e.kind is EventKind.SECURITY_SUMMARY:
            assert e.value_a >= 1
            counts[e.detail] += e.value_a
    return counts


# -- the acceptance test -----------------------------------------------------------------


def test_a_flood_of_10000_junk_handshakes_leaves_the_programming_history_in_place() -> None:
    rig = Rig(seed=11)
    programming: list[LogEntry] = []
    for _ in range(5):
        start = rig.pump.status().log_next_seq
        rig.program()
        programming += [e for e in rig.pump.log(start) if e.kind in PROGRAMMING]
        rig.flood(2_000)
    assert len(programming) >= 100
    assert rig.opened_by_junk == 0

    entries, page = rig.read_log()

    # The last 100 programming entries are all there, in order, with their seqs, exactly
    # as they were written.
    held = [e for e in entries if e.kind in PROGRAMMING]
    assert held[-100:] == programming[-100:]
    # So is every other entry written (fewer than the log's non-security slots).
    assert held == [rig.pump.log()[0], *programming]
    assert held[0].kind is EventKind.POWER_ON
    assert [e.seq for e in entries] == sorted({e.seq for e in entries})
    # The flood was big enough to have flushed the log without the share: it wrote more
    # security entries than the log holds, and the share pushed the oldest of them out.
    log_capacity = rig.pump.profile.log_capacity
    written = page.next_seq - 1
    security_written = written - sum(1 for e in entries if e.kind not in SECURITY_KINDS)
    assert security_written > log_capacity
    security_held = [e for e in entries if e.kind in SECURITY_KINDS]
    assert len(security_held) == log_capacity // 4
    assert page.oldest_seq == 1  # POWER_ON: nothing else was ever pushed out
    # Coalescing: 10,000 junk handshakes caused several times more security events than
    # entries, within the bound of section 11.3: per code, two entries a window, and at
    # most one more summary each time a session opened (6 sessions here).
    assert sum(rig.security_naks.values()) > 3 * security_written
    windows = rig.now // SECURITY_RUN_MS + 1
    assert security_written <= len(rig.security_naks) * (2 * windows + 6)


def test_every_security_event_is_counted_in_the_log() -> None:
    """Without eviction, the log accounts for every session-layer refusal exactly."""
    rig = Rig(seed=5)
    rig.flood(600)
    entries, _page = rig.read_log()  # the opening ends the open runs (section 11.3)
    assert rig.device.uncounted_security_events() == {}
    assert reconstruct(entries) == rig.security_naks
    assert len(rig.security_naks) >= 4  # the junk was varied: several codes
    # A run's summary names the time of its last event, on the summary's clock, after
    # its SECURITY_EVENT and at most one window after it (pump time runs at link speed).
    last_event: dict[int, LogEntry] = {}
    for e in entries:
        if e.kind is EventKind.SECURITY_EVENT:
            last_event[e.detail] = e
        elif e.kind is EventKind.SECURITY_SUMMARY:
            first = last_event.pop(e.detail)  # runs of one code never overlap
            assert first.time_ms <= e.value_b <= e.time_ms <= first.time_ms + SECURITY_RUN_MS


def test_a_flood_of_one_kind_writes_two_entries_a_window() -> None:
    rig = Rig(seed=3)
    start = rig.pump.status().log_next_seq
    for _ in range(300):  # one unsealed request every 200 ms: 60 s, one window
        rig.send(codec.encode(ReadStatus(), seq=5))
        rig.tp.run_until(rig.now + 200)
    written = rig.pump.log(start)
    assert [(e.kind, e.detail, e.value_a) for e in written] == [
        (EventKind.SECURITY_EVENT, 0x10, ReadStatus.OPCODE),
        (EventKind.SECURITY_SUMMARY, 0x10, 299),
    ]
    summary = written[1]
    assert summary.value_b == written[0].time_ms + 299 * 200


# -- the log's security share --------------------------------------------------------------


SHARED = {
    EventKind.SECURITY_EVENT: 0,
    EventKind.SECURITY_SUMMARY: 0,
    EventKind.PATIENT_BOLUS_REFUSED: 1,
}
"""The flood shares of docs/protocol.md section 11.3, by kind."""


@given(
    kinds=st.lists(
        st.sampled_from(
            [
                EventKind.SECURITY_EVENT,
                EventKind.SECURITY_SUMMARY,
                EventKind.PATIENT_BOLUS_REFUSED,
                EventKind.ALARM_TEST,
            ]
        ),
        max_size=300,
    ),
    capacity=st.integers(16, 64),
)
def test_the_shares_keep_the_newest_other_entries(kinds: list[EventKind], capacity: int) -> None:
    log = EventLog(capacity)
    written: list[LogEntry] = []
    for i, kind in enumerate(kinds):
        seq = log.append(i, kind)
        written.append(LogEntry(seq, i, kind, 0, 0, 0))
    held = log.entries()
    share = capacity // 4
    assert len(held) <= capacity
    for index in (0, 1):
        assert sum(1 for e in held if SHARED.get(e.kind) == index) <= share
    others = [e for e in written if e.kind not in SHARED]
    keep = capacity - 2 * share
    # The newest (capacity - 2 shares) other entries are never pushed out by shared ones.
    assert [e for e in held if e.kind not in SHARED][-keep:] == others[-keep:]
    # Each share holds its own newest entries.
    for index in (0, 1):
        mine = [e for e in written if SHARED.get(e.kind) == index]
        kept = [e for e in held if SHARED.get(e.kind) == index]
        assert kept == mine[len(mine) - len(kept) :]
    # What is held is in seq order.
    assert [e.seq for e in held] == sorted(e.seq for e in held)
    restored = EventLog.from_json(log.to_json())
    assert restored.entries() == held


def test_a_patient_pressing_10000_times_leaves_the_programming_history_in_place() -> None:
    """The patient share (section 11.3): a patient key held down in the lockout writes one
    PATIENT_BOLUS_REFUSED per press, and at most 512 of them stay; a clinic visit's
    entries between the presses all stay, and so does every granted bolus."""
    pump = Pump("peristaltic-20", start_ms=0)
    rx = dataclasses.replace(
        RX, patient_bolus=PatientBolusLimits(dose_nl=1_000, duration_s=60, lockout_s=3_600,
                                             max_per_24h=24),
    )  # fmt: skip
    assert pump.program(rx, command_id=1).ok
    pump.advance(3_600)  # a new prescription starts a lockout of its own
    ids = itertools.count(2)
    programming: list[int] = []
    granted: list[int] = []
    for _hour in range(20):
        before = pump.status().log_next_seq
        assert pump.patient_bolus(command_id=next(ids)).ok
        granted.extend(e.seq for e in pump.log(before) if e.kind is EventKind.PATIENT_BOLUS_GRANTED)
        for _ in range(500):  # pressed again and again in the lockout
            pump.advance(1)
            refused = pump.patient_bolus(command_id=next(ids))
            assert not refused.ok
            assert refused.code in (RefusalCode.BOLUS_IN_PROGRESS, RefusalCode.LOCKOUT_ACTIVE)
        before = pump.status().log_next_seq
        assert pump.alarm_test(command_id=next(ids)).ok  # a clinician's entry
        programming.extend(e.seq for e in pump.log(before))
        pump.advance_to(pump.now_ms + 3_600_000)
    held = pump.log()
    kept = [e for e in held if e.kind is EventKind.PATIENT_BOLUS_REFUSED]
    assert len(kept) == pump.profile.log_capacity // 4  # the newest 512 of 10,000
    seqs = {e.seq for e in held}
    assert set(programming) <= seqs
    assert set(granted) <= seqs
    assert len(granted) == 20


# -- a lockout is no denial of service (docs/security.md section 6) -----------------------


def test_five_zero_proofs_every_five_minutes_never_keep_the_clinician_out() -> None:
    """The attack of issue 11: a stranger keeps the pump locked out around the clock. The
    clinician arrives at random moments and opens at once every time. (The proofs are
    distinct: a copy of a proof that failed is HANDSHAKE_STALE and counts for nothing,
    docs/security.md section 5.1.)"""
    rig = Rig(seed=8)
    profile = rig.pump.profile
    n = profile.session_max_failed_openings
    lockout_ms = profile.session_lockout_s * 1000
    rng = random.Random(9)
    locked_when_clinician_came = 0
    for _cycle in range(24 * 60 // 5):  # a day of it
        cycle_start = rig.now
        for _ in range(n):
            (challenge,) = rig.send(
                codec.encode(OpenSession(Role.CLINICIAN, rng.randbytes(16)), seq=1)
            )
            assert isinstance(challenge, Challenge)
            (nak,) = rig.send(codec.encode(Authenticate(proof=rng.randbytes(32)), seq=2))
            assert isinstance(nak, Nak)
            rig.tp.run_until(rig.now + 10)
        assert rig.device.session.state is SessionState.LOCKED_OUT
        if rng.random() < 0.2:  # the clinician comes, sometimes
            rig.tp.run_until(rig.now + rng.randrange(0, lockout_ms - 1_000))
            locked_when_clinician_came += rig.device.session.state is SessionState.LOCKED_OUT
            arrived = rig.now
            result = rig.ok(ReadStatus())
            assert isinstance(result.reply, Status)
            assert rig.now - arrived < 1_000  # no wait for the lockout
            rig.tp.close()
        rig.tp.run_until(max(rig.now, cycle_start + 5 * 60_000))
    assert locked_when_clinician_came >= 20
    assert rig.opened_by_junk == 0


@settings(max_examples=50)
@given(
    proofs=st.lists(
        st.one_of(
            st.binary(min_size=32, max_size=32),
            st.just(bytes(32)),
            st.sampled_from(["other-role", "other-pump"]),
        ),
        min_size=1,
        max_size=30,
    ),
    gaps=st.lists(st.integers(0, 400_000), min_size=30, max_size=30),
)
def test_no_wrong_proof_opens_and_the_right_one_always_does(
    proofs: list[bytes | str], gaps: list[int]
) -> None:
    """The lockout still protects against guessing as far as anything can: no proof but the
    genuine one ever opens, in a lockout or out of it (and a 32-byte proof cannot be
    guessed, docs/security.md section 6); and the genuine one always opens."""
    limits = SessionLimits(
        idle_timeout_s=120, max_session_s=3_600, max_failed_openings=5, lockout_s=300
    )
    pump = PumpSession(KEYS, limits)
    now = 0
    nonces = itertools.count(1)

    def challenge(role: Role) -> tuple[bytes, bytes]:
        pn = next(nonces).to_bytes(16, "big")
        result = pump.open_request(role, pn, (10**9 + next(nonces)).to_bytes(16, "big"), now)
        assert isinstance(result, SessionChallenge), result  # a lockout never refuses it
        return pn, result.pump_nonce

    for proof, gap in zip(proofs, gaps, strict=False):
        now += gap
        pn, dn = challenge(Role.CLINICIAN)
        transcript = crypto.Transcript(KEYS.serial, Role.CLINICIAN, pn, dn)
        if proof == "other-role":
            wrong = crypto.programmer_proof(KEYS.patient, transcript)
        elif proof == "other-pump":
            wrong = crypto.programmer_proof(OTHER_PUMP.clinician, transcript)
        else:
            assert isinstance(proof, bytes)
            wrong = proof
        result = pump.authenticate(wrong, now + 1)
        assert isinstance(result, Refused), result
        # Refused, or (a copy of a proof that failed before) told HANDSHAKE_STALE.
        assert pump.state is not SessionState.OPEN
        now += 1
    # The genuine programmer, whatever the lockout.
    now += 1
    pn, dn = challenge(Role.CLINICIAN)
    genuine = crypto.programmer_proof(
        KEYS.clinician, crypto.Transcript(KEYS.serial, Role.CLINICIAN, pn, dn)
    )
    assert isinstance(pump.authenticate(genuine, now + 1), Opened)
    assert pump.state is SessionState.OPEN
    assert pump.failed_openings == 0
