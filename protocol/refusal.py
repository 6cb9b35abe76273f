"""Every reason the pump can refuse a request: the one list of NAK codes.

A refusal is a reply value, never an exception inside the pump (docs/architecture.md principle 8).
The firmware, the session layer and the wire format all use this enum, and docs/protocol.md
documents each code; a test keeps the two in step. Values are grouped by layer so a code alone
tells a programmer where the request stopped:

- 0x01-0x0F  frame and message: the bytes never became a valid request (C2)
- 0x10-0x1F  session and authority: who is asking, not what (C3, C4)
- 0x20-0x2F  programming: a staged or committed prescription is refused
- 0x30-0x4F  therapy limits and interlocks (H5, H6, H11, H12, H16 ...)
- 0x50-0x5F  device condition: the pump cannot act at all right now (H8)

Codes are never reused or renumbered once published; new ones take the next free value in
their group. ``FieldId`` names the field an ``INVALID_FIELD`` (or a limit refusal) is about.
"""

from __future__ import annotations

from enum import IntEnum


class RefusalCode(IntEnum):
    """Why a request was refused. Carried in a NAK with an optional field id and limit."""

    # -- frame and message (nothing was applied) -------------------------------------------
    FRAME_CORRUPT = 0x01
    """The frame's CRC or length was wrong; it was discarded unread (C2)."""
    UNSUPPORTED_VERSION = 0x02
    """The frame's protocol version is not one this pump speaks."""
    UNKNOWN_OPCODE = 0x03
    """The opcode is not a request this pump knows."""
    MALFORMED_PAYLOAD = 0x04
    """The payload does not parse as the opcode's layout (wrong length, bad enum value)."""
    INVALID_FIELD = 0x05
    """A field is outside its allowed range; the NAK names the field and the limit."""

    # -- session and authority ----------------------------------------------------------------
    NOT_AUTHENTICATED = 0x10
    """Only session-opening messages are accepted before a session is open (C4)."""
    AUTHENTICATION_FAILED = 0x11
    """The challenge response did not verify: wrong key for this pump and role (C4)."""
    LOCKED_OUT = 0x12
    """Too many failed openings in a row; opening is refused until the lockout ends."""
    NOT_PERMITTED_FOR_ROLE = 0x13
    """The session's role may not make this request (deny by default, C4)."""
    SESSION_EXPIRED = 0x14
    """The session idled out or reached its maximum length; open a new one."""
    REPLAY_DETECTED = 0x15
    """The frame's counter is not above the last accepted one (C3)."""
    SESSION_BUSY = 0x16
    """Another session is open; the pump serves one programmer at a time."""
    COMMAND_ID_CONFLICT = 0x17
    """The command id was already applied to a different request (C1)."""
    FRAME_NOT_AUTHENTIC = 0x18
    """A sealed frame failed its AEAD check: tampered, truncated or sealed with another key.
    Nothing was applied (C3, C4; docs/security.md)."""
    HANDSHAKE_STALE = 0x19
    """A late copy of a handshake frame the pump has since replaced or ended; the pending
    challenge is kept and nothing is counted (docs/security.md section 5)."""

    # -- programming --------------------------------------------------------------------------
    NOTHING_STAGED = 0x20
    """Commit without a staged prescription (or it was discarded by a session cut, C5)."""
    DIGEST_MISMATCH = 0x21
    """Commit's digest is not the staged prescription's digest (C5)."""
    STAGE_EXPIRED = 0x22
    """The staged prescription is older than the stage lifetime; stage it again (C5)."""
    TOO_MANY_STEPS = 0x23
    """The flex schedule has more steps than this pump's profile allows."""
    BAD_SCHEDULE = 0x24
    """Flex steps are not strictly increasing from offset 0 within the repeat period."""

    # -- therapy limits and interlocks --------------------------------------------------------
    RATE_ABOVE_MAX = 0x30
    """A rate exceeds the profile's maximum rate (H11)."""
    RATE_BELOW_MIN = 0x31
    """A non-zero rate is below the profile's minimum rate."""
    DAILY_DOSE_ABOVE_MAX = 0x32
    """The programmed daily mass exceeds the profile's maximum daily dose (H9, H11)."""
    BOLUS_ABOVE_MAX = 0x33
    """A bolus dose exceeds the profile's maximum (H11)."""
    LOCKOUT_ACTIVE = 0x34
    """A patient bolus was requested inside the lockout interval."""
    DAILY_BOLUS_COUNT_REACHED = 0x35
    """The patient already had the maximum number of boluses in the last 24 h."""
    RESERVOIR_EMPTY = 0x36
    """The reservoir estimate is at or below empty; nothing can be delivered."""
    INSUFFICIENT_RESERVOIR = 0x37
    """The requested volume is more than the reservoir estimate holds."""
    THERAPY_STOPPED = 0x38
    """The pump is stopped; a bolus needs running therapy."""
    NO_PATIENT_BOLUS = 0x39
    """The running prescription allows no patient bolus."""
    BOLUS_IN_PROGRESS = 0x3A
    """A bolus is already being delivered."""
    NO_BOLUS_IN_PROGRESS = 0x3B
    """Cancel bolus with no bolus running."""
    VOLUME_ABOVE_CAPACITY = 0x3C
    """A refill volume exceeds the reservoir's usable capacity."""
    REFILL_NOT_STARTED = 0x3D
    """Refill complete without refill begin."""
    REFILL_IN_PROGRESS = 0x3E
    """The request is not allowed between refill begin and refill complete."""
    NO_SUCH_ALARM = 0x3F
    """Acknowledge of an alarm that is not active."""
    BAD_STATE = 0x40
    """The therapy state machine has no transition for this request in its current state."""
    NO_FLOW_VALVE = 0x41
    """RESET_FLOW_VALVE on a pump without a flow-activated valve (a peristaltic pump; H15)."""

    # -- device condition ---------------------------------------------------------------------
    MOTOR_STALLED = 0x50
    """The motor is stalled; delivery cannot start until it recovers (H5, H14)."""
    END_OF_SERVICE = 0x51
    """The battery reached end of service; the pump no longer delivers (H6)."""
    MEMORY_ERROR = 0x52
    """Non-volatile memory failed its check; the pump is in a safe state (H8)."""
    NOT_STORED = 0x53
    """The pump could not store the result, so it applied nothing: a command was undone (its
    id stays free), a read was not answered. Therapy goes on unchanged; retry later (H8)."""


class FieldId(IntEnum):
    """Names the field a refusal is about, so a programmer can point at it on screen."""

    NONE = 0x00
    DRUG_NAME = 0x01
    CONCENTRATION = 0x02
    MODE = 0x03
    REPEAT = 0x04
    STEP_COUNT = 0x05
    STEP_START = 0x06
    STEP_RATE = 0x07
    PATIENT_BOLUS_DOSE = 0x08
    PATIENT_BOLUS_DURATION = 0x09
    PATIENT_BOLUS_LOCKOUT = 0x0A
    PATIENT_BOLUS_MAX_PER_24H = 0x0B
    LOW_RESERVOIR_THRESHOLD = 0x0C
    BOLUS_DOSE = 0x0D
    BOLUS_DURATION = 0x0E
    CATHETER_VOLUME = 0x0F
    WITHDRAWN_VOLUME = 0x10
    NEW_VOLUME = 0x11
    NEW_CONCENTRATION = 0x12
    CLOCK = 0x13
    DIGEST = 0x14
    COMMAND_ID = 0x15
    LOG_INDEX = 0x16
    LOG_COUNT = 0x17
    ALARM = 0x18
    ROLE = 0x19
    DAILY_DOSE = 0x1A
    CATHETER_LENGTH = 0x20
    """SET_CATHETER's ``length_cm``, in cm (docs/protocol.md section 12.2)."""
