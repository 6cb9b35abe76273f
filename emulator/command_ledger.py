"""The command ledger: applied command ids and their ACKs, the exactly-once memory (C1).

docs/protocol.md section 8: a command id the pump already applied is answered with the
original ACK, never applied twice; the same id on another request is a conflict. The ledger
is part of the pump's non-volatile state (``PumpDevice.snapshot`` saves it). Its own module
so that code which only hands out or checks command ids (the scenario runner) does not load
the device, its session and its codec.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from protocol.messages import Ack, Opcode
from protocol.refusal import RefusalCode

__all__ = ["LEDGER_CAPACITY", "CommandLedger", "LedgerEntry", "fingerprint"]

LEDGER_CAPACITY = 256
"""Applied command ids remembered with their ACKs. A programmer retries within seconds;
256 commands is weeks of clinical use."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    fingerprint: bytes
    """SHA-256 of the request's opcode and payload: the same id on another request is a
    conflict, not a repeat."""
    ack: Ack


class CommandLedger:
    """Applied command ids and their ACKs: the exactly-once memory (C1).

    Part of the pump's non-volatile state: it survives sessions, reconnects and resets.
    Only *applied* commands are recorded (docs/protocol.md section 8). A refused command
    changed nothing, so a retry of it is judged afresh.
    """

    def __init__(self, capacity: int = LEDGER_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._entries: OrderedDict[int, LedgerEntry] = OrderedDict()
        self._recorded = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, command_id: int, fingerprint: bytes) -> Ack | RefusalCode | None:
        """The original ACK for a repeat, COMMAND_ID_CONFLICT for a reused id, else None."""
        entry = self._entries.get(command_id)
        if entry is None:
            return None
        if entry.fingerprint != fingerprint:
            return RefusalCode.COMMAND_ID_CONFLICT
        return entry.ack

    def record(self, command_id: int, fingerprint: bytes, ack: Ack) -> None:
        self._entries[command_id] = LedgerEntry(fingerprint, ack)
        self._entries.move_to_end(command_id)
        self._recorded += 1
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def checkpoint(self) -> tuple[tuple[tuple[int, LedgerEntry], ...], int]:
        """The ledger as it is now, for ``rollback``."""
        return tuple(self._entries.items()), self._recorded

    def rollback(self, checkpoint: tuple[tuple[tuple[int, LedgerEntry], ...], int]) -> None:
        """Forget everything recorded since ``checkpoint`` (an entry it evicted comes back):
        a command whose result could not be stored was never applied (C1, H8)."""
        entries, recorded = checkpoint
        self._entries = OrderedDict(entries)
        self._recorded = recorded

    def applied_ids(self) -> tuple[int, ...]:
        """Ids in the order they were applied, oldest first."""
        return tuple(self._entries)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def recorded(self) -> int:
        """How many applications this ledger object has recorded: it changes exactly when
        the exactly-once memory does, so a saver knows when to save."""
        return self._recorded

    def entries(self) -> tuple[tuple[int, LedgerEntry], ...]:
        """(id, entry) in the order they were applied, oldest first."""
        return tuple(self._entries.items())


def fingerprint(opcode: Opcode, plaintext: bytes) -> bytes:
    return hashlib.sha256(bytes([opcode]) + plaintext).digest()
