"""Keeping idle CPUs awake while a rig measures round trips: a Linux PM QoS request.

An idle CPU halts, and a halted CPU is slow to wake: on a virtual machine each halt is an
exit to the hypervisor, and the vCPU comes back with cold caches. A round trip over a pty
wakes a thread twice (the serve loop, then the programmer), so on an idle 2-vCPU machine it
costs about 190 us of CPU where the same code costs about 100 us when the CPUs are kept
busy (docs/serve.md, "The serve loop's cost").

Linux lets a process ask for a bound on that wake-up latency: while it holds
``/dev/cpu_dma_latency`` open with a value written to it, the idle loop keeps out of every
idle state slower to leave than that. A request of 0 us keeps the CPUs polling instead of
halting. This is what latency-sensitive tools do (cyclictest holds it by default; tuned's
latency-performance profile sets it). It costs power: an idle CPU spins instead of
sleeping. The request ends when the file is closed, or when the process exits, however it
exits.

Writing to the device needs root, or a udev rule that grants it to a group.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import TracebackType

from hil.errors import UsageError

__all__ = ["PM_QOS_DEVICE", "CpuLatencyError", "CpuLatencyRequest"]

PM_QOS_DEVICE = Path("/dev/cpu_dma_latency")


class CpuLatencyError(UsageError):
    """The request cannot be made here (no such device, or no permission)."""


class CpuLatencyRequest:
    """Hold a CPU wake-up latency bound of ``max_us`` microseconds while in the ``with``
    block (0: no idle state that halts)."""

    def __init__(self, max_us: int = 0, device: Path | None = None) -> None:
        if not 0 <= max_us < 2**31:
            raise ValueError("max_us must be 0..2^31-1")
        self.max_us = max_us
        self.device = PM_QOS_DEVICE if device is None else device
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> CpuLatencyRequest:
        return self.acquire()

    def acquire(self) -> CpuLatencyRequest:
        """Make the request (held until ``release``); ``CpuLatencyError`` if it cannot be."""
        if self._fd is not None:
            return self  # held already: one request, one descriptor
        try:
            fd = os.open(self.device, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise CpuLatencyError(
                f"--low-latency: {self.device} does not exist: the CPU wake-up latency "
                "request is a Linux PM QoS device"
            ) from None
        except PermissionError:
            raise CpuLatencyError(
                f"--low-latency: no permission to write {self.device}: run as root, or let "
                'your group write it (a udev rule: KERNEL=="cpu_dma_latency", '
                'GROUP="GROUP", MODE="0660")'
            ) from None
        try:
            # The kernel reads a native 32-bit integer (or a hex string); the request holds
            # for as long as this descriptor is open.
            os.write(fd, struct.pack("=i", self.max_us))
        except OSError as exc:
            os.close(fd)
            raise CpuLatencyError(f"--low-latency: {self.device}: {exc.strerror}") from None
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def release(self) -> None:
        """End the request (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
