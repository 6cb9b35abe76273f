"""Copies of handshake frames, as docs/security.md section 5.1 promises them to a client.

A copy of the frame that began the pending challenge or the open session gets a copy of the
original answer and changes nothing; a late copy of an ended handshake, while a newer
challenge is pending, is refused HANDSHAKE_STALE and the pending challenge survives.
"""

from __future__ import annotations

from protocol import codec
from protocol.device_state import EventKind
from protocol.messages import Authenticate, Challenge, Nak, SessionOpened
from protocol.refusal import RefusalCode
from protocol.session import SessionState
from tests.emulator.test_device_two_timelines import KEYS, Rig
from tests.raw_programmer import RawProgrammer


def test_a_copy_of_open_session_gets_the_same_challenge_and_changes_nothing() -> None:
    rig = Rig()
    programmer = RawProgrammer(KEYS)
    first = programmer.open_session(bytes(range(16)))
    challenge = rig.send(first, programmer)
    assert isinstance(challenge, Challenge), challenge
    logged = len(rig.device.pump.log())
    rig.link = 500
    copy = rig.send(codec.encode(codec.decode(first).message, seq=41), programmer)  # new SEQ
    assert copy == challenge  # same dn, same serial
    assert len(rig.device.pump.log()) == logged  # not logged
    assert rig.device.get_link_timer() == 2_000  # the challenge's timer was not restarted
    opened = rig.send(programmer.authenticate(challenge), programmer)
    assert isinstance(opened, SessionOpened), opened


def test_a_copy_of_authenticate_gets_the_same_session_opened() -> None:
    rig = Rig()
    programmer = RawProgrammer(KEYS)
    challenge = rig.send(programmer.open_session(), programmer)
    assert isinstance(challenge, Challenge)
    proof = programmer.authenticate(challenge)
    opened = rig.send(proof, programmer)
    assert isinstance(opened, SessionOpened)
    logged = len(rig.device.pump.log())
    again = rig.send(proof, programmer)
    assert again == opened  # same proof_d and limits
    assert len(rig.device.pump.log()) == logged
    assert rig.state() is SessionState.OPEN


def test_a_late_open_session_of_a_replaced_handshake_is_stale() -> None:
    rig = Rig()
    old = RawProgrammer(KEYS)
    late = old.open_session(bytes([1]) * 16)
    assert isinstance(rig.send(late, old), Challenge)
    new = RawProgrammer(KEYS)
    challenge = rig.send(new.open_session(bytes([2]) * 16), new)  # replaces the first
    assert isinstance(challenge, Challenge)
    stale = rig.send(late, old)
    assert isinstance(stale, Nak)
    assert stale.code is RefusalCode.HANDSHAKE_STALE
    kinds = [entry.kind for entry in rig.device.pump.log()]
    assert kinds[-1] is EventKind.SECURITY_EVENT
    assert rig.device.pump.log()[-1].detail == RefusalCode.HANDSHAKE_STALE
    opened = rig.send(new.authenticate(challenge), new)  # the newer challenge survived
    assert isinstance(opened, SessionOpened), opened


def test_late_copies_of_refused_proofs_never_count_toward_the_lockout() -> None:
    """Eight handshakes refused for a wrong proof stay remembered: a late copy of any of
    their proofs, during a newer challenge, is HANDSHAKE_STALE and counts nothing (section
    5.1 promises the last 8 ended handshakes, refused or not)."""
    rig = Rig()  # max_failed_openings 3: lockout after the 3rd failure in a row
    programmer = RawProgrammer(KEYS)
    wrong = []
    for attempt in range(8):
        rig.link += 10
        assert isinstance(rig.send(programmer.open_session(bytes([attempt + 1]) * 16), programmer),
                          Challenge)  # fmt: skip
        proof = codec.encode(Authenticate(proof=bytes([attempt + 100]) * 32), seq=2)
        refused = rig.send(proof, programmer)
        assert isinstance(refused, Nak)
        assert refused.code is RefusalCode.AUTHENTICATION_FAILED
        wrong.append(proof)
        if rig.state() is SessionState.LOCKED_OUT:
            rig.link += rig.device.session.limits.lockout_s * 1000
            rig.tick()
    failed = rig.device.session.failed_openings
    challenge = rig.send(programmer.open_session(bytes([9]) * 16), programmer)
    assert isinstance(challenge, Challenge)
    for proof in wrong:
        stale = rig.send(proof, programmer)
        assert isinstance(stale, Nak)
        assert stale.code is RefusalCode.HANDSHAKE_STALE
    assert rig.device.session.failed_openings == failed
    assert rig.state() is SessionState.CHALLENGED
    opened = rig.send(programmer.authenticate(challenge), programmer)
    assert isinstance(opened, SessionOpened), opened
