"""The protocol package's exceptions.

Errors split by blame (docs/architecture.md principle 8). ``ProtocolError`` is the one root: any
bytes that are not a valid frame or message raise it, carrying the field path where one is known.
Anything else escaping the decoder is a bug in pumpemu, never a property of the input.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Bytes from the peer, or a value meant for the wire, break the protocol.

    ``path`` names the offending field, dotted from the frame down (``"payload.steps[3].rate"``),
    or is empty when the fault is not tied to one field (bad sync, bad CRC).
    """

    def __init__(self, message: str, path: str = "") -> None:
        self.message = message
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class FieldValueError(ProtocolError, ValueError):
    """A message field is outside the range the wire format or the protocol allows.

    Raised when a message dataclass is built, so a bad value never reaches the encoder.
    ``limit`` is the violated bound where there is one.
    """

    def __init__(self, field: str, message: str, limit: int | None = None) -> None:
        self.field = field
        self.limit = limit
        super().__init__(message, path=field)


class ScheduleError(FieldValueError):
    """Flex steps that break the schedule rules (docs/protocol.md section 10.1): not starting
    at offset 0, not strictly increasing, or past the period. A pump answers BAD_SCHEDULE
    rather than INVALID_FIELD: each offset is in range, their order is not."""


class SessionError(ProtocolError):
    """A sealed frame failed to open, or a session rule was broken (replay, stale counter)."""
