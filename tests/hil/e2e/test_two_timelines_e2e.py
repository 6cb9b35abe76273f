"""Two timelines, end to end: ``pumpemu serve`` runs the link timers (session idle timeout,
stage lifetime, partial-frame give-up) in real time whatever ``--clock`` does to pump time.

Issue 10, part 1 acceptance (docs/serve.md "Two timelines"). Each test starts its own
emulator with a profile file written here with a short session idle timeout, so the real
waits are seconds. The programmer is built frame by frame (tests/raw_programmer.py) so every
answer the pump gives (a SESSION_BUSY and its limit, a FRAME_CORRUPT, a STAGE_EXPIRED) is
seen as sent, not after the reference programmer's retries and reopenings.

Timing assertions are lower bounds only (the pump must not free a session, give up a frame
or expire a stage *early*); a slow machine only makes the real waits longer. Every wait is
bounded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from hil.control import ControlClient
from hil.links import SerialLink
from protocol import codec
from protocol.codec import Frame
from protocol.device_state import TherapyState
from protocol.keys import PumpKeys
from protocol.messages import (
    Ack,
    Challenge,
    CommitPrescription,
    Message,
    Nak,
    Opcode,
    PrescriptionStaged,
    ReadStatus,
    SessionOpened,
    StagePrescription,
    Status,
)
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.refusal import RefusalCode
from tests.hil.e2e.conftest import ServeProcess
from tests.raw_programmer import RawProgrammer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

Serve = Callable[..., ServeProcess]
KeyFile = tuple[PumpKeys, Path]

REPLY_TIMEOUT_S = 10.0
"""How long one reply may take to come back: generous, a loaded CI machine is slow."""
RX = Prescription(
    drug_name="baclofen",
    concentration_ug_per_ml=500,
    mode=InfusionMode.FLEX,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 400_000), FlexStep(8 * 3_600, 600_000)),
    patient_bolus=None,
    low_reservoir_threshold_nl=2_000_000,
)


def profile_file(tmp_path: Path, *, idle_timeout_s: int, stage_lifetime_s: int = 600) -> Path:
    """The built-in peristaltic-20 profile with a short session idle timeout (and stage
    lifetime), as a file ``pumpemu serve --profile FILE`` loads."""
    text = (resources.files("emulator") / "profiles" / "peristaltic-20.toml").read_text("utf-8")
    for key, value in (("idle_timeout_s", idle_timeout_s), ("stage_lifetime_s", stage_lifetime_s)):
        text, n = re.subn(rf"(?m)^{key} = [\d_]+", f"{key} = {value}", text)
        assert n == 1, f"{key} not found once in the built-in profile"
    path = tmp_path / "short-session.toml"
    path.write_text(text, encoding="utf-8")
    return path


def exchange(link: SerialLink, programmer: RawProgrammer, data: bytes) -> tuple[Frame, Message]:
    """Send one frame and return the reply naming its SEQ (bounded wait)."""
    ref = codec.parse_frame(data).seq
    link.write(data)
    return await_reply(link, programmer, ref)


def await_reply(link: SerialLink, programmer: RawProgrammer, ref: int) -> tuple[Frame, Message]:
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while time.monotonic() < deadline:
        for frame, message in programmer.receive(link.read(0.05)):
            if frame.ref == ref:
                return frame, message
    raise AssertionError(f"no reply with REF {ref} within {REPLY_TIMEOUT_S} s")


def open_session(link: SerialLink, programmer: RawProgrammer) -> SessionOpened:
    _, challenge = exchange(link, programmer, programmer.open_session())
    assert isinstance(challenge, Challenge), challenge
    _, opened = exchange(link, programmer, programmer.authenticate(challenge))
    assert isinstance(opened, SessionOpened), opened
    programmer.confirm(opened)
    return opened


def request(link: SerialLink, programmer: RawProgrammer, message: Message) -> Message:
    """One sealed request; its reply, opened (an unsealed NAK comes back as it is)."""
    seq, data = programmer.sealed(message)
    link.write(data)
    return await_reply(link, programmer, seq)[1]


def status(link: SerialLink, programmer: RawProgrammer) -> Status:
    reply = request(link, programmer, ReadStatus())
    assert isinstance(reply, Status), reply
    return reply


def test_a_vanished_programmer_frees_a_manual_clock_pump_after_the_idle_timeout(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    """--clock manual, nobody advances pump time: a programmer that opens a session and goes
    silent blocks the next one only until the session's idle timeout has passed in real
    time. Meanwhile the next one is told SESSION_BUSY with the seconds left."""
    idle_s = 2
    keys, key_file = pump_keys
    profile = profile_file(tmp_path, idle_timeout_s=idle_s)
    pump = serve("--pty", "--keys", str(key_file), "--clock", "manual", "--profile", str(profile))
    path = pump.first_line()

    vanished = SerialLink(path)
    try:
        first = RawProgrammer(keys)
        assert open_session(vanished, first).idle_timeout_s == idle_s
        last_used = time.monotonic()  # the pump receives the STATUS after this instant
        before = status(vanished, first)
    finally:
        vanished.close()  # no CLOSE_SESSION: this programmer is never heard from again

    link = SerialLink(path)
    try:
        second = RawProgrammer(keys)
        _, busy = exchange(link, second, second.open_session())
        assert isinstance(busy, Nak), busy
        assert busy.code is RefusalCode.SESSION_BUSY
        assert 0 < busy.limit <= idle_s  # whole seconds until the idle timeout, rounded up
        give_up = last_used + idle_s + 10
        while True:
            _, reply = exchange(link, second, second.open_session())
            if isinstance(reply, Challenge):
                break
            assert isinstance(reply, Nak), reply
            assert reply.code is RefusalCode.SESSION_BUSY
            assert time.monotonic() < give_up, "still SESSION_BUSY long after the idle timeout"
            time.sleep(0.2)
        freed = time.monotonic()
        _, opened = exchange(link, second, second.authenticate(reply))
        assert isinstance(opened, SessionOpened), opened
        second.confirm(opened)
        after = status(link, second)
    finally:
        link.close()
    assert freed - last_used >= idle_s - 0.01  # not freed before its idle timeout
    assert after.pump_time_ms == before.pump_time_ms  # pump time never moved
    pump.wait_stderr("session opened (clinician)")
    assert pump.stop() == 0
    assert "Traceback" not in pump.stderr


def test_a_truncated_frame_is_given_up_in_real_time_under_a_manual_clock(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    """A header announcing the longest body, then silence. The pump gives the candidate up
    after 200 ms of link time (real time), answers FRAME_CORRUPT naming its SEQ, and a fresh
    OPEN_SESSION gets its CHALLENGE; pump time never moves. Without the give-up the pump
    would still be waiting for 1024 body bytes and would swallow the fresh frame."""
    keys, key_file = pump_keys
    control = f"unix:{tmp_path / 'control.sock'}"
    pump = serve("--pty", "--keys", str(key_file), "--clock", "manual", "--control", control)
    path = pump.first_line()
    pump.wait_stderr("control API listening")
    with ControlClient(control) as api:
        start_ms = api.info()["now_ms"]
    link = SerialLink(path)
    try:
        programmer = RawProgrammer(keys)
        truncated_seq = 7
        link.write(codec.header_bytes(0, truncated_seq, 0, Opcode.OPEN_SESSION, 1024))
        frame, nak = await_reply(link, programmer, truncated_seq)  # nothing else is sent
        assert isinstance(nak, Nak), nak
        assert nak.code is RefusalCode.FRAME_CORRUPT
        assert not frame.is_sealed
        opened = open_session(link, programmer)
        assert opened.idle_timeout_s > 0
        after = status(link, programmer)
    finally:
        link.close()
    with ControlClient(control) as api:
        assert api.info()["now_ms"] == start_ms
    assert after.state is TherapyState.STOPPED
    assert pump.stop() == 0
    assert "Traceback" not in pump.stderr


def test_a_session_held_between_commands_survives_a_fast_clock(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    """--clock x1000 with a 5 s idle timeout: 2 s of real silence is 2000 s of pump time,
    far past 5 s of pump time, and the session is still open: its idle timeout is real."""
    idle_s = 5
    keys, key_file = pump_keys
    profile = profile_file(tmp_path, idle_timeout_s=idle_s)
    pump = serve("--pty", "--keys", str(key_file), "--clock", "x1000", "--profile", str(profile))
    link = SerialLink(pump.first_line())
    try:
        programmer = RawProgrammer(keys)
        open_session(link, programmer)
        before = status(link, programmer)
        time.sleep(2.0)
        after = status(link, programmer)  # answered, not SESSION_EXPIRED
    finally:
        link.close()
    moved_ms = after.pump_time_ms - before.pump_time_ms
    assert moved_ms >= 1_999_000  # at least 2 s of real time at x1000
    assert moved_ms <= idle_s * 1_000_000 + 1_000  # and under the real idle timeout
    assert pump.stop() == 0
    assert "Traceback" not in pump.stderr


def test_a_commit_after_a_long_fast_clock_review_applies(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    """--clock x1000, stage lifetime 60 s: STAGE, then COMMIT 1.5 s (real) later, when
    1500 s of pump time have passed. The lifetime is link time, so the commit applies."""
    keys, key_file = pump_keys
    profile = profile_file(tmp_path, idle_timeout_s=5, stage_lifetime_s=60)
    pump = serve("--pty", "--keys", str(key_file), "--clock", "x1000", "--profile", str(profile))
    link = SerialLink(pump.first_line())
    try:
        programmer = RawProgrammer(keys)
        open_session(link, programmer)
        before = status(link, programmer)
        staged = request(link, programmer, StagePrescription(RX))
        assert isinstance(staged, PrescriptionStaged), staged
        time.sleep(1.5)
        commit = CommitPrescription(command_id=4242, digest=staged.digest)
        ack = request(link, programmer, commit)
        after = status(link, programmer)
    finally:
        link.close()
    assert isinstance(ack, Ack), ack
    assert ack.command_id == 4242
    assert after.last_command_id == 4242
    assert after.state is TherapyState.FLEX
    assert after.pump_time_ms - before.pump_time_ms >= 1_499_000  # well past 60 s of pump time
    assert pump.stop() == 0
    assert "Traceback" not in pump.stderr


def test_a_stage_expires_in_real_time_under_a_manual_clock(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    """The other way round: stage lifetime 1 s, pump time held by --clock manual. A COMMIT
    1.5 s (real) after its STAGE is refused STAGE_EXPIRED and nothing is applied."""
    keys, key_file = pump_keys
    profile = profile_file(tmp_path, idle_timeout_s=5, stage_lifetime_s=1)
    pump = serve("--pty", "--keys", str(key_file), "--clock", "manual", "--profile", str(profile))
    link = SerialLink(pump.first_line())
    try:
        programmer = RawProgrammer(keys)
        open_session(link, programmer)
        staged = request(link, programmer, StagePrescription(RX))
        assert isinstance(staged, PrescriptionStaged), staged
        before = status(link, programmer)
        time.sleep(1.5)
        refused = request(link, programmer, CommitPrescription(command_id=77, digest=staged.digest))
        after = status(link, programmer)
    finally:
        link.close()
    assert isinstance(refused, Nak), refused
    assert refused.code is RefusalCode.STAGE_EXPIRED
    assert refused.limit == 1  # the stage lifetime, s
    assert after.last_command_id == 0
    assert after.state is TherapyState.STOPPED
    assert after.pump_time_ms == before.pump_time_ms
    assert pump.stop() == 0
    assert "Traceback" not in pump.stderr
